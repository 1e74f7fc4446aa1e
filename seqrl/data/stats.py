"""Dataset statistics, stored in the metadata and saved with every policy trained on the data.

For ``N`` steps in ``E`` episodes with observations ``s_i``, rewards ``r_i`` and episode returns
``R_e = sum_{t < T_e} r_{e,t}`` (undiscounted):

- ``obs_mean = (1/N) sum_i s_i`` and ``obs_std = max(sqrt((1/N) sum_i (s_i - obs_mean)^2), 1e-6)`` per dimension
  (the floor keeps ``(s - mean) / std`` finite for constant features);
- ``action_min`` / ``action_max``: per-dimension extremes of Box actions (absent for Discrete actions);
- ``reward_mean`` / ``reward_std`` over steps; ``return_mean/std/min/max`` and the 10th/50th/90th percentiles ``return_p10/p50/p90`` over the ``R_e``;
- ``length_mean/min/max`` over the ``T_e``; ``num_episodes = E``; ``num_steps = N``.

All values are plain floats/ints/lists, so the dict is JSON-able. Sums run in float64.
"""

from __future__ import annotations

from typing import Mapping

import datasets
import numpy as np

STD_FLOOR = 1e-6
_CHUNK_ROWS = 1 << 16  # rows per pass: bounds temporaries and keeps them in cache


def _mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (floored) standard deviation of ``values`` [N, d]: two passes over row chunks,
    sums accumulated in float64 (the centred values stay in the input dtype, which keeps the pass cache-sized)."""
    num_rows = len(values)
    total = np.zeros(values.shape[1], dtype=np.float64)
    for begin in range(0, num_rows, _CHUNK_ROWS):
        total += values[begin : begin + _CHUNK_ROWS].sum(axis=0, dtype=np.float64)
    mean = total / num_rows  # [d]
    squares = np.zeros_like(mean)
    for begin in range(0, num_rows, _CHUNK_ROWS):
        centred = values[begin : begin + _CHUNK_ROWS] - mean.astype(values.dtype)  # [chunk, d]
        squares += np.einsum("ij,ij->j", centred, centred, dtype=np.float64)
    return mean, np.maximum(np.sqrt(squares / num_rows), STD_FLOOR)


def compute_stats(data: Mapping[str, np.ndarray] | datasets.Dataset) -> dict:
    """Statistics of a dataset, from numpy columns (``episode_index``, ``observations``, ``actions``,
    ``rewards``) or from a :class:`datasets.Dataset` in the seqrl schema. Empty data gives only the counts."""
    from seqrl.data.schema import as_rows, dataset_to_numpy, episode_boundaries  # schema imports this module

    if isinstance(data, datasets.Dataset):
        data = dataset_to_numpy(data, ("episode_index", "observations", "actions", "rewards"))
    rewards = np.asarray(data["rewards"])  # [N]
    if rewards.size == 0:
        return {"num_episodes": 0, "num_steps": 0}
    observations = as_rows(data["observations"], np.float32)  # [N, obs_dim]
    actions = np.asarray(data["actions"])  # [N, act_dim] (Box) or [N] (Discrete)
    starts, lengths = episode_boundaries(np.asarray(data["episode_index"]))  # [E], [E]
    returns = np.add.reduceat(rewards.astype(np.float64), starts)  # [E]
    obs_mean, obs_std = _mean_std(observations)
    stats = {
        "obs_mean": obs_mean.tolist(),
        "obs_std": obs_std.tolist(),
        "reward_mean": float(rewards.mean(dtype=np.float64)),
        "reward_std": float(rewards.std(dtype=np.float64)),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "return_p10": float(np.percentile(returns, 10)),
        "return_p50": float(np.percentile(returns, 50)),
        "return_p90": float(np.percentile(returns, 90)),
        "length_mean": float(lengths.mean()),
        "length_min": int(lengths.min()),
        "length_max": int(lengths.max()),
        "num_episodes": int(len(starts)),
        "num_steps": int(rewards.size),
    }
    if actions.dtype.kind == "f":  # Box actions; Discrete ids have no meaningful min/max
        actions = as_rows(actions)  # [N, act_dim]
        stats["action_min"] = actions.min(axis=0).astype(np.float64).tolist()
        stats["action_max"] = actions.max(axis=0).astype(np.float64).tolist()
    return stats
