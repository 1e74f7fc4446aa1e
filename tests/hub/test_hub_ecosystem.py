"""The Hub as transformers users know it: a card whose evaluate command reproduces its numbers, checkpoint pushes
that do not hold up training, policy.push_to_hub with seqrl's card, and the card fields the Hub indexes."""

from __future__ import annotations

import json
import shlex
import threading

import datasets
import yaml
from huggingface_hub import DatasetCard, ModelCard

import seqrl.hub
import seqrl.training.command as command
from seqrl.data.schema import DatasetMetadata, get_metadata
from seqrl.data.sources import save_dataset
from seqrl.evaluation.command import main as evaluate_main
from seqrl.hub.cards import dataset_card, model_card
from seqrl.hub.data import load_dataset_from_hub, push_dataset
from seqrl.hub.push import push_policy
from seqrl.hub.run_folder import read_run_folder

TINY_DT = ["--algo", "dt", "--algo.hidden_size", "16", "--algo.n_layer", "1", "--algo.context_len", "4",
           "--report_to", "none"]


def test_the_cards_evaluate_command_reproduces_the_cards_numbers(tmp_path, fake_hub, pendulum_dir, write_snapshot):
    command.main([*TINY_DT, "--data.dataset", str(pendulum_dir), "--steps", "2", "--output_dir", str(tmp_path / "run"),
                  "--eval.episodes", "3", "--eval.num_envs", "2", "--eval.target_returns", "-600", "-300",
                  "--push_to_hub", "user/repro"])
    files = fake_hub.files("user/repro")
    card = files["README.md"].decode()
    line = next(line for line in card.splitlines() if line.startswith("seqrl-eval "))
    assert "--seed 10000" in line and "--num_envs 2" in line and "--episodes 3" in line
    write_snapshot("user/repro", files, "c0ffee" * 6 + "abcd")  # what `hf download` would give a reader
    evaluate_main([*shlex.split(line)[1:], "--output", str(tmp_path / "again.json")])
    published = json.loads(files["eval_info.json"])["results"]
    again = json.loads((tmp_path / "again.json").read_text())["results"]
    assert [row["returns"] for row in again] == [row["returns"] for row in published]  # exactly the same episodes
    assert f"{published[0]['return_mean']:.1f} ± {published[0]['return_std']:.1f}" in card


def test_checkpoint_pushes_do_not_block_the_step_loop(tmp_path, fake_hub, synthetic_dataset, monkeypatch):
    save_dataset(synthetic_dataset(False), tmp_path / "data")
    events = []
    real_push, real_train = seqrl.hub.push_policy, command.train
    trained = threading.Event()

    def slow_push(*args, **kwargs):
        """A checkpoint upload that cannot finish before training has ended: if the step loop waited for it,
        it would wait out the 60-s timeout, and the order of events below would show it."""
        if (kwargs.get("commit_message") or "").startswith("Checkpoint"):
            trained.wait(timeout=60)
        result = real_push(*args, **kwargs)
        events.append((kwargs.get("commit_message") or "final", threading.current_thread().name))
        return result

    def timed_train(*args, **kwargs):
        run_dir = real_train(*args, **kwargs)
        events.append(("trained", threading.current_thread().name))
        trained.set()
        return run_dir

    monkeypatch.setattr(seqrl.hub, "push_policy", slow_push)
    monkeypatch.setattr(command, "train", timed_train)
    command.main([*TINY_DT, "--data.dataset", str(tmp_path / "data"), "--steps", "6", "--checkpoint_every", "2",
                  "--output_dir", str(tmp_path / "run"), "--eval.final", "false", "--push_to_hub", "user/ckpt",
                  "--push_every_checkpoint"])
    names = [name for name, _ in events]
    assert names == ["trained", "Checkpoint at step 2", "Checkpoint at step 4", "final"]  # training never waited
    assert all(thread.startswith("seqrl-push") for _, thread in events[1:3])
    messages = [commit["message"] for commit in fake_hub.commits if commit["repo_id"] == "user/ckpt"]
    assert messages[:2] == ["Checkpoint at step 2", "Checkpoint at step 4"] and len(messages) == 3


def test_policy_push_to_hub_goes_through_the_seqrl_card(tmp_path, fake_hub, tiny_policy, make_run):
    tiny_policy("iql").push_to_hub("user/iql")
    card = ModelCard(fake_hub.files("user/iql")["README.md"].decode())
    assert card.data.library_name == "seqrl" and card.data.license == "apache-2.0"
    assert "seqrl-eval --policy user/iql" in card.text
    run = make_run(tmp_path / "run", "dt")
    tiny_policy("dt").push_to_hub("user/dt", run_dir=str(run), license="mit")
    files = fake_hub.files("user/dt")
    assert ModelCard(files["README.md"].decode()).data.license == "mit" and "## Evaluation" in files["README.md"].decode()
    assert "eval_info.json" in files and "train_config.yaml" in files


def test_model_card_names_its_base_model_and_shows_videos(tmp_path, fake_hub, make_run):
    run = make_run(tmp_path / "run", "dt")
    config = yaml.safe_load((run / "train_config.yaml").read_text())
    (run / "train_config.yaml").write_text(yaml.safe_dump({**config, "init_from": "user/dt-base"}))
    (run / "videos").mkdir()
    (run / "videos" / "target--600.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    card = model_card(read_run_folder(run), "user/dt")
    assert card.data.base_model == "user/dt-base"
    assert '<video controls src="videos/target--600.mp4"></video>' in card.text
    push_policy(run, "user/dt")
    assert "videos/target--600.mp4" in fake_hub.files("user/dt")
    (run / "train_config.yaml").write_text(yaml.safe_dump({**config, "init_from": str(tmp_path)}))  # a local folder
    assert model_card(read_run_folder(run), "user/dt").data.base_model is None


def test_dataset_card_has_license_and_size(synthetic_dataset):
    dataset = synthetic_dataset(discrete=False)
    card = DatasetCard(str(dataset_card(get_metadata(dataset), "user/data", 2400)))
    assert card.data.license == "cc-by-4.0" and card.data.size_categories == ["1K<n<10K"]
    assert DatasetCard(str(dataset_card(get_metadata(dataset), "user/data", 60, license="mit"))).data.size_categories \
        == ["n<1K"]


def test_dataset_metadata_reads_with_plain_datasets(fake_hub, synthetic_dataset, write_snapshot):
    dataset = synthetic_dataset(discrete=False)
    push_dataset(dataset, "user/data")
    files = fake_hub.files("user/data", repo_type="dataset")
    folder = write_snapshot("user/data", files, "d" * 40, repo_type="dataset")  # the repo as the Hub serves it
    row = datasets.load_dataset(str(folder), "seqrl_metadata", split="train")[0]
    assert DatasetMetadata.from_json(row["seqrl_metadata"]) == get_metadata(dataset)
    assert datasets.load_dataset(str(folder), split="train").num_rows == dataset.num_rows  # the data: the default
    assert get_metadata(load_dataset_from_hub("user/data")) == get_metadata(dataset)
