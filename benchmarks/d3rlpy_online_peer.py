"""The d3rlpy side of an offline-to-online fine-tuning benchmark; runs in d3rlpy's own virtual environment.

Reads the transitions the seqrl side exported (``observations, actions, rewards, terminals, timeouts``
in an ``.npz``, as for ``d3rlpy_peer.py``) and builds the d3rlpy algorithm with the hyperparameters
given as JSON (seqrl's config fields, through ``d3rlpy_peer.make_algo``: ``iql`` as there, ``calql`` as
``d3rlpy.algos.CalQLConfig`` with the fields ``make_algo`` gives ``cql``). Then

1. ``algo.fit`` for ``--offline-steps`` gradient steps on the data (observation scaler and reward
   scaling fitted on the data, as ``d3rlpy_peer.py`` does);
2. ``--episodes`` episodes of ``--env`` with ``algo.predict`` (deterministic), episode ``i`` reset with
   seed ``--seed + i``: the returns "before";
3. ``algo.fit_online`` for ``--env-steps`` environment steps, one gradient update per step
   (``update_interval=1, n_updates=1, update_start_step=0, random_steps=0``), acting with the policy's
   own stochastic ``sample_action`` (``explorer=None``, as d3rlpy's ``reproductions/finetuning``
   scripts); the training env is seeded once with ``--seed`` (``d3rlpy.envs.seed_env``). The buffer:

   - ``iql``: one FIFO buffer holding the offline episodes, the online transitions appended to it
     (capacity offline transitions + ``--env-steps``, so nothing is evicted), as
     ``reproductions/finetuning/iql_finetune.py``;
   - ``calql``: an online FIFO buffer (``write_at_termination=True``) mixed 50/50 with the offline data
     through ``MixedReplayBuffer``, as ``reproductions/finetuning/cal_ql_finetune.py``. Stock
     ``MixedReplayBuffer`` fails on the first update while the online buffer is still empty (it samples
     from it regardless), so until the first online episode ends the batches come from the offline
     data alone;

   timed with ``time.perf_counter`` around ``fit_online`` alone;
4. the same episodes again: the returns "after".

Prints one JSON object on stdout: ``{"algo", "seed", "offline_steps", "env_steps", "updates",
"online_seconds", "env_steps_per_s", "updates_per_s", "returns_before", "returns_after", "score_before",
"score_after", ...}``, scores being the mean normalised return ``100 * (R - ref_min) / (ref_max - ref_min)``.
d3rlpy's log goes to stderr (warnings only, ``--verbose`` for all of it); nothing is written to disk.

Usage: ``.venv-d3rlpy/bin/python benchmarks/d3rlpy_online_peer.py DATA.npz {iql,calql} HPARAMS_JSON
[--offline-steps N] [--env-steps N] [--episodes E] [--env Hopper-v5] [--seed S] [--ref-min 24.80
--ref-max 3234.3] [--steps-per-epoch N] --threads T``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np
from d3rlpy_peer import make_algo

# Hopper's reference returns (the Minari datasets' ref_min_score / ref_max_score).
HOPPER_REF_MIN, HOPPER_REF_MAX = 24.801061226380007, 3234.3


def quiet_d3rlpy(verbose: bool) -> None:
    """d3rlpy logs through structlog to the stdout bound at import; send it to stderr, warnings only."""
    import logging

    import structlog

    level = logging.INFO if verbose else logging.WARNING
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(level))


def make_online_algo(name: str, hp: dict):
    import d3rlpy

    if name == "iql":
        # d3rlpy's one actor scheduler runs through fit and fit_online alike, and seqrl's cosine decay covers only
        # the offline steps: this side keeps a constant actor rate (`--algo.actor_lr_schedule constant` on
        # seqrl's side makes the two the same).
        return make_algo("iql", {**hp, "actor_lr_schedule": "constant"})
    if name == "calql":
        # CalQLConfig is CQLConfig with another algorithm behind it: carry over every field make_algo sets.
        cql = make_algo("cql", hp).config
        fields = {f.name: getattr(cql, f.name) for f in dataclasses.fields(cql) if f.init}
        return d3rlpy.algos.CalQLConfig(**fields).create(device="cpu:0")
    raise SystemExit(f"d3rlpy_online_peer: no online set-up for {name!r} (iql, calql)")


def make_online_buffer(name: str, dataset, env, env_steps: int):
    import d3rlpy

    if name == "iql":
        # iql_finetune.py: create_fifo_replay_buffer(1000000), then append_episode for each offline episode
        # (passing the episodes at once does the same and gives the buffer its signatures).
        return d3rlpy.dataset.create_fifo_replay_buffer(limit=dataset.transition_count + env_steps,
                                                        episodes=dataset.episodes, env=env)

    class MixedReplayBuffer(d3rlpy.dataset.MixedReplayBuffer):
        """d3rlpy's, but the whole batch from the offline data while the online buffer is empty."""

        def sample_transition_batch(self, batch_size: int):
            if self.primary_replay_buffer.transition_count == 0:
                return self.secondary_replay_buffer.sample_transition_batch(batch_size)
            return super().sample_transition_batch(batch_size)

    # cal_ql_finetune.py: an online FIFO buffer written at episode ends, half of each batch from it.
    online = d3rlpy.dataset.create_fifo_replay_buffer(limit=max(env_steps, 1), env=env, write_at_termination=True)
    return MixedReplayBuffer(primary_replay_buffer=online, secondary_replay_buffer=dataset, secondary_mix_ratio=0.5)


