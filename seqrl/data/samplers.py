"""Batch samplers: context windows for sequence models, (n-step) transitions for value methods.

Both read the dataset's columns as contiguous numpy arrays (zero-copy or memory-mapped, see
:mod:`seqrl.data.columns`), split into episodes by ``episode_index`` (``episode_starts`` [E],
``episode_lengths`` [E]), and build a batch with a handful of vectorised gathers: no Python loop
per sample.

Randomness is stateless. ``sample(step)`` draws from
``np.random.default_rng([seed, process_index, step])``, so a batch depends only on
(seed, process index, step): resuming a run needs only the step number, and ``state_dict`` holds
just the configuration. Under Accelerate every process builds a sampler with its own
``process_index``; each process draws its own independent stream over the whole dataset (not a
partition of it). Draws are with replacement, so ``num_processes`` streams of ``batch_size`` have the
same distribution as one batch of ``num_processes * batch_size``.

A step is drawn uniformly from all ``N`` steps. Its episode ``e`` is therefore drawn with
probability ``P(e) = L_e / N`` (proportional to its length ``L_e``), and given ``e`` the step is
uniform inside it, exactly as in the Decision Transformer reference code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from datasets import Dataset

from seqrl.data.columns import cached_array, column_array, contiguous_dataset
from seqrl.errors import SeqRLError


class SamplerConfigError(SeqRLError):
    """A sampler argument or a restored sampler state does not fit the dataset or the run."""


class _EpisodeSampler:
    """Shared part: episode boundaries, observation normalisation, seeding and state.

    ``dataset`` is a ``datasets.Dataset`` in the seqrl schema, or a mapping from the schema's column
    names to numpy arrays with the same layout (the online replay buffers, :mod:`seqrl.online.buffer`).
    """

    # Settings a checkpoint must agree on: they change what a batch means, not just which rows.
    _strict_state_keys: tuple[str, ...] = ("num_steps",)
    # Extra entry of the seed sequence, so that several samplers over other data with the same seed
    # draw independent rows (the mixed online/offline batches); 0 keeps the plain (seed, process, step).
    stream: int = 0

    def __init__(self, dataset: Dataset | Mapping[str, np.ndarray], batch_size: int, obs_mean, obs_std, seed: int,
                 process_index: int, num_processes: int):
        _require(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        _require(seed >= 0, f"seed must be a non-negative integer, got {seed}")
        _require(0 <= process_index < num_processes,
                 f"process_index must be in [0, num_processes={num_processes}), got {process_index}")
        self.dataset = dataset if isinstance(dataset, Mapping) else contiguous_dataset(dataset)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.process_index, self.num_processes = int(process_index), int(num_processes)
        episode_index = self._column("episode_index")  # [N]
        self.num_steps = len(episode_index)
        # A new episode starts wherever episode_index changes (rows of an episode are contiguous).
        self.episode_starts = np.concatenate(([0], np.flatnonzero(episode_index[1:] != episode_index[:-1]) + 1))  # [E]
        self.episode_lengths = np.diff(np.append(self.episode_starts, self.num_steps))  # [E]
        self.observations = self._column("observations")  # [N, obs_dim]
        self.actions = self._column("actions")  # [N] int (Discrete) or [N, act_dim]
        self.is_discrete = np.issubdtype(self.actions.dtype, np.integer)
        if self.actions.ndim == 1 and not self.is_discrete:
            self.actions = self.actions[:, None]  # scalar Box action -> [N, 1]
        self.obs_mean, self.obs_std = self._check_normalisation(obs_mean, obs_std)

    def _column(self, name: str) -> np.ndarray:
        """Column ``name`` as one contiguous numpy array (zero-copy where the storage allows)."""
        if isinstance(self.dataset, Mapping):
            return np.asarray(self.dataset[name])
        return column_array(self.dataset, name)

    def _cached(self, key: str, shape: tuple[int, ...], dtype, blocks: Callable[[], Iterable[np.ndarray]]) -> np.ndarray:
        """A derived ``[N, ...]`` array, memory-mapped beside a dataset that lives in files (else in memory)."""
        cached = None if isinstance(self.dataset, Mapping) else cached_array(self.dataset, key, shape, dtype, blocks)
        return np.concatenate(list(blocks())) if cached is None else cached

    @property
    def episode_probabilities(self) -> np.ndarray:
        """``P(e) = L_e / N`` [E]: the probability that a draw lands in episode ``e``."""
        return self.episode_lengths / self.num_steps

    def _check_normalisation(self, obs_mean, obs_std):
        if (obs_mean is None) != (obs_std is None):
            raise SamplerConfigError("give both obs_mean and obs_std, or neither (no normalisation)")
        if obs_mean is None:
            return None, None
        obs_shape = self.observations.shape[1:]
        mean = np.asarray(obs_mean, dtype=np.float32)
        std = np.asarray(obs_std, dtype=np.float32)
        if mean.shape != obs_shape or std.shape != obs_shape:
            raise SamplerConfigError(
                f"obs_mean {mean.shape} / obs_std {std.shape} must have the observation shape {obs_shape}; "
                "use the statistics of this dataset (seqrl.data.stats.compute_stats)")
        if not np.all(std > 0):
            raise SamplerConfigError("obs_std must be > 0 everywhere (compute_stats floors it at 1e-6)")
        return mean, std

    def _draw_rows(self, step: int) -> np.ndarray:
        """Uniform step rows [B] for ``step`` (episodes follow with probability ∝ length)."""
        _require(int(step) >= 0, f"step must be a non-negative integer, got {step}")
        entropy = [self.seed, self.process_index, int(step)] + ([self.stream] if self.stream else [])
        rng = np.random.default_rng(entropy)
        return rng.integers(0, self.num_steps, size=self.batch_size)

    def _locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Episode start row and (exclusive) end row of each row in ``rows`` [B]."""
        rows = np.asarray(rows, dtype=np.int64)
        _require(rows.ndim == 1 and np.all((rows >= 0) & (rows < self.num_steps)),
                 f"rows must be a 1-D array of row numbers in [0, {self.num_steps})")
        episode = np.searchsorted(self.episode_starts, rows, side="right") - 1  # [B]
        start = self.episode_starts[episode]
        return start, start + self.episode_lengths[episode]

    def _normalise(self, observations: np.ndarray) -> np.ndarray:
        """``(obs - mean) / std`` in float32 (identity without statistics)."""
        observations = observations.astype(np.float32, copy=False)
        if self.obs_mean is None:
            return observations
        return (observations - self.obs_mean) / self.obs_std

    def _gather_actions(self, rows: np.ndarray) -> np.ndarray:
        actions = self.actions[rows]
        return actions.astype(np.int64 if self.is_discrete else np.float32, copy=False)

    def state_dict(self) -> dict:
        """The configuration that fixes every future batch (sampling itself keeps no state)."""
        return {"seed": self.seed, "batch_size": self.batch_size, "num_processes": self.num_processes,
                "num_steps": self.num_steps, **self._config()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the seed from ``state``; refuse a state made for other data or other settings.

        ``batch_size`` and ``num_processes`` may differ (the run then continues on another stream).
        """
        if not isinstance(state.get("seed"), (int, np.integer)):
            raise SamplerConfigError(f"the sampler state has no integer 'seed' (keys: {sorted(state)}); "
                                     "pass the dict that state_dict() returned")
        keys = self._strict_state_keys + tuple(self._config())
        mismatched = {key: (state.get(key), getattr(self, key)) for key in keys if state.get(key) != getattr(self, key)}
        if mismatched:
            raise SamplerConfigError(
                f"the sampler state was saved with other settings, as (saved, now): {mismatched}; resume with "
                "the dataset and sampler settings of the checkpoint, or start a new run")
        self.seed = int(state["seed"])

    def _config(self) -> dict:
        return {}


class TrajectorySampler(_EpisodeSampler):
    """Context windows of ``K = context_len`` steps for Decision Transformer-style models.

    A draw picks a row ``r`` (so its episode ``e`` with ``P(e) = L_e / N``) and takes the window
    ``r .. min(r + K, end_e) - 1``. A window cut short by the episode end is left-padded: its ``v``
    real steps sit at positions ``K - v .. K - 1``, with zeros and ``attention_mask = 0`` before.

    Returns-to-go are precomputed once per step over whole episodes (float64 accumulation)::

        R_t = sum_{t' = t}^{T_e - 1} r_t'          (the true remaining return of the episode)

    and returned as ``return_scale * R_t``. ``sample(step)`` returns transformers DT names::

        states          [B, K, obs_dim] float32   (obs - obs_mean) / obs_std
        actions         [B, K, act_dim] float32   (Box)  or  [B, K] int64 (Discrete)
        returns_to_go   [B, K, 1]       float32   return_scale * R_t
        timesteps       [B, K]          int64     the episode's ``timestep`` column
        attention_mask  [B, K]          int64     1 on real steps, 0 on padding
    """

    # Rows of rewards per block when computing returns-to-go: bounds the float64 scratch memory.
    _block_rows = 1 << 20

    def __init__(self, dataset: Dataset, context_len: int, batch_size: int, return_scale: float,
                 obs_mean: Sequence[float] | np.ndarray | None = None,
                 obs_std: Sequence[float] | np.ndarray | None = None,
                 seed: int = 0, process_index: int = 0, num_processes: int = 1):
        _require(context_len >= 1, f"context_len must be >= 1, got {context_len}")
        _require(return_scale > 0, f"return_scale must be > 0 (e.g. 1/1000 for MuJoCo returns), got {return_scale}")
        super().__init__(dataset, batch_size, obs_mean, obs_std, seed, process_index, num_processes)
        self.context_len = int(context_len)
        self.return_scale = float(return_scale)
        self.timesteps = self._column("timestep")  # [N]
        rewards = self._column("rewards")  # [N]
        self.returns_to_go = self._cached(  # [N] float32, unscaled; memory-mapped when the dataset is
            "seqrl-returns_to_go", (self.num_steps,), np.float32, lambda: self._returns_to_go_blocks(rewards))

    def _returns_to_go_blocks(self, rewards: np.ndarray) -> Iterable[np.ndarray]:
        """Yield ``R_t`` [rows] float32 for consecutive blocks of whole episodes.

        Inside a block ``[a, b)``, with suffix sums ``S_t = sum_{t'=t}^{b-1} r_t'`` (float64) and
        ``S_b = 0``, the return-to-go is ``R_t = S_t - S_{end_e}`` for the episode ``e`` holding ``t``.
        """
        ends = self.episode_starts + self.episode_lengths  # [E], exclusive
        first = 0
        while first < len(ends):
            block_start = self.episode_starts[first]
            # Whole episodes up to _block_rows rows (at least one, however long it is).
            last = max(first + 1, int(np.searchsorted(ends, block_start + self._block_rows, side="right")))
            block_rewards = np.asarray(rewards[block_start:ends[last - 1]], dtype=np.float64)
            suffix = np.append(np.cumsum(block_rewards[::-1])[::-1], 0.0)  # [rows + 1]
            end_in_block = np.repeat(ends[first:last] - block_start, self.episode_lengths[first:last])  # [rows]
            yield (suffix[:-1] - suffix[end_in_block]).astype(np.float32)
            first = last

    def _config(self) -> dict:
        return {"context_len": self.context_len, "return_scale": self.return_scale}

    def sample(self, step: int) -> dict[str, np.ndarray]:
        """The batch for training step ``step`` (same arguments, same batch)."""
        return self.windows(self._draw_rows(step))

    def windows(self, start_rows: np.ndarray) -> dict[str, np.ndarray]:
        """The batch of windows that start at the given dataset rows [B] (see the class docstring)."""
        start_rows = np.asarray(start_rows, dtype=np.int64)
        _, episode_end = self._locate(start_rows)
        context = self.context_len
        real_steps = np.minimum(context, episode_end - start_rows)  # [B], >= 1
        position = np.arange(context)  # [K]
        first_real = (context - real_steps)[:, None]  # [B, 1]
        real = position >= first_real  # [B, K]
        # Row of each position; padding points at the window's first row and is zeroed below.
        rows = start_rows[:, None] + np.maximum(position - first_real, 0)  # [B, K]
        flat_rows = rows.ravel()  # [B*K]
        batch, pad = rows.shape, ~real

        states = self._normalise(self.observations[flat_rows]).reshape(*batch, -1)  # [B, K, obs_dim]
        states[pad] = 0.0
        actions = self._gather_actions(flat_rows)
        actions = actions.reshape(batch) if self.is_discrete else actions.reshape(*batch, -1)  # [B,K] / [B,K,A]
        actions[pad] = 0
        returns_to_go = self.returns_to_go[flat_rows].reshape(batch) * np.float32(self.return_scale)  # [B, K]
        returns_to_go[pad] = 0.0
        timesteps = self.timesteps[flat_rows].reshape(batch).astype(np.int64)  # [B, K]
        timesteps[pad] = 0
        return {
            "states": states,
            "actions": actions,
            "returns_to_go": returns_to_go[..., None],  # [B, K, 1]
            "timesteps": timesteps,
            "attention_mask": real.astype(np.int64),
        }


class TransitionSampler(_EpisodeSampler):
    """(s, a, R, s', terminal, discount) transitions for value-based methods, with n-step returns.

    For a drawn row ``t`` in an episode ending (exclusively) at ``end``, the number of summed steps
    is ``m = min(n_step, end - t)`` (never past the episode end), and::

        rewards     = reward_scale * sum_{i=0}^{m-1} gamma^i r_{t+i}         [B] float32
        next_observations = next_obs_{t+m-1}                               [B, obs_dim] float32
        terminals   = terminations_{t+m-1}   (truncations never count)     [B] float32
        discounts   = gamma^m                                              [B] float32

    so the TD target is ``rewards + discounts * (1 - terminals) * V(next_observations)``. A
    truncated episode end is not terminal: the target still bootstraps from its last next obs.
    ``observations`` and ``next_observations`` are normalised like in :class:`TrajectorySampler`;
    ``actions`` are [B, act_dim] float32 (Box) or [B] int64 (Discrete).

    With ``mc_returns=True`` the batch also holds the Monte Carlo return of the drawn row's episode
    from ``t`` on (Cal-QL's calibration), in the same reward units::

        mc_returns  = reward_scale * sum_{k>=0} gamma^k r_{t+k}   (to the episode's end)   [B] float32
    """

    def __init__(self, dataset: Dataset | Mapping[str, np.ndarray], batch_size: int, n_step: int = 1,
                 gamma: float = 0.99, reward_scale: float = 1.0,
                 obs_mean: Sequence[float] | np.ndarray | None = None,
                 obs_std: Sequence[float] | np.ndarray | None = None, seed: int = 0,
                 process_index: int = 0, num_processes: int = 1, mc_returns: bool = False):
        _require(n_step >= 1, f"n_step must be >= 1, got {n_step}")
        _require(0.0 <= gamma <= 1.0, f"gamma must be in [0, 1], got {gamma}")
        super().__init__(dataset, batch_size, obs_mean, obs_std, seed, process_index, num_processes)
        self.n_step, self.gamma, self.reward_scale = int(n_step), float(gamma), float(reward_scale)
        self.rewards = self._column("rewards")  # [N]
        self.terminations = self._column("terminations")  # [N] bool
        self.next_observations = self._column("next_observations")  # [N, obs_dim]
        self.mc_returns = None
        if mc_returns:
            returns = discounted_returns(self.rewards, self.episode_starts, self.episode_lengths, self.gamma)
            self.mc_returns = (returns * self.reward_scale).astype(np.float32)  # [N]

    def _config(self) -> dict:
        return {"n_step": self.n_step, "gamma": self.gamma, "reward_scale": self.reward_scale}

    def sample(self, step: int) -> dict[str, np.ndarray]:
        """The batch for training step ``step`` (same arguments, same batch)."""
        return self.transitions(self._draw_rows(step))

    def transitions(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The batch of n-step transitions starting at the given dataset rows [B]."""
        rows = np.asarray(rows, dtype=np.int64)
        _, episode_end = self._locate(rows)
        summed_steps = np.minimum(self.n_step, episode_end - rows)  # [B], m >= 1
        offsets = np.arange(self.n_step)  # [n]
        inside = offsets < summed_steps[:, None]  # [B, n]
        reward_rows = rows[:, None] + np.minimum(offsets, summed_steps[:, None] - 1)  # [B, n], in episode
        weights = np.where(inside, self.gamma ** offsets, 0.0)  # [B, n] float64
        rewards = (self.rewards[reward_rows] * weights).sum(axis=1) * self.reward_scale  # [B] float64
        last_rows = rows + summed_steps - 1  # [B]
        batch = {
            "observations": self._normalise(self.observations[rows]),  # [B, obs_dim]
            "actions": self._gather_actions(rows),  # [B, act_dim] or [B]
            "rewards": rewards.astype(np.float32),
            "next_observations": self._normalise(self.next_observations[last_rows]),  # [B, obs_dim]
            "terminals": self.terminations[last_rows].astype(np.float32),  # [B]
            "discounts": (self.gamma ** summed_steps).astype(np.float32),  # [B]
        }
        if self.mc_returns is not None:
            batch["mc_returns"] = self.mc_returns[rows]  # [B]
        return batch


class TokenSampler(_EpisodeSampler):
    """Windows of whole transitions as tokens, for the Trajectory Transformer (Janner et al. 2021).

    Each row becomes one transition of ``D = obs_dim + act_dim + 2`` numbers (:meth:`transition_columns`)::

        (s_t, a_t, r_t, V_t)   with  r_t = termination_penalty  where the episode terminates at t,
                                     V_t = sum_{k >= 0} gamma^k r_{t+1+k}   (within the episode; 0 at its end)

    with ``s`` normalised by ``obs_mean``/``obs_std`` and Box actions mapped to [-1, 1] by their bounds, as
    the policy acts. :meth:`tokenize` turns the ``[N, D]`` columns into tokens once (memory-mapped from the
    dataset's cache folder, keyed by the discretiser's edges). ``sample(step)`` draws rows as the other
    samplers do (``P(e) = L_e / N``) and returns the ``W = window`` transitions from each::

        tokens      [B, W * D] int64   the window's tokens; ``stop_token`` after the episode's end
        timesteps   [B, W]     int64   the episode timestep of each transition (counting on past the end)
        valid       [B, W]     int64   1 on the episode's transitions, 0 past its end (loss masked there)

    Windows run past the episode end rather than being left-padded, as in the reference, so the model
    learns the first transitions of a window without earlier context and the last ones of an episode.
    """

    def __init__(self, dataset: Dataset, window: int, batch_size: int, gamma: float = 0.99,
                 termination_penalty: float | None = -100.0,
                 obs_mean: Sequence[float] | np.ndarray | None = None,
                 obs_std: Sequence[float] | np.ndarray | None = None,
                 action_low: Sequence[float] | np.ndarray | None = None,
                 action_high: Sequence[float] | np.ndarray | None = None,
                 seed: int = 0, process_index: int = 0, num_processes: int = 1):
        _require(window >= 1, f"window must be >= 1 transition, got {window}")
        _require(0.0 <= gamma <= 1.0, f"gamma must be in [0, 1], got {gamma}")
        super().__init__(dataset, batch_size, obs_mean, obs_std, seed, process_index, num_processes)
        self.window, self.gamma = int(window), float(gamma)
        self.termination_penalty = None if termination_penalty is None else float(termination_penalty)
        self.action_low = None if action_low is None else np.asarray(action_low, np.float32)
        self.action_high = None if action_high is None else np.asarray(action_high, np.float32)
        self.timesteps = self._column("timestep")  # [N]
        self.tokens: np.ndarray | None = None  # [N, D] after tokenize()
        self.stop_token = -1

    def _config(self) -> dict:
        return {"window": self.window, "gamma": self.gamma, "termination_penalty": self.termination_penalty}

    @property
    def transition_dim(self) -> int:
        return self.observations.shape[1] + (1 if self.is_discrete else self.actions.shape[1]) + 2

    def transition_columns(self) -> np.ndarray:
        """``[N, D]`` float32: normalised observation, action ([-1, 1] or the id), reward, value."""
        rewards = self._column("rewards").astype(np.float64)  # [N]
        if self.termination_penalty is not None:
            terminal = self._column("terminations").astype(bool)
            rewards = np.where(terminal, self.termination_penalty, rewards)
        actions = self._gather_actions(np.arange(self.num_steps))
        if self.is_discrete:
            actions = actions[:, None].astype(np.float32)
        elif self.action_low is not None:
            actions = 2.0 * (actions - self.action_low) / (self.action_high - self.action_low) - 1.0
        return np.concatenate([
            self._normalise(self.observations), actions.astype(np.float32),
            rewards[:, None].astype(np.float32), self._values(rewards)[:, None].astype(np.float32),
        ], axis=1)

    def _values(self, rewards: np.ndarray) -> np.ndarray:
        """``V_t = sum_{k>=0} gamma^k r_{t+1+k}`` inside each episode [N] (float64): the discounted
        return-to-go of the next row, 0 at an episode's last row."""
        suffix = discounted_returns(rewards, self.episode_starts, self.episode_lengths, self.gamma)
        rows = np.arange(self.num_steps)
        inside = rows + 1 < np.repeat(self.episode_starts + self.episode_lengths, self.episode_lengths)
        values = np.zeros(self.num_steps)
        values[inside] = suffix[rows[inside] + 1]
        return values

    def tokenize(self, encode: Callable[[np.ndarray], np.ndarray], n_bins: int, key: str,
                 columns: np.ndarray | None = None) -> None:
        """Tokens of every row ``[N, D]`` from ``encode`` (``[rows, D]`` floats -> tokens), cached beside
        the dataset under ``key`` (which must change with the discretiser's edges)."""
        columns = self.transition_columns() if columns is None else columns
        block = self._block_rows

        def blocks() -> Iterable[np.ndarray]:
            for begin in range(0, self.num_steps, block):
                yield encode(columns[begin:begin + block]).astype(np.int16)

        self.tokens = self._cached(f"seqrl-tokens-{key}", (self.num_steps, columns.shape[1]), np.int16, blocks)
        self.stop_token = int(n_bins)

    _block_rows = 1 << 16

    def sample(self, step: int) -> dict[str, np.ndarray]:
        """The batch for training step ``step`` (same arguments, same batch)."""
        return self.windows(self._draw_rows(step))

    def windows(self, start_rows: np.ndarray) -> dict[str, np.ndarray]:
        """The windows of ``window`` transitions that start at the given rows [B]."""
        if self.tokens is None:
            raise SamplerConfigError("TokenSampler.tokenize() must run before sampling")
        start_rows = np.asarray(start_rows, dtype=np.int64)
        _, episode_end = self._locate(start_rows)
        rows = start_rows[:, None] + np.arange(self.window)  # [B, W]
        valid = rows < episode_end[:, None]  # [B, W]
        tokens = self.tokens[np.minimum(rows, episode_end[:, None] - 1)].astype(np.int64)  # [B, W, D]
        tokens[~valid] = self.stop_token
        timesteps = self.timesteps[start_rows].astype(np.int64)[:, None] + np.arange(self.window)  # [B, W]
        return {"tokens": tokens.reshape(len(start_rows), -1), "timesteps": timesteps, "valid": valid.astype(np.int64)}


def discounted_returns(rewards: np.ndarray, episode_starts: np.ndarray, episode_lengths: np.ndarray,
                       gamma: float) -> np.ndarray:
    """``G_t = sum_{k>=0} gamma^k r_{t+k}`` up to the end of ``t``'s episode, for every row [N] (float64).

    The discounted suffix sum ``G_t = r_t + gamma G_{t+1}`` (``G = r`` at an episode's last row) is a
    linear recurrence; a doubling scan computes it in ``log2(longest episode)`` vectorised passes:
    after the pass with offset ``d``, ``G_t`` sums ``2d`` terms and ``coef_t`` is the discount that
    carries the rest from row ``t + 2d`` (0 once that row lies past the episode end).
    """
    num_rows = len(rewards)
    ends = np.repeat(episode_starts + episode_lengths, episode_lengths)  # [N] exclusive
    suffix = np.asarray(rewards, dtype=np.float64).copy()
    coef = np.where(np.arange(num_rows) + 1 < ends, gamma, 0.0)  # [N]
    offset = 1
    while offset < (episode_lengths.max() if len(episode_lengths) else 0):
        suffix[:-offset] += coef[:-offset] * suffix[offset:]
        coef[:-offset] *= coef[offset:]
        coef[-offset:] = 0.0
        offset *= 2
    return suffix


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SamplerConfigError(message)
