"""Videos of a policy: one episode per target return, recorded with gymnasium's ``RecordVideo`` (MP4 through
moviepy), as LeRobot and the Hub's RL model cards show them. ``evaluate.py --video DIR`` and ``--eval.video`` in
training write them; a pushed run folder carries its ``videos/`` to the model card."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from seqrl.envs import flat_observations, making, resolve_env
from seqrl.evaluation.config import DEFAULT_SEED
from seqrl.evaluation.rollout import evaluation_targets, policy_env
from seqrl.models.policy import PolicyError, SeqRLPolicy


def video_name(target: float | None) -> str:
    """File stem of the video of ``target`` (``target-100``, or ``episode`` for a policy without targets)."""
    return "episode" if target is None else f"target-{target:g}"


def record_videos(policy: SeqRLPolicy, folder: str | Path, target_returns: list[float] | None = None,
                  seed: int = DEFAULT_SEED, env_id: str | None = None, env_kwargs: dict | None = None) -> list[Path]:
    """Record one episode per target return (the policy's saved targets by default) into ``folder`` as
    ``<video_name>.mp4``, each starting from ``seed`` like the first episode of the evaluation; returns the paths."""
    try:
        import moviepy  # noqa: F401  (RecordVideo writes through it)
    except ImportError as error:
        raise PolicyError("Recording videos needs moviepy: `pip install 'seqrl[video]'` (or `pip install moviepy`).") \
            from error
    env_id, kwargs = policy_env(policy, env_id, env_kwargs)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    was_training = policy.training
    try:
        for target in evaluation_targets(policy, target_returns):
            paths.append(_record(policy, env_id, kwargs, target, folder, seed))
    finally:
        policy.train(was_training)
    return paths


def _record(policy: SeqRLPolicy, env_id: str, kwargs: dict, target: float | None, folder: Path, seed: int) -> Path:
    spec = resolve_env(env_id, kwargs)
    with making(spec):
        env = gym.make(spec, render_mode="rgb_array")
    name = video_name(target)
    with warnings.catch_warnings():  # one wrapper per target, all writing into the same folder on purpose
        warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
        env = gym.wrappers.RecordVideo(flat_observations(env), str(folder), name_prefix=name,
                                       episode_trigger=lambda episode: episode == 0, disable_logger=True)
    try:
        observation, _ = env.reset(seed=seed)
        policy.reset(1, target)
        reward, start, done = None, np.ones(1, dtype=bool), False
        with torch.inference_mode():
            while not done:
                action = policy.act(observation[None], reward, start)[0]
                observation, r, terminated, truncated, _ = env.step(action)
                reward, start, done = np.array([r], dtype=np.float32), np.zeros(1, dtype=bool), terminated or truncated
    finally:
        env.close()  # writes the file
    written = folder / f"{name}-episode-0.mp4"
    path = folder / f"{name}.mp4"
    written.replace(path)
    return path
