"""Fixtures for the Hub tests: an offline Hugging Face cache, a fake Hub behind ``HfApi``, tiny policies and
run folders.

No test reaches the network: ``HF_HUB_OFFLINE`` is set for every test, and the fake Hub replaces the
``HfApi`` methods that seqrl calls. The fake stores every commit as a snapshot in the real Hugging Face
cache layout (``<type>s--user--repo/{blobs,snapshots/<commit>,refs/<branch>}``), so what a push uploads
is exactly what ``load_policy("user/repo")`` and ``load_dataset_from_hub`` then read offline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
from pathlib import Path
from types import SimpleNamespace

import datasets
import draccus
import numpy as np
import pytest
import torch
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi, RepoUrl, constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from seqrl import registry
from seqrl.data.schema import get_metadata
from seqrl.data.d4rl import from_d4rl
from seqrl.evaluation.report import write_report
from seqrl.training.config import DataConfig, TrainConfig

ENDPOINT = "https://huggingface.co"
TINY = {"hidden_size": 16, "n_layer": 1, "n_head": 1, "context_len": 4}  # applied where an algorithm has the field


def http_error(status: int, cls=HfHubHTTPError, message: str | None = None) -> HfHubHTTPError:
    """An error as huggingface_hub raises it for an HTTP status (the response only needs these fields)."""
    return cls(message or f"{status} Client Error for url: {ENDPOINT}/api/...",
               response=SimpleNamespace(status_code=status, headers={}, request=None))


def transport_error() -> Exception:
    """What huggingface_hub's HTTP client raises when the Hub cannot be reached (DNS failure)."""
    for module in ("httpx2", "httpx"):
        try:
            return __import__(module).ConnectError("[Errno -2] Name or service not known")
        except ImportError:
            continue
    import requests

    return requests.ConnectionError("[Errno -2] Name or service not known")


# ---------------------------------------------------------------- the Hugging Face cache


def cache_repo_folder(repo_id: str, repo_type: str = "model") -> Path:
    return Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}"


def write_snapshot(repo_id: str, files: dict[str, bytes], commit: str, branch: str | None = "main",
                   repo_type: str = "model") -> Path:
    """Place ``files`` in the cache as snapshot ``commit`` (blobs + symlinks, as huggingface_hub writes them)."""
    folder = cache_repo_folder(repo_id, repo_type)
    snapshot = folder / "snapshots" / commit
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (len(Path(name).parts) + 1)) / "blobs" / blob.name)
    snapshot.mkdir(parents=True, exist_ok=True)
    if branch:
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / branch).write_text(commit)
    return snapshot


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tree_state(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file and folder under ``folder`` with its bytes, mode and mtime: equal means untouched."""
    state = {}
    for path in sorted(folder.rglob("*")):
        stat = path.stat()
        state[str(path.relative_to(folder))] = (path.read_bytes() if path.is_file() else b"", stat.st_mode, stat.st_mtime_ns)
    return state


@pytest.fixture(autouse=True)
def offline_hf_cache(tmp_path, monkeypatch):
    """A fresh Hugging Face cache per test, and offline mode, so that nothing can reach the network.

    huggingface_hub reads ``HF_HUB_OFFLINE``/``HF_HUB_CACHE`` at import into ``huggingface_hub.constants``
    (which transformers reads too) and datasets copies them into ``datasets.config``; patching those module
    attributes (and the environment, for subprocesses) is the reliable way to switch them in-process."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")
    return cache


# ---------------------------------------------------------------- the fake Hub


