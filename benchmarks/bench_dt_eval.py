"""Decision Transformer acting throughput (env-steps/s on Hopper-v5): seqrl against the HF blog's loop.

Both sides act with an untrained Decision Transformer of the paper's size (K = 20, hidden 128,
3 layers, 1 head, MLP 512) in ``Hopper-v5`` with ``terminate_when_unhealthy=False``, so every
episode runs its full 1000 steps and both sides step the environment equally often:

- ``seqrl``: ``seqrl.evaluation.rollout.evaluate_policy`` with ``--num-envs`` (10) synchronous vector
  envs on a ``seqrl`` ``DecisionTransformer`` built from a config (state_dim 11, act_dim 3, env_id,
  env_kwargs, action bounds from the env, obs_mean 0 / obs_std 1, target return 3600): one batched
  step for all envs, with the rolling key/value cache (3 new tokens per step), or with ``--acting window``
  the reference's recomputation of the last K steps (batched over the envs).
- ``peer``: one env at a time, as in the Hugging Face blog / the original decision-transformer code:
  ``gym.make("Hopper-v5", terminate_when_unhealthy=False)``, ``transformers.DecisionTransformerModel``
  of the same size, and per step: append the state, action, reward, return-to-go and timestep to
  growing tensors with ``torch.cat``, normalise all states, keep the last K = 20, left-pad, run the
  whole context through the model and take ``action_preds[0, -1]``.

The simulator bounds the ratio: the same vector env stepped with no policy (``env only``), replaying
the actions seqrl's policy took in an untimed pass (same seeds, so the simulator does the same work:
the same contacts, the same trajectories), is timed in the same repeats, and its rate over the peer's
is printed as the ceiling.
A second, lower ceiling adds what the policy cannot avoid: the matmul FLOPs of one cached act for the
vector env (counted with ``torch.utils.flop_counter``) at the matmul peak measured in the same run
(float32, or bf16 with ``--mixed-precision bf16``, where seqrl acts under bf16 autocast as
``evaluate.py --mixed_precision bf16`` does; the peer stays float32); seqrl's rate is printed as a
fraction of both.

Each side runs ``--episodes`` episodes per repeat (under ``torch.inference_mode()``, both with the
same ``--threads``); repeats alternate the order; the median env-steps/s and the ratio seqrl/peer are
printed. Environment creation and reset are inside the timed region on both sides.

Usage: ``python benchmarks/bench_dt_eval.py [--episodes 10] [--num-envs 10] [--peer-episodes N] [--repeats 3]
[--threads N] [--acting cached|window] [--mixed-precision no|bf16]``; the 100-env case: ``--num-envs 100 --episodes 100 --peer-episodes 10``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
from common import matmul_peak

from seqrl.models.decision_transformer.configuration_decision_transformer import ACTING_DEFAULT, ACTING_MODES

ENV_ID, ENV_KWARGS = "Hopper-v5", {"terminate_when_unhealthy": False}
CONTEXT_LEN, HIDDEN, N_LAYER, N_HEAD, N_INNER, MAX_EP_LEN = 20, 128, 3, 1, 512, 1000
TARGET_RETURN, RETURN_SCALE = 3600.0, 1000.0


def make_seqrl_policy(state_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray, acting: str = ACTING_DEFAULT):
    from seqrl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig

    config = DecisionTransformerConfig(
        algo="dt", env_id=ENV_ID, env_kwargs=dict(ENV_KWARGS), state_dim=state_dim, act_dim=act_dim,
        hidden_size=HIDDEN, n_layer=N_LAYER, n_head=N_HEAD, n_inner=N_INNER, activation_function="relu",
        context_len=CONTEXT_LEN, max_ep_len=MAX_EP_LEN, action_tanh=True, return_scale=1 / RETURN_SCALE,
        action_low=[float(x) for x in low], action_high=[float(x) for x in high],
        obs_mean=[0.0] * state_dim, obs_std=[1.0] * state_dim, target_returns=[TARGET_RETURN], acting=acting,
    )
    return DecisionTransformer(config).eval()


def make_peer_model(state_dim: int, act_dim: int):
    from transformers import DecisionTransformerConfig, DecisionTransformerModel

    config = DecisionTransformerConfig(
        state_dim=state_dim, act_dim=act_dim, hidden_size=HIDDEN, n_layer=N_LAYER, n_head=N_HEAD,
        n_inner=N_INNER, activation_function="relu", n_positions=1024, max_ep_len=MAX_EP_LEN, action_tanh=True,
    )
    return DecisionTransformerModel(config).eval()


# ---------------------------------------------------------------- the peer (HF blog / original code)


def get_action(model, states, actions, rewards, returns_to_go, timesteps):
    """The blog's ``get_action``: the last K steps, left-padded, through the whole model."""
    state_dim, act_dim = model.config.state_dim, model.config.act_dim
    states = states.reshape(1, -1, state_dim)
    actions = actions.reshape(1, -1, act_dim)
    returns_to_go = returns_to_go.reshape(1, -1, 1)
    timesteps = timesteps.reshape(1, -1)

    states = states[:, -CONTEXT_LEN:]
    actions = actions[:, -CONTEXT_LEN:]
    returns_to_go = returns_to_go[:, -CONTEXT_LEN:]
    timesteps = timesteps[:, -CONTEXT_LEN:]
    padding = CONTEXT_LEN - states.shape[1]
    # pad all tokens to sequence length
    attention_mask = torch.cat([torch.zeros(padding), torch.ones(states.shape[1])])
    attention_mask = attention_mask.to(dtype=torch.long).reshape(1, -1)
    states = torch.cat([torch.zeros((1, padding, state_dim)), states], dim=1).float()
    actions = torch.cat([torch.zeros((1, padding, act_dim)), actions], dim=1).float()
    returns_to_go = torch.cat([torch.zeros((1, padding, 1)), returns_to_go], dim=1).float()
    timesteps = torch.cat([torch.zeros((1, padding), dtype=torch.long), timesteps], dim=1)

    state_preds, action_preds, return_preds = model(
        states=states, actions=actions, rewards=rewards, returns_to_go=returns_to_go, timesteps=timesteps,
        attention_mask=attention_mask, return_dict=False,
    )
    return action_preds[0, -1]


