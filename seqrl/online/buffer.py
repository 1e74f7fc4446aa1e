"""Replay buffers in the dataset schema: whole episodes as numpy columns that the samplers read.

An :class:`EpisodeStore` keeps the columns of :data:`seqrl.data.schema.COLUMNS` for whole episodes, in
the order they were added (rows of an episode contiguous, as in a dataset). The existing vectorised
samplers (:mod:`seqrl.data.samplers`) take its :meth:`EpisodeStore.columns` mapping directly, so
online data is drawn by exactly the code that draws offline data: windows with returns-to-go
recomputed from the rewards obtained (the Online Decision Transformer's hindsight relabelling) or n-step
transitions (with Monte Carlo returns for Cal-QL). When the store is full, the oldest episodes leave
first. :meth:`EpisodeStore.to_dataset` turns it into a ``datasets.Dataset`` with the offline data's
metadata, to save or push.

The two buffers of the online phase are built from it (:func:`make_replay`):

- sequence models (ODT): one store of ``buffer_episodes`` trajectories, seeded with the offline episodes
  of the highest return, ordered from the lowest to the highest, so the first online episodes replace
  the weakest seeds, then the oldest online ones (the reference's ring buffer does the same);
- value heads: the offline data plus online appends in one store (``mix_ratio`` 0), or the offline data
  and an online store drawn at a fixed ratio by :class:`MixedSampler` (``mix_ratio`` > 0).
"""

from __future__ import annotations

from collections.abc import Mapping

import datasets
import numpy as np

from seqrl.data.schema import (
    COLUMNS,
    DatasetMetadata,
    build_dataset,
    dataset_to_numpy,
    episode_boundaries,
)
from seqrl.errors import SeqRLError


class ReplayBufferError(SeqRLError):
    """An episode does not fit the buffer (shapes, columns) or the buffer cannot hold it."""


