"""Rollouts of the online phase: a policy acting, with exploration, in a gymnasium vector env.

The vector env runs with autoreset off, as the dataset collector (:mod:`seqrl.data.collect`): a finished
sub-env is reset explicitly with the next episode's seed, so no reset step lands in the data. Episode
``k`` of process ``p`` is reset with a seed derived from ``(seed, p, k)``, and the random warm-up and
Gaussian noise draw from generators derived from ``(seed, p, env step)``; with the torch RNG state that
checkpoints restore, a resumed run therefore collects exactly what an uninterrupted one collects.
Finished episodes come back as the dataset schema's columns, ready for the replay buffer.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from seqrl.envs import check_spaces, flat_observations, make_env, resolve_env
from seqrl.errors import SeqRLError
from seqrl.models.policy import SeqRLPolicy

EXPLORATIONS = ("sample", "gaussian")


class OnlineEnvError(SeqRLError):
    """The environment failed or returned non-finite values during the online phase."""


def episode_seed(seed: int, process_index: int, episode: int) -> int:
    """Reset seed of episode ``episode`` of process ``process_index``."""
    return int(np.random.SeedSequence([seed, process_index, episode]).generate_state(1)[0])


class OnlineCollector:
    """Steps ``num_envs`` envs with a policy and returns the episodes that finish.

    ``exploration`` is "sample" (the policy samples its actions, ``policy.reset(explore=True)``) or
    "gaussian" (the policy's mode plus N(0, ``noise_std``) in [-1, 1] action units, clipped to the bounds).
    The first ``random_steps`` env steps of this process take uniform random actions.
    """

    def __init__(self, policy: SeqRLPolicy, env_id: str, env_kwargs: dict | None, num_envs: int, seed: int,
                 process_index: int = 0, exploration: str = "sample", noise_std: float = 0.1, random_steps: int = 0,
                 target_return: float | None = None, next_episode: int = 0, env_steps: int = 0):
        if exploration not in EXPLORATIONS:
            raise OnlineEnvError(f"--online.exploration {exploration!r}: choose one of {', '.join(EXPLORATIONS)}.")
        if num_envs < 1:
            raise OnlineEnvError(f"--online.num_envs must be >= 1, got {num_envs}.")
        self.policy, self.env_id, self.num_envs = policy, env_id, num_envs
        self.seed, self.process_index = seed, process_index
        self.exploration, self.noise_std, self.random_steps = exploration, noise_std, random_steps
        self.target_return = target_return
        self.next_episode, self.env_steps = next_episode, env_steps
        # Any env seqrl.envs names (registered ids, module:Id, module:Class entry points); Dict and Tuple
        # observations are flattened as the datasets flatten them, so episodes match the offline columns.
        spec = resolve_env(env_id, env_kwargs)
        self.env = SyncVectorEnv([lambda: flat_observations(make_env(spec))] * num_envs,
                                 autoreset_mode=AutoresetMode.DISABLED)
        self._check_spaces()
        self._records: list[dict] = []
        self._observations = None

    def _check_spaces(self) -> None:
        config = self.policy.config
        try:
            check_spaces(self.env_id, self.env.single_observation_space, self.env.single_action_space, "the policy",
                         config.state_dim, bool(getattr(config, "discrete_actions", False)), config.act_dim)
        except SeqRLError:
            self.env.close()
            raise

    def start(self) -> None:
        """Reset every env with the next episodes' seeds and the policy's acting state."""
        seeds = [self._take_episode() for _ in range(self.num_envs)]
        observations, _ = self._call("reset", seed=seeds)
        self._check_finite(observations, np.zeros(self.num_envs), "reset")
        self._observations = observations
        self._records = [self._new_record() for _ in range(self.num_envs)]
        self._rewards = np.zeros(self.num_envs, dtype=np.float32)
        self._starts = np.ones(self.num_envs, dtype=bool)
        self.policy.reset(self.num_envs, self.target_return, explore=self.exploration == "sample")

    def _take_episode(self) -> int:
        seed = episode_seed(self.seed, self.process_index, self.next_episode)
        self.next_episode += 1
        return seed

    @staticmethod
    def _new_record() -> dict:
        return {"observations": [], "actions": [], "rewards": [], "terminations": [], "truncations": [],
                "next_observations": []}

    def _call(self, method: str, *args, **kwargs):
        try:
            return getattr(self.env, method)(*args, **kwargs)
        except SeqRLError:
            raise
        except Exception as error:
            raise OnlineEnvError(
                f"environment '{self.env_id}' raised {type(error).__name__} in {method}() at env step {self.env_steps} "
                f"of process {self.process_index}: {error}. Nothing after the last complete checkpoint was kept; "
                "fix the environment and continue from that checkpoint with --resume.") from error

    def _actions(self) -> np.ndarray:
        space = self.env.single_action_space
        rng = np.random.default_rng([self.seed, self.process_index, self.env_steps, 1])
        actions = self.policy.act(self._observations, self._rewards, self._starts)
        if self.env_steps < self.random_steps:  # the policy still acts, so its state (DT cache) stays in step
            if isinstance(space, gym.spaces.Discrete):
                return rng.integers(space.n, size=self.num_envs)
            return rng.uniform(space.low, space.high, size=(self.num_envs, *space.shape)).astype(np.float32)
        if self.exploration == "gaussian" and not isinstance(space, gym.spaces.Discrete):
            scale = (space.high - space.low) / 2.0
            actions = np.clip(actions + self.noise_std * scale * rng.standard_normal(actions.shape), space.low, space.high)
        return actions.astype(space.dtype, copy=False)

    def step(self) -> list[dict[str, np.ndarray]]:
        """One step of every env; returns the episodes that ended (schema columns)."""
        if self._observations is None:
            self.start()
        actions = self._actions()
        observations, rewards, terminations, truncations, _ = self._call("step", actions)
        self._check_finite(observations, rewards, "step")
        for i, record in enumerate(self._records):
            record["observations"].append(self._observations[i])
            record["actions"].append(actions[i])
            record["rewards"].append(rewards[i])
            record["terminations"].append(terminations[i])
            record["truncations"].append(truncations[i])
            record["next_observations"].append(observations[i])
        self.env_steps += self.num_envs
        ended = terminations | truncations
        finished = [self._columns(self._records[i]) for i in np.flatnonzero(ended)]
        if ended.any():
            seeds = [self._take_episode() if done else None for done in ended]
            reset_obs, _ = self._call("reset", seed=seeds, options={"reset_mask": ended})
            self._check_finite(np.where(ended.reshape(-1, *([1] * (reset_obs.ndim - 1))), reset_obs, 0.0),
                               np.zeros(self.num_envs), "reset")  # only the sub-envs that were reset
            observations = np.where(ended.reshape(-1, *([1] * (observations.ndim - 1))), reset_obs, observations)
            for i in np.flatnonzero(ended):
                self._records[i] = self._new_record()
        self._observations = observations
        self._rewards = np.where(ended, 0.0, rewards).astype(np.float32)
        self._starts = ended
        return finished

    def _check_finite(self, observations: np.ndarray, rewards: np.ndarray, method: str) -> None:
        """Refuse NaN/inf from the env before it reaches the buffer. Reset observations are checked as well
        as step results: a NaN first observation would otherwise be stored, unseen, as an episode's first row."""
        finite = np.isfinite(observations).reshape(self.num_envs, -1).all(1) & np.isfinite(rewards)
        if not finite.all():
            raise OnlineEnvError(
                f"environment '{self.env_id}' returned a non-finite observation or reward in {method}() at env step "
                f"{self.env_steps} (sub-env {int(np.flatnonzero(~finite)[0])} of process {self.process_index}). "
                "Nothing after the last complete checkpoint was kept; fix the environment and continue from that "
                "checkpoint with --resume.")

    def cut(self) -> list[dict[str, np.ndarray]]:
        """End every episode in progress as truncated (a checkpoint or the end of the phase) and return them;
        the next :meth:`step` starts new episodes."""
        finished = []
        for record in self._records:
            if record["rewards"]:
                record["truncations"][-1] = True
                finished.append(self._columns(record))
        self._records, self._observations = [], None
        return finished

    @staticmethod
    def _columns(record: dict) -> dict[str, np.ndarray]:
        return {
            "observations": np.asarray(record["observations"], dtype=np.float32).reshape(len(record["rewards"]), -1),
            "actions": np.asarray(record["actions"]),
            "rewards": np.asarray(record["rewards"], dtype=np.float32),
            "terminations": np.asarray(record["terminations"], dtype=bool),
            "truncations": np.asarray(record["truncations"], dtype=bool),
            "next_observations": np.asarray(record["next_observations"], dtype=np.float32).reshape(len(record["rewards"]), -1),
        }

    def close(self) -> None:
        self.env.close()