class FakeHub:
    """The Hub as seen through ``HfApi``: repos with branches, commits stored as cache snapshots."""

    def __init__(self):
        self.online = True  # set False to pull as a machine without network would (the methods then refuse)
        self.repos: dict[tuple[str, str], dict] = {}  # (repo_type, repo_id) -> {"private", "branches", "commits"}
        self.commits: list[dict] = []  # every create_commit: repo, revision, message, added {path: bytes}, deleted
        self._counter = itertools.count()

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        repo = self.repos[(repo_type, repo_id)]
        return dict(repo["commits"][repo["branches"].get(revision, revision)])

    def add_repo(self, repo_id: str, files: dict[str, bytes], repo_type: str = "model") -> str:
        self.repos[(repo_type, repo_id)] = {"private": False, "branches": {}, "commits": {}}
        return self._commit(repo_type, repo_id, "main", {".gitattributes": b"*.safetensors filter=lfs\n", **files}, ())

    def _commit(self, repo_type, repo_id, branch, added: dict, deleted) -> str:
        repo = self.repos[(repo_type, repo_id)]
        parent = repo["branches"].get(branch)
        files = dict(repo["commits"][parent]) if parent else {}
        files.update(added)
        for name in deleted:
            files.pop(name)
        sha = hashlib.sha1(f"{repo_id}-{next(self._counter)}".encode()).hexdigest()
        repo["commits"][sha] = files
        repo["branches"][branch] = sha
        write_snapshot(repo_id, files, sha, branch, repo_type)
        return sha

    def _repo(self, repo_id, repo_type):
        if not self.online:
            raise OfflineModeIsEnabled("the fake Hub is offline")
        key = (repo_type or "model", repo_id)
        if key not in self.repos:
            raise http_error(404, RepositoryNotFoundError, f"404 Client Error. Repository Not Found: {repo_id}")
        return self.repos[key]

    def _resolve(self, repo, revision):
        revision = revision or "main"
        if revision in repo["branches"]:
            return repo["branches"][revision]
        if revision in repo["commits"]:
            return revision
        raise http_error(404, RevisionNotFoundError, f"404 Client Error. Revision Not Found: {revision}")

    # --- the HfApi methods seqrl calls -------------------------------------------------------------
    def repo_info(self, api, repo_id, *, revision=None, repo_type=None, **_):
        repo = self._repo(repo_id, repo_type)
        sha = self._resolve(repo, revision)
        return SimpleNamespace(sha=sha, siblings=[SimpleNamespace(rfilename=name) for name in repo["commits"][sha]])

    def create_repo(self, api, repo_id, *, private=None, repo_type=None, exist_ok=False, **_):
        if not self.online:
            raise OfflineModeIsEnabled("the fake Hub is offline")
        key = (repo_type or "model", repo_id)
        if key in self.repos:
            if not exist_ok:
                raise http_error(409)
        else:
            self.add_repo(repo_id, {}, key[0])
            self.repos[key]["private"] = bool(private)
        return RepoUrl(f"{ENDPOINT}/{'datasets/' if key[0] == 'dataset' else ''}{repo_id}")

    def create_branch(self, api, repo_id, *, branch, revision=None, repo_type=None, exist_ok=False, **_):
        repo = self._repo(repo_id, repo_type)
        if branch in repo["branches"]:
            if not exist_ok:
                raise http_error(409)
            return
        repo["branches"][branch] = self._resolve(repo, revision)

    def create_commit(self, api, repo_id, operations, *, commit_message, repo_type=None, revision=None,
                      parent_commit=None, **_):
        repo = self._repo(repo_id, repo_type)
        branch = revision or "main"
        head = self._resolve(repo, branch)
        if parent_commit is not None and parent_commit != head:
            raise http_error(412)
        added, deleted = {}, []
        for op in operations:
            if isinstance(op, CommitOperationAdd):
                with op.as_file() as file:
                    added[op.path_in_repo] = file.read()
            elif isinstance(op, CommitOperationDelete):
                deleted.append(op.path_in_repo)
        sha = self._commit(repo_type or "model", repo_id, branch, added, deleted)
        self.commits.append({"repo_id": repo_id, "repo_type": repo_type or "model", "revision": branch,
                             "message": commit_message, "added": added, "deleted": deleted})
        prefix = "datasets/" if repo_type == "dataset" else ""
        return CommitInfo(commit_url=f"{ENDPOINT}/{prefix}{repo_id}/commit/{sha}", commit_message=commit_message,
                          commit_description="", oid=sha)

    def hf_hub_download(self, api, repo_id, filename, *, repo_type=None, revision=None, **_):
        repo = self._repo(repo_id, repo_type)
        sha = self._resolve(repo, revision)
        if filename not in repo["commits"][sha]:
            raise EntryNotFoundError(f"{filename} not in {repo_id}@{sha}")
        return str(cache_repo_folder(repo_id, repo_type or "model") / "snapshots" / sha / filename)


def fake_push_to_hub(self, repo_id, split=None, private=None, token=None, revision=None, commit_message=None, **_):
    """``Dataset.push_to_hub`` as datasets does it, minus the network: Parquet shard + README with ``configs``,
    committed through ``HfApi.create_commit`` (so through the fake Hub)."""
    buffer = io.BytesIO()
    self.to_parquet(buffer)
    readme = ("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
              f"dataset_info:\n  splits:\n  - name: train\n    num_examples: {self.num_rows}\n---\n")
    operations = [CommitOperationAdd(path_in_repo="data/train-00000-of-00001.parquet", path_or_fileobj=buffer.getvalue()),
                  CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode())]
    return HfApi(token=token).create_commit(repo_id, operations, commit_message=commit_message or "Upload dataset",
                                            repo_type="dataset", revision=revision)


