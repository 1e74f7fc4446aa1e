"""Read what a push needs from a policy folder or a ``train.py`` run folder, without writing to it.

A run folder holds the policy (``config.json`` + ``model.safetensors``) at its root, beside
``train_config.yaml``, ``eval_info.json`` + ``eval_info.png`` and the ``checkpoints/`` and ``logs/``
folders, and ``videos/`` where the evaluation recorded some. Only the policy, its reports and videos are published: checkpoints hold optimizer state and RNG
states for resuming, and logs are TensorBoard event files, neither of which belongs in a model repo.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from seqrl import registry
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.hub.errors import HubError

POLICY_FILES = ("config.json", "model.safetensors")
REPORT_FILES = ("train_config.yaml", "eval_info.json", "eval_info.png", "dataset_metadata.json")
VIDEO_DIR = "videos"  # --eval.video / evaluate.py --video: one MP4 per target return, shown on the card
PUBLISHED_FILES = POLICY_FILES + REPORT_FILES  # README.md (the card) is generated, never read from the folder
_RESULT_KEYS = ("target_return", "episodes", "return_mean", "return_std", "normalized_score_mean", "episode_length_mean")


@dataclass(frozen=True)
class RunFolder:
    """A policy folder as read for a push. ``files`` are the names under ``path`` to upload."""

    path: Path
    config: dict  # config.json as saved
    entry: registry.Entry
    files: tuple[str, ...]
    return_conditioned: bool
    train_config_text: str | None = None
    train_config: dict | None = None
    eval_report: dict | None = None
    dataset_metadata: DatasetMetadata | None = None

    @property
    def dataset_id(self) -> str | None:
        """The training data's id: the policy config's, else train_config.yaml's ``data.dataset``."""
        if self.config.get("dataset_id"):
            return str(self.config["dataset_id"])
        data = (self.train_config or {}).get("data") or {}
        return str(data["dataset"]) if isinstance(data, dict) and data.get("dataset") else None


def read_run_folder(run_dir: str | os.PathLike, dataset_metadata: DatasetMetadata | None = None) -> RunFolder:
    """Check that ``run_dir`` holds a loadable seqrl policy and read its reports.

    The policy is loaded once with :func:`seqrl.registry.load_policy` (safetensors only), so a folder
    whose weights do not match its config is refused here instead of being published.
    ``dataset_metadata`` (e.g. ``get_metadata(dataset)``) supplies the dataset statistics for the card
    when the folder has no ``dataset_metadata.json``.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise HubError(f"{path} is not a folder; pass a train.py output_dir or a folder saved with policy.save_pretrained.")
    try:
        policy = registry.load_policy(path)
    except SeqRLError as error:
        raise HubError(f"{path} cannot be pushed: it does not load as a seqrl policy. {error}") from error
    entry = _entry_for(policy)
    config = json.loads((path / "config.json").read_text())
    files = tuple(name for name in PUBLISHED_FILES if (path / name).is_file())
    files += tuple(sorted(str(video.relative_to(path)) for video in (path / VIDEO_DIR).glob("*.mp4")))

    train_config_text = train_config = eval_report = None
    if "train_config.yaml" in files:
        train_config_text = (path / "train_config.yaml").read_text()
        try:
            train_config = yaml.safe_load(train_config_text) or {}
        except yaml.YAMLError as error:
            raise HubError(
                f"{path / 'train_config.yaml'} is not valid YAML ({error}); fix or delete it before pushing."
            ) from error
    if "eval_info.json" in files:
        eval_report = _read_eval_report(path / "eval_info.json")
    if "dataset_metadata.json" in files:
        dataset_metadata = DatasetMetadata.from_json((path / "dataset_metadata.json").read_text())
    return RunFolder(path, config, entry, files, policy.uses_target_return, train_config_text, train_config, eval_report,
                     dataset_metadata)


def _entry_for(policy) -> registry.Entry:
    for name in registry.names():
        entry = registry.get(name)
        if type(policy) is entry.policy and policy.config.algo in (entry.name, None):
            return entry
    raise HubError(f"No registered algorithm produces {type(policy).__name__} with algo '{policy.config.algo}'.")


def _read_eval_report(file: Path) -> dict:
    """eval_info.json in the format of :mod:`seqrl.evaluation.report`."""
    redo = "Re-run `python evaluate.py --policy FOLDER` to rewrite it, or delete it to push without results."
    try:
        report = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise HubError(f"{file} is not valid JSON ({error}). {redo}") from error
    results = report.get("results") if isinstance(report, dict) else None
    if not isinstance(results, list) or not all(isinstance(r, dict) and all(k in r for k in _RESULT_KEYS) for r in results):
        raise HubError(f"{file} is not an evaluation report: it needs 'results', each with {', '.join(_RESULT_KEYS)}. {redo}")
    return report