def peer_episodes(model, episodes: int, seed: int) -> int:
    """Run ``episodes`` episodes one after the other as the blog does; returns the env steps taken."""
    env = gym.make(ENV_ID, **ENV_KWARGS)
    state_dim, act_dim = model.config.state_dim, model.config.act_dim
    state_mean, state_std = torch.zeros(state_dim), torch.ones(state_dim)
    env_steps = 0
    for episode in range(episodes):
        state, _ = env.reset(seed=seed + episode)
        target_return = torch.tensor(TARGET_RETURN / RETURN_SCALE, dtype=torch.float32).reshape(1, 1)
        states = torch.from_numpy(state).reshape(1, state_dim).to(dtype=torch.float32)
        actions = torch.zeros((0, act_dim), dtype=torch.float32)
        rewards = torch.zeros(0, dtype=torch.float32)
        timesteps = torch.tensor(0, dtype=torch.long).reshape(1, 1)
        for t in range(MAX_EP_LEN):
            actions = torch.cat([actions, torch.zeros((1, act_dim))], dim=0)
            rewards = torch.cat([rewards, torch.zeros(1)])
            action = get_action(model, (states - state_mean) / state_std, actions, rewards, target_return, timesteps)
            actions[-1] = action
            action = action.detach().cpu().numpy()
            state, reward, terminated, truncated, _ = env.step(action)
            cur_state = torch.from_numpy(state).reshape(1, state_dim).to(dtype=torch.float32)
            states = torch.cat([states, cur_state], dim=0)
            rewards[-1] = reward
            pred_return = target_return[0, -1] - (reward / RETURN_SCALE)
            target_return = torch.cat([target_return, pred_return.reshape(1, 1)], dim=1)
            timesteps = torch.cat([timesteps, torch.ones((1, 1), dtype=torch.long) * (t + 1)], dim=1)
            env_steps += 1
            if terminated or truncated:
                break
    env.close()
    return env_steps


