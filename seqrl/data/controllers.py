"""Behaviour policies for the built-in collector: scripted controllers, random, and saved seqrl policies.

Every behaviour policy is batched over the sub-environments of a vector env: ``act`` takes
observations ``[N, obs_dim]``, the rewards received for the previous actions ``[N]``, a mask of
sub-environments whose observation starts a new episode ``[N]``, and one random generator per
sub-environment (re-seeded by the collector at every episode start, so an episode's data depends on
its own seed only, not on which slot of the vector env ran it). It returns ``[N, act_dim]`` float
actions for ``Box`` spaces or ``[N]`` integer actions for ``Discrete`` spaces. :func:`apply_noise` then
perturbs those actions (Gaussian for ``Box``, epsilon-random for ``Discrete``) to make lower-quality data.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from seqrl.errors import SeqRLError


class BehaviourPolicyError(SeqRLError):
    """A behaviour policy could not be built for the requested environment."""


class BehaviourPolicy:
    """Base class. Subclasses implement :meth:`act`; :meth:`reset` is called once per collection."""

    name = "behaviour"

    def reset(self, num_envs: int) -> None:
        """Prepare for ``num_envs`` parallel episodes (stateless policies need nothing)."""

    def act(
        self,
        observations: np.ndarray,
        rewards: np.ndarray,
        episode_starts: np.ndarray,
        rngs: Sequence[np.random.Generator],
    ) -> np.ndarray:
        raise NotImplementedError


class RandomPolicy(BehaviourPolicy):
    """Uniformly random actions for any action space.

    ``Box`` with finite bounds draws ``U(low, high)`` and ``Discrete`` draws ``start + U{0..n-1}`` from
    each slot's generator; any other space falls back to ``space.sample()`` seeded from that generator.
    """

    name = "random"

    def __init__(self, action_space: gym.Space):
        self.action_space = action_space

    def act(self, observations, rewards, episode_starts, rngs):
        space = self.action_space
        if isinstance(space, gym.spaces.Box) and space.is_bounded("both"):
            low, high = space.low.astype(np.float64), space.high.astype(np.float64)
            return np.stack([rng.uniform(low, high) for rng in rngs]).astype(space.dtype)  # [N, *shape]
        if isinstance(space, gym.spaces.Discrete):
            draws = [rng.integers(space.n) for rng in rngs]
            return np.asarray(draws, dtype=np.int64) + int(space.start)  # [N]
        actions = []
        for rng in rngs:
            space.seed(int(rng.integers(2**31 - 1)))
            actions.append(space.sample())
        return np.stack(actions)


@functools.cache
def pendulum_lqr_gain(dt: float = 0.05, angle_cost: float = 1.0, velocity_cost: float = 0.1, torque_cost: float = 0.001) -> np.ndarray:
    """Infinite-horizon discrete LQR gain ``K`` [2] for Pendulum-v1 linearised about upright.

    Pendulum-v1 integrates ``w' = w + dt (3g/2l sin th + 3/(m l^2) u)`` then ``th' = th + dt w'`` with
    g=10, m=l=1. Linearising ``sin th ~ th`` gives ``x' = A x + B u`` with ``x = [th, w]``::

        A = [[1 + 15 dt^2, dt], [15 dt, 1]],   B = [[3 dt^2], [3 dt]]

    and the env's cost ``th^2 + 0.1 w^2 + 0.001 u^2`` gives ``Q = diag(1, 0.1)``, ``R = 0.001``.
    Iterating the Riccati recursion ``K = (R + B'PB)^-1 B'PA``, ``P = Q + A'P(A - BK)`` to a fixed
    point gives the feedback ``u = -K x`` (about ``K = [19.7, 5.3]``).
    """
    a = np.array([[1.0 + 15.0 * dt * dt, dt], [15.0 * dt, 1.0]])
    b = np.array([[3.0 * dt * dt], [3.0 * dt]])
    q = np.diag([angle_cost, velocity_cost])
    r = np.array([[torque_cost]])
    p = q.copy()
    for _ in range(10_000):
        k = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)  # [1, 2]
        p_next = q + a.T @ p @ (a - b @ k)
        if np.allclose(p_next, p, rtol=1e-12, atol=1e-12):
            break
        p = p_next
    return k[0]


class PendulumController(BehaviourPolicy):
    """Energy-based swing-up followed by LQR balance for ``Pendulum-v1`` (mean return about -185).

    Observations are ``[cos th, sin th, w]`` with ``th = 0`` upright. Pendulum-v1's dynamics are
    ``th'' = 15 sin th + 3 u``, which conserve ``E = w^2 / 2 + 15 cos th`` when ``u = 0``; the upright
    equilibrium has ``E* = 15``. Since ``dE/dt = 3 w u``, the swing-up torque
    ``u = k_E (E* - E) sign(w)`` (saturated at the max torque 2) pumps energy in whenever the
    pendulum is below the upright orbit (Astrom & Furuta, 2000). Within ``balance_angle`` of upright
    the LQR feedback ``u = -K [th, w]`` (:func:`pendulum_lqr_gain`) takes over and holds it there.
    """

    name = "scripted"

    def __init__(self, energy_gain: float = 3.0, balance_angle: float = 0.6, max_torque: float = 2.0):
        self.energy_gain = energy_gain
        self.balance_angle = balance_angle
        self.max_torque = max_torque
        self.gain = pendulum_lqr_gain()

    def act(self, observations, rewards, episode_starts, rngs):
        cos_angle, sin_angle, velocity = observations[:, 0], observations[:, 1], observations[:, 2]  # [N] each
        angle = np.arctan2(sin_angle, cos_angle)  # [N], 0 = upright
        energy = 0.5 * velocity**2 + 15.0 * cos_angle  # [N]
        direction = np.where(velocity >= 0.0, 1.0, -1.0)  # sign(w), with a push at rest
        swing_up = self.energy_gain * (15.0 - energy) * direction
        balance = -(self.gain[0] * angle + self.gain[1] * velocity)
        torque = np.where(np.abs(angle) < self.balance_angle, balance, swing_up)
        return np.clip(torque, -self.max_torque, self.max_torque).astype(np.float32)[:, None]  # [N, 1]


class CartPoleController(BehaviourPolicy):
    """Linear state feedback with a bang-bang actuator for ``CartPole-v1`` (return 500).

    Observations are ``[x, x', th, th']`` with ``th > 0`` leaning right; action 1 pushes right, which
    accelerates the pole's angle towards the left. The controller pushes right when
    ``s = k . [x, x', th, th'] > 0`` with gains ``k = [1, 1, 10, 2]``, the sign pattern of an LQR
    solution for the linearised cart-pole: the angle terms dominate and stabilise the pole, and the
    small position terms have the same sign because returning the cart left first needs the pole to
    lean left, which a push to the right starts (the system is non-minimum phase in ``x``).
    """

    name = "scripted"

    def __init__(self, gains: Sequence[float] = (1.0, 1.0, 10.0, 2.0)):
        self.gains = np.asarray(gains, dtype=np.float64)  # [4]

    def act(self, observations, rewards, episode_starts, rngs):
        return (observations.astype(np.float64) @ self.gains > 0.0).astype(np.int64)  # [N]


class SavedPolicy(BehaviourPolicy):
    """A policy folder (or Hub id) saved by seqrl, acting through its own ``reset``/``act`` API."""

    name = "saved"

    def __init__(self, path: str, target_return: float | None = None):
        from seqrl.registry import load_policy  # lazy: torch and transformers are only needed here

        self.path = path
        self.policy = load_policy(path)
        self.target_return = target_return

    def reset(self, num_envs: int) -> None:
        self.policy.reset(batch_size=num_envs, target_return=self.target_return)

    def act(self, observations, rewards, episode_starts, rngs):
        return np.asarray(self.policy.act(observations, rewards, episode_starts))


def check_noise(noise: float, space: gym.Space) -> None:
    """Reject noise levels that :func:`apply_noise` cannot apply to ``space``."""
    if noise < 0.0 or (isinstance(space, gym.spaces.Discrete) and noise > 1.0):
        raise BehaviourPolicyError(f"noise={noise} is invalid: use noise >= 0 (and <= 1 for discrete actions, where it is epsilon).")
    if noise > 0.0 and isinstance(space, gym.spaces.Box) and not space.is_bounded("both"):
        raise BehaviourPolicyError(f"noise={noise} needs finite action bounds to scale against, but the action space is {space}.")


def apply_noise(actions: np.ndarray, space: gym.Space, noise: float, rngs) -> np.ndarray:
    """Perturb a batch of actions and clip them to the action space.

    ``Box``: ``a + N(0, sigma^2)`` with ``sigma = noise * (high - low) / 2``, clipped to ``[low, high]``
    (so ``noise = 1`` is a standard deviation of half the action range). ``Discrete``: each action is
    replaced by a uniformly random one with probability ``epsilon = noise``.
    """
    expected = len(rngs) * int(np.prod(getattr(space, "shape", None) or (1,)))
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)) and np.size(actions) != expected:
        raise BehaviourPolicyError(
            f"The behaviour policy returned actions of shape {np.shape(actions)} for {len(rngs)} envs with action "
            f"space {space}; expected {len(rngs)} actions of shape {space.shape}."
        )
    if isinstance(space, gym.spaces.Box):
        actions = np.asarray(actions, dtype=space.dtype).reshape((len(rngs), *space.shape))  # [N, *shape]
        if noise > 0.0:
            sigma = noise * (space.high.astype(np.float64) - space.low) / 2.0
            draws = np.stack([rng.standard_normal(space.shape) for rng in rngs])  # [N, *shape] ~ N(0, 1)
            actions = actions + (draws * sigma).astype(space.dtype)
        return np.clip(actions, space.low, space.high)
    if isinstance(space, gym.spaces.Discrete):
        actions = np.asarray(actions).reshape(len(rngs)).astype(np.int64)  # [N]
        if noise > 0.0:
            for i, rng in enumerate(rngs):
                if rng.random() < noise:
                    actions[i] = space.start + rng.integers(space.n)
        return actions
    if noise > 0.0:
        raise BehaviourPolicyError(f"noise is defined for Box and Discrete action spaces only, not {space}.")
    return actions


SCRIPTED_CONTROLLERS: dict[str, type[BehaviourPolicy]] = {
    "Pendulum-v1": PendulumController,
    "CartPole-v1": CartPoleController,
}


def make_behaviour_policy(
    policy: str | BehaviourPolicy,
    env_id: str,
    action_space: gym.Space,
    target_return: float | None = None,
) -> BehaviourPolicy:
    """Resolve ``"random"``, ``"scripted"``, a saved policy folder, or pass a policy object through."""
    if isinstance(policy, BehaviourPolicy):
        return policy
    if target_return is not None and policy in ("random", "scripted"):
        raise BehaviourPolicyError(
            f"target_return={target_return} was given for the '{policy}' policy, which ignores it; "
            "target returns apply to saved return-conditioned policies only."
        )
    if policy == "random":
        return RandomPolicy(action_space)
    if policy == "scripted":
        if env_id not in SCRIPTED_CONTROLLERS:
            raise BehaviourPolicyError(
                f"No scripted controller for env '{env_id}'. Scripted controllers exist for "
                f"{sorted(SCRIPTED_CONTROLLERS)}; use --policy random or a saved policy folder instead."
            )
        return SCRIPTED_CONTROLLERS[env_id]()
    if os.path.isdir(policy):
        return SavedPolicy(policy, target_return=target_return)
    raise BehaviourPolicyError(
        f"Unknown policy '{policy}': expected 'random', 'scripted', or the folder of a saved seqrl "
        "policy (no such folder exists)."
    )
