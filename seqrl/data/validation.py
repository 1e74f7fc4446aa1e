"""Checking a dataset against the seqrl schema (:mod:`seqrl.data.schema`) and the metadata it carries.

:func:`validate` checks the column types against the declared spaces and every row against the schema's
rules (finite values, actions inside their space, contiguous episodes with ordered timesteps and their end
flags on the last step), a block of rows at a time, and stops at the first problem with a
:class:`~seqrl.data.schema.DatasetValidationError` that names the column, the episode and timestep, and the fix.
:func:`check_action_space` is the action-space check that the sources also run before building a dataset.
"""

from __future__ import annotations

import datasets
import gymnasium as gym
import numpy as np
import pyarrow as pa

from seqrl.data.columns import iter_blocks
from seqrl.data.schema import COLUMNS, DatasetMetadata, DatasetValidationError, chunk_to_numpy, get_metadata, run_start_flags

_TOLERANCE = 1e-5  # Box bounds are checked with this slack, for float32 round-off


class _BadRows:
    """Rows failing one check, gathered block by block: how many, the first one (row, episode, timestep) and
    the episodes they lie in. Blocks must be added in row order."""

    def __init__(self) -> None:
        self.count = 0
        self.first: tuple[int, int, int] | None = None
        self.episodes: list[np.ndarray] = []

    def add(self, bad: np.ndarray, episode_index: np.ndarray, timestep: np.ndarray, offset: int) -> None:
        """Record the rows where ``bad`` [n] is set; the arrays are [n] and start at row ``offset``."""
        rows = np.flatnonzero(bad)
        if rows.size == 0:
            return
        if self.first is None:
            self.first = (offset + int(rows[0]), int(episode_index[rows[0]]), int(timestep[rows[0]]))
        self.count += rows.size
        self.episodes.append(np.unique(episode_index[rows]))

    def fail(self, column: str, problem: str, fix: str) -> None:
        """Raise for the first recorded row, naming its episode and all affected episodes (nothing if none)."""
        if self.first is None:
            return
        first, episode, timestep = self.first
        episodes = np.unique(np.concatenate(self.episodes)).tolist()
        listed = f"{episodes}" if len(episodes) <= 10 else f"{episodes[:10]} and {len(episodes) - 10} more"
        raise DatasetValidationError(
            f"column {column!r}: {problem} in episode {episode} at timestep {timestep} "
            f"(row {first}); {self.count} row(s) affected in episode(s) {listed}. {fix}"
        )


def _rows_where(predicate, values: np.ndarray, chunk_rows: int = 1 << 16) -> np.ndarray:
    """``[N]`` bool: rows where ``predicate(values[rows])`` holds for any element; chunked to bound memory."""
    bad = np.empty(len(values), dtype=bool)
    for begin in range(0, len(values), chunk_rows):
        hits = predicate(values[begin : begin + chunk_rows])
        bad[begin : begin + chunk_rows] = hits.reshape(len(hits), -1).any(axis=1)
    return bad


def check_action_space(space: gym.Space, where: str) -> None:
    """Raise unless ``space`` is one seqrl can learn with: a 1-D Box or a Discrete space."""
    if not (isinstance(space, gym.spaces.Discrete) or (isinstance(space, gym.spaces.Box) and len(space.shape) == 1)):
        raise DatasetValidationError(f"{where}: action space {space} is not supported; seqrl handles 1-D Box and "
                                     "Discrete actions (flatten other action spaces in an environment wrapper).")


def _check_types(ds: datasets.Dataset, metadata: DatasetMetadata) -> None:
    obs_space, action_space = metadata.observation_space_obj, metadata.action_space_obj
    if not isinstance(obs_space, gym.spaces.Box):
        raise DatasetValidationError(
            f"metadata.observation_space must be the flat Box of the observations column, got {obs_space}; "
            "flatten it with gymnasium.spaces.flatten_space and keep the original in original_observation_space."
        )
    check_action_space(action_space, metadata.dataset_id)
    vector = lambda width: pa.list_(pa.float32(), width)  # noqa: E731
    expected = {
        "episode_index": pa.int64(), "timestep": pa.int64(), "observations": vector(metadata.obs_dim),
        "actions": pa.int64() if metadata.is_discrete else vector(metadata.action_dim), "rewards": pa.float32(),
        "terminations": pa.bool_(), "truncations": pa.bool_(), "next_observations": vector(metadata.obs_dim),
    }
    schema = ds.features.arrow_schema
    for name, want in expected.items():
        if name not in schema.names:
            raise DatasetValidationError(f"dataset has no column {name!r}; seqrl datasets have the columns {list(COLUMNS)}.")
        got = schema.field(name).type
        if got != want:
            space = action_space if name == "actions" else obs_space
            raise DatasetValidationError(
                f"column {name!r} has type {got} but the declared space {space} needs {want} per step; the data and "
                "the metadata disagree. Rebuild the dataset from its source with seqrl.data.load_dataset, or fix the "
                "metadata with seqrl.data.schema.with_metadata."
            )


