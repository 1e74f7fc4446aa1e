"""train.py --push_to_hub: a finished run goes to the Hub with its reports, dataset statistics and card."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from seqrl.data.sources import save_dataset
from seqrl.hub import HubError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _train_script():
    spec = importlib.util.spec_from_file_location("train_script", REPO_ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_py_pushes_the_finished_run(tmp_path, fake_hub, synthetic_dataset, capsys):
    save_dataset(synthetic_dataset(False), tmp_path / "data")
    _train_script().main([
        "--algo", "dt", "--data.dataset", str(tmp_path / "data"), "--steps", "2", "--output_dir", str(tmp_path / "run"),
        "--algo.hidden_size", "16", "--algo.n_layer", "1", "--algo.context_len", "4", "--eval.episodes", "1",
        "--eval.num_envs", "1", "--push_to_hub", "user/trained", "--private",
    ])
    assert capsys.readouterr().out.strip().endswith("https://huggingface.co/user/trained")
    files = fake_hub.files("user/trained")
    assert set(files) == {".gitattributes", "config.json", "model.safetensors", "train_config.yaml", "eval_info.json",
                          "eval_info.png", "dataset_metadata.json", "README.md"}
    assert "| Episodes | 3 |" in files["README.md"].decode()  # the dataset statistics, from dataset_metadata.json
    assert fake_hub.repos[("model", "user/trained")]["private"] is True


def test_train_py_checks_the_repo_id_before_training(tmp_path, fake_hub):
    with pytest.raises(HubError, match="has no namespace"):
        _train_script().main(["--steps", "2", "--output_dir", str(tmp_path / "run"), "--push_to_hub", "no-namespace"])
    assert not (tmp_path / "run").exists()


def test_train_py_pushes_every_checkpoint(tmp_path, fake_hub, synthetic_dataset):
    save_dataset(synthetic_dataset(False), tmp_path / "data")
    _train_script().main([
        "--algo", "dt", "--data.dataset", str(tmp_path / "data"), "--steps", "4", "--checkpoint_every", "2",
        "--output_dir", str(tmp_path / "run"), "--algo.hidden_size", "16", "--algo.n_layer", "1",
        "--algo.context_len", "4", "--eval.final", "false", "--push_to_hub", "user/ckpt", "--push_every_checkpoint",
    ])
    messages = [commit["message"] for commit in fake_hub.commits if commit["repo_id"] == "user/ckpt"]
    assert "Checkpoint at step 2" in messages
    assert len(messages) >= 2  # the checkpoint, then the final run
