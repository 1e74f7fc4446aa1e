r"""Roll behaviour policies out in gymnasium and write the episodes as Minari datasets.

``collect`` runs a batched behaviour policy (:mod:`seqrl.data.controllers`) in a ``SyncVectorEnv``
with autoreset disabled: each finished sub-environment is reset explicitly with the next episode's
seed, so no reset step ever lands in the data and every episode is reproducible from
``(seed, episode_index)`` alone. ``write_minari`` stores episodes with
``minari.create_dataset_from_buffers`` (T+1 observations per episode), atomically. The command line's
``--builtin`` generates one of the built-in datasets of :mod:`seqrl.data.builtin`.

Command line::

    python -m seqrl.data.collect --env_id Pendulum-v1 --policy scripted --episodes 100 --noise 0.1 \
        --seed 0 --dataset_id me/pendulum/expert-v0
    python -m seqrl.data.collect --builtin seqrl/pendulum/mixed-v0
    python -m seqrl.data.collect --env_import my_package.envs --env_id MyEnv-v0 --policy random \
        --episodes 50 --dataset_id me/myenv/random-v0
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import warnings

import gymnasium as gym
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import concatenate, create_empty_array, iterate
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.namespace import create_namespace, list_local_namespaces
from minari.storage import get_dataset_path
from tqdm.auto import tqdm

from seqrl.cli import json_object
from seqrl.data.controllers import BehaviourPolicy, apply_noise, check_noise, make_behaviour_policy
from seqrl.data.sources import flatten_batch
from seqrl.envs import import_env_modules, make_env, making, resolve_env, serialisable
from seqrl.errors import SeqRLError
from seqrl.evaluation.scores import sample_std
from seqrl.logs import progress_kwargs


class CollectError(SeqRLError):
    """Collection was asked for something impossible (unknown env, bad noise level, ...)."""


class DatasetExistsError(CollectError):
    """A Minari dataset with this id already exists locally."""


def episode_seeds(seed: int, episode_index: int) -> tuple[int, np.random.Generator]:
    """The env reset seed and the policy's generator for one episode, derived from ``(seed, index)``.

    Both come from independent children of ``SeedSequence([seed, episode_index])``, so collections with
    different seeds draw unrelated episodes (with ``seed + index``, seed 1 would replay seed 0's second
    episode) and an episode does not depend on how many envs ran in parallel.
    """
    env_child, policy_child = np.random.SeedSequence([seed, episode_index]).spawn(2)
    return int(env_child.generate_state(1)[0]), np.random.default_rng(policy_child)


def collect(
    env_id: str,
    policy: str | BehaviourPolicy,
    episodes: int,
    seed: int,
    noise: float = 0.0,
    num_envs: int = 16,
    target_return: float | None = None,
    progress: bool = False,
    env_kwargs: dict | None = None,
) -> list[EpisodeBuffer]:
    """Run ``episodes`` episodes of ``policy`` in ``env_id`` (any name :func:`seqrl.envs.resolve_env` takes,
    made with ``env_kwargs``); return one ``EpisodeBuffer`` per episode.

    ``policy`` is ``"random"``, ``"scripted"``, a saved seqrl policy folder, or a
    :class:`~seqrl.data.controllers.BehaviourPolicy`. Buffer ``k`` holds episode ``k``, reset with the
    seed from :func:`episode_seeds` ``(seed, k)``: ``observations`` [T+1, obs_dim] (the last one is the
    observation after the final step), ``actions`` [T, act_dim] float32 or [T] int64, ``rewards`` [T],
    ``terminations`` and ``truncations`` [T] bool. Noise is applied as in :func:`apply_noise`. Dict and Tuple
    observations are stored as they are (a dict or tuple of [T+1, ...] arrays, as Minari keeps them); the
    behaviour policy sees them flattened (``gymnasium.spaces.flatten``), as a trained policy will.
    """
    if episodes < 1 or num_envs < 1:
        raise CollectError(f"episodes and num_envs must be >= 1, got episodes={episodes}, num_envs={num_envs}.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CollectError(f"seed must be a non-negative integer, got {seed!r}.")
    spec = resolve_env(env_id, env_kwargs)
    num_envs = min(num_envs, episodes)
    with making(spec):
        envs = SyncVectorEnv([lambda: make_env(spec)] * num_envs, autoreset_mode=AutoresetMode.DISABLED)
    try:
        space = envs.single_action_space
        check_noise(noise, space)
        behaviour = make_behaviour_policy(policy, env_id, space, target_return)
        behaviour.reset(num_envs)
        desc = (f"{env_id} {behaviour.name}" + (f" noise={noise}" if noise else "")) if progress else None
        return _run(envs, behaviour, episodes, seed, noise, desc)
    finally:
        envs.close()


def _run(envs, behaviour, episodes, seed, noise, desc: str | None) -> list[EpisodeBuffer]:
    """The collection loop; ``desc`` labels the progress bar (``None`` hides it)."""
    num_envs = envs.num_envs
    space = envs.single_action_space
    obs_space = envs.single_observation_space
    flat = isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1
    # Slot i runs episode slot_episode[i]; -1 marks a filler episode (all requested ones are assigned)
    # that only keeps the fixed-size batch going and is discarded.
    slot_episode = np.arange(num_envs)
    seeds_and_rngs = [episode_seeds(seed, k) for k in range(num_envs)]
    rngs = [rng for _, rng in seeds_and_rngs]
    observations, _ = envs.reset(seed=[s for s, _ in seeds_and_rngs])  # [N, obs_dim], or a dict/tuple of [N, ...]
    per_env = list(iterate(envs.observation_space, observations))
    steps = [{"obs": [per_env[i]], "act": [], "rew": [], "term": [], "trunc": []} for i in range(num_envs)]
    rewards = np.zeros(num_envs)  # [N], reward received for the previous action
    starts = np.ones(num_envs, dtype=bool)  # [N]
    next_episode, done = num_envs, [None] * episodes
    remaining = episodes
    with tqdm(total=episodes, unit="episode", desc=desc, **progress_kwargs(desc is not None)) as bar:
        while remaining:
            acting = observations if flat else flatten_batch(obs_space, observations)  # [N, obs_dim]
            actions = apply_noise(behaviour.act(acting, rewards, starts, rngs), space, noise, rngs)
            observations, rewards, terminations, truncations, _ = envs.step(actions)
            starts[:] = False
            ended = terminations | truncations  # [N]
            per_env = list(iterate(envs.observation_space, observations))
            for i in range(num_envs):
                record = steps[i]
                record["obs"].append(per_env[i])
                record["act"].append(actions[i])
                record["rew"].append(rewards[i])
                record["term"].append(terminations[i])
                record["trunc"].append(truncations[i])
            if not ended.any():
                continue
            reset_seeds: list[int | None] = [None] * num_envs
            for i in np.flatnonzero(ended):
                k = slot_episode[i]
                if k >= 0:
                    done[k] = _to_buffer(k, seeds_and_rngs[i][0], steps[i], obs_space)
                    remaining -= 1
                    bar.update(1)
                if next_episode < episodes:
                    seeds_and_rngs[i] = episode_seeds(seed, next_episode)
                    slot_episode[i], next_episode = next_episode, next_episode + 1
                    reset_seeds[i], rngs[i] = seeds_and_rngs[i]
                else:
                    slot_episode[i] = -1
            if remaining:
                observations, _ = envs.reset(seed=reset_seeds, options={"reset_mask": ended})
                per_env = list(iterate(envs.observation_space, observations))
                for i in np.flatnonzero(ended):
                    steps[i] = {"obs": [per_env[i]], "act": [], "rew": [], "term": [], "trunc": []}
                rewards = np.where(ended, 0.0, rewards)
                starts[:] = ended
    return done


def _to_buffer(episode_index: int, env_seed: int, record: dict, obs_space: gym.Space) -> EpisodeBuffer:
    if isinstance(obs_space, gym.spaces.Box):
        observations = np.stack(record["obs"])  # [T+1, *shape]
    else:  # a dict or tuple of [T+1, ...] arrays, one per part of the space
        observations = concatenate(obs_space, record["obs"], create_empty_array(obs_space, len(record["obs"])))
    return EpisodeBuffer(
        id=episode_index,
        seed=env_seed,
        observations=observations,
        actions=np.stack(record["act"]),  # [T, act_dim] or [T]
        rewards=np.asarray(record["rew"], dtype=np.float64),  # [T]
        terminations=np.asarray(record["term"], dtype=bool),  # [T]
        truncations=np.asarray(record["trunc"], dtype=bool),  # [T]
        infos={},
    )


def episode_returns(buffers: list[EpisodeBuffer]) -> np.ndarray:
    """Undiscounted return of each buffer, [num_episodes]."""
    return np.array([float(np.sum(b.rewards)) for b in buffers])


def dataset_exists(dataset_id: str) -> bool:
    """Whether a complete Minari dataset with this id exists under the local datasets root."""
    return (get_dataset_path(dataset_id) / "data").is_dir()


@contextlib.contextmanager
def _minari_root(path: str):
    """Point Minari at another datasets root (it reads ``MINARI_DATASETS_PATH`` on every call)."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = path
    try:
        yield
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


