"""Acting cost of the Online Decision Transformer per env step: seqrl's key/value cache against a full
recompute of the context every step (what the reference online-dt code does).

Both sides act with the same untrained ODT of the reference's size (embedding 512, 4 layers, 4 heads,
MLP 2048; trained with K = 20, acting with ``--act-context`` timesteps, 5 in the reference) for ``--envs``
environments at once, on random Hopper-sized observations (11 dims, 3 actions), for ``--steps`` steps
of one episode, exploring (actions sampled from the tanh-Gaussian head):

- ``cached``: ``policy.reset(B, target, explore=True)`` then ``policy.act(obs, rewards, starts)`` per step;
  each step embeds 3 new tokens and attends over the cache of the last K timesteps;
- ``recompute``: per step, append the step to growing history tensors, take the last K timesteps and run
  ``policy(...)`` (the training forward) over the whole window, then sample from its distribution at
  the last state token: 3K tokens through every layer, every step.

No simulator runs (the ceiling there is the env, see ``bench_dt_eval.py``); the figure is the policy's
own cost. Prints the median milliseconds per step over ``--repeats`` and the ratio.

Usage: ``python benchmarks/bench_odt_act.py [--envs 1 10] [--act-context 5 20] [--steps 300] [--repeats 3] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from seqrl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig

STATE_DIM, ACT_DIM = 11, 3


def make_policy(act_context: int) -> DecisionTransformer:
    config = DecisionTransformerConfig(
        state_dim=STATE_DIM, act_dim=ACT_DIM, hidden_size=512, n_layer=4, n_head=4, n_inner=2048,
        activation_function="relu", context_len=20, act_context_len=act_context, max_ep_len=1000, stochastic=True,
        action_low=[-1.0] * ACT_DIM, action_high=[1.0] * ACT_DIM, target_returns=[3600.0], env_id="Hopper-v5")
    return DecisionTransformer(config).eval()


def cached(policy, envs: int, steps: int, observations) -> float:
    policy.reset(envs, 7200.0, explore=True)
    rewards = torch.zeros(envs).numpy()
    began = time.perf_counter()
    for t in range(steps):
        policy.act(observations[t], rewards, None)
    return (time.perf_counter() - began) / steps


@torch.inference_mode()
def recompute(policy, envs: int, steps: int, observations, context: int) -> float:
    states = torch.zeros(envs, 0, STATE_DIM)
    actions = torch.zeros(envs, 0, ACT_DIM)
    returns = torch.zeros(envs, 0, 1)
    began = time.perf_counter()
    for t in range(steps):
        obs = policy.normalize_observations(torch.from_numpy(observations[t]))
        states = torch.cat([states, obs[:, None]], 1)[:, -context:]
        actions = torch.cat([actions, torch.zeros(envs, 1, ACT_DIM)], 1)[:, -context:]
        returns = torch.cat([returns, torch.full((envs, 1, 1), 7.2)], 1)[:, -context:]
        length = states.shape[1]
        timesteps = torch.arange(t - length + 1, t + 1).expand(envs, -1)
        mean = policy(states, actions, returns, timesteps)[:, -1]  # the whole window through every layer
        action = (mean + 0.1 * torch.randn_like(mean)).clamp(-1, 1)  # a sample at the last state token
        actions[:, -1] = action
    return (time.perf_counter() - began) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--act-context", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"ODT 512x4x4, {args.steps} steps, {args.threads} thread(s); median of {args.repeats} repeats, ms per env step")
    print("| envs | acting context | cached ms/step | recompute ms/step | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    for context in args.act_context:
        policy = make_policy(context)
        for envs in args.envs:
            observations = torch.randn(args.steps, envs, STATE_DIM).numpy()
            fast, slow = [], []
            cached(policy, envs, 20, observations)  # warm-up
            recompute(policy, envs, 20, observations, context)
            for _ in range(args.repeats):
                fast.append(cached(policy, envs, args.steps, observations))
                slow.append(recompute(policy, envs, args.steps, observations, context))
            f, s = statistics.median(fast) * 1e3, statistics.median(slow) * 1e3
            print(f"| {envs} | {context} | {f:.2f} | {s:.2f} | {s / f:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
