"""D4RL-style logs as seqrl datasets: flat per-step arrays from an ``.hdf5``/``.h5``/``.npz`` file or a dict.

The layout is D4RL's (Fu et al. 2020, "D4RL: Datasets for Deep Data-Driven Reinforcement Learning",
https://arxiv.org/abs/2004.07219): one row per step in the arrays ``observations, actions, rewards, terminals,
timeouts`` and optionally ``next_observations``, with episodes delimited only by the ``terminals``/``timeouts``
flags. :func:`read_d4rl_file` reads such a file; :func:`from_d4rl` splits the rows into episodes and builds the
dataset. :func:`seqrl.data.sources.load_dataset` uses both for paths ending in :data:`D4RL_FILE_SUFFIXES`.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import datasets
import gymnasium as gym
import numpy as np
from minari.serialization import serialize_space

from seqrl import envs
from seqrl.data import schema
from seqrl.data.schema import DatasetMetadata, as_rows, build_dataset
from seqrl.data.sources import DatasetSourceError, observation_spaces
from seqrl.data.validation import check_action_space

D4RL_FILE_SUFFIXES = (".hdf5", ".h5", ".npz")
D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


def from_d4rl(
    arrays: Mapping[str, np.ndarray],
    env_id: str | None = None,
    *,
    dataset_id: str = "d4rl",
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    env_kwargs: dict | None = None,
    env_import: list[str] | None = None,
    with_stats: bool = True,
) -> datasets.Dataset:
    """A seqrl dataset from a D4RL-style dict of flat arrays (``observations, actions, rewards, terminals,
    timeouts`` and optionally ``next_observations``).

    An episode ends at each step with ``terminals | timeouts``; a step that has both is a termination. Steps
    after the last flag form a final episode cut by the end of the log (a truncation). Without
    ``next_observations``, ``s_{t+1}`` is the next row's observation; at an episode's last step it is unknown,
    so a truncated episode drops its last step (the step before becomes the truncation, its ``s_{t+1}`` is
    then known) and a terminated episode repeats ``s_t`` (never bootstrapped from, since the step is terminal).
    Spaces come from the environment ``env_id`` (any name :func:`seqrl.envs.resolve_env` takes, made with
    ``env_kwargs``; ``env_import`` are the modules that register it) when given, after checking that they fit
    the data, else from the data (unbounded Box observations; Box actions unbounded, or ``Discrete(max + 1)``
    for integer actions). ``with_stats`` is :func:`~seqrl.data.schema.build_dataset`'s.
    """
    missing = [key for key in D4RL_KEYS if key not in arrays]
    if missing:
        raise DatasetSourceError(f"D4RL data {dataset_id!r} lacks the arrays {missing}; it needs {list(D4RL_KEYS)} "
                                 "(and optionally next_observations), one row per step.")
    sizes = {key: len(arrays[key]) for key in arrays}
    if len(set(sizes.values())) != 1:
        raise DatasetSourceError(f"D4RL data {dataset_id!r}: arrays have different numbers of rows {sizes}; "
                                 "each needs one row per step.")
    observations = as_rows(arrays["observations"], np.float32)  # [N, obs_dim]
    actions = np.asarray(arrays["actions"])
    terminals = np.asarray(arrays["terminals"], dtype=bool).reshape(-1)  # [N]
    timeouts = np.asarray(arrays["timeouts"], dtype=bool).reshape(-1) & ~terminals  # [N]
    num_steps = len(observations)
    if num_steps and not (terminals[-1] or timeouts[-1]):
        timeouts[-1] = True  # the log ends mid-episode: that last episode is truncated
    keep = np.ones(num_steps, dtype=bool)
    if "next_observations" in arrays:
        next_observations = as_rows(arrays["next_observations"], np.float32)
    else:
        next_observations = np.empty_like(observations)
        next_observations[:-1] = observations[1:]
        next_observations[terminals] = observations[terminals]  # unused: terminal steps never bootstrap
        truncated_rows = np.flatnonzero(timeouts)
        keep[truncated_rows] = False  # s_{t+1} unknown at a truncated last step: drop that step ...
        previous_rows = truncated_rows[truncated_rows > 0] - 1
        timeouts[previous_rows] = True  # ... and end the episode one step earlier
        timeouts &= ~terminals  # unless that step already ended the previous episode
    done = terminals | timeouts  # [N]
    episode_index = np.concatenate([[0], np.cumsum(done[:-1])]).astype(np.int64) if num_steps else np.zeros(0, np.int64)
    columns = {
        "episode_index": episode_index,
        "observations": observations,
        "actions": actions,
        "rewards": np.asarray(arrays["rewards"]).reshape(num_steps),
        "terminations": terminals,
        "truncations": timeouts,
        "next_observations": next_observations,
    }
    columns = {name: values[keep] for name, values in columns.items()}
    starts, lengths = schema.episode_boundaries(columns["episode_index"])  # renumbered 0..E-1 below: dropping
    columns["episode_index"] = np.repeat(np.arange(len(starts)), lengths)  # steps can remove one-step episodes
    columns["timestep"] = np.arange(len(columns["rewards"])) - np.repeat(starts, lengths)
    if env_id is not None:
        spec = envs.resolve_env(env_id, env_kwargs)
        obs_space, action_space = envs.env_spaces(spec)
        discrete = actions.dtype.kind in "iu"
        envs.check_spaces(env_id, obs_space, action_space, f"the D4RL data '{dataset_id}'", observations.shape[1],
                          discrete, 1 if discrete else as_rows(actions).shape[1])
        env_spec = envs.spec_json(spec)
    else:
        obs_space, env_spec = gym.spaces.Box(-np.inf, np.inf, (observations.shape[1],), np.float32), None
        if actions.dtype.kind in "iu":
            action_space = gym.spaces.Discrete(int(actions.max()) + 1 if actions.size else 1)
        else:
            action_space = gym.spaces.Box(-np.inf, np.inf, (as_rows(actions).shape[1],), np.float32)
    check_action_space(action_space, dataset_id)
    obs_json, original_obs_json = observation_spaces(obs_space)
    metadata = DatasetMetadata(dataset_id, env_spec, obs_json, serialize_space(action_space), original_obs_json,
                               ref_min_score, ref_max_score, env_import=list(env_import or []) if env_id else [])
    return build_dataset(columns, metadata, with_stats)


def read_d4rl_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, attributes) of a D4RL-style hdf5/npz file; attributes are ``env_id``/``env_name``,
    ``dataset_id``, ``ref_min_score``, ``ref_max_score`` from hdf5 attrs or 0-d npz entries.

    A file that cannot be read (truncated, not HDF5/npz at all, or without the D4RL arrays) raises
    :class:`DatasetSourceError` naming the file and what is wrong with it."""
    path = Path(path)
    try:
        arrays, raw_attrs, keys = _read_npz(path) if path.suffix == ".npz" else _read_hdf5(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DatasetSourceError(f"cannot read the D4RL-style file {path}: {_unreadable(path, error)}") from error
    missing = [key for key in D4RL_KEYS if key not in arrays]
    if missing:
        raise DatasetSourceError(
            f"the D4RL-style file {path} lacks the arrays {missing} (it holds {sorted(keys)}); it needs "
            f"{list(D4RL_KEYS)} (and optionally next_observations), one row per step. Rename the arrays, or convert "
            "the log with seqrl.data.d4rl.from_d4rl."
        )
    attrs = {key: (value.decode() if isinstance(value, bytes) else value) for key, value in raw_attrs.items()}
    found = {"env_id": attrs.get("env_id", attrs.get("env_name")), "dataset_id": attrs.get("dataset_id", path.stem)}
    for key in ("ref_min_score", "ref_max_score"):
        found[key] = None if attrs.get(key) is None else float(attrs[key])
    return arrays, found


_ARRAY_NAMES = D4RL_KEYS + ("next_observations",)


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("it holds a single array (.npy), not an archive of named arrays")
    with loaded as file:
        arrays = {key: file[key] for key in _ARRAY_NAMES if key in file.files}
        raw_attrs = {key: file[key].item() for key in file.files if file[key].ndim == 0}
        return arrays, raw_attrs, list(file.files)


def _read_hdf5(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    import h5py

    with h5py.File(path, "r") as file:
        groups = [key for key in _ARRAY_NAMES if key in file and not isinstance(file[key], h5py.Dataset)]
        if groups:
            raise ValueError(f"{groups} are HDF5 groups, not arrays; store one array per name, with one row per step")
        arrays = {key: file[key][()] for key in _ARRAY_NAMES if key in file}
        return arrays, dict(file.attrs), list(file.keys())


def _unreadable(path: Path, error: Exception) -> str:
    """What is wrong with an unreadable file, in words, from the reader's exception."""
    text = str(error)
    if "file signature not found" in text:
        return ("it is not an HDF5 file (no HDF5 signature). Write it with h5py, or save the arrays with numpy.savez "
                "as .npz.")
    if "truncated file" in text:
        return f"the file is truncated, e.g. an incomplete download or copy ({text.split('(')[-1].rstrip(')')})."
    if isinstance(error, (zipfile.BadZipFile, EOFError, zlib.error)) or "pickled data" in text:
        return "it is not a complete .npz archive (truncated, or not written by numpy.savez)."
    return f"{text} ({type(error).__name__})."
