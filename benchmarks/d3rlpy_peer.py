"""The d3rlpy side of ``bench_value_speed.py`` and ``bench_hopper_scores.py``; runs in d3rlpy's own
virtual environment.

Reads the transitions the seqrl side exported (``observations, actions, rewards, terminals, timeouts``
in an ``.npz``) and builds the d3rlpy algorithm with the hyperparameters given as JSON (seqrl's config
fields; observations standardised as seqrl does, rewards scaled as the config says). Then either

- times ``algo.update(dataset.sample_transition_batch(batch_size))``, what ``algo.fit`` does per
  gradient step less its logging, and prints ``{"updates_per_s": [one rate per repeat]}``; or
- with ``--score-steps N``, trains ``algo.fit`` for N gradient steps, runs ``--episodes`` episodes of
  ``--env`` with ``algo.predict`` and prints ``{"returns": [...]}``.

Usage: ``python benchmarks/d3rlpy_peer.py DATA.npz ALGO HPARAMS_JSON [--steps N --warmup W --repeats R]
[--score-steps N --env Hopper-v5 --episodes E --seed S] --threads T``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def make_algo(name: str, hp: dict, preprocess: bool = True, steps: int = 1):
    import d3rlpy

    def encoder(hidden):
        return d3rlpy.models.VectorEncoderFactory(hidden_units=list(hidden))

    # seqrl standardises observations with the data's statistics for every algorithm; IQL's
    # normalize_reward is the reference's 1000 / (max - min episode return) scaling.
    # The speed runs leave them out (preprocess=False): d3rlpy fits its scalers only inside fit(), and
    # the timed update is the bare one (which favours d3rlpy: seqrl's timed sampler does normalise).
    scalers = {}
    if preprocess:
        scalers["observation_scaler"] = d3rlpy.preprocessing.StandardObservationScaler()
        if hp.get("normalize_reward"):
            scalers["reward_scaler"] = d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0)
        elif hp.get("reward_scale", 1.0) != 1.0:
            scalers["reward_scaler"] = d3rlpy.preprocessing.MultiplyRewardScaler(hp["reward_scale"])

    if name == "cql":
        config = d3rlpy.algos.CQLConfig(
            batch_size=hp["batch_size"], actor_learning_rate=hp["actor_learning_rate"],
            critic_learning_rate=hp["learning_rate"], temp_learning_rate=hp["alpha_learning_rate"],
            alpha_learning_rate=0.0,  # fixed conservative weight, as seqrl's default (lagrange off)
            actor_encoder_factory=encoder(hp["actor_hidden_sizes"]),
            critic_encoder_factory=encoder(hp["critic_hidden_sizes"]), n_critics=hp["num_critics"],
            conservative_weight=hp["min_q_weight"], n_action_samples=hp["num_sampled_actions"], tau=hp["tau"],
            gamma=hp["gamma"], **scalers,
        )
    elif name == "iql":
        # seqrl's IQL decays its actor's rate with a cosine to 0 over the run (the reference's, and d3rlpy's
        # reproduction script's); `--algo.actor_lr_schedule constant` keeps it fixed on both sides.
        schedule = hp.get("actor_lr_schedule", "constant")
        if schedule not in ("cosine", "constant"):
            raise SystemExit(f"d3rlpy_peer: no d3rlpy counterpart set up for actor_lr_schedule {schedule!r}")
        actor_optim = d3rlpy.optimizers.AdamFactory(lr_scheduler_factory=(
            d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=steps) if schedule == "cosine" else None))
        config = d3rlpy.algos.IQLConfig(
            actor_optim_factory=actor_optim,
            batch_size=hp["batch_size"], actor_learning_rate=hp["actor_learning_rate"],
            critic_learning_rate=hp["learning_rate"], actor_encoder_factory=encoder(hp["actor_hidden_sizes"]),
            critic_encoder_factory=encoder(hp["critic_hidden_sizes"]),
            value_encoder_factory=encoder(hp["critic_hidden_sizes"]), n_critics=hp["num_critics"],
            expectile=hp["expectile"], weight_temp=hp["beta"], max_weight=hp["max_weight"], tau=hp["tau"],
            gamma=hp["gamma"], **scalers,
        )
    elif name == "bcq":
        config = d3rlpy.algos.BCQConfig(
            batch_size=hp["batch_size"], actor_learning_rate=hp["actor_learning_rate"],
            critic_learning_rate=hp["learning_rate"], imitator_learning_rate=hp["vae_learning_rate"],
            actor_encoder_factory=encoder(hp["actor_hidden_sizes"]),
            critic_encoder_factory=encoder(hp["critic_hidden_sizes"]),
            imitator_encoder_factory=encoder(hp["vae_hidden_sizes"]), n_critics=hp["num_critics"],
            lam=hp["lmbda"], n_action_samples=hp["num_samples"], action_flexibility=hp["phi"], beta=hp["kl_weight"],
            tau=hp["tau"], gamma=hp["gamma"], **scalers,
        )
    elif name == "td3bc":
        config = d3rlpy.algos.TD3PlusBCConfig(
            batch_size=hp["batch_size"], actor_learning_rate=hp["actor_learning_rate"],
            critic_learning_rate=hp["learning_rate"], actor_encoder_factory=encoder(hp["actor_hidden_sizes"]),
            critic_encoder_factory=encoder(hp["critic_hidden_sizes"]), n_critics=hp["num_critics"],
            alpha=hp["alpha"], target_smoothing_sigma=hp["policy_noise"], target_smoothing_clip=hp["noise_clip"],
            update_actor_interval=hp["policy_delay"], tau=hp["tau"], gamma=hp["gamma"], **scalers,
        )
    elif name == "bc":
        config = d3rlpy.algos.BCConfig(batch_size=hp["batch_size"], learning_rate=hp["learning_rate"],
                                       encoder_factory=encoder(hp["hidden_sizes"]), **scalers)
    else:
        raise SystemExit(f"d3rlpy_peer: no d3rlpy counterpart set up for {name!r}")
    return config.create(device="cpu:0")


def train_and_score(algo, dataset, args) -> list[float]:
    """``algo.fit`` for ``args.score_steps`` gradient steps, then the returns of ``args.episodes`` episodes."""
    import tempfile

    import d3rlpy
    import gymnasium as gym

    with tempfile.TemporaryDirectory() as logs:
        algo.fit(dataset, n_steps=args.score_steps, n_steps_per_epoch=args.score_steps, show_progress=False,
                 logger_adapter=d3rlpy.logging.FileAdapterFactory(root_dir=logs), save_interval=10**9)
    env = gym.make(args.env)
    returns = []
    for episode in range(args.episodes):
        observation, _ = env.reset(seed=args.seed + episode)
        total, done = 0.0, False
        while not done:
            action = algo.predict(observation[None].astype(np.float32))[0]
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("algo")
    parser.add_argument("hparams", help="JSON of seqrl's config fields")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score-steps", type=int, default=0, help="train this many steps, then evaluate")
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()

    import d3rlpy
    import torch

    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    data = np.load(args.data)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"], actions=data["actions"], rewards=data["rewards"],
        terminals=data["terminals"], timeouts=data["timeouts"],
    )
    hp = json.loads(args.hparams)
    algo = make_algo(args.algo, hp, preprocess=bool(args.score_steps),
                     steps=args.score_steps or args.warmup + args.steps * args.repeats)
    algo.build_with_dataset(dataset)
    if args.score_steps:
        print(json.dumps({"returns": train_and_score(algo, dataset, args), "d3rlpy": d3rlpy.__version__}))
        return
    batch_size = hp["batch_size"]
    for _ in range(args.warmup):
        algo.update(dataset.sample_transition_batch(batch_size))
    rates = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        for _ in range(args.steps):
            algo.update(dataset.sample_transition_batch(batch_size))
        rates.append(args.steps / (time.perf_counter() - began))
    print(json.dumps({"updates_per_s": rates, "d3rlpy": d3rlpy.__version__}))


if __name__ == "__main__":
    main()
