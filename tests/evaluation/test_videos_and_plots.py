"""Evaluation videos (evaluate.py --video, --eval.video in training) and plots that leave matplotlib's backend alone."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

from seqrl.evaluation.command import main as evaluate_main
from seqrl.evaluation.report import write_report
from seqrl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig
from seqrl.online.plots import plot_online_returns
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train

pytest.importorskip("moviepy", reason="videos are written through moviepy: pip install 'seqrl[video]'")
imageio = pytest.importorskip("imageio.v2")


@pytest.fixture
def short_pendulum_policy(tmp_path):
    """An untrained DT for Pendulum (episodes of 200 steps)."""
    cfg = DecisionTransformerConfig(
        algo="dt", state_dim=3, act_dim=1, hidden_size=16, n_layer=1, context_len=5, max_ep_len=200,
        env_id="Pendulum-v1", action_low=[-2.0], action_high=[2.0],
        target_returns=[-1000.0, -200.0])
    folder = tmp_path / "policy"
    DecisionTransformer(cfg).save_pretrained(folder)
    return folder


def read_video(path):
    reader = imageio.get_reader(str(path))
    try:
        return [frame for frame in reader], reader.get_meta_data()
    finally:
        reader.close()


def test_evaluate_video_writes_a_playable_mp4_per_target(short_pendulum_policy, tmp_path):
    videos = tmp_path / "videos"
    evaluate_main(["--policy", str(short_pendulum_policy), "--episodes", "1", "--num_envs", "1",
                   "--video", str(videos), "--output", str(tmp_path / "eval.json")])
    assert sorted(p.name for p in videos.iterdir()) == ["target--1000.mp4", "target--200.mp4"]
    frames, meta = read_video(videos / "target--200.mp4")
    assert len(frames) >= 200 and frames[0].ndim == 3 and frames[0].shape[2] == 3  # one frame per step, RGB
    assert meta["fps"] > 0 and np.ptp(np.stack(frames)) > 0  # moving pictures, not a blank file


def test_training_eval_video_lands_in_the_run_folder(pendulum_dir, tmp_path):
    run = train(parse_train_args([
        "--data.dataset", str(pendulum_dir), "--output_dir", str(tmp_path / "run"), "--steps", "2",
        "--algo.hidden_size", "16", "--algo.n_layer", "1", "--algo.context_len", "5", "--algo.batch_size", "8",
        "--eval.episodes", "1", "--eval.num_envs", "1", "--eval.target_returns", "-300", "--eval.video",
        "--report_to", "none"]))
    frames, _ = read_video(run / "videos" / "target--300.mp4")
    assert len(frames) >= 200


def test_plots_leave_the_matplotlib_backend_unchanged(tmp_path):
    matplotlib.use("svg")  # a backend other than Agg, as a notebook has its own
    before = matplotlib.get_backend()
    report = {"policy": "p", "env_id": "Pendulum-v1", "results": [
        {"target_return": t, "episodes": 1, "return_mean": t / 2, "return_std": 1.0, "normalized_score_mean": None,
         "normalized_score_std": None, "episode_length_mean": 200.0, "returns": [t / 2]} for t in (-600.0, -300.0)]}
    write_report(report, tmp_path / "eval_info.json")
    plot_online_returns({"episodes": [[10, -500.0, 200], [20, -400.0, 200]],
                         "evaluations": [{"env_step": 20, "return_mean": -450.0, "return_std": 5.0}]},
                        tmp_path / "online.png", "online")
    assert matplotlib.get_backend() == before
    assert (tmp_path / "eval_info.png").read_bytes()[:4] == b"\x89PNG" and json.loads((tmp_path / "eval_info.json").read_text())