def validate(ds: datasets.Dataset) -> None:
    """Check ``ds`` against the schema and its metadata; raise :class:`DatasetValidationError` on the first problem.

    Checks (vectorised numpy over all rows): the dataset is not empty; column types and widths match the
    declared spaces (``float32[obs_dim]``, Box ``float32[action_dim]`` or Discrete ``int64``); float columns
    are finite; Box actions lie in ``[low - 1e-5, high + 1e-5]`` and Discrete ids in ``[start, start + n)``;
    each episode's rows are one contiguous block with ``timestep = 0 .. T-1``; ``T >= 2``; and the
    termination/truncation flags are set on the last step of each episode and nowhere before it.

    The rows are read in blocks (:func:`seqrl.data.columns.iter_blocks`; streamed from the Arrow files of a
    saved dataset, not through its memory map), so memory does not grow with the dataset; episodes may span
    blocks. The problems are reported in the order above.
    """
    metadata = get_metadata(ds)
    if ds.num_rows == 0:
        raise DatasetValidationError(
            f"dataset {metadata.dataset_id!r} is empty (0 rows); check the source and any filter that removed every episode."
        )
    _check_types(ds, metadata)
    space = metadata.action_space_obj
    finite_columns = ("observations", "next_observations", "rewards") + (() if metadata.is_discrete else ("actions",))
    if metadata.is_discrete:
        outside_space = lambda a: (a < space.start) | (a >= space.start + space.n)  # noqa: E731
        problem = f"action id outside [{int(space.start)}, {int(space.start + space.n)}) of {space}"
    else:
        low, high = space.low - _TOLERANCE, space.high + _TOLERANCE  # [act_dim]
        outside_space = lambda a: _rows_where(lambda block: (block < low) | (block > high), a)  # noqa: E731
        problem = f"action outside the bounds of {space} (tolerance {_TOLERANCE})"
    non_finite = {name: _BadRows() for name in finite_columns}
    bad_actions, bad_timesteps, ended_early, not_ended = _BadRows(), _BadRows(), _BadRows(), _BadRows()
    run_starts, run_ids = [], []  # per block: first rows of runs of equal episode_index [runs], and their ids
    offset = 0
    run_start = 0  # first row of the run that holds the previous block's last row
    previous = None  # (row, episode, timestep, done) of the previous block's last row; whether it ends its
    # episode is known only from the next block's first row
    for block in iter_blocks(ds, COLUMNS):
        cols = {name: chunk_to_numpy(array) for name, array in block.items()}
        episode_index, timestep = cols["episode_index"], cols["timestep"]
        size = len(episode_index)
        rows = np.arange(offset, offset + size)  # [n] global row numbers
        for name in finite_columns:
            non_finite[name].add(_rows_where(lambda x: ~np.isfinite(x), cols[name]), episode_index, timestep, offset)
        bad_actions.add(outside_space(cols["actions"]), episode_index, timestep, offset)

        is_start = run_start_flags(episode_index, None if previous is None else previous[1])  # [n]
        run_starts.append(rows[is_start])
        run_ids.append(episode_index[is_start])
        latest_start = np.where(is_start, rows, -1)
        latest_start[0] = rows[0] if is_start[0] else run_start
        latest_start = np.maximum.accumulate(latest_start)  # [n]: first row of each row's run
        bad_timesteps.add(timestep != rows - latest_start, episode_index, timestep, offset)
        run_start = int(latest_start[-1])

        done = cols["terminations"] | cols["truncations"]  # [n]
        if previous is not None:
            row, episode, step, was_done = previous
            ended_early.add(np.array([was_done and not is_start[0]]), np.array([episode]), np.array([step]), row)
            not_ended.add(np.array([is_start[0] and not was_done]), np.array([episode]), np.array([step]), row)
        is_last = is_start[1:]  # [n - 1]: rows before the block's last one that end their run
        ended_early.add(done[:-1] & ~is_last, episode_index, timestep, offset)
        not_ended.add(is_last & ~done[:-1], episode_index, timestep, offset)
        previous = (offset + size - 1, int(episode_index[-1]), int(timestep[-1]), bool(done[-1]))
        offset += size
    row, episode, step, was_done = previous  # the last row of the dataset ends its episode
    not_ended.add(np.array([not was_done]), np.array([episode]), np.array([step]), row)

    drop_fix = ("Repair the source data, or drop those episodes: train.py --data.drop_invalid_episodes true, or "
                "ds.filter(lambda e: e not in {...}, input_columns='episode_index').")
    for name in finite_columns:
        non_finite[name].fail(name, "NaN or inf values", drop_fix)
    bad_actions.fail("actions", problem, "Clip the actions to the space, or declare the space the data was collected in.")

    starts, block_ids = np.concatenate(run_starts), np.concatenate(run_ids)  # [E], [E]
    lengths = np.diff(np.r_[starts, offset])  # [E]
    unique_ids, block_counts = np.unique(block_ids, return_counts=True)
    if (block_counts > 1).any():
        split_id = unique_ids[np.argmax(block_counts > 1)]
        rows = starts[block_ids == split_id]
        raise DatasetValidationError(
            f"column 'episode_index': episode {int(split_id)} is split into {rows.size} separate blocks of rows "
            f"(starting at rows {rows[:5].tolist()}); the rows of an episode must be contiguous. "
            "Sort the dataset with ds.sort(['episode_index', 'timestep'])."
        )
    bad_timesteps.fail("timestep", "timestep out of order (expected 0, 1, ..., T-1)",
                       "Sort the dataset with ds.sort(['episode_index', 'timestep']) and renumber timesteps from 0.")
    if (lengths < 2).any():
        short = block_ids[lengths < 2]
        raise DatasetValidationError(
            f"column 'episode_index': episode {int(short[0])} has a single step ({short.size} such episode(s): "
            f"{short[:10].tolist()}); seqrl needs at least 2 steps per episode. Drop them: train.py "
            "--data.drop_invalid_episodes true, or ds.filter(lambda e: e not in {...}, input_columns='episode_index')."
        )
    ended_early.fail("terminations/truncations", "episode flagged as ended before its last step",
                     "Episode boundaries and flags disagree: split episodes at every terminal/timeout flag.")
    not_ended.fail("terminations/truncations",
                   "last step of the episode has neither a termination nor a truncation flag",
                   "Set truncations=True on the last step of episodes that were cut (time limit or end of log; "
                   "train.py --data.drop_invalid_episodes true does so), or terminations=True where the environment "
                   "ended.")
