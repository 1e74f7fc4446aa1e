"""The seqrl dataset schema: one row per environment step, plus metadata that travels with it.

A dataset of ``E`` episodes with lengths ``T_0 .. T_{E-1}`` has ``N = sum_e T_e`` rows. Row ``i`` holds the
transition ``(s_t, a_t, r_t, s_{t+1})`` of episode ``episode_index[i]`` at step ``timestep[i] = t``; the rows of
an episode are contiguous and in timestep order. ``terminations[i]`` marks that ``s_{t+1}`` is terminal in the
MDP (no bootstrapping); ``truncations[i]`` marks that the episode was cut (time limit, end of log) and
``s_{t+1}`` still has a value. The last step of every episode carries one of the two flags.

Metadata (:class:`DatasetMetadata`) is stored as JSON in ``ds.info.description``, which ``datasets`` keeps
through ``save_to_disk``/``load_from_disk``, ``select``, ``filter`` and ``with_format``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Mapping, Sequence

import datasets
import gymnasium as gym
import numpy as np
import pyarrow as pa
from datasets.fingerprint import generate_random_fingerprint
from datasets.table import InMemoryTable
from minari.serialization import deserialize_space

from seqrl.data.columns import iter_blocks
from seqrl.errors import SeqRLError

COLUMNS = (
    "episode_index",
    "timestep",
    "observations",
    "actions",
    "rewards",
    "terminations",
    "truncations",
    "next_observations",
)

_METADATA_KEY = "seqrl_metadata"
_METADATA_FORMAT_VERSION = 1


class DatasetValidationError(SeqRLError):
    """A dataset breaks the seqrl schema; the message names the episode/column and the fix."""


class MetadataError(SeqRLError):
    """A dataset carries no (or unreadable) seqrl metadata."""


@dataclass
class DatasetMetadata:
    """What a policy needs to know about the data it was trained on.

    Spaces are JSON from ``minari.serialization.serialize_space``. ``observation_space`` describes the
    ``observations`` column (already flat); ``original_observation_space`` is the Dict/Tuple/image space
    before ``gymnasium.spaces.flatten_space``, or None when no flattening was needed.
    """

    dataset_id: str
    env_spec: str | None  # gymnasium EnvSpec.to_json(), None when the data has no known env
    observation_space: str
    action_space: str
    original_observation_space: str | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    stats: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({_METADATA_KEY: {"format_version": _METADATA_FORMAT_VERSION, **asdict(self)}})

    @classmethod
    def from_json(cls, text: str) -> "DatasetMetadata":
        try:
            payload = json.loads(text)
        except (TypeError, json.JSONDecodeError) as error:
            raise MetadataError(f"seqrl metadata is not valid JSON ({error}): {str(text)[:200]!r}") from error
        if not isinstance(payload, dict) or _METADATA_KEY not in payload:
            raise MetadataError(f"JSON has no {_METADATA_KEY!r} entry: {str(text)[:200]!r}")
        fields = dict(payload[_METADATA_KEY])
        version = fields.pop("format_version", None)
        if version != _METADATA_FORMAT_VERSION:
            raise MetadataError(
                f"seqrl metadata format_version {version} is not supported (this seqrl reads "
                f"{_METADATA_FORMAT_VERSION}); upgrade seqrl or rebuild the dataset with seqrl.data.load_dataset."
            )
        return cls(**fields)

    @property
    def observation_space_obj(self) -> gym.Space:
        return deserialize_space(self.observation_space)

    @property
    def action_space_obj(self) -> gym.Space:
        return deserialize_space(self.action_space)

    @property
    def is_discrete(self) -> bool:
        return isinstance(self.action_space_obj, gym.spaces.Discrete)

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.observation_space_obj.shape))

    @property
    def action_dim(self) -> int:
        """Width of a Box action, or the number of actions ``n`` of a Discrete space."""
        space = self.action_space_obj
        return int(space.n) if isinstance(space, gym.spaces.Discrete) else int(np.prod(space.shape))

    @property
    def env_id(self) -> str | None:
        return None if self.env_spec is None else json.loads(self.env_spec)["id"]


def get_metadata(ds: datasets.Dataset) -> DatasetMetadata:
    """Read the :class:`DatasetMetadata` stored in ``ds.info.description``."""
    description = ds.info.description or ""
    if _METADATA_KEY not in description:
        raise MetadataError(
            f"this dataset carries no seqrl metadata (ds.info.description = {description[:120]!r}). Load it with "
            "seqrl.data.load_dataset(...), or attach metadata with seqrl.data.schema.with_metadata(ds, DatasetMetadata(...))."
        )
    return DatasetMetadata.from_json(description)


def with_metadata(ds: datasets.Dataset, metadata: DatasetMetadata) -> datasets.Dataset:
    """A copy of ``ds`` (sharing its Arrow memory) whose ``info.description`` holds ``metadata``."""
    new_ds = copy.deepcopy(ds)  # datasets' tables deep-copy without copying buffers
    new_ds.info.description = metadata.to_json()
    return new_ds


def episode_boundaries(episode_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start row and length of each run of equal ``episode_index`` values: ``([E], [E])`` int64."""
    episode_index = np.asarray(episode_index)
    starts = np.flatnonzero(np.r_[episode_index.size > 0, episode_index[1:] != episode_index[:-1]]).astype(np.int64)
    return starts, np.diff(np.r_[starts, episode_index.size]).astype(np.int64)


def run_start_flags(episode_index: np.ndarray, previous: int | None = None) -> np.ndarray:
    """``[n]`` bool: the rows of ``episode_index`` [n] that start a run of equal values. For a block of a longer
    column, ``previous`` is the value of the row before the block (None at the column's start)."""
    flags = np.empty(len(episode_index), dtype=bool)
    if len(flags):
        flags[0] = previous is None or episode_index[0] != previous
        np.not_equal(episode_index[1:], episode_index[:-1], out=flags[1:])
    return flags


