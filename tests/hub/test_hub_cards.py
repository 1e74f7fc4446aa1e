"""Model and dataset cards: Hub metadata (tags, datasets, model-index) and the body a person reads."""

from __future__ import annotations


import pytest
from huggingface_hub import DatasetCard, ModelCard

from seqrl import registry
from seqrl.data.schema import get_metadata
from seqrl.hub import dataset_card, model_card, read_run_folder
from seqrl.hub.cards import hub_dataset_id


@pytest.mark.parametrize("algo", registry.names())
def test_model_card_metadata_and_eval_table(tmp_path, make_run, algo):
    run = read_run_folder(make_run(tmp_path / "run", algo))
    card = model_card(run, "user/policy")
    text = str(card)
    env_id = run.config["env_id"]

    data = ModelCard(text).data  # what the Hub parses
    assert data.library_name == "seqrl" and data.pipeline_tag == "reinforcement-learning"
    assert data.tags == ["reinforcement-learning", "offline-rl", algo, env_id]
    assert data.datasets == ["user/pendulum-mixed"]
    results = {(r.metric_type, (r.metric_args or {}).get("target_return")): r for r in data.eval_results}
    for row in run.eval_report["results"]:
        mean = results[("mean_reward", row["target_return"])]
        assert (mean.task_type, mean.dataset_type, mean.dataset_name) == ("reinforcement-learning", env_id, env_id)
        assert mean.metric_value == f"{row['return_mean']:.2f} +/- {row['return_std']:.2f}"
        assert results[("normalized_score", row["target_return"])].metric_value == round(row["normalized_score_mean"], 2)

    target_column = "| Target return " if run.return_conditioned else ""
    assert f"{target_column}| Return (mean ± std) | Normalised score | Episode length | Episodes |" in text
    for row in run.eval_report["results"]:
        target = f"| {row['target_return']:.1f} " if run.return_conditioned else ""
        line = (f"{target}| {row['return_mean']:.1f} ± {row['return_std']:.1f} | {row['normalized_score_mean']:.1f} | "
                f"{row['episode_length_mean']:.1f} | {row['episodes']} |")
        assert line in text
    assert ("![Achieved return against target return](eval_info.png)" in text) == run.return_conditioned
    assert registry.get(algo).paper in text
    assert f"```yaml\n{run.train_config_text.rstrip()}\n```" in text


def test_model_card_commands_reproduce_and_evaluate(tmp_path, make_run):
    text = str(model_card(read_run_folder(make_run(tmp_path / "run", "dt")), "user/dt-pendulum"))
    assert "seqrl-eval --policy user/dt-pendulum --target_returns -600 -300 --episodes 2" in text
    assert "hf download user/dt-pendulum train_config.yaml --local-dir dt-pendulum" in text
    assert "seqrl-train --config dt-pendulum/train_config.yaml --output_dir runs/dt-pendulum" in text
    assert 'policy = load_policy("user/dt-pendulum")' in text
    assert ("seqrl-train --config dt-pendulum/train_config.yaml --init_from user/dt-pendulum "
            "--data.dataset user/pendulum-mixed --output_dir runs/dt-pendulum-finetuned") in text


def test_model_card_shows_dataset_statistics_when_known(tmp_path, make_run, synthetic_dataset):
    metadata = get_metadata(synthetic_dataset(discrete=False))
    run_dir = make_run(tmp_path / "run", "dt")
    without = str(model_card(read_run_folder(run_dir), "user/dt"))
    assert "| Statistic | Value |" not in without
    for run in (read_run_folder(run_dir, metadata),
                read_run_folder(_with_file(run_dir, "dataset_metadata.json", metadata.to_json()))):
        text = str(model_card(run, "user/dt"))
        assert "| Episodes | 3 |" in text and "| Steps | 60 |" in text
        stats = metadata.stats
        assert f"| Return (mean ± std) | {stats['return_mean']:.1f} ± {stats['return_std']:.1f} |" in text
        assert "| Reference returns (min / max) | -1200 / -150 |" in text


def _with_file(folder, name, text):
    (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("dataset_id, hub_id", [
    ("user/pendulum-mixed", "user/pendulum-mixed"),  # a Hub dataset repo
    ("mujoco/hopper/medium-v0", "farama-minari/mujoco"),  # a published Minari dataset
    ("D4RL/door/human-v2", "farama-minari/D4RL"),
    ("seqrl/pendulum/mixed-v0", None),  # built-in: generated locally
    ("mine/pendulum/expert-v0", None),  # a local Minari dataset
    ("data/hopper.hdf5", None), ("/abs/path/folder", None), ("./folder", None), (None, None),
])
def test_hub_dataset_id(dataset_id, hub_id):
    assert hub_dataset_id(dataset_id) == hub_id


def test_builtin_and_minari_datasets_are_described_without_a_hub_link(tmp_path, make_run):
    builtin = str(model_card(read_run_folder(make_run(tmp_path / "a", "dt", dataset_id="seqrl/pendulum/mixed-v0")), "u/a"))
    assert "datasets:" not in builtin and "seqrl-collect --builtin seqrl/pendulum/mixed-v0" in builtin
    minari = str(model_card(read_run_folder(make_run(tmp_path / "b", "dt", dataset_id="mujoco/hopper/medium-v0")), "u/b"))
    assert ModelCard(minari).data.datasets == ["farama-minari/mujoco"]
    assert "minari download mujoco/hopper/medium-v0\nseqrl-train" in minari


def test_dataset_card_keeps_the_datasets_yaml_and_describes_the_data(synthetic_dataset):
    dataset = synthetic_dataset(discrete=True)
    metadata = get_metadata(dataset)
    base = "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n---\n"
    card = DatasetCard(str(dataset_card(metadata, "user/cartpole", dataset.num_rows, base)))
    assert card.data.configs == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]},  # push_to_hub's, kept
        {"config_name": "seqrl_metadata", "data_files": [{"split": "train", "path": "seqrl_metadata/train-00000-of-00001.parquet"}]},
    ]
    assert card.data.task_categories == ["reinforcement-learning"]
    assert {"seqrl", "offline-rl", "CartPole-v1"} <= set(card.data.tags)
    assert "| Episodes | 3 |" in card.text and "Discrete(2)" in card.text
    assert 'load_dataset_from_hub("user/cartpole")' in card.text
