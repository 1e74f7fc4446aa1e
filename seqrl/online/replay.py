"""The online phase's replay: which buffer an algorithm draws from, rebuilt as episodes arrive."""

from __future__ import annotations

import datasets
import numpy as np

from seqrl.data.schema import dataset_to_numpy
from seqrl.online.buffer import EpisodeStore, MixedSampler, best_episodes
from seqrl.online.config import OnlineConfig


class Replay:
    """The replay buffer of one process and the sampler over it (see :mod:`seqrl.online.buffer`).

    ``collected`` keeps every online episode of this process in order (the checkpoint and
    ``--online.save_dataset`` write it); the buffer itself may have dropped the oldest. Replaying
    ``collected`` into a fresh ``Replay`` rebuilds the same buffer, which is how a run resumes."""

    def __init__(self, algorithm, dataset: datasets.Dataset, cfg: OnlineConfig, seed: int,
                 process_index: int = 0, num_processes: int = 1):
        self.algorithm, self.cfg = algorithm, cfg
        self._sampler_args = (seed, process_index, num_processes)
        columns = dataset_to_numpy(dataset)
        template = {name: values[:1] for name, values in columns.items()}
        self.offline_part = self.offline_full = None
        if algorithm.data_shape == "trajectory":  # ODT: the best offline trajectories, then online ones
            self.store = EpisodeStore(template, max_episodes=cfg.buffer_episodes)
            self.store.extend(best_episodes(columns, cfg.buffer_episodes))
        elif cfg.mix_ratio > 0:  # two buffers: the offline data stays whole, the online store fills up
            self.store = EpisodeStore(template, max_rows=cfg.buffer_size)
            self.offline_full = algorithm.make_sampler(dataset, *self._sampler_args)
            self.offline_part = algorithm.make_sampler(dataset, *self._sampler_args)
        else:  # one buffer: offline data plus online appends
            self.store = EpisodeStore(template, max_rows=cfg.buffer_size)
            self.store.extend(columns)
        self.collected = EpisodeStore(template)
        self._rebuild()

    def add(self, episodes: list[dict[str, np.ndarray]]) -> None:
        """Append finished episodes to the buffer (and to ``collected``)."""
        for episode in episodes:
            self.store.add(episode)
            self.collected.add(episode)
        if episodes:
            self._rebuild()

    def _rebuild(self) -> None:
        online = self.algorithm.make_sampler(self.store.columns(), *self._sampler_args) if self.store.num_rows else None
        if self.offline_full is None:
            self.sampler = online
        elif online is None:  # nothing online yet: the whole batch from the offline data
            self.sampler = self.offline_full
        else:
            share = self.cfg.mix_ratio
            self.sampler = MixedSampler([self.offline_part, online], [1.0 - share, share], self.algorithm.config.batch_size)

    def sample(self, step: int) -> dict[str, np.ndarray]:
        return self.sampler.sample(step)
