"""Trajectory Transformer planning speed on Hopper-v5: seqrl's cached beam search against a
reference-style planner, in one run, on the same model, prefixes and seeds.

What is timed is planning alone: one ``beam_plan`` call = one environment step (the env executes the
first action of the best plan; stepping the simulator is not timed). Both sides use the reference's
settings by default (jannerm/trajectory-transformer ``config/offline.py``, ``plan`` section): horizon 15,
beam 128, n_expand 2, context 5 transitions, k_obs 1, cdf_act 0.6, k_reward 1.

- ``seqrl``: :func:`seqrl.models.trajectory_transformer.planner.beam_plan` with its default
  ``CachedDecoder`` (key/value ring, beams reordered by ``index_select``); all ``--envs`` envs in one
  batch, as ``Planner.act`` plans them.
- ``peer``: a port (written here from the reference's description, not copied) of the reference's
  ``trajectory/search/core.py::beam_plan`` with ``sampling.py``'s ``forward`` / ``sample`` / ``sample_n``:
  no cache; the input is the prefix's token sequence repeated ``beam_width`` times; before every sampled
  token the whole sequence goes through the model again, cropped from the front by whole transitions to
  at most ``max_block = context * D - 1`` tokens (so its first token is always observation dimension 0)
  with positions re-numbered from the crop's start (here: global indices from 0, i.e. the crop's first
  transition at timestep 0), and the next token's logits come from the last position. Per horizon step:
  repeat the rows ``n_expand`` times (``Tensor.repeat``), sample the action tokens, then the reward and
  value tokens, score ``sum_i gamma^i r_i + gamma^(t+1) V_t``, keep the top ``beam_width`` rows, then
  (unless last) sample the next observation's tokens. One env per call, as the reference plans; for
  ``n`` envs that is ``n`` calls. It runs seqrl's ``TrajectoryTransformer`` through
  ``model.hidden_states`` and ``model.head.at`` and samples with seqrl's ``sample_tokens`` (the stop token
  excluded; the reward and value read as expectations over the bins' midpoints under the model's
  unfiltered distribution, as the reference reads them), so
  both sides sample identically and only the search's compute differs.

The peer is slow (about 5 TFLOP, two to four minutes, per environment step on one CPU thread at full
settings), so it plans ``--peer-steps`` (default 1) env steps per repeat, and only one env: its time for
``n`` envs is ``n`` times its one-env call (the calls are identical in cost: same prefix length, same
search), which the output says; ``--peer-all-envs`` makes it really run ``n`` calls.

Check (printed as ``same first action (greedy): True/False``): with greedy sampling (k_act 1, cdf_act 0)
and plans that fit one window with positions that coincide (a prefix of ``context - 1`` transitions from
timestep 0 and horizon 1; an episode's first observation and horizon ``context``), both planners must pick
the same first action tokens (and here the same whole plan). Beyond the window they differ by design (see
the module docstring of ``modeling_trajectory_transformer``).

The model: ``--policy DIR`` loads a trained TT (``seqrl.registry.load_policy``); without it an untrained
TT of the reference's size (``TTConfig()`` defaults: 100 bins, 4 layers x 4 heads, hidden 128) is built
for ``mujoco/hopper/medium-v0`` (from ``MINARI_DATASETS_PATH``, default ``../shared/datasets/minari``
next to the repository) and its discretiser fitted with ``make_sampler``. Planning time does not depend on
the weights being trained: both searches do a fixed amount of work (fixed horizon, beam and token count;
the stop token is never sampled), whatever the logits say.

Prefixes: real Hopper-v5 observations: each env is reset with its own seed and takes random actions,
so that at the first timed step the context holds ``context - 1`` earlier transitions; prefix tokens,
global indices and validity are built as ``Planner.act`` builds them (normalised observations and actions
through the discretiser, the reward token, a placeholder value token). Timed step ``i`` plans from the
observation at timestep ``context - 1 + i``.

FLOPs (matmul only, counted analytically from the blocks' weight shapes; ``--flop-check`` verifies the
count with ``torch.utils.flop_counter.FlopCounterMode`` on a small search): per token row and layer
``2 * (|c_attn| + |attn.c_proj| + |mlp.c_fc| + |mlp.c_proj|)``, plus attention ``4 * H * Lk`` per query
and layer over every key the kernel computes (masked ones included: the ring's ``context * D`` slots for a
cached step, the whole ``L x L`` for a forward over ``L`` tokens), plus the head ``2 * H * (N + 1)`` per
logits row. The ratio of the two sides' FLOPs is the cache's saving; achieved GFLOP/s are compared with the
float32 matmul peak (and the bf16 one with ``--mixed-precision bf16``, where both sides plan under
``torch.autocast("cpu", torch.bfloat16)``) measured in the same run with the same threads. The reference's
own ``GPT.forward`` also applies its heads at every position; the port reads only the last, and that extra
head work is printed separately, not timed.

The per-episode figures are 1000 x one plan: ``plan_freq 1``, the reference's default and seqrl's, which
every Hopper config of the reference keeps (``planner.plan_freq`` k plans every k steps, k times fewer).

Usage (full settings: about 10 minutes on an idle 2-core CPU with one thread, mostly the peer):
``python benchmarks/bench_tt_plan.py [--policy DIR] [--envs 1 10] [--steps 1] [--peer-steps 1] [--repeats 3]
[--threads 1] [--mixed-precision no|bf16] [--horizon 15 --beam-width 128 --n-expand 2 --context 5]
[--output FILE.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from common import matmul_peak

ENV_ID = "Hopper-v5"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MINARI_PATH = REPO_ROOT.parent / "shared" / "datasets" / "minari"
SHORT = {"float32": "fp32", "bfloat16": "bf16"}


# ---------------------------------------------------------------- model and prefixes


def load_model(args):
    """(eval-mode TrajectoryTransformer, description)."""
    from seqrl.models.trajectory_transformer import TrajectoryTransformer

    if args.policy:
        from seqrl.registry import load_policy

        model = load_policy(args.policy, device="cpu")
        if not isinstance(model, TrajectoryTransformer):
            raise SystemExit(f"{args.policy} holds a {type(model).__name__}, not a Trajectory Transformer")
        return model.eval(), f"trained TT from {args.policy}"
    os.environ.setdefault("MINARI_DATASETS_PATH", str(DEFAULT_MINARI_PATH))
    from seqrl.algos.tt import TrajectoryTransformerAlgorithm, TTConfig
    from seqrl.data.schema import get_metadata
    from seqrl.data.sources import load_dataset

    dataset = load_dataset(args.dataset)
    algorithm = TrajectoryTransformerAlgorithm(TTConfig(), get_metadata(dataset))
    with contextlib.redirect_stdout(io.StringIO()):  # the discretiser's per-dimension table
        algorithm.make_sampler(dataset, 0)  # fits the discretiser on the data
    return algorithm.policy().eval(), f"untrained TT (TTConfig() defaults), discretiser fitted on {args.dataset}"


def random_rollouts(envs: int, length: int, seed: int, state_dim: int):
    """Per env: observations [length + 1, S], actions [length, A], rewards [length] from uniform random
    actions in Hopper-v5, from ``reset(seed=seed + env)`` (re-seeded further on in the rare case an
    episode ends before ``length`` steps)."""
    env = gym.make(ENV_ID)
    if env.observation_space.shape[0] != state_dim:
        raise SystemExit(f"the model's state_dim {state_dim} does not fit {ENV_ID}'s {env.observation_space.shape}")
    rollouts, attempt = [], 0
    for index in range(envs):
        while True:
            obs, _ = env.reset(seed=seed + index + 1000 * attempt)
            env.action_space.seed(seed + index + 1000 * attempt)
            observations, actions, rewards = [obs], [], []
            for _ in range(length):
                action = env.action_space.sample()
                obs, reward, terminated, truncated, _ = env.step(action)
                observations.append(obs), actions.append(action), rewards.append(reward)
                if terminated or truncated:
                    break
            if len(actions) == length:
                break
            attempt += 1
        rollouts.append((np.asarray(observations, np.float32), np.asarray(actions, np.float32),
                         np.asarray(rewards, np.float32)))
    env.close()
    return rollouts


@torch.no_grad()
def prefix_tokens(model, context: int, rollout, timestep: int):
    """Tokens, global indices, validity [P] of the prefix at ``timestep``, as ``Planner.act`` builds it:
    the last ``context - 1`` transitions (s, a, r, V placeholder; left-padded and invalid before the
    episode's start) and the current observation; indices ``t * D + d`` from ``(timestep - context + 1) * D``."""
    cfg, disc = model.config, model.discretiser
    dims, obs_dim, act = cfg.transition_dim, cfg.state_dim, cfg.action_tokens
    observations, actions, rewards = rollout
    obs = model.normalize_observations(torch.from_numpy(observations))
    acts = model.normalize_actions(torch.from_numpy(actions))
    parts, valid = [], []
    for t in range(timestep - (context - 1), timestep):
        if t < 0:
            parts.append(torch.zeros(dims, dtype=torch.long))
            valid.append(torch.zeros(dims, dtype=torch.bool))
            continue
        parts += [disc.encode(obs[t], slice(0, obs_dim)), disc.encode(acts[t], slice(obs_dim, obs_dim + act)),
                  disc.encode(torch.from_numpy(rewards[t:t + 1]), slice(dims - 2, dims - 1)),
                  torch.zeros(1, dtype=torch.long)]  # V is never attended to: a placeholder, as Planner.act
        valid.append(torch.ones(dims, dtype=torch.bool))
    parts.append(disc.encode(obs[timestep], slice(0, obs_dim)))
    valid.append(torch.ones(obs_dim, dtype=torch.bool))
    tokens = torch.cat(parts)
    index = (timestep - (context - 1)) * dims + torch.arange(tokens.shape[0])
    return tokens, index, torch.cat(valid)


def batched_prefixes(model, context: int, rollouts, timestep: int):
    """[E, P] tokens, indices, validity of every env at ``timestep``."""
    rows = [prefix_tokens(model, context, rollout, timestep) for rollout in rollouts]
    return tuple(torch.stack(column) for column in zip(*rows))


# ---------------------------------------------------------------- the reference-style planner


def round_to_multiple(x: int, n: int) -> int:
    """``x`` rounded up to a multiple of ``n`` (the reference's crop size)."""
    return x + (n - x % n) % n


class ReferencePlanner:
    """jannerm/trajectory-transformer's ``beam_plan`` (search/core.py) and ``sample_n`` (search/sampling.py),
    ported: no cache, one env per call, every token re-runs the cropped sequence through the model."""

    def __init__(self, model, settings: dict):
        self.model, self.settings = model, settings
        self.dims = model.config.transition_dim
        self.max_block = settings["context"] * self.dims - 1

    def crop(self, length: int) -> int:
        """Tokens [n_crop:] kept of a sequence of ``length``."""
        return round_to_multiple(length - self.max_block, self.dims) if length > self.max_block else 0

    def next_logits(self, x: torch.Tensor, first_index: int | None = None) -> torch.Tensor:
        """The reference's ``forward`` + ``logits[:, -1]``: crop whole transitions from the front, number
        positions from 0, run the whole sequence, read the last position's head. [R, L] -> [R, N + 1].
        With ``first_index`` (the global index of ``x[:, 0]``) positions are the tokens' own timesteps
        instead, the same cropping for a model whose positions are timesteps (bench_tt_positions.py)."""
        crop = self.crop(x.shape[1])
        x = x[:, crop:]
        start = 0 if first_index is None else first_index + crop  # renumbered from the crop, or the true index
        index = (start + torch.arange(x.shape[1])).expand_as(x)
        hidden = self.model.hidden_states(x, index, band=self.settings["context"])
        return self.model.head.at(hidden[:, -1], (x.shape[1] - 1) % self.dims)

    def sample_n(self, x, n, top_k, cdf, generator, first_index=None):
        """Append ``n`` sampled tokens; returns x and the distributions they were drawn from."""
        from seqrl.models.trajectory_transformer.planner import sample_tokens

        probs = []
        for _ in range(n):
            token, p = sample_tokens(self.next_logits(x, first_index), top_k, cdf, generator)
            x = torch.cat([x, token[:, None]], 1)
            probs.append(p)
        return x, probs

    @torch.no_grad()
    def plan(self, prefix: torch.Tensor, generator: torch.Generator | None = None, first_index: int | None = None):
        """Best plan's tokens [horizon * D - S] (first action token .. last value token) and its score,
        for one env's prefix tokens [P] (valid tokens only, starting at an observation's dimension 0)."""
        s, model = self.settings, self.model
        cfg = model.config
        obs_dim, act = cfg.state_dim, cfg.action_tokens
        horizon, beams, expand = s["horizon"], s["beam_width"], s["n_expand"]
        midpoints = model.discretiser.midpoints.float()  # [D, N]
        x = prefix[None].repeat(beams, 1)  # the reference starts from beam_width copies of the prefix
        rewards = torch.zeros(beams, horizon + 1)
        discounts = cfg.discount ** torch.arange(horizon + 1, dtype=torch.float32)
        for t in range(horizon):
            x, rewards = x.repeat(expand, 1), rewards.repeat(expand, 1)
            x, _ = self.sample_n(x, act, s["k_act"], s["cdf_act"], generator, first_index)
            x, (r_probs, v_probs) = self.sample_n(x, 2, s["k_reward"], 0.0, generator, first_index)
            rewards[:, t] = r_probs @ midpoints[obs_dim + act]
            rewards[:, t + 1] = v_probs @ midpoints[obs_dim + act + 1]
            values, keep = torch.topk((rewards * discounts).sum(-1), beams)
            x, rewards = x[keep], rewards[keep]
            if t < horizon - 1:
                x, _ = self.sample_n(x, obs_dim, s["k_obs"], 0.0, generator, first_index)
        best = values.argmax()
        return x[best, prefix.shape[0]:], values[best]


# ---------------------------------------------------------------- FLOPs


def model_sizes(model) -> dict:
    """Matmul FLOPs per token row (all layers), per query-key pair (all layers), per head row."""
    cfg, block = model.config, model.blocks[0]
    weights = (block.attn.c_attn.weight, block.attn.c_proj.weight, block.mlp.c_fc.weight, block.mlp.c_proj.weight)
    hidden = cfg.hidden_size
    return {"gemm": 2 * sum(w.numel() for w in weights) * cfg.n_layer,
            "attention": 4 * hidden * cfg.n_layer,
            "head": 2 * hidden * (cfg.n_bins + 1)}


def cached_flops(model, settings: dict, prefix_len: int, envs: int) -> float:
    """Matmul FLOPs of one ``beam_plan`` call with ``CachedDecoder`` for ``envs`` envs."""
    sizes, cfg = model_sizes(model), model.config
    obs_dim, act, dims = cfg.state_dim, cfg.action_tokens, cfg.transition_dim
    horizon, beams, expand = settings["horizon"], settings["beam_width"], settings["n_expand"]
    slots = settings["context"] * dims
    # start: the prefix through the stack (attention over all P x P), the head at its last token
    flops = envs * (prefix_len * sizes["gemm"] + prefix_len**2 * sizes["attention"] + sizes["head"])
    per_row = sizes["gemm"] + slots * sizes["attention"] + sizes["head"]  # one token over the ring, its head
    wide, narrow = envs * beams * expand, envs * min(beams, beams * expand)
    for t in range(horizon):
        flops += wide * (act + 1) * per_row  # after each action token and the reward token
        if t < horizon - 1:
            flops += narrow * (1 + obs_dim) * per_row  # the value token, then each observation token
    return float(flops)


def ring_bytes(model, settings: dict, element_size: int) -> int:
    """Bytes of one row's key/value ring: every layer's keys and values over ``context * D`` slots."""
    cfg = model.config
    return cfg.n_layer * 2 * settings["context"] * cfg.transition_dim * cfg.hidden_size * element_size


def cache_bytes(model, settings: dict, envs: int, element_size: int) -> float:
    """Bytes of the key/value ring that one ``beam_plan`` call with ``CachedDecoder`` reads or writes for
    ``envs`` envs: each decoded token reads every layer's keys and values over the ring's ``context * D``
    slots, once per ring (candidates of one parent share it: the first step's parents are the envs'
    prefixes, later steps' the kept beams), and each search step copies the kept beams' rings once (read
    and write). These reads are memory-bound: about one multiply-add per element read."""
    cfg = model.config
    obs_dim, act = cfg.state_dim, cfg.action_tokens
    horizon, beams = settings["horizon"], settings["beam_width"]
    ring = ring_bytes(model, settings, element_size)
    total = 0
    for t in range(horizon):
        parents = envs if t == 0 else envs * beams
        total += (act + 1) * parents * ring  # the action and reward tokens' steps read each parent's ring
        total += 2 * envs * beams * ring  # select: the kept beams' rings copied
        if t < horizon - 1:
            total += (1 + obs_dim) * envs * beams * ring  # the value and observation tokens, one ring per beam
    return float(total)


def read_bandwidth(size_bytes: int, repeats: int = 5) -> float:
    """Bytes/s of one pass reading a float32 buffer of ``size_bytes`` (``sum``), median of ``repeats``:
    the rate the cache's reads can reach on this core at best."""
    buffer = torch.randn(size_bytes // 4)
    buffer.sum()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        buffer.sum()
        times.append(time.perf_counter() - began)
    return buffer.numel() * 4 / statistics.median(times)


def reference_flops(model, settings: dict, prefix_len: int) -> tuple[float, float]:
    """Matmul FLOPs of one ``ReferencePlanner.plan`` call (one env), and the extra head FLOPs the reference's
    own ``GPT.forward`` spends on every other position (padded to whole transitions), which the port skips."""
    sizes, cfg = model_sizes(model), model.config
    obs_dim, act, dims = cfg.state_dim, cfg.action_tokens, cfg.transition_dim
    horizon, beams, expand = settings["horizon"], settings["beam_width"], settings["n_expand"]
    crop = ReferencePlanner(model, settings).crop
    flops = extra = 0
    length = prefix_len

    def forward(rows):
        nonlocal flops, extra, length
        kept = length - crop(length)
        flops += rows * (kept * sizes["gemm"] + kept**2 * sizes["attention"] + sizes["head"])
        extra += rows * (round_to_multiple(kept, dims) - 1) * sizes["head"]
        length += 1

    for t in range(horizon):
        for _ in range(act + 2):
            forward(beams * expand)
        if t < horizon - 1:
            for _ in range(obs_dim):
                forward(beams)
    return float(flops), float(extra)


def counted_flops(run) -> float:
    """Matmul FLOPs of ``run()`` by ``FlopCounterMode``; CPU's fused attention kernel is counted with the
    counter's own SDPA formula (it has none registered for ``_scaled_dot_product_flash_attention_for_cpu``)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    counter = FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa})
    with counter:
        run()
    return float(counter.get_total_flops())


# ---------------------------------------------------------------- timing


def precision_context(mixed_precision: str):
    if mixed_precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def time_seqrl(model, settings, prefixes, envs: int, seed: int, mixed_precision: str) -> float:
    """Seconds per env step (all ``envs`` envs in one ``beam_plan`` call), mean over the timed steps."""
    from seqrl.models.trajectory_transformer.planner import beam_plan

    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for tokens, index, valid in prefixes:
        with torch.inference_mode(), precision_context(mixed_precision):
            began = time.perf_counter()
            beam_plan(model, settings, tokens[:envs], index[:envs], valid[:envs], generator)
            total += time.perf_counter() - began
    return total / len(prefixes)


def time_peer(reference: ReferencePlanner, prefixes, envs: int, seed: int, mixed_precision: str) -> float:
    """Seconds per env step for ``envs`` envs planned one call each, mean over the timed steps."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for tokens, _, valid in prefixes:
        for env in range(envs):
            with torch.inference_mode(), precision_context(mixed_precision):
                began = time.perf_counter()
                reference.plan(tokens[env][valid[env]], generator)
                total += time.perf_counter() - began
    return total / len(prefixes)


# ---------------------------------------------------------------- checks


def greedy_check(model, settings, rollouts) -> dict:
    """Both planners, greedy (k_act 1, cdf_act 0), on plans that fit one window, where their inputs are the
    same: (a) ``context - 1`` earlier transitions from timestep 0 and horizon 1; (b) an episode's first
    observation and horizon ``context``. Returns whether the first action tokens and whole plans agree."""
    from seqrl.models.trajectory_transformer.planner import beam_plan

    greedy = {**settings, "k_act": 1, "cdf_act": 0.0, "k_obs": 1, "k_reward": 1,
              "beam_width": min(settings["beam_width"], 8)}
    act = model.config.action_tokens
    reference = ReferencePlanner(model, greedy)
    result = {}
    for name, timestep, horizon in (("full context, horizon 1", settings["context"] - 1, 1),
                                    ("episode start, horizon = context", 0, settings["context"])):
        check = {**greedy, "horizon": horizon}
        reference.settings = check
        tokens, index, valid = prefix_tokens(model, settings["context"], rollouts[0], timestep)
        with torch.inference_mode():
            ours, _ = beam_plan(model, check, tokens[None], index[None], valid[None], torch.Generator().manual_seed(0))
            theirs, _ = reference.plan(tokens[valid], torch.Generator().manual_seed(0))
        result[name] = {"same_first_action": bool(torch.equal(ours[0, :act], theirs[:act])),
                        "same_plan": bool(torch.equal(ours[0], theirs))}
    return result


def flop_check(model, settings, prefixes) -> dict:
    """Analytic against FlopCounterMode on one small search of each side (float32)."""
    from seqrl.models.trajectory_transformer.planner import beam_plan

    small = {**settings, "horizon": min(settings["horizon"], 3), "beam_width": min(settings["beam_width"], 8)}
    tokens, index, valid = prefixes[0]
    envs = min(2, tokens.shape[0])
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        ours = counted_flops(lambda: beam_plan(model, small, tokens[:envs], index[:envs], valid[:envs], generator))
        theirs = counted_flops(lambda: ReferencePlanner(model, small).plan(tokens[0][valid[0]], generator))
    return {"settings": {k: small[k] for k in ("horizon", "beam_width", "n_expand", "context")}, "envs": envs,
            "seqrl_counted": ours, "seqrl_analytic": cached_flops(model, small, tokens.shape[1], envs),
            "peer_counted": theirs, "peer_analytic": reference_flops(model, small, int(valid[0].sum()))[0]}


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", help="a trained TT policy folder (default: an untrained one, see the docstring)")
    parser.add_argument("--dataset", default="mujoco/hopper/medium-v0", help="data that fits the discretiser without --policy")
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--beam-width", type=int, default=128)
    parser.add_argument("--n-expand", type=int, default=2)
    parser.add_argument("--context", type=int, default=5, help="transitions each token sees (the reference's max_context_transitions)")
    parser.add_argument("--k-obs", type=int, default=1)
    parser.add_argument("--k-act", type=int, default=0, help="0: no top-k filter (the reference's None)")
    parser.add_argument("--cdf-act", type=float, default=0.6)
    parser.add_argument("--k-reward", type=int, default=1)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 10], help="env counts seqrl plans in one batch")
    parser.add_argument("--steps", type=int, default=1, help="timed env steps (plans) per repeat for seqrl")
    parser.add_argument("--peer-steps", type=int, default=1, help="timed env steps per repeat for the peer")
    parser.add_argument("--peer-all-envs", action="store_true",
                        help="run the peer's n calls for n envs instead of n x its one-env call")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; medians are reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no",
                        help="bf16: both planners under torch.autocast('cpu', torch.bfloat16)")
    parser.add_argument("--peak-sizes", type=int, nargs="+", default=[1024, 2048], help="square matmul sizes for the peak")
    parser.add_argument("--flop-check", action=argparse.BooleanOptionalAction, default=True,
                        help="check the analytic FLOP count against FlopCounterMode on a small search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="also write the results to this JSON file")
    args = parser.parse_args()

    from seqrl.models.trajectory_transformer.planner import beam_plan, resolve

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, description = load_model(args)
    cfg = model.config
    settings = resolve({"horizon": args.horizon, "beam_width": args.beam_width, "n_expand": args.n_expand,
                        "context": args.context, "k_obs": args.k_obs, "k_act": args.k_act, "cdf_act": args.cdf_act,
                        "k_reward": args.k_reward, "seed": args.seed}, cfg.env_id, cfg.window)
    context = settings["context"]
    max_envs = max(args.envs)
    timed_steps = max(args.steps, args.peer_steps)
    rollouts = random_rollouts(max_envs, context - 1 + timed_steps, args.seed, cfg.state_dim)
    prefixes = [batched_prefixes(model, context, rollouts, context - 1 + i) for i in range(timed_steps)]
    prefix_len = prefixes[0][0].shape[1]
    reference = ReferencePlanner(model, settings)

    precision = "bfloat16" if args.mixed_precision == "bf16" else "float32"
    peaks = {"float32": matmul_peak(args.peak_sizes, 5, torch.device("cpu"), torch.float32)}
    if args.mixed_precision == "bf16":
        peaks["bfloat16"] = matmul_peak(args.peak_sizes, 5, torch.device("cpu"), torch.bfloat16)
    print(f"{ENV_ID}: {description}; hidden {cfg.hidden_size}, {cfg.n_layer} layers x {cfg.n_head} heads, "
          f"{cfg.n_bins} bins, D = {cfg.transition_dim} (S {cfg.state_dim}, A {cfg.action_tokens}, r, V)")
    print("planner: " + ", ".join(f"{k} {settings[k]}" for k in ("horizon", "beam_width", "n_expand", "context", "k_obs",
                                                                   "k_act", "cdf_act", "k_reward"))
          + f"; prefix {prefix_len} tokens ({context - 1} transitions + observation)")
    print(f"{args.threads} threads, planning in {precision}; python {sys.version.split()[0]}, torch {torch.__version__}")
    for name, (peak, size) in peaks.items():
        print(f"{name} matmul peak ({args.threads} threads, best of sizes {args.peak_sizes}): {peak / 1e9:.1f} GFLOP/s at {size}")
    element_size = 2 if precision == "bfloat16" else 4  # the ring holds keys and values in the blocks' dtype
    ring_set = settings["beam_width"] * ring_bytes(model, settings, element_size)
    bandwidth = read_bandwidth(int(max(ring_set, 1 << 20)))
    print(f"read bandwidth ({args.threads} threads, a {ring_set / 1e6:.0f} MB buffer, one env's kept rings): "
          f"{bandwidth / 1e9:.1f} GB/s")

    checks = greedy_check(model, settings, rollouts)
    print(f"same first action (greedy): {all(c['same_first_action'] for c in checks.values())}")
    print("  " + "; ".join(f"{name}: first action {c['same_first_action']}, whole plan {c['same_plan']}"
                           for name, c in checks.items()))
    flop_agreement = None
    if args.flop_check:
        flop_agreement = flop_check(model, settings, prefixes)
        f = flop_agreement
        print(f"FLOP count check (FlopCounterMode, horizon {f['settings']['horizon']}, beam {f['settings']['beam_width']}, "
              f"n_expand {f['settings']['n_expand']}): seqrl {f['envs']} envs counted {f['seqrl_counted'] / 1e9:.4f} vs "
              f"analytic {f['seqrl_analytic'] / 1e9:.4f} GFLOP (x{f['seqrl_counted'] / f['seqrl_analytic']:.4f}); "
              f"peer counted {f['peer_counted'] / 1e9:.4f} vs analytic {f['peer_analytic'] / 1e9:.4f} GFLOP "
              f"(x{f['peer_counted'] / f['peer_analytic']:.4f})")

    # warm-up (first calls allocate), untimed
    warm = {**settings, "horizon": 1}
    with torch.inference_mode(), precision_context(args.mixed_precision):
        for envs in sorted(set(args.envs)):
            tokens, index, valid = prefixes[0]
            beam_plan(model, warm, tokens[:envs], index[:envs], valid[:envs], torch.Generator().manual_seed(0))
        ReferencePlanner(model, {**warm, "beam_width": min(8, settings["beam_width"])}).plan(
            prefixes[0][0][0][prefixes[0][2][0]])

    peer_envs = sorted(set(args.envs)) if args.peer_all_envs else [1]
    seqrl_times = {envs: [] for envs in args.envs}
    peer_times = {envs: [] for envs in peer_envs}
    began_all = time.perf_counter()
    for repeat in range(args.repeats):
        sides = ["seqrl", "peer"] if repeat % 2 == 0 else ["peer", "seqrl"]
        for side in sides:
            if side == "seqrl":
                for envs in args.envs:
                    seqrl_times[envs].append(time_seqrl(model, settings, prefixes[:args.steps], envs, args.seed,
                                                        args.mixed_precision))
            else:
                for envs in peer_envs:
                    peer_times[envs].append(time_peer(reference, prefixes[:args.peer_steps], envs, args.seed,
                                                      args.mixed_precision))
        print(f"  repeat {repeat + 1}/{args.repeats} done ({time.perf_counter() - began_all:.0f} s)", flush=True)

    peer_call = reference_flops(model, settings, prefix_len)
    results = []
    print(f"\nmedian of {args.repeats} repeats; seqrl {args.steps} env steps per repeat, peer {args.peer_steps}; "
          "s/step and s/episode (= 1000 x s/step) are for all envs together:")
    for envs in args.envs:
        ours = statistics.median(seqrl_times[envs])
        if envs in peer_times:
            theirs, peer_note = statistics.median(peer_times[envs]), "measured"
        else:
            theirs, peer_note = envs * statistics.median(peer_times[1]), f"1-env call x {envs}, extrapolated"
        ours_flops, theirs_flops = cached_flops(model, settings, prefix_len, envs), envs * peer_call[0]
        row = {"envs": envs, "seqrl_s_per_step": ours, "peer_s_per_step": theirs, "peer_timing": peer_note,
               "seqrl_gflop_per_step": ours_flops / 1e9, "peer_gflop_per_step": theirs_flops / 1e9,
               "peer_extra_head_gflop_per_step": envs * peer_call[1] / 1e9,
               "seqrl_gflops": ours_flops / ours / 1e9, "peer_gflops": theirs_flops / theirs / 1e9,
               "ratio": theirs / ours, "flop_ratio": theirs_flops / ours_flops}
        for name, (peak, _) in peaks.items():
            row[f"seqrl_pct_{name}_peak"] = 100 * ours_flops / ours / peak
            row[f"peer_pct_{name}_peak"] = 100 * theirs_flops / theirs / peak
        # Ceiling: every matmul FLOP at the peak of the planning precision, plus every byte of the cache
        # at the read bandwidth (attention over a ring is memory-bound: about 1 FLOP per 4 bytes read).
        peak = peaks[precision][0]
        row["seqrl_cache_gb_per_step"] = cache_bytes(model, settings, envs, element_size) / 1e9
        row["ceiling_s_per_step"] = ours_flops / peak + row["seqrl_cache_gb_per_step"] * 1e9 / bandwidth
        row["ceiling_pct_peak"] = 100 * ours_flops / peak / row["ceiling_s_per_step"]
        row["seqrl_pct_of_ceiling"] = 100 * row["ceiling_s_per_step"] / ours
        results.append(row)
        label = f"{envs} env{'s' if envs > 1 else ''}"
        print(f"{label}:")
        print(f"  seqrl (beam_plan, CachedDecoder, {envs} in one batch): {ours:9.3f} s/step, {ours / envs:9.3f} s/step "
              f"per env, {1000 * ours:10.1f} s per 1000-step episode; {ours_flops / envs / 1e9:8.2f} GFLOP/step "
              f"per env, {row['seqrl_gflops']:7.2f} GFLOP/s")
        print(f"  peer  (reference-style, no cache, {envs} call{'s' if envs > 1 else ''}) : {theirs:9.3f} s/step, "
              f"{theirs / envs:9.3f} s/step per env, {1000 * theirs:10.1f} s per 1000-step episode; "
              f"{peer_call[0] / 1e9:8.2f} GFLOP/step per env, {row['peer_gflops']:7.2f} GFLOP/s ({peer_note})")
        print(f"  ratio seqrl/peer : {row['ratio']:.2f}x  ({label}; FLOP ratio peer/seqrl {row['flop_ratio']:.2f}x)")
        for name, (peak, _) in peaks.items():
            print(f"  fraction of the {name} matmul peak: seqrl {row[f'seqrl_pct_{name}_peak']:.1f}%, "
                  f"peer {row[f'peer_pct_{name}_peak']:.1f}%")
        print(f"  ceiling: {row['ceiling_s_per_step']:.3f} s/step (matmuls at the {precision} peak + "
              f"{row['seqrl_cache_gb_per_step']:.1f} GB of cache at {bandwidth / 1e9:.1f} GB/s) = "
              f"{row['ceiling_pct_peak']:.1f}% of the {precision} peak; seqrl reaches {row['seqrl_pct_of_ceiling']:.1f}% of it")
    print(f"(the reference's own GPT.forward also applies its heads at every position: "
          f"+{peer_call[1] / 1e9:.2f} GFLOP per env step, not in the port, not counted above)")

    peak_names = list(peaks)
    header = (f"\n{'envs':>4} {'side':>5} {'s/step':>9} {'s/step/env':>10} {'s/episode':>10} {'GFLOP/step':>11} "
              f"{'GFLOP/s':>8} " + " ".join(f"{'% ' + SHORT[n] + ' peak':>11}" for n in peak_names) + f" {'ratio':>8} {'FLOPx':>7}")
    print(header)
    for row in results:
        for side in ("seqrl", "peer"):
            seconds = row[f"{side}_s_per_step"]
            tail = f" {row['ratio']:7.2f}x {row['flop_ratio']:6.1f}x" if side == "seqrl" else (
                "  (extrap.)" if "extrapolated" in row["peer_timing"] else "")
            print(f"{row['envs']:>4} {side:>5} {seconds:9.3f} {seconds / row['envs']:10.3f} {1000 * seconds:10.0f} "
                  f"{row[f'{side}_gflop_per_step']:11.2f} {row[f'{side}_gflops']:8.2f} "
                  + " ".join(f"{row[f'{side}_pct_{n}_peak']:10.1f}%" for n in peak_names) + tail)

    if args.output:
        report = {"env": ENV_ID, "model": description, "settings": settings, "threads": args.threads,
                  "precision": precision, "prefix_tokens": prefix_len, "repeats": args.repeats,
                  "steps": args.steps, "peer_steps": args.peer_steps,
                  "peaks_gflops": {name: peak / 1e9 for name, (peak, _) in peaks.items()},
                  "read_bandwidth_gb_s": bandwidth / 1e9,
                  "greedy_check": checks, "flop_check": flop_agreement, "results": results,
                  "raw_seconds": {"seqrl": {str(k): v for k, v in seqrl_times.items()},
                                  "peer": {str(k): v for k, v in peer_times.items()}}}
        Path(args.output).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