def evaluate(algo, env_id: str, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` deterministic episodes, episode ``i`` reset with seed ``seed + i``."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action = algo.predict(observation[None].astype(np.float32))[0]
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("algo", choices=["iql", "calql"])
    parser.add_argument("hparams", help="JSON of seqrl's config fields (cql's for calql)")
    parser.add_argument("--offline-steps", type=int, default=10_000, help="gradient steps of algo.fit")
    parser.add_argument("--env-steps", type=int, default=10_000, help="environment steps of algo.fit_online")
    parser.add_argument("--steps-per-epoch", type=int, default=0,
                        help="fit_online's n_steps_per_epoch (default --env-steps: one epoch, one log line)")
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ref-min", type=float, default=HOPPER_REF_MIN)
    parser.add_argument("--ref-max", type=float, default=HOPPER_REF_MAX)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="d3rlpy's info log on stderr")
    args = parser.parse_args()
    if args.env_steps < 1:
        raise SystemExit("--env-steps must be at least 1")

    import d3rlpy
    import gymnasium as gym
    import torch
    from d3rlpy.algos.utility import build_scalers_with_transition_picker

    quiet_d3rlpy(args.verbose)
    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    data = np.load(args.data)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"], actions=data["actions"], rewards=data["rewards"],
        terminals=data["terminals"], timeouts=data["timeouts"],
    )
    hp = json.loads(args.hparams)
    algo = make_online_algo(args.algo, hp)
    algo.build_with_dataset(dataset)
    no_logs = d3rlpy.logging.NoopAdapterFactory()  # writes nothing: no d3rlpy_logs/ folder

    began = time.perf_counter()
    if args.offline_steps:
        algo.fit(dataset, n_steps=args.offline_steps, n_steps_per_epoch=args.offline_steps, show_progress=False,
                 logger_adapter=no_logs, save_interval=10**9)
    else:  # what fit() would have fitted; fit_online would otherwise fit the observation scaler on random rollouts
        build_scalers_with_transition_picker(algo, dataset)
    offline_seconds = time.perf_counter() - began

    returns_before = evaluate(algo, args.env, args.episodes, args.seed)

    env = gym.make(args.env)
    d3rlpy.envs.seed_env(env, args.seed)  # fit_online's own env.reset() calls carry on from this seed
    env.action_space.seed(args.seed)
    buffer = make_online_buffer(args.algo, dataset, env, args.env_steps)
    offline_episodes = len(dataset.episodes)
    last_step = [0]

    def count(_algo, _epoch: int, total_step: int) -> None:  # called once per env step
        last_step[0] = total_step

    updates_before = algo.grad_step
    began = time.perf_counter()
    algo.fit_online(env, buffer=buffer, explorer=None, n_steps=args.env_steps,
                    n_steps_per_epoch=args.steps_per_epoch or args.env_steps, update_interval=1, n_updates=1,
                    update_start_step=0, random_steps=0, eval_env=None, save_interval=10**9,
                    logger_adapter=no_logs, show_progress=False, callback=count)
    online_seconds = time.perf_counter() - began
    updates = algo.grad_step - updates_before
    env_steps = last_step[0]
    env.close()
    online = buffer.primary_replay_buffer if args.algo == "calql" else buffer
    online_episodes = len(online.episodes) - (0 if args.algo == "calql" else offline_episodes)

    returns_after = evaluate(algo, args.env, args.episodes, args.seed)

    def score(returns: list[float]) -> float:
        return float(np.mean(100.0 * (np.asarray(returns) - args.ref_min) / (args.ref_max - args.ref_min)))

    print(json.dumps({
        "algo": args.algo, "seed": args.seed, "offline_steps": args.offline_steps, "env_steps": env_steps,
        "updates": updates, "online_seconds": online_seconds, "env_steps_per_s": env_steps / online_seconds,
        "updates_per_s": updates / online_seconds, "returns_before": returns_before, "returns_after": returns_after,
        "score_before": score(returns_before), "score_after": score(returns_after),
        "online_episodes": online_episodes, "offline_seconds": offline_seconds, "threads": args.threads,
        "d3rlpy": d3rlpy.__version__,
    }))


if __name__ == "__main__":
    main()