class EpisodeStore:
    """Whole episodes as growing numpy columns, the oldest dropped first beyond ``max_rows``/``max_episodes``.

    Columns are preallocated and grow by doubling; ``columns()`` returns views of the filled rows, valid
    until the next :meth:`add` (samplers are rebuilt after every change)."""

    def __init__(self, template: Mapping[str, np.ndarray], max_rows: int | None = None,
                 max_episodes: int | None = None):
        if max_rows is not None and max_rows < 1 or max_episodes is not None and max_episodes < 1:
            raise ReplayBufferError(f"buffer sizes must be >= 1 (max_rows={max_rows}, max_episodes={max_episodes}).")
        self.max_rows, self.max_episodes = max_rows, max_episodes
        self._arrays = {name: np.empty((16, *np.shape(template[name])[1:]), dtype=np.asarray(template[name]).dtype)
                        for name in COLUMNS}
        self._lengths: list[int] = []  # per stored episode, oldest first
        self.num_rows = 0
        self.next_episode_index = 0  # stored episode_index values are unique and increasing
        self.added_episodes = 0
        self.dropped_episodes = 0

    @property
    def num_episodes(self) -> int:
        return len(self._lengths)

    def columns(self) -> dict[str, np.ndarray]:
        """The stored rows as the schema's columns (views)."""
        return {name: array[: self.num_rows] for name, array in self._arrays.items()}

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each stored episode, oldest first [E]."""
        starts = np.cumsum([0] + self._lengths[:-1]).astype(np.int64)
        rewards = self._arrays["rewards"][: self.num_rows].astype(np.float64)
        return np.add.reduceat(rewards, starts) if self._lengths else np.zeros(0)

    def add(self, episode: Mapping[str, np.ndarray]) -> None:
        """Append one episode (the schema's columns without ``episode_index``, ``timestep`` optional)."""
        length = len(episode["rewards"])
        if length == 0:
            return
        for name in COLUMNS:
            if name in ("episode_index", "timestep") and name not in episode:
                continue
            value = np.asarray(episode[name])
            if len(value) != length or value.shape[1:] != self._arrays[name].shape[1:]:
                raise ReplayBufferError(f"column {name!r} of the new episode has shape {value.shape}; expected "
                                  f"({length}, {', '.join(map(str, self._arrays[name].shape[1:]))}).")
        if self.max_rows is not None and length > self.max_rows:
            raise ReplayBufferError(f"an episode of {length} steps does not fit a buffer of {self.max_rows} transitions; "
                              "raise --online.buffer_size.")
        self._make_room(length)
        rows = slice(self.num_rows, self.num_rows + length)
        for name in COLUMNS:
            if name == "episode_index":
                self._arrays[name][rows] = self.next_episode_index
            elif name == "timestep" and name not in episode:
                self._arrays[name][rows] = np.arange(length)
            else:
                self._arrays[name][rows] = episode[name]
        self.num_rows += length
        self._lengths.append(length)
        self.next_episode_index += 1
        self.added_episodes += 1

    def extend(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append every episode of a dataset's columns, in their order."""
        starts, lengths = episode_boundaries(columns["episode_index"])
        for start, length in zip(starts, lengths):
            self.add({name: np.asarray(columns[name][start:start + length]) for name in COLUMNS if name != "episode_index"})

    def _make_room(self, length: int) -> None:
        drop = 0
        rows = self.num_rows
        while self._lengths[drop:] and (
                (self.max_rows is not None and rows + length > self.max_rows)
                or (self.max_episodes is not None and len(self._lengths) - drop + 1 > self.max_episodes)):
            rows -= self._lengths[drop]
            drop += 1
        if drop:  # the oldest episodes leave: shift the rest to the front
            gone = self.num_rows - rows
            for array in self._arrays.values():
                array[:rows] = array[gone:self.num_rows]
            del self._lengths[:drop]
            self.num_rows = rows
            self.dropped_episodes += drop
        needed = self.num_rows + length
        capacity = len(self._arrays["rewards"])
        if needed > capacity:
            capacity = max(needed, 2 * capacity)
            for name, array in self._arrays.items():
                grown = np.empty((capacity, *array.shape[1:]), dtype=array.dtype)
                grown[: self.num_rows] = array[: self.num_rows]
                self._arrays[name] = grown

    def to_dataset(self, metadata: DatasetMetadata) -> datasets.Dataset:
        """The stored episodes as a seqrl dataset (statistics recomputed for these episodes)."""
        from dataclasses import replace

        if not self.num_rows:
            raise ReplayBufferError("the buffer holds no episode to turn into a dataset.")
        return build_dataset(self.columns(), replace(metadata, stats={}))


def template_columns(dataset: datasets.Dataset) -> dict[str, np.ndarray]:
    """The first row of each column (dtypes and shapes for an :class:`EpisodeStore`)."""
    return dataset_to_numpy(dataset.select(range(1)))


def best_episodes(columns: Mapping[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """The ``count`` episodes of the highest return, ordered from the lowest to the highest return."""
    starts, lengths = episode_boundaries(columns["episode_index"])
    returns = np.add.reduceat(np.asarray(columns["rewards"], dtype=np.float64), starts) if len(starts) else np.zeros(0)
    chosen = np.argsort(returns, kind="stable")[-count:]  # ascending return
    rows = np.concatenate([np.arange(starts[e], starts[e] + lengths[e]) for e in chosen]) if len(chosen) else np.zeros(0, int)
    return {name: np.asarray(columns[name])[rows] for name in COLUMNS}


class MixedSampler:
    """Batches drawn from several samplers at fixed shares, concatenated: ``round(share * B)`` rows from each.

    Each part draws from its own stream (``stream`` = its position), so batches stay a function of
    (seed, process, step) alone."""

    def __init__(self, samplers: list, shares: list[float], batch_size: int):
        if len(samplers) != len(shares) or not np.isclose(sum(shares), 1.0) or min(shares) < 0:
            raise ReplayBufferError(f"mixing shares must be >= 0 and sum to 1, got {shares}.")
        counts = np.floor(np.asarray(shares) * batch_size + 0.5).astype(int)
        counts[-1] = batch_size - counts[:-1].sum()
        self.parts = []
        for index, (sampler, count) in enumerate(zip(samplers, counts)):
            if count > 0:
                sampler.batch_size, sampler.stream = int(count), index + 1
                self.parts.append(sampler)
        self.counts = [int(c) for c in counts if c > 0]

    def sample(self, step: int) -> dict[str, np.ndarray]:
        batches = [part.sample(step) for part in self.parts]
        return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}
