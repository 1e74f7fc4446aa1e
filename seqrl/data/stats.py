"""Dataset statistics, stored in the metadata and saved with every policy trained on the data.

For ``N`` steps in ``E`` episodes with observations ``s_i``, rewards ``r_i`` and episode returns
``R_e = sum_{t < T_e} r_{e,t}`` (undiscounted):

- ``obs_mean = (1/N) sum_i s_i`` and ``obs_std = max(sqrt((1/N) sum_i (s_i - obs_mean)^2), 1e-6)`` per dimension
  (the floor keeps ``(s - mean) / std`` finite for constant features);
- ``action_min`` / ``action_max``: per-dimension extremes of Box actions (absent for Discrete actions);
- ``reward_mean`` / ``reward_std`` over steps; ``return_mean/std/min/max`` and the 10th/50th/90th percentiles ``return_p10/p50/p90`` over the ``R_e``;
- ``length_mean/min/max`` over the ``T_e``; ``num_episodes = E``; ``num_steps = N``.

All values are plain floats/ints/lists, so the dict is JSON-able. Sums run in float64; the data is read a block
of rows at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Mapping

import datasets
import numpy as np

STD_FLOOR = 1e-6
_CHUNK_ROWS = 1 << 16  # rows per pass: bounds temporaries and keeps them in cache
_STATS_COLUMNS = ("episode_index", "observations", "actions", "rewards")


class _Moments:
    """Count, mean and sum of squared deviations per column of row chunks ``[m, d]``, merged chunk by chunk
    (Chan et al.): each chunk is centred on its own mean, everything in float64."""

    def __init__(self, width: int):
        self.count, self.mean, self.squares = 0, np.zeros(width), np.zeros(width)

    def add(self, values: np.ndarray) -> None:
        for begin in range(0, len(values), _CHUNK_ROWS):
            chunk = values[begin : begin + _CHUNK_ROWS]  # [m, d]
            size = len(chunk)
            chunk_mean = chunk.sum(axis=0, dtype=np.float64) / size  # [d]
            centred = chunk - chunk_mean  # [m, d] float64
            chunk_squares = np.einsum("ij,ij->j", centred, centred)
            delta, total = chunk_mean - self.mean, self.count + size
            self.mean = self.mean + delta * (size / total)
            self.squares = self.squares + chunk_squares + delta**2 * (self.count * size / total)
            self.count = total

    def std(self) -> np.ndarray:
        return np.sqrt(self.squares / self.count)


def _numpy_blocks(data: Mapping[str, np.ndarray], block_rows: int) -> Iterator[dict[str, np.ndarray]]:
    arrays = {name: np.asarray(data[name]) for name in _STATS_COLUMNS}
    for begin in range(0, len(arrays["rewards"]), block_rows):
        yield {name: values[begin : begin + block_rows] for name, values in arrays.items()}


def compute_stats(data: Mapping[str, np.ndarray] | datasets.Dataset) -> dict:
    """Statistics of a dataset, from numpy columns (``episode_index``, ``observations``, ``actions``,
    ``rewards``) or from a :class:`datasets.Dataset` in the seqrl schema. Empty data gives only the counts.

    The data is read in blocks of rows (a dataset with :func:`seqrl.data.columns.iter_blocks`, streamed from
    the Arrow files of a saved dataset), so memory does not grow with the number of steps."""
    from seqrl.data.columns import BLOCK_ROWS, iter_blocks
    from seqrl.data.schema import as_rows, chunk_to_numpy, require_columns, run_start_flags  # schema imports this module

    if isinstance(data, datasets.Dataset):
        require_columns(data, _STATS_COLUMNS)
        blocks = ({name: chunk_to_numpy(array) for name, array in block.items()}
                  for block in iter_blocks(data, _STATS_COLUMNS))
    else:
        blocks = _numpy_blocks(data, BLOCK_ROWS)
    observations = rewards = None  # _Moments of the observations [obs_dim] and the rewards [1]
    segment_sums, segment_flags, starts = [], [], []  # per block: reward sums of its pieces of runs, whether
    # each piece starts a run (else it continues the previous block's last run), and the runs' first rows
    action_min = action_max = None
    num_rows, previous = 0, None
    for block in blocks:
        block_rewards = np.asarray(block["rewards"]).reshape(-1)  # [n]
        if block_rewards.size == 0:
            continue
        block_observations = as_rows(block["observations"], np.float32)  # [n, obs_dim]
        if observations is None:
            observations, rewards = _Moments(block_observations.shape[1]), _Moments(1)
        observations.add(block_observations)
        rewards.add(block_rewards[:, None])
        episode_index = np.asarray(block["episode_index"])  # [n]
        is_start = run_start_flags(episode_index, previous)  # [n]
        pieces = np.flatnonzero(np.r_[True, is_start[1:]])  # first row of each piece of a run in the block
        segment_sums.append(np.add.reduceat(block_rewards.astype(np.float64), pieces))
        segment_flags.append(is_start[pieces])
        starts.append(num_rows + np.flatnonzero(is_start))
        actions = np.asarray(block["actions"])  # [n, act_dim] (Box) or [n] (Discrete)
        if actions.dtype.kind == "f":  # Box actions; Discrete ids have no meaningful min/max
            actions = as_rows(actions)  # [n, act_dim]
            low, high = actions.min(axis=0), actions.max(axis=0)
            action_min = low if action_min is None else np.minimum(action_min, low)
            action_max = high if action_max is None else np.maximum(action_max, high)
        previous = episode_index[-1]
        num_rows += block_rewards.size
    if num_rows == 0:
        return {"num_episodes": 0, "num_steps": 0}
    segment_sums, segment_flags = np.concatenate(segment_sums), np.concatenate(segment_flags)
    returns = np.add.reduceat(segment_sums, np.flatnonzero(segment_flags))  # [E]
    starts = np.concatenate(starts)  # [E]
    lengths = np.diff(np.r_[starts, num_rows])  # [E]
    stats = {
        "obs_mean": observations.mean.tolist(),
        "obs_std": np.maximum(observations.std(), STD_FLOOR).tolist(),
        "reward_mean": float(rewards.mean[0]),
        "reward_std": float(rewards.std()[0]),
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
        "num_steps": int(num_rows),
    }
    if action_min is not None:
        stats["action_min"] = action_min.astype(np.float64).tolist()
        stats["action_max"] = action_max.astype(np.float64).tolist()
    return stats