# ---------------------------------------------------------------- seqrl


def seqrl_episodes(policy, episodes: int, num_envs: int, seed: int, mixed_precision: str = "no") -> int:
    from seqrl.evaluation.rollout import evaluate_policy

    results = evaluate_policy(policy, target_returns=[TARGET_RETURN], episodes=episodes, num_envs=num_envs,
                              seed=seed, progress=False, mixed_precision=mixed_precision)["results"][0]
    return int(round(results["episode_length_mean"] * results["episodes"]))


def recorded_actions(policy, episodes: int, num_envs: int, seed: int, mixed_precision: str = "no") -> np.ndarray:
    """The actions of one untimed ``seqrl_episodes`` pass, [vector steps, envs, act_dim]: the policy is
    deterministic and the env seeds are the same, so every timed pass takes exactly these."""
    recorded, act = [], policy.act

    def recording(*args):
        actions = act(*args)
        recorded.append(np.array(actions))
        return actions

    policy.act = recording  # this instance only; removed below
    try:
        seqrl_episodes(policy, episodes, num_envs, seed, mixed_precision)
    finally:
        del policy.act
    return np.stack(recorded)


def env_only_episodes(episodes: int, num_envs: int, seed: int, actions: np.ndarray) -> int:
    """seqrl's vector env stepped with no policy, replaying ``actions`` (:func:`recorded_actions`), for as
    many steps as ``seqrl_episodes`` takes (episodes run their full 1000 steps). Its rate is the most any
    policy could reach here; over the peer's rate it is the ceiling of the ratio on this machine."""
    from seqrl.evaluation.rollout import make_vector_env

    num_envs = max(1, min(num_envs, episodes))
    env = make_vector_env(ENV_ID, num_envs, ENV_KWARGS)
    env.reset(seed=seed)
    vector_steps = -(-episodes // num_envs) * MAX_EP_LEN
    if actions.shape[:2] != (vector_steps, num_envs):
        raise RuntimeError(f"recorded actions {actions.shape} do not cover {vector_steps} steps of {num_envs} envs")
    for step in range(vector_steps):
        env.step(actions[step])
    env.close()
    return episodes * MAX_EP_LEN


def act_flops(policy, num_envs: int, state_dim: int) -> int:
    """Matmul FLOPs of one ``policy.act`` for ``num_envs`` envs with a full context (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    observations = np.zeros((num_envs, state_dim), np.float32)
    rewards, starts = np.zeros(num_envs, np.float32), np.zeros(num_envs, bool)
    with torch.inference_mode():
        policy.reset(num_envs, TARGET_RETURN)
        for _ in range(CONTEXT_LEN):
            policy.act(observations, rewards, starts)
        with FlopCounterMode(display=False) as counter:
            policy.act(observations, rewards, starts)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="episodes per side and repeat")
    parser.add_argument("--num-envs", type=int, default=10, help="seqrl's vector envs")
    parser.add_argument("--peer-episodes", type=int, help="the peer's episodes per repeat (default --episodes): "
                        "its rate is per env step, so fewer keep a 100-env run short")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads (both sides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--acting", choices=ACTING_MODES, default=ACTING_DEFAULT, help="seqrl's DT acting mode")
    parser.add_argument("--mixed-precision", choices=("no", "bf16"), default="no",
                        help="seqrl acts as evaluate.py --mixed_precision (no: float32, its default; bf16: autocast); "
                             "the policy's FLOPs are then priced at the bf16 matmul peak")
    parser.add_argument("--peak-sizes", type=int, nargs="+", default=[256, 512, 1024],
                        help="square matmul sizes for the matmul peak")
    args = parser.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()  # the peer's config warns about GPT-2 token ids it never uses
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    env = gym.make(ENV_ID, **ENV_KWARGS)
    state_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    env.close()
    policy = make_seqrl_policy(state_dim, act_dim, low, high, args.acting)
    peer = make_peer_model(state_dim, act_dim)
    if args.episodes % min(args.num_envs, args.episodes):
        print(f"note: {args.episodes} episodes do not divide over {args.num_envs} envs; seqrl's idle envs keep "
              "stepping, and only the steps of counted episodes are credited")

    with torch.inference_mode():  # warm-up (first calls allocate), untimed
        dummy = np.zeros((args.num_envs, state_dim), np.float32)
        policy.reset(args.num_envs, TARGET_RETURN)
        for _ in range(5):
            policy.act(dummy, np.zeros(args.num_envs, np.float32), np.zeros(args.num_envs, bool))
        for _ in range(5):
            get_action(peer, torch.zeros(3, state_dim), torch.zeros(3, act_dim), torch.zeros(3),
                       torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.long))

    with torch.inference_mode():
        actions = recorded_actions(policy, args.episodes, args.num_envs, args.seed, args.mixed_precision)
    runs = {
        "seqrl": lambda: seqrl_episodes(policy, args.episodes, args.num_envs, args.seed, args.mixed_precision),
        "peer": lambda: peer_episodes(peer, args.peer_episodes or args.episodes, args.seed),
        "env only": lambda: env_only_episodes(args.episodes, args.num_envs, args.seed, actions),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    steps_taken: dict[str, int] = {}
    for repeat in range(args.repeats):
        for name in (list(runs) if repeat % 2 == 0 else list(reversed(runs))):
            with torch.inference_mode():
                began = time.perf_counter()
                steps_taken[name] = runs[name]()
                rates[name].append(steps_taken[name] / (time.perf_counter() - began))
    median = {name: statistics.median(values) for name, values in rates.items()}

    num_envs = max(1, min(args.num_envs, args.episodes))
    flops = act_flops(policy, num_envs, state_dim)
    precision = "bf16" if args.mixed_precision == "bf16" else "float32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    peak, peak_size = matmul_peak(args.peak_sizes, 5, torch.device("cpu"), dtype)
    # per vector step: the simulator's time plus the policy's FLOPs at the peak
    bound = num_envs / (num_envs / median["env only"] + flops / peak)
    print(f"{ENV_ID} {ENV_KWARGS}, untrained DT (K={CONTEXT_LEN}, hidden {HIDDEN}, {N_LAYER} layers, {N_HEAD} head), "
          f"{args.threads} threads, {args.episodes} episodes per side (the peer {args.peer_episodes or args.episodes}), "
          f"median of {args.repeats} repeats:")
    print(f"  peer  (blog loop, 1 env, whole K-window per step): {median['peer']:10,.0f} env-steps/s "
          f"({steps_taken['peer']:,} steps)")
    mode = ("KV cache" if args.acting == "cached" else "window ") + (", bf16" if precision == "bf16" else "")
    print(f"  seqrl (evaluate_policy, {num_envs} vector envs, {mode}) : {median['seqrl']:10,.0f} env-steps/s "
          f"({steps_taken['seqrl']:,} steps)")
    print(f"  ratio seqrl/peer                                 : {median['seqrl'] / median['peer']:10.2f}x")
    print(f"  ceiling: the vector env alone (actions replayed) : {median['env only']:10,.0f} env-steps/s "
          f"= {median['env only'] / median['peer']:.2f}x the peer")
    print(f"  seqrl reaches {100 * median['seqrl'] / median['env only']:.1f}% of the simulator-only ceiling")
    print(f"  policy: {flops / 1e6:.1f} MFLOP of matmuls per act for {num_envs} envs = {1e3 * flops / peak:.2f} ms at "
          f"the {precision} matmul peak ({peak / 1e9:.1f} GFLOP/s, n={peak_size})")
    print(f"  ceiling with those FLOPs (simulator + policy at peak): {bound:10,.0f} env-steps/s "
          f"= {100 * bound / median['env only']:.1f}% of the simulator-only one; seqrl reaches "
          f"{100 * median['seqrl'] / bound:.1f}% of it")
    if steps_taken["peer"] != steps_taken["seqrl"] and not args.peer_episodes:
        print(f"  warning: the step counts differ ({steps_taken['peer']} vs {steps_taken['seqrl']})")


if __name__ == "__main__":
    main()
