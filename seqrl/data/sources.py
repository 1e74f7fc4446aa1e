"""Turn logged trajectories from any supported source into a seqrl :class:`datasets.Dataset`.

Sources, in the order :func:`load_dataset` tries them: a ``save_to_disk`` folder; a Minari dataset folder;
a D4RL-style ``.hdf5``/``.h5``/``.npz`` file (read by :mod:`seqrl.data.d4rl`); a Minari id ``namespace/name-vN``
found locally (under ``MINARI_DATASETS_PATH``, else ``~/.minari/datasets``); a built-in ``seqrl/...`` id
(generated on first use); a remote Minari id (``minari.download_dataset``, ids with two or more ``/``); a Hub
dataset repo id. This module converts Minari datasets (:func:`from_minari`), loads ``save_to_disk`` folders,
Minari ids and Hub repos, saves datasets (:func:`save_dataset`), and holds the observation-space flattening
that the converters share.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import datasets
import gymnasium as gym
import minari
import numpy as np
from minari.dataset.minari_dataset import DATASET_ID_RE
from minari.serialization import serialize_space
from minari.storage.datasets_root_dir import get_dataset_path

from seqrl.data import schema, validation
from seqrl.data.columns import release_mapped_pages
from seqrl.data.schema import DatasetMetadata, as_rows, build_dataset
from seqrl.data.stats import compute_stats
from seqrl.data.validation import check_action_space
from seqrl.envs import spec_kwargs
from seqrl.errors import SeqRLError

class DatasetSourceError(SeqRLError):
    """A dataset source could not be found or read; the message says what to do."""


# ---------------------------------------------------------------- spaces


def flatten_batch(space: gym.Space, data: Any) -> np.ndarray:
    """``gymnasium.spaces.flatten`` applied to a batch: ``[N, flatdim(space)]`` float32, no per-row Python."""
    if isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary):
        return as_rows(data, np.float32)
    if isinstance(space, gym.spaces.Discrete):
        ids = np.asarray(data).reshape(-1) - space.start  # [N]
        return np.eye(space.n, dtype=np.float32)[ids]
    if isinstance(space, gym.spaces.MultiDiscrete):
        ids = (np.asarray(data) - space.start).reshape(len(data), -1)  # [N, k]
        offsets = np.concatenate([[0], np.cumsum(space.nvec.reshape(-1))])  # one one-hot block per component
        flat = np.zeros((len(ids), offsets[-1]), dtype=np.float32)
        np.put_along_axis(flat, ids + offsets[:-1], 1.0, axis=1)
        return flat
    if isinstance(space, gym.spaces.Dict):
        return np.concatenate([flatten_batch(sub, data[key]) for key, sub in space.spaces.items()], axis=1)
    if isinstance(space, gym.spaces.Tuple):
        return np.concatenate([flatten_batch(sub, part) for sub, part in zip(space.spaces, data)], axis=1)
    raise DatasetSourceError(f"observation space {space} cannot be flattened to a vector; seqrl supports Box, Discrete, "
                             "MultiBinary, MultiDiscrete and Dict/Tuple of those.")


def observation_spaces(space: gym.Space) -> tuple[str, str | None]:
    """(serialized flat Box space of the observations column, serialized original space or None)."""
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return serialize_space(space), None
    return serialize_space(gym.spaces.flatten_space(space)), serialize_space(space)


# ---------------------------------------------------------------- Minari


def from_minari(minari_dataset: minari.MinariDataset, with_stats: bool = True) -> datasets.Dataset:
    """A seqrl dataset from a Minari dataset.

    Minari stores ``T + 1`` observations ``o_0 .. o_T`` for an episode of ``T`` steps; step ``t`` becomes the
    row ``observations = o_t``, ``next_observations = o_{t+1}``. Episodes are renumbered ``0 .. E-1`` in
    Minari's order. Episodes are read one at a time; everything after that is vectorised over all steps.
    ``with_stats`` is :func:`~seqrl.data.schema.build_dataset`'s.
    """
    obs_space, action_space = minari_dataset.observation_space, minari_dataset.action_space
    check_action_space(action_space, minari_dataset.id)
    discrete = isinstance(action_space, gym.spaces.Discrete)
    blocks: dict[str, list[np.ndarray]] = {"all_obs": [], "actions": [], "rewards": [], "terminations": [], "truncations": []}
    for episode in minari_dataset.iterate_episodes():
        steps = len(episode.rewards)
        episode_obs = flatten_batch(obs_space, episode.observations)  # [T+1, obs_dim]
        if len(episode_obs) != steps + 1:
            raise DatasetSourceError(
                f"Minari dataset {minari_dataset.id!r}, episode {episode.id}: {len(episode_obs)} observations for "
                f"{steps} steps, but Minari stores T+1 observations per episode; the dataset file is inconsistent."
            )
        blocks["all_obs"].append(episode_obs)
        actions = np.asarray(episode.actions)
        blocks["actions"].append(actions.reshape(steps).astype(np.int64) if discrete else as_rows(actions, np.float32))
        for name in ("rewards", "terminations", "truncations"):
            blocks[name].append(np.asarray(getattr(episode, name)).reshape(steps))
    if not blocks["rewards"]:
        raise DatasetSourceError(f"Minari dataset {minari_dataset.id!r} has no episodes; there is nothing to train on.")
    lengths = np.array([len(rewards) for rewards in blocks["rewards"]], dtype=np.int64)  # [E]
    columns = {name: np.concatenate(parts) for name, parts in blocks.items()}
    all_obs = columns.pop("all_obs")  # [N + E, obs_dim]: o_0 .. o_T of every episode
    is_first, is_last = np.zeros(len(all_obs), bool), np.zeros(len(all_obs), bool)
    is_last[np.cumsum(lengths + 1) - 1] = True  # o_T of each episode
    is_first[np.cumsum(lengths + 1) - 1 - lengths] = True  # o_0 of each episode
    episode_starts = np.cumsum(lengths) - lengths  # [E] first row of each episode among the steps
    columns["episode_index"] = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    columns["timestep"] = np.arange(lengths.sum(), dtype=np.int64) - np.repeat(episode_starts, lengths)
    columns["observations"] = all_obs[~is_last]  # o_0 .. o_{T-1} of each episode
    columns["next_observations"] = all_obs[~is_first]  # o_1 .. o_T of each episode
    raw = minari_dataset.storage.metadata
    env_spec = minari_dataset.env_spec
    obs_json, original_obs_json = observation_spaces(obs_space)
    metadata = DatasetMetadata(
        dataset_id=minari_dataset.id,
        env_spec=None if env_spec is None else env_spec.to_json(),
        observation_space=obs_json,
        action_space=serialize_space(action_space),
        original_observation_space=original_obs_json,
        **{key: None if raw.get(key) is None else float(raw[key]) for key in ("ref_min_score", "ref_max_score")},
    )
    return build_dataset(columns, metadata, with_stats)


# ---------------------------------------------------------------- dispatch


def _is_datasets_folder(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()


def _minari_data_folder(path: Path) -> Path | None:
    for candidate in (path / "data", path):
        if (candidate / "metadata.json").is_file():
            return candidate
    return None


def _load_from_disk(path: Path) -> datasets.Dataset:
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise DatasetSourceError(f"{path} holds the splits {list(loaded)}; seqrl reads the 'train' split. "
                                     "Save the split you want with seqrl.data.sources.save_dataset(ds[split], path).")
        loaded = loaded["train"]
    return loaded


def _builtin(dataset_id: str) -> minari.MinariDataset:
    from seqrl.data import builtin  # imported here: collection pulls in environments and behaviour policies

    if dataset_id not in builtin.BUILTIN_DATASETS:
        raise DatasetSourceError(
            f"{dataset_id!r} is not a built-in seqrl dataset. seqrl/... datasets are not downloaded: seqrl generates "
            "them locally on first use (seqrl.data.builtin.generate_builtin). "
            f"Built-in ids: {sorted(builtin.BUILTIN_DATASETS)}."
        )
    return builtin.generate_builtin(dataset_id)


def _download_minari(dataset_id: str) -> minari.MinariDataset:
    local = get_dataset_path(dataset_id)
    how = (f"Download it where a network is available with `minari download {dataset_id}` and point "
           f"MINARI_DATASETS_PATH at the folder that holds it, or pass the dataset folder's path.")
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise DatasetSourceError(f"Minari dataset {dataset_id!r} is not in the local Minari folder ({local}) and "
                                 f"HF_HUB_OFFLINE is set. {how}")
    try:
        minari.download_dataset(dataset_id)
    except Exception as error:  # noqa: BLE001 - any network/remote failure ends up in the same advice
        raise DatasetSourceError(f"Minari dataset {dataset_id!r} is not in the local Minari folder ({local}) and "
                                 f"downloading it failed ({type(error).__name__}: {error}). {how}") from error
    return minari.load_dataset(dataset_id)


def _load_hub(repo_id: str) -> datasets.Dataset:
    from seqrl.hub.data import load_dataset_from_hub  # imported here: seqrl.hub imports the registry and algorithms

    minari_hint = ""
    if DATASET_ID_RE.fullmatch(repo_id) and "-v" in repo_id:
        minari_hint = (f" If it is a Minari id, download it with `minari download {repo_id}` and set "
                       f"MINARI_DATASETS_PATH (looked in {get_dataset_path(repo_id)}).")
    try:
        return load_dataset_from_hub(repo_id)  # the Parquet data plus its seqrl_metadata.json; offline from the cache
    except Exception as error:  # noqa: BLE001 - the Hub is the last resort; report every way the source was tried
        raise DatasetSourceError(
            f"could not load dataset {repo_id!r}: it is not a local folder or file, not a local Minari id, and "
            f"loading it as a Hugging Face Hub dataset failed ({type(error).__name__}: {error}).{minari_hint}"
        ) from error


def load_dataset(
    source: str | os.PathLike,
    *,
    validate: bool = True,
    env_id: str | None = None,
    env_kwargs: dict | None = None,
    env_import: list[str] | None = None,
    action_low: list[float] | None = None,
    action_high: list[float] | None = None,
    drop_invalid_episodes: bool = False,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    log: Callable[[str], None] = print,
) -> datasets.Dataset:
    """Load ``source`` as a seqrl dataset with metadata, validated with :func:`seqrl.data.validation.validate`.

    ``env_id`` (any name :func:`seqrl.envs.resolve_env` takes) gives the environment the data was collected in,
    or replaces the one the source names; ``env_kwargs`` are its keyword arguments (on top of the source's env
    kwargs when ``env_id`` is not given) and ``env_import`` the modules that register it, saved with the
    metadata. The env's spaces must fit the data (:func:`seqrl.data.binding.with_env`). ``action_low`` /
    ``action_high`` set the bounds of Box actions. ``drop_invalid_episodes`` drops NaN/inf and one-step episodes
    and marks unterminated ones truncated (:mod:`seqrl.data.repair`), reporting through ``log``.
    ``ref_min_score`` / ``ref_max_score`` apply to D4RL files (overriding the file's attributes); every other
    source carries its own. The statistics are computed after validation, so they never meet NaN/inf values.
    """
    from seqrl.data import binding, repair  # they import this module
    from seqrl.data.d4rl import D4RL_FILE_SUFFIXES, from_d4rl, read_d4rl_file  # d4rl imports this module

    source = str(source)
    path = Path(source).expanduser()
    is_d4rl_file = path.is_file() and path.suffix in D4RL_FILE_SUFFIXES
    if not is_d4rl_file and (ref_min_score, ref_max_score) != (None, None):
        raise DatasetSourceError(f"ref_min_score/ref_max_score apply to D4RL .hdf5/.h5/.npz files only; {source!r} "
                                 "carries its own metadata (change it with seqrl.data.schema.with_metadata).")
    if path.is_dir():
        if _is_datasets_folder(path):
            ds = _load_from_disk(path)
        elif (data_folder := _minari_data_folder(path)) is not None:
            ds = from_minari(minari.MinariDataset(data_folder), with_stats=False)
        else:
            raise DatasetSourceError(f"folder {source!r} is neither a datasets save_to_disk folder (no dataset_info.json) "
                                     "nor a Minari dataset (no data/metadata.json).")
    elif is_d4rl_file:
        arrays, attrs = read_d4rl_file(path)
        if env_kwargs and not (env_id or attrs["env_id"]):
            raise _kwargs_without_env(env_kwargs, attrs["dataset_id"])
        ds = from_d4rl(arrays, env_id or attrs["env_id"], dataset_id=attrs["dataset_id"],
                       ref_min_score=attrs["ref_min_score"] if ref_min_score is None else ref_min_score,
                       ref_max_score=attrs["ref_max_score"] if ref_max_score is None else ref_max_score,
                       env_kwargs=env_kwargs, env_import=env_import, with_stats=False)
    elif path.is_file() or path.suffix in D4RL_FILE_SUFFIXES or source.startswith(("/", "./", "../", "~")):
        raise DatasetSourceError(f"no dataset at path {source!r}: expected a save_to_disk or Minari folder, or a D4RL "
                                 f"file ending in {D4RL_FILE_SUFFIXES}.")
    elif DATASET_ID_RE.fullmatch(source) and (get_dataset_path(source) / "data").is_dir():
        ds = from_minari(minari.load_dataset(source), with_stats=False)
    elif source.startswith("seqrl/"):
        ds = from_minari(_builtin(source), with_stats=False)
    elif DATASET_ID_RE.fullmatch(source) and source.count("/") >= 2:  # Hub repo ids have exactly one '/'
        ds = from_minari(_download_minari(source), with_stats=False)
    else:
        ds = _load_hub(source)
    release_mapped_pages(ds)  # opening a saved dataset leaves much of it resident through its memory map
    if not is_d4rl_file:  # from_d4rl took the env already
        ds = _with_given_env(ds, env_id, env_kwargs, env_import)
    if action_low is not None or action_high is not None:
        ds = binding.with_action_bounds(ds, action_low, action_high)
    if drop_invalid_episodes:
        ds, repairs = repair.drop_invalid_episodes(ds)
        for line in repairs.lines():
            log(line)
    metadata = schema.get_metadata(ds)  # fails early on data without seqrl metadata
    if validate:
        validation.validate(ds)  # the module: the argument `validate` hides the function
    if not metadata.stats:
        ds = schema.with_metadata(ds, replace(metadata, stats=compute_stats(ds)))
    return ds


def _with_given_env(ds: datasets.Dataset, env_id: str | None, env_kwargs: dict | None,
                    env_import: list[str] | None) -> datasets.Dataset:
    """``ds`` bound to the env the caller gives (see :func:`load_dataset`); as it is when none is given."""
    from seqrl.data.binding import with_env

    metadata = schema.get_metadata(ds)
    if env_id:
        return with_env(ds, env_id, env_kwargs, env_import)
    if env_kwargs:
        if not metadata.env_id:
            raise _kwargs_without_env(env_kwargs, metadata.dataset_id)
        return with_env(ds, metadata.env_id, {**spec_kwargs(metadata.env_spec), **env_kwargs}, env_import)
    if env_import and metadata.env_id:
        return schema.with_metadata(ds, replace(metadata, env_import=list(env_import)))
    return ds


def _kwargs_without_env(env_kwargs: dict, dataset_id: str) -> DatasetSourceError:
    return DatasetSourceError(f"env kwargs {env_kwargs} were given, but the dataset '{dataset_id}' names no "
                              "environment for them; name one with --data.env_id ID.")


def save_dataset(ds: datasets.Dataset, path: str | os.PathLike) -> None:
    """``ds.save_to_disk(path)``, atomically: written to a temporary folder beside ``path``, then renamed, so a
    failure never leaves a half-written folder nor damages a dataset already at ``path``."""
    schema.get_metadata(ds)  # refuse to save data that would reload without metadata
    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging, retired = path.with_name(f".{path.name}.tmp-{token}"), path.with_name(f".{path.name}.old-{token}")
    try:
        ds.save_to_disk(str(staging))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if path.exists():
        os.replace(path, retired)  # two renames: a folder cannot replace a non-empty folder in one step
    os.replace(staging, path)
    shutil.rmtree(retired, ignore_errors=True)
