"""Giving a dataset the environment or the action bounds that its source does not name (or names wrongly).

A D4RL-style log or a robot's recording often names no environment, and a dataset recorded in ``Hopper-v4``
may be meant for ``Hopper-v5``. :func:`with_env` takes the spaces, the env spec and so the action bounds from
the environment the user names, after checking that its spaces fit the data. Without any environment,
:func:`with_action_bounds` sets the bounds the user gives, and :func:`bounds_from_data` falls back on the data's
own action range, so that tanh actors can rescale their actions. Only the metadata changes; the rows stay.
"""

from __future__ import annotations

from dataclasses import replace

import datasets
import gymnasium as gym
import numpy as np
from minari.serialization import serialize_space

from seqrl import envs
from seqrl.data.schema import get_metadata, with_metadata
from seqrl.data.sources import observation_spaces
from seqrl.errors import SeqRLError


class ActionBoundsError(SeqRLError):
    """Action bounds given for a dataset (or taken from its data) cannot work."""


def with_env(ds: datasets.Dataset, env_id: str, env_kwargs: dict | None = None,
             env_import: list[str] | None = None) -> datasets.Dataset:
    """``ds`` whose metadata names the environment ``env_id`` (made with ``env_kwargs``; ``env_import`` are the
    modules that register it, saved so that a policy can name the env again) and takes its spaces.

    Raises :class:`seqrl.envs.EnvError`, showing both, when the env's flattened observations or its actions
    do not fit the data's."""
    metadata = get_metadata(ds)
    spec = envs.resolve_env(env_id, env_kwargs)
    obs_space, action_space = envs.env_spaces(spec)
    envs.check_spaces(env_id, obs_space, action_space, f"the dataset '{metadata.dataset_id}'", metadata.obs_dim,
                      metadata.is_discrete, metadata.action_dim)
    obs_json, original_obs_json = observation_spaces(obs_space)
    return with_metadata(ds, replace(
        metadata, env_spec=envs.spec_json(spec), observation_space=obs_json, action_space=serialize_space(action_space),
        original_observation_space=original_obs_json, env_import=list(env_import or []),
    ))


def with_action_bounds(ds: datasets.Dataset, low: list[float], high: list[float]) -> datasets.Dataset:
    """``ds`` whose Box action space has the bounds ``[low, high]`` (one value per action dimension)."""
    metadata = get_metadata(ds)
    if metadata.is_discrete:
        raise ActionBoundsError(f"--data.action_low/--data.action_high bound continuous actions, but the dataset "
                                     f"'{metadata.dataset_id}' has {metadata.action_space_obj}; drop them.")
    if (low is None) != (high is None):
        raise ActionBoundsError("give --data.action_low and --data.action_high together (one value per action "
                                     "dimension each).")
    low, high = np.asarray(low, dtype=np.float32), np.asarray(high, dtype=np.float32)
    for flag, values in (("--data.action_low", low), ("--data.action_high", high)):
        if values.shape != (metadata.action_dim,):
            raise ActionBoundsError(
                f"{flag} has {values.size} value(s) but the dataset '{metadata.dataset_id}' has {metadata.action_dim}-"
                f"dimensional actions; give one value per action dimension, e.g. {flag} "
                f"'{[-1.0] * metadata.action_dim}'."
            )
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
        raise ActionBoundsError(f"action bounds need finite low < high in every dimension; got "
                                     f"--data.action_low {low.tolist()} --data.action_high {high.tolist()}.")
    space = gym.spaces.Box(low, high, dtype=np.float32)
    return with_metadata(ds, replace(metadata, action_space=serialize_space(space)))


def has_unbounded_actions(ds: datasets.Dataset) -> bool:
    """Whether ``ds`` has Box actions with a missing (infinite) bound."""
    metadata = get_metadata(ds)
    if metadata.is_discrete:
        return False
    space = metadata.action_space_obj
    return not (np.isfinite(space.low).all() and np.isfinite(space.high).all())


def bounds_from_data(ds: datasets.Dataset) -> datasets.Dataset:
    """``ds`` whose Box action space is bounded by the data's per-dimension action min/max (its statistics)."""
    metadata = get_metadata(ds)
    low = np.asarray(metadata.stats["action_min"], dtype=np.float32)
    high = np.asarray(metadata.stats["action_max"], dtype=np.float32)
    constant = np.flatnonzero(low >= high)
    if constant.size:
        raise ActionBoundsError(
            f"the dataset '{metadata.dataset_id}' names no environment, and its action dimension(s) "
            f"{constant.tolist()} take a single value ({low[constant].tolist()}), so the data's range cannot serve "
            "as action bounds. Give them with --data.action_low/--data.action_high, or the env with --data.env_id."
        )
    return with_action_bounds(ds, low.tolist(), high.tolist())
