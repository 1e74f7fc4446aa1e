"""The seqrl dataset schema: one row per environment step, plus metadata that travels with it.

A dataset of ``E`` episodes with lengths ``T_0 .. T_{E-1}`` has ``N = sum_e T_e`` rows. Row ``i`` holds the
transition ``(s_t, a_t, r_t, s_{t+1})`` of episode ``episode_index[i]`` at step ``timestep[i] = t``; the rows of
an episode are contiguous and in timestep order. ``terminations[i]`` marks that ``s_{t+1}`` is terminal in the
MDP (no bootstrapping); ``truncations[i]`` marks that the episode was cut (time limit, end of log) and
``s_{t+1}`` still has a value. The last step of every episode carries one of the two flags.

Metadata (:class:`DatasetMetadata`) is stored as JSON in ``ds.info.description``, which ``datasets`` keeps
through ``save_to_disk``/``load_from_disk``, ``select``, ``filter`` and ``with_format``. This module also holds
the column/array helpers shared by the data modules and :func:`build_dataset`; checking a dataset against the
schema is :func:`seqrl.data.validation.validate`.
"""

from __future__ import annotations

import copy
import functools
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
    before ``gymnasium.spaces.flatten_space``, or None when no flattening was needed. ``env_import`` lists the
    modules that register a custom env (:mod:`seqrl.envs`), to import before ``gymnasium.make``.
    """

    dataset_id: str
    env_spec: str | None  # gymnasium EnvSpec.to_json(), None when the data has no known env
    observation_space: str
    action_space: str
    original_observation_space: str | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    stats: dict = field(default_factory=dict)
    env_import: list[str] = field(default_factory=list)

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

    # The three below are read inside training steps, so they come from a cache keyed by the space's
    # JSON: deserialising a Box costs about 0.2 ms, three times in every IQL step before the cache.
    @property
    def is_discrete(self) -> bool:
        return _space_size(self.action_space)[0]

    @property
    def obs_dim(self) -> int:
        return _space_size(self.observation_space)[1]

    @property
    def action_dim(self) -> int:
        """Width of a Box action, or the number of actions ``n`` of a Discrete space."""
        is_discrete, width, n = _space_size(self.action_space)
        return n if is_discrete else width

    @property
    def env_id(self) -> str | None:
        return None if self.env_spec is None else json.loads(self.env_spec)["id"]


@functools.lru_cache(maxsize=64)
def _space_size(space_json: str) -> tuple[bool, int, int | None]:
    """(is it Discrete, the product of its shape, its ``n`` if Discrete) for a serialised space."""
    space = deserialize_space(space_json)
    is_discrete = isinstance(space, gym.spaces.Discrete)
    return is_discrete, int(np.prod(space.shape)), int(space.n) if is_discrete else None


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


def build_dataset(columns: Mapping[str, np.ndarray], metadata: DatasetMetadata,
                  with_stats: bool = True) -> datasets.Dataset:
    """A :class:`datasets.Dataset` from numpy columns, with Arrow arrays built straight from numpy (no per-row Python).

    ``observations``/``next_observations`` become ``float32[obs_dim]`` (trailing shapes are flattened); actions
    ``float32[action_dim]`` for a Box space, ``int64`` for a Discrete one. An empty ``metadata.stats`` is filled
    with :func:`seqrl.data.stats.compute_stats`, unless ``with_stats=False``: a caller that validates first (as
    :func:`seqrl.data.sources.load_dataset` does) computes them afterwards, so they never see NaN/inf values.
    Call :func:`seqrl.data.validation.validate` to check the result.
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
    if with_stats and not metadata.stats:
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