@pytest.fixture
def fake_hub(monkeypatch) -> FakeHub:
    hub = FakeHub()
    for name in ("repo_info", "create_repo", "create_branch", "create_commit", "hf_hub_download"):
        method = getattr(hub, name)
        monkeypatch.setattr(HfApi, name, lambda api, *args, _method=method, **kwargs: _method(api, *args, **kwargs))
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", fake_push_to_hub)
    return hub


# ---------------------------------------------------------------- tiny policies and run folders


def synthetic_dataset(discrete: bool, dataset_id: str = "user/pendulum-mixed") -> datasets.Dataset:
    """Three 20-step episodes in Pendulum-v1 (or CartPole-v1 for discrete actions), with reference scores."""
    rng = np.random.default_rng(0)
    steps, env_id = 60, "CartPole-v1" if discrete else "Pendulum-v1"
    obs_dim = 4 if discrete else 3
    arrays = {
        "observations": rng.uniform(-0.05, 0.05, (steps, obs_dim)).astype(np.float32),
        "next_observations": rng.uniform(-0.05, 0.05, (steps, obs_dim)).astype(np.float32),
        "actions": rng.integers(0, 2, steps) if discrete else rng.uniform(-2, 2, (steps, 1)).astype(np.float32),
        "rewards": rng.uniform(-1, 1, steps).astype(np.float32),
        "terminals": np.zeros(steps, bool),
        "timeouts": (np.arange(steps) % 20) == 19,
    }
    return from_d4rl(arrays, env_id, dataset_id=dataset_id, ref_min_score=-1200.0, ref_max_score=-150.0)


def algo_config(name: str):
    entry = registry.get(name)
    fields = {field.name for field in dataclasses.fields(entry.config)}
    return entry.config(**{key: value for key, value in TINY.items() if key in fields})


def tiny_policy(name: str, seed: int = 0, dataset_id: str = "user/pendulum-mixed"):
    """The policy of registered algorithm ``name``, built by the algorithm itself from synthetic data."""
    entry = registry.get(name)
    dataset = synthetic_dataset(discrete=not entry.algorithm.supports_continuous, dataset_id=dataset_id)
    torch.manual_seed(seed)
    algorithm = entry.algorithm(algo_config(name), get_metadata(dataset))
    return algorithm.policy().eval()


def eval_report(policy, run_dir: Path) -> dict:
    """An eval_info.json as evaluate.py writes it (seqrl.evaluation.report format)."""
    targets = [-600.0, -300.0] if policy.uses_target_return else [None]
    rows = []
    for i, target in enumerate(targets):
        returns = [-700.0 + 200.0 * i - 50.0, -700.0 + 200.0 * i + 50.0]
        scores = [100.0 * (r + 1200.0) / 1050.0 for r in returns]
        rows.append({"target_return": target, "episodes": 2, "return_mean": float(np.mean(returns)),
                     "return_std": float(np.std(returns, ddof=1)), "normalized_score_mean": float(np.mean(scores)),
                     "normalized_score_std": float(np.std(scores)), "episode_length_mean": 200.0, "returns": returns})
    return {"policy": str(run_dir), "env_id": policy.config.env_id, "results": rows}


def make_run(folder: Path, name: str, policy=None, *, evaluation: bool = True, dataset_id: str = "user/pendulum-mixed") -> Path:
    """A train.py run folder: policy at the root, train_config.yaml, eval_info.json/.png, checkpoints/, logs/."""
    policy = policy if policy is not None else tiny_policy(name, dataset_id=dataset_id)
    policy.save_pretrained(folder)
    cfg = TrainConfig(algo=algo_config(name), data=DataConfig(dataset=dataset_id), output_dir=str(folder), steps=10)
    (folder / "train_config.yaml").write_text(draccus.dump(cfg))
    if evaluation:
        write_report(eval_report(policy, folder), folder / "eval_info.json")
    checkpoint = folder / "checkpoints" / "step-10"
    policy.save_pretrained(checkpoint / "policy")
    (checkpoint / "optimizer.bin").write_bytes(b"optimizer state")
    (folder / "logs" / "seqrl").mkdir(parents=True)
    (folder / "logs" / "seqrl" / "events.out.tfevents.0").write_bytes(b"tensorboard events")
    return folder


# The helpers as fixtures, so that test modules need not import this conftest by name.
def _as_fixture(helper):
    return pytest.fixture(name=helper.__name__)(lambda: helper)


for _helper in (folder_files, http_error, make_run, synthetic_dataset, tiny_policy, transport_error, tree_state, write_snapshot):
    globals()[f"_{_helper.__name__}_fixture"] = _as_fixture(_helper)