_STAGING_PREFIX = ".seqrl-staging-"


def _remove_stale_staging(root: str, max_age_s: float = 86_400.0) -> None:
    now = time.time()
    for entry in os.scandir(root):
        if entry.name.startswith(_STAGING_PREFIX) and now - entry.stat().st_mtime > max_age_s:
            shutil.rmtree(entry.path, ignore_errors=True)


def write_minari(
    dataset_id: str,
    buffers: list[EpisodeBuffer],
    env_id: str | EnvSpec,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    algorithm_name: str | None = None,
    description: str | None = None,
    author: str = "seqrl",
    num_episodes_average_score: int = 100,
) -> minari.MinariDataset:
    """Write ``buffers`` as the local Minari dataset ``dataset_id`` (under ``MINARI_DATASETS_PATH``), collected
    in ``env_id`` (a name :func:`seqrl.envs.resolve_env` takes, or the spec it returns, kwargs included).

    Episodes are renumbered 0..n-1 in order. Minari stores the reference scores only when
    ``ref_max_score`` is given (and then estimates a missing ``ref_min_score`` from 100 random
    episodes). Atomic: the dataset is built in a hidden staging root beside the real one and renamed
    into place, so an interrupted write never leaves a dataset that loads (staging folders a killed
    process left behind are removed after a day). Minari is pointed at the staging root through
    ``MINARI_DATASETS_PATH`` while it writes, so do not write from several threads of one process.
    """
    parse_dataset_id(dataset_id)  # raises ValueError on a malformed id
    if dataset_exists(dataset_id):
        raise DatasetExistsError(
            f"Minari dataset '{dataset_id}' already exists at {get_dataset_path(dataset_id)}. Choose another id "
            f"(e.g. bump the version suffix), or delete it first with `minari delete {dataset_id}`."
        )
    if not buffers:
        raise CollectError(f"No episodes to write to '{dataset_id}'.")
    env = serialisable(env_id if isinstance(env_id, EnvSpec) else resolve_env(env_id))
    root = str(get_dataset_path())
    _remove_stale_staging(root)
    staging = tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root)
    try:
        renumbered = [dataclasses.replace(b, id=i) for i, b in enumerate(buffers)]
        with _minari_root(staging), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*(is set to None|env_spec is None)", category=UserWarning)
            minari.create_dataset_from_buffers(
                dataset_id, renumbered, env=env, algorithm_name=algorithm_name, author=author,
                description=description, ref_min_score=ref_min_score, ref_max_score=ref_max_score,
                num_episodes_average_score=num_episodes_average_score,
            )
        namespace = parse_dataset_id(dataset_id)[0]
        if namespace is not None and namespace not in list_local_namespaces():
            with contextlib.suppress(ValueError):  # another process created it meanwhile
                create_namespace(namespace)
        final = get_dataset_path(dataset_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(os.path.join(staging, dataset_id), final)
        except OSError as error:
            if dataset_exists(dataset_id):
                raise DatasetExistsError(f"Minari dataset '{dataset_id}' was created by another process meanwhile.") from error
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return minari.load_dataset(dataset_id)


def main(argv: list[str] | None = None, prog: str = "python -m seqrl.data.collect") -> None:
    """Command-line entry point: collect a dataset, or generate a built-in one."""
    from seqrl.data.builtin import BUILTIN_DATASETS, generate_builtin  # builtin imports this module

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Roll a behaviour policy out in gymnasium and save the episodes as a local Minari dataset.",
        epilog="Built-in datasets: " + "; ".join(f"{k}: {v}" for k, v in BUILTIN_DATASETS.items()),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--builtin", metavar="ID", help=f"generate a built-in dataset: one of {sorted(BUILTIN_DATASETS)}")
    source.add_argument("--env_id", help="gymnasium environment id, e.g. Pendulum-v1, or an entry point "
                                         "my_package.envs:MyEnv (a gymnasium.Env subclass)")
    parser.add_argument("--env_kwargs", type=json_object, default=None, metavar="JSON",
                        help="keyword arguments of the env, e.g. '{\"g\": 5.0}'")
    parser.add_argument("--env_import", nargs="+", default=[], metavar="MODULE",
                        help="modules to import first, e.g. the package that registers a custom env")
    parser.add_argument("--policy", default="scripted", help="'random', 'scripted' (Pendulum-v1, CartPole-v1) or a saved seqrl policy folder")
    parser.add_argument("--episodes", type=int, default=100, help="number of episodes to collect")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian std as a fraction of half the action range (Box), or epsilon (Discrete)")
    parser.add_argument("--seed", type=int, default=0, help="seed from which every episode's seed is derived")
    parser.add_argument("--num_envs", type=int, default=16, help="parallel environments (SyncVectorEnv)")
    parser.add_argument("--target_return", type=float, help="target return for a saved return-conditioned policy")
    parser.add_argument("--dataset_id", help="Minari id to write, e.g. me/pendulum/expert-v0")
    parser.add_argument("--ref_min_score", type=float, help="reference return of a random policy (stored with --ref_max_score)")
    parser.add_argument("--ref_max_score", type=float, help="reference return of an expert policy")
    args = parser.parse_args(argv)
    try:
        if args.builtin is not None:
            existed = dataset_exists(args.builtin)
            dataset = generate_builtin(args.builtin, progress=True, num_envs=args.num_envs)
            verb = "Loaded existing" if existed else "Generated"
            print(f"{verb} '{args.builtin}': {dataset.total_episodes} episodes, {dataset.total_steps} steps at {get_dataset_path(args.builtin)}")
            return
        if args.dataset_id is None:
            parser.error("--dataset_id is required with --env_id (e.g. --dataset_id me/pendulum/expert-v0)")
        if args.ref_min_score is not None and args.ref_max_score is None:
            parser.error("--ref_min_score is stored only together with --ref_max_score; pass both")
        if dataset_exists(args.dataset_id):
            raise DatasetExistsError(
                f"Minari dataset '{args.dataset_id}' already exists at {get_dataset_path(args.dataset_id)}. Choose another "
                f"--dataset_id (e.g. bump the version suffix), or delete it first with `minari delete {args.dataset_id}`."
            )
        import_env_modules(args.env_import)
        buffers = collect(args.env_id, args.policy, args.episodes, args.seed, args.noise, args.num_envs,
                          args.target_return, progress=True, env_kwargs=args.env_kwargs)
        dataset = write_minari(
            args.dataset_id, buffers, resolve_env(args.env_id, args.env_kwargs), args.ref_min_score, args.ref_max_score,
            algorithm_name=f"seqrl collect: policy={args.policy} noise={args.noise} seed={args.seed}",
        )
    except ValueError as error:  # every seqrl and Minari input error is a ValueError subclass
        parser.exit(2, f"error: {error}\n")
    returns = episode_returns(buffers)
    print(
        f"Wrote '{args.dataset_id}': {dataset.total_episodes} episodes, {dataset.total_steps} steps, return "
        f"{returns.mean():.1f} +- {sample_std(returns):.1f} at {get_dataset_path(args.dataset_id)}"
    )


def cli() -> None:
    """Entry point of ``seqrl-collect``."""
    main(sys.argv[1:], prog="seqrl-collect")


if __name__ == "__main__":
    main(sys.argv[1:])