def as_rows(values, dtype=None) -> np.ndarray:
    """``values`` [N, *shape] (or [N]) as a 2-D ``[N, prod(shape)]`` array, also for N = 0."""
    values = np.asarray(values, dtype=dtype)
    return values.reshape(len(values), int(np.prod(values.shape[1:])))


def require_columns(ds: datasets.Dataset, columns: Sequence[str]) -> None:
    """Raise :class:`DatasetValidationError` unless ``ds`` has all the named columns."""
    missing = [name for name in columns if name not in ds.column_names]
    if missing:
        raise DatasetValidationError(f"dataset is missing column(s) {missing}; seqrl datasets have the columns "
                                     f"{list(COLUMNS)}. Build them with seqrl.data.load_dataset or build_dataset.")


def chunk_to_numpy(chunk: pa.Array) -> np.ndarray:
    """One Arrow array as numpy: ``[n]`` scalars, ``[n, width]`` for a fixed-size list."""
    if pa.types.is_fixed_size_list(chunk.type):  # flatten() honours slice offsets, .values does not
        return chunk.flatten().to_numpy(zero_copy_only=False).reshape(-1, chunk.type.list_size)
    return chunk.to_numpy(zero_copy_only=False)


def dataset_to_numpy(ds: datasets.Dataset, columns: Sequence[str] = COLUMNS) -> dict[str, np.ndarray]:
    """The named columns of ``ds`` (after any ``select``) as numpy: ``[N]`` scalars, ``[N, n]`` fixed-size lists."""
    require_columns(ds, columns)
    table = ds.select_columns(list(columns)).with_format("arrow")[:]  # applies any indices mapping
    arrays = {}
    for name in columns:
        chunks = table.column(name).chunks or [pa.array([], type=table.column(name).type)]
        arrays[name] = chunk_to_numpy(chunks[0]) if len(chunks) == 1 else np.concatenate([chunk_to_numpy(c) for c in chunks])
    return arrays


def build_dataset(columns: Mapping[str, np.ndarray], metadata: DatasetMetadata) -> datasets.Dataset:
    """A :class:`datasets.Dataset` from numpy columns, with Arrow arrays built straight from numpy (no per-row Python).

    ``observations``/``next_observations`` become ``float32[obs_dim]`` (trailing shapes are flattened); actions
    ``float32[action_dim]`` for a Box space, ``int64`` for a Discrete one. An empty ``metadata.stats`` is filled
    with :func:`seqrl.data.stats.compute_stats`. Call :func:`validate` to check the result.
    """
    from seqrl.data.stats import compute_stats  # stats imports this module

    if set(columns) != set(COLUMNS):
        raise DatasetValidationError(f"build_dataset needs exactly the columns {list(COLUMNS)}; missing "
                                     f"{sorted(set(COLUMNS) - set(columns))}, unknown {sorted(set(columns) - set(COLUMNS))}.")
    row_counts = {name: len(columns[name]) for name in COLUMNS}
    if len(set(row_counts.values())) != 1:
        raise DatasetValidationError(f"columns have different numbers of rows {row_counts}; each needs one row per step.")
    actions = np.asarray(columns["actions"])
    if metadata.is_discrete and actions.dtype.kind == "f" and not np.array_equal(actions, np.round(actions)):
        raise DatasetValidationError(
            "column 'actions' holds non-integer values but the action space is Discrete; store action ids."
        )
    arrays = {
        "episode_index": np.asarray(columns["episode_index"], dtype=np.int64),
        "timestep": np.asarray(columns["timestep"], dtype=np.int64),
        "observations": as_rows(columns["observations"], np.float32),  # [N, obs_dim]
        "actions": actions.reshape(len(actions)).astype(np.int64) if metadata.is_discrete else as_rows(actions, np.float32),
        "rewards": np.asarray(columns["rewards"], dtype=np.float32),
        "terminations": np.asarray(columns["terminations"], dtype=bool),
        "truncations": np.asarray(columns["truncations"], dtype=bool),
        "next_observations": as_rows(columns["next_observations"], np.float32),  # [N, obs_dim]
    }
    if not metadata.stats:
        metadata = replace(metadata, stats=compute_stats(arrays))
    table = pa.table({
        name: pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values).reshape(-1)), values.shape[1])
        if values.ndim == 2 else pa.array(values)
        for name, values in arrays.items()
    })
    features = datasets.Features.from_arrow_schema(table.schema)  # fixed-size lists -> Sequence(float32, length=n)
    info = datasets.DatasetInfo(description=metadata.to_json(), features=features)
    # a random fingerprint: hashing the whole table for one (datasets' default) costs ~1 s per million rows
    return datasets.Dataset(InMemoryTable(table), info=info, fingerprint=generate_random_fingerprint())


# ---------------------------------------------------------------- validation

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

    drop_fix = ("Repair the source data, or drop those episodes: "
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
            f"{short[:10].tolist()}); seqrl needs at least 2 steps per episode. Drop them: "
            "ds.filter(lambda e: e not in {...}, input_columns='episode_index')."
        )
    ended_early.fail("terminations/truncations", "episode flagged as ended before its last step",
                     "Episode boundaries and flags disagree: split episodes at every terminal/timeout flag.")
    not_ended.fail("terminations/truncations",
                   "last step of the episode has neither a termination nor a truncation flag",
                   "Set truncations=True on the last step of episodes that were cut (time limit or end of log), "
                   "or terminations=True where the environment ended.")
