"""A user's own environments, defined and registered as a package of theirs would do it.

The tests reach them as a user would: ``--env_import tests.custom_envs`` and the registered id
``DictPendulum-v0``, or the entry point ``tests.custom_envs:DictPendulumEnv`` without registration.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.pendulum import PendulumEnv


class DictPendulumEnv(PendulumEnv):
    """Pendulum observed as a Dict ``{"angle": [cos, sin], "velocity": [theta_dot]}`` (or, with ``as_tuple``, the
    Tuple ``(angle, velocity)``) that truncates its episodes itself after ``max_steps`` steps, so that it needs no
    registration to end them."""

    def __init__(self, g: float = 10.0, max_steps: int = 50, as_tuple: bool = False):
        super().__init__(g=g)
        self.max_steps, self.as_tuple, self.steps = max_steps, as_tuple, 0
        angle = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        velocity = gym.spaces.Box(-self.max_speed, self.max_speed, (1,), np.float32)
        self.observation_space = (gym.spaces.Tuple((angle, velocity)) if as_tuple
                                  else gym.spaces.Dict({"angle": angle, "velocity": velocity}))

    def _get_obs(self):
        theta, theta_dot = self.state
        angle = np.array([np.cos(theta), np.sin(theta)], dtype=np.float32)
        velocity = np.array([theta_dot], dtype=np.float32)
        return (angle, velocity) if self.as_tuple else {"angle": angle, "velocity": velocity}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.steps = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        observation, reward, terminated, _, info = super().step(action)
        self.steps += 1
        return observation, reward, terminated, self.steps >= self.max_steps, info


def make_dict_pendulum(**kwargs) -> DictPendulumEnv:
    """A factory function: gymnasium can register it, but it is not a class, so it is no entry point for seqrl."""
    return DictPendulumEnv(**kwargs)


gym.register("DictPendulum-v0", entry_point="tests.custom_envs:DictPendulumEnv")
