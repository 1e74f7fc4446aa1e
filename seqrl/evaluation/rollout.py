"""Roll a policy out in a gymnasium vector env, per target return, with seeds.

Each of the ``num_envs`` environments owns a fixed share of the ``episodes`` (env ``i`` runs episodes
``i, i + num_envs, ...``), so the first episodes to finish are not favoured over long ones and the
same seed gives the same episodes. Every target return starts from the same seeds, so the curve of
achieved against target return differs only by the target.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from seqrl.envs import check_spaces, flat_observations, making, resolve_env
from seqrl.evaluation.config import DEFAULT_SEED
from seqrl.evaluation.scores import normalized_score, sample_std
from seqrl.logs import progress_kwargs
from seqrl.models.policy import PolicyError, SeqRLPolicy


def make_vector_env(env_id: str, num_envs: int, env_kwargs: dict | None = None) -> gym.vector.VectorEnv:
    """Synchronous vector env of ``env_id`` (any name :func:`seqrl.envs.resolve_env` takes) that resets finished
    envs within the same step (SAME_STEP autoreset), with observations flattened to the vectors policies take."""
    spec = resolve_env(env_id, env_kwargs)
    with making(spec):
        return gym.make_vec(spec, num_envs=num_envs, vectorization_mode="sync", wrappers=[flat_observations],
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})


def evaluate_policy(policy: SeqRLPolicy, target_returns: list[float] | None = None, episodes: int = 10,
                    num_envs: int = 10, seed: int = DEFAULT_SEED, env_id: str | None = None, progress: bool = True,
                    mixed_precision: str = "no", env_kwargs: dict | None = None) -> dict:
    """Evaluate ``policy``; returns ``{"policy", "env_id", "results": [one dict per target]}``.

    The env is the policy's own (``config.env_id`` with ``config.env_kwargs``), or ``env_id`` with
    ``env_kwargs`` (e.g. data from Hopper-v4, evaluation in Hopper-v5), or the policy's env with ``env_kwargs``
    on top of its saved ones; its spaces must fit the policy's. The modules that register a custom env must be
    imported first (evaluate.py does, see :mod:`seqrl.envs`).
    ``target_returns`` defaults to the policy's saved targets for return-conditioned policies; other
    policies take none (passing some raises :class:`PolicyError`). ``mixed_precision="bf16"`` acts under
    bf16 autocast (weights stay float32), natively fast on GPUs and on CPUs with AVX512-BF16 or AMX (on a
    Zen 4 core it plans a Trajectory Transformer at the reference settings about 1.2x faster).
    """
    if mixed_precision not in ("no", "bf16"):
        raise PolicyError(f"mixed_precision must be 'no' or 'bf16', got {mixed_precision!r}.")
    config = policy.config
    env_id, kwargs = policy_env(policy, env_id, env_kwargs)
    targets = evaluation_targets(policy, target_returns)
    num_envs = max(1, min(num_envs, episodes))
    env = make_vector_env(env_id, num_envs, kwargs)
    was_training = policy.training
    try:
        check_spaces(env_id, env.single_observation_space, env.single_action_space, "the policy", config.state_dim,
                     bool(getattr(config, "discrete_actions", False)), config.act_dim)
        with torch.autocast(policy.device.type, dtype=torch.bfloat16, enabled=mixed_precision == "bf16"):
            results = [_run_target(policy, env, target, episodes, seed, progress) for target in targets]
    finally:
        env.close()
        policy.train(was_training)
    return {"policy": str(getattr(config, "_name_or_path", "") or config.algo), "env_id": env_id, "seed": seed,
            "episodes": episodes, "num_envs": num_envs, "results": results}


def policy_env(policy: SeqRLPolicy, env_id: str | None = None, env_kwargs: dict | None = None) -> tuple[str, dict]:
    """(env id, kwargs) to evaluate ``policy`` in: ``env_id`` with ``env_kwargs``, or the policy's own env with
    ``env_kwargs`` on top of its saved ones."""
    config = policy.config
    if env_id:
        kwargs = dict(env_kwargs or {})
    else:
        env_id, kwargs = config.env_id, {**config.env_kwargs, **(env_kwargs or {})}
    if not env_id:
        raise PolicyError("The policy's config names no environment; evaluate it in one with "
                          "`seqrl-eval --policy DIR --env_id ENV_ID` (in code: evaluate_policy(policy, env_id=...)).")
    return env_id, kwargs


def evaluation_targets(policy: SeqRLPolicy, target_returns: list[float] | None) -> list[float | None]:
    """The target returns to evaluate: those given, else the policy's saved ones; ``[None]`` for a policy that
    takes no target (given targets raise the policy's own explanation)."""
    if policy.uses_target_return:
        targets = list(target_returns or policy.config.target_returns)
        if not targets:
            raise PolicyError("No target returns given and the policy saves no defaults; pass --target_returns.")
        return targets
    if target_returns:
        policy.reset(1, target_returns[0])  # raises the policy's own explanation
    return [None]


def _run_target(policy: SeqRLPolicy, env: gym.vector.VectorEnv, target: float | None, episodes: int,
                seed: int, progress: bool) -> dict:
    num_envs = env.num_envs
    quota = np.array([len(range(i, episodes, num_envs)) for i in range(num_envs)])  # [E]
    finished = np.zeros(num_envs, dtype=np.int64)
    episode_return = np.zeros(num_envs, dtype=np.float64)
    episode_length = np.zeros(num_envs, dtype=np.int64)
    returns, lengths = [], []
    observations, _ = env.reset(seed=seed)
    policy.reset(num_envs, target)
    rewards, starts = None, np.ones(num_envs, dtype=bool)
    label = "eval" if target is None else f"eval target={target:g}"
    with torch.inference_mode(), tqdm(total=episodes, desc=label, leave=False, **progress_kwargs(progress)) as bar:
        while (finished < quota).any():
            actions = policy.act(observations, rewards, starts)
            observations, rewards, terminations, truncations, _ = env.step(actions)
            episode_return += rewards
            episode_length += 1
            starts = terminations | truncations
            counted = starts & (finished < quota)
            returns.extend(episode_return[counted].tolist())
            lengths.extend(episode_length[counted].tolist())
            bar.update(int(counted.sum()))
            finished += starts
            episode_return[starts] = 0.0
            episode_length[starts] = 0
    returns_arr = np.asarray(returns)
    config = policy.config
    scores = normalized_score(returns_arr, config.ref_min_score, config.ref_max_score)
    return {
        "target_return": target,
        "episodes": len(returns),
        "return_mean": float(returns_arr.mean()),
        "return_std": sample_std(returns_arr),
        "normalized_score_mean": None if scores is None else float(scores.mean()),
        "normalized_score_std": None if scores is None else sample_std(scores),
        "episode_length_mean": float(np.mean(lengths)),
        "returns": [float(r) for r in returns],
    }
