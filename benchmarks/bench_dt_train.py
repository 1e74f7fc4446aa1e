"""End-to-end Decision Transformer training throughput: seqrl against transformers + the HF blog collator.

Both sides train a Decision Transformer of the paper's MuJoCo size (K = 20, hidden 128, 3 layers,
1 head, MLP 512, ReLU, dropout 0.1, tanh actions) with batch 64, AdamW (lr 1e-4, weight decay 1e-4,
linear warm-up) and gradient clipping at 0.25, in the same process, on the same data, with the same
number of threads. A step includes drawing the batch (sampling is part of what is measured):

- ``seqrl``: the real pieces of ``seqrl.training.loop.train``: the ``dt`` algorithm from the registry
  with ``DTConfig()`` defaults, ``algorithm.make_sampler`` (``TrajectorySampler``),
  ``build_optimizer``, ``make_accelerator`` and ``accelerator.prepare`` as in the loop (optionally
  ``torch.compile``), then per step ``sampler.sample(step)`` -> ``torch.from_numpy(...).to(device)``
  -> ``training_step`` (and the loop's metric accumulation).
- ``peer``: ``transformers.DecisionTransformerModel`` with the blog's ``TrainableDT.forward`` loss
  (MSE over positions with ``attention_mask > 0``), fed by a re-implementation of the blog's
  ``DecisionTransformerGymDataCollator``: a ``datasets.Dataset`` with one row per episode (lists of
  observations/actions/rewards/dones), ``np.random.choice`` of episodes weighted by length, then per
  sample ``self.dataset[int(ind)]``, slicing, a Python ``_discount_cumsum`` loop over the rest of the
  episode, left padding with ``np.concatenate`` (actions with -10), state normalisation, and
  ``torch.from_numpy(np.concatenate(...))``; then forward, backward, ``clip_grad_norm_``, AdamW step.
  Two things favour the peer: its per-episode dataset is in memory (the blog's comes memory-mapped
  from the Hub cache), and it skips the Trainer's DataLoader, which in the blog also fetches (and
  decodes) ``batch_size`` whole episodes per batch that the collator then ignores.

Each repeat times ``--steps`` steps of each side (after ``--warmup`` untimed steps per side), in
alternating order; the median samples/s (batch * steps / s) and the ratio seqrl/peer are printed.
With ``--breakdown`` the samplers alone (seqrl ``TrajectorySampler.sample`` and the peer collator)
are timed too, so the share of sampling in a step is visible.

FLOP utilisation: model FLOPs per training step are counted analytically (see ``model_flops``):
forward = 2 * (matmul weights) * tokens for every Linear/Conv1D of the blocks, the embeddings and
the action head, plus 2 * 2 * N^2 * H per layer and sequence for attention (QK^T and AV over all
N = 3K tokens); training = 3 x forward. Only work the loss needs is counted: in the last block the
return and action tokens give keys and values but no outputs (seqrl skips the rest; the peer computes
it). The same count is used for both sides, so the peer's unused work (that, and its state/return
heads) is not credited. The achieved FLOP/s are
compared with a float32 matmul peak measured in the same run with the same threads (median time of
repeated square matmuls of each ``--peak-sizes``; the best size counts; measured before and after
the training repeats, the higher of the two is used). When seqrl trains under bf16 autocast, the bf16
matmul peak of the same sizes is measured too and seqrl's fraction of it printed.

Data: ``--dataset`` (default ``mujoco/hopper/medium-v0``, read from ``MINARI_DATASETS_PATH``, default
``../shared/datasets/minari`` beside the repository) through ``seqrl.data.sources.load_dataset``; if it cannot be
loaded, or with ``--dataset synthetic``, a synthetic Hopper-shaped dataset (obs 11, act 3,
1000-step episodes, ``--synthetic-steps`` steps).

Usage: ``python benchmarks/bench_dt_train.py [--dataset mujoco/hopper/medium-v0] [--steps 50]
[--warmup 10] [--repeats 5] [--threads N] [--compile] [--mixed-precision auto|no|bf16] [--no-breakdown]
[--peak-sizes 1024 2048]``
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import DEFAULT_MINARI_PATH, SeqrlTrainer, matmul_peak, synchronize

OBS_DIM, ACT_DIM = 11, 3  # Hopper
CONTEXT_LEN, HIDDEN, N_LAYER, N_HEAD, N_INNER, BATCH_SIZE = 20, 128, 3, 1, 512, 64
LEARNING_RATE, WEIGHT_DECAY, GRAD_CLIP, WARMUP_STEPS = 1e-4, 1e-4, 0.25, 10_000
RETURN_SCALE = 1000.0  # the blog divides returns-to-go by 1000 (seqrl: return_scale = 1e-3)


# ---------------------------------------------------------------- data


def synthetic_hopper_dataset(num_steps: int, episode_len: int = 1000, seed: int = 0):
    """A seqrl dataset (with metadata) shaped like Hopper: obs 11, act 3 in [-1, 1], full episodes."""
    import gymnasium as gym
    from minari.serialization import serialize_space

    from seqrl.data.schema import DatasetMetadata, build_dataset

    rng = np.random.default_rng(seed)
    num_steps = max(episode_len, num_steps // episode_len * episode_len)
    episodes = num_steps // episode_len
    timestep = np.tile(np.arange(episode_len), episodes)
    last = timestep == episode_len - 1
    observations = rng.standard_normal((num_steps + 1, OBS_DIM), dtype=np.float32)
    columns = {
        "episode_index": np.repeat(np.arange(episodes), episode_len), "timestep": timestep,
        "observations": observations[:-1], "next_observations": observations[1:],
        "actions": rng.uniform(-1, 1, (num_steps, ACT_DIM)).astype(np.float32),
        "rewards": rng.uniform(0, 4, num_steps).astype(np.float32),
        "terminations": np.zeros(num_steps, bool), "truncations": last,
    }
    metadata = DatasetMetadata(
        dataset_id=f"synthetic/hopper-{num_steps}", env_spec=gym.spec("Hopper-v5").to_json(),
        observation_space=serialize_space(gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float64)),
        action_space=serialize_space(gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)),
    )
    return build_dataset(columns, metadata)


def load_data(name: str, synthetic_steps: int):
    """(seqrl dataset, description): ``name`` through ``load_dataset``, else a synthetic one."""
    from seqrl.data.sources import load_dataset

    if name != "synthetic":
        os.environ.setdefault("MINARI_DATASETS_PATH", DEFAULT_MINARI_PATH)
        try:
            return load_dataset(name), f"{name} (seqrl.data.sources.load_dataset)"
        except Exception as error:  # noqa: BLE001 - any failure falls back to the synthetic data
            print(f"could not load {name!r} ({type(error).__name__}: {error}); using synthetic data")
    dataset = synthetic_hopper_dataset(synthetic_steps)
    return dataset, f"synthetic Hopper-shaped, {dataset.num_rows:,} steps in 1000-step episodes"


def episode_rows_dataset(dataset):
    """The peer's data: a ``datasets.Dataset`` with one row per episode, as on the Hub for the blog
    (``edbeeching/decision_transformer_gym_replay``): lists of observations, actions, rewards, dones."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    from seqrl.data.schema import dataset_to_numpy, episode_boundaries

    cols = dataset_to_numpy(dataset, ("episode_index", "observations", "actions", "rewards", "terminations"))
    starts, _ = episode_boundaries(cols["episode_index"])
    num_steps = len(cols["rewards"])
    offsets = pa.array(np.append(starts, num_steps).astype(np.int32))  # [E + 1]

    def per_episode(values: pa.Array) -> pa.Array:
        return pa.ListArray.from_arrays(offsets, values)

    def vectors(values: np.ndarray) -> pa.Array:  # [N, d] -> N variable-size lists, as the Hub stores them
        width = values.shape[1]
        return pa.ListArray.from_arrays(pa.array(np.arange(0, num_steps * width + 1, width, dtype=np.int32)),
                                        pa.array(np.ascontiguousarray(values, np.float32).ravel()))

    table = pa.table({
        "observations": per_episode(vectors(cols["observations"])),
        "actions": per_episode(vectors(cols["actions"])),
        "rewards": per_episode(pa.array(cols["rewards"].astype(np.float32))),
        "dones": per_episode(pa.array(cols["terminations"].astype(bool))),
    })
    states = cols["observations"].astype(np.float64)
    return datasets.Dataset(InMemoryTable(table)), states.mean(axis=0), states.std(axis=0) + 1e-6


# ---------------------------------------------------------------- the peer (HF blog)


class BlogDTCollator:
    """The HF Decision Transformer blog's ``DecisionTransformerGymDataCollator``, sample by sample.

    The blog computes ``state_mean``/``state_std`` in ``__init__`` by stacking every observation from
    Python lists; they are passed in here (same values, and construction is not timed).
    """

    def __init__(self, dataset, state_mean: np.ndarray, state_std: np.ndarray, max_len: int = CONTEXT_LEN,
                 max_ep_len: int = 1000, scale: float = RETURN_SCALE):
        import pyarrow.compute as pc

        self.dataset = dataset
        self.act_dim = len(dataset[0]["actions"][0])
        self.state_dim = len(dataset[0]["observations"][0])
        self.max_len, self.max_ep_len, self.scale = max_len, max_ep_len, scale
        self.state_mean, self.state_std = state_mean, state_std
        traj_lens = pc.list_value_length(dataset.data.table.column("rewards")).to_numpy()
        self.n_traj = len(traj_lens)
        self.p_sample = traj_lens / sum(traj_lens)

    def _discount_cumsum(self, x, gamma):
        discount_cumsum = np.zeros_like(x)
        discount_cumsum[-1] = x[-1]
        for t in reversed(range(x.shape[0] - 1)):
            discount_cumsum[t] = x[t] + gamma * discount_cumsum[t + 1]
        return discount_cumsum

    def __call__(self, batch_size: int) -> dict[str, torch.Tensor]:
        batch_inds = np.random.choice(np.arange(self.n_traj), size=batch_size, replace=True, p=self.p_sample)
        s, a, r, d, rtg, timesteps, mask = [], [], [], [], [], [], []
        for ind in batch_inds:
            feature = self.dataset[int(ind)]
            si = random.randint(0, len(feature["rewards"]) - 1)
            s.append(np.array(feature["observations"][si : si + self.max_len]).reshape(1, -1, self.state_dim))
            a.append(np.array(feature["actions"][si : si + self.max_len]).reshape(1, -1, self.act_dim))
            r.append(np.array(feature["rewards"][si : si + self.max_len]).reshape(1, -1, 1))
            d.append(np.array(feature["dones"][si : si + self.max_len]).reshape(1, -1))
            timesteps.append(np.arange(si, si + s[-1].shape[1]).reshape(1, -1))
            timesteps[-1][timesteps[-1] >= self.max_ep_len] = self.max_ep_len - 1  # padding cutoff
            rtg.append(self._discount_cumsum(np.array(feature["rewards"][si:]), gamma=1.0)[: s[-1].shape[1]].reshape(1, -1, 1))
            if rtg[-1].shape[1] < s[-1].shape[1]:
                rtg[-1] = np.concatenate([rtg[-1], np.zeros((1, 1, 1))], axis=1)
            # padding and state + reward normalization
            tlen = s[-1].shape[1]
            s[-1] = np.concatenate([np.zeros((1, self.max_len - tlen, self.state_dim)), s[-1]], axis=1)
            s[-1] = (s[-1] - self.state_mean) / self.state_std
            a[-1] = np.concatenate([np.ones((1, self.max_len - tlen, self.act_dim)) * -10.0, a[-1]], axis=1)
            r[-1] = np.concatenate([np.zeros((1, self.max_len - tlen, 1)), r[-1]], axis=1)
            d[-1] = np.concatenate([np.ones((1, self.max_len - tlen)) * 2, d[-1]], axis=1)
            rtg[-1] = np.concatenate([np.zeros((1, self.max_len - tlen, 1)), rtg[-1]], axis=1) / self.scale
            timesteps[-1] = np.concatenate([np.zeros((1, self.max_len - tlen)), timesteps[-1]], axis=1)
            mask.append(np.concatenate([np.zeros((1, self.max_len - tlen)), np.ones((1, tlen))], axis=1))
        return {
            "states": torch.from_numpy(np.concatenate(s, axis=0)).float(),
            "actions": torch.from_numpy(np.concatenate(a, axis=0)).float(),
            "rewards": torch.from_numpy(np.concatenate(r, axis=0)).float(),
            "returns_to_go": torch.from_numpy(np.concatenate(rtg, axis=0)).float(),
            "timesteps": torch.from_numpy(np.concatenate(timesteps, axis=0)).long(),
            "attention_mask": torch.from_numpy(np.concatenate(mask, axis=0)).float(),
        }


def make_peer_model(state_dim: int, act_dim: int):
    """The blog's ``TrainableDT``: ``DecisionTransformerModel`` plus the masked MSE loss."""
    from transformers import DecisionTransformerConfig, DecisionTransformerModel

    class TrainableDT(DecisionTransformerModel):
        def forward(self, **kwargs):
            output = super().forward(**kwargs)
            action_preds = output[1]
            action_targets = kwargs["actions"]
            attention_mask = kwargs["attention_mask"]
            act_dim = action_preds.shape[2]
            action_preds = action_preds.reshape(-1, act_dim)[attention_mask.reshape(-1) > 0]
            action_targets = action_targets.reshape(-1, act_dim)[attention_mask.reshape(-1) > 0]
            loss = torch.mean((action_preds - action_targets) ** 2)
            return {"loss": loss}

    config = DecisionTransformerConfig(
        state_dim=state_dim, act_dim=act_dim, hidden_size=HIDDEN, n_layer=N_LAYER, n_head=N_HEAD,
        n_inner=N_INNER, activation_function="relu", n_positions=1024, max_ep_len=1000, action_tanh=True,
    )
    return TrainableDT(config)


class PeerTrainer:
    def __init__(self, episode_dataset, state_mean, state_std, device: torch.device):
        self.collator = BlogDTCollator(episode_dataset, state_mean, state_std)
        self.model = make_peer_model(self.collator.state_dim, self.collator.act_dim).to(device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min(1.0, (s + 1) / WARMUP_STEPS))
        self.device = device

    def sample(self, step: int):
        return self.collator(BATCH_SIZE)

    def step(self, step: int) -> None:
        batch = {k: v.to(self.device) for k, v in self.collator(BATCH_SIZE).items()}
        loss = self.model(**batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)


# ---------------------------------------------------------------- seqrl


def model_flops(batch: int = BATCH_SIZE, context: int = CONTEXT_LEN, hidden: int = HIDDEN, n_layer: int = N_LAYER,
                n_inner: int = N_INNER, state_dim: int = OBS_DIM, act_dim: int = ACT_DIM) -> float:
    """Useful model FLOPs of one training step (3 x forward) of a DT on ``batch`` windows of ``context`` steps.

    Useful means needed for the loss: the loss reads only the last block's outputs at the state
    tokens, so in the last block the other tokens count only for their keys and values.
    """
    tokens = 3 * context  # (R, s, a) per step
    query_weights = hidden * hidden + hidden * hidden + 2 * hidden * n_inner  # q of c_attn, attn c_proj, MLP
    key_value_weights = 2 * hidden * hidden  # k and v of c_attn
    forward = 2 * (n_layer - 1) * (query_weights + key_value_weights) * tokens
    forward += 2 * (query_weights * context + key_value_weights * tokens)  # last block: state-token queries
    forward += (n_layer - 1) * 2 * 2 * tokens**2 * hidden  # QK^T and attention-weighted V
    forward += 2 * 2 * context * tokens * hidden  # the same in the last block, for the state-token queries
    forward += 2 * context * hidden * (1 + state_dim + act_dim)  # return, state and action embeddings
    forward += 2 * context * hidden * act_dim  # action head on the state tokens
    return 3.0 * forward * batch


def timed(run, first_step: int, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` calls of ``run(step)``."""
    synchronize(device)
    began = time.perf_counter()
    for step in range(first_step, first_step + steps):
        run(step)
    synchronize(device)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mujoco/hopper/medium-v0",
                        help="dataset for seqrl.data.sources.load_dataset, or 'synthetic'")
    parser.add_argument("--synthetic-steps", type=int, default=1_000_000, help="size of the synthetic fallback")
    parser.add_argument("--steps", type=int, default=50, help="timed training steps per side and repeat")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per side before timing")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads (both sides)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the seqrl algorithm (as TrainConfig.compile)")
    parser.add_argument("--mixed-precision", default="auto", choices=("no", "auto", "bf16", "fp16"),
                        help="seqrl's TrainConfig.mixed_precision (default auto, as train.py: bf16 on CPUs with native "
                             "bf16); the peer always runs float32; 'no' keeps both float32")
    parser.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the samplers alone")
    parser.add_argument("--peak-sizes", type=int, nargs="+", default=[1024, 2048], help="square matmul sizes for the peak")
    parser.add_argument("--peak-repeats", type=int, default=10, help="matmuls per size for the peak")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()  # the peer's config warns about GPT-2 token ids it never uses
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)

    began = time.perf_counter()
    dataset, description = load_data(args.dataset, args.synthetic_steps)
    episode_dataset, state_mean, state_std = episode_rows_dataset(dataset)
    prepared_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as run_dir:
        from seqrl.algos.dt import DTConfig

        config = DTConfig()  # paper defaults
        assert (config.context_len, config.hidden_size, config.n_layer, config.n_head, config.batch_size) == (
            CONTEXT_LEN, HIDDEN, N_LAYER, N_HEAD, BATCH_SIZE)
        seqrl_side = SeqrlTrainer("dt", config, dataset, Path(run_dir), args.compile, args.mixed_precision)
        device = seqrl_side.accelerator.device
        peer_side = PeerTrainer(episode_dataset, state_mean, state_std, device)
        sides = {"seqrl": seqrl_side, "peer": peer_side}
        peak_before = matmul_peak(args.peak_sizes, args.peak_repeats, device)

        compile_began = time.perf_counter()
        for side in sides.values():
            timed(side.step, 0, args.warmup, device)
        warmup_s = time.perf_counter() - compile_began
        step_rates: dict[str, list[float]] = {name: [] for name in sides}
        sample_rates: dict[str, list[float]] = {name: [] for name in sides}
        next_step = args.warmup
        for repeat in range(args.repeats):
            order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for name in order:
                step_rates[name].append(BATCH_SIZE * args.steps / timed(sides[name].step, next_step, args.steps, device))
                if args.breakdown:
                    sample_rates[name].append(BATCH_SIZE * args.steps / timed(sides[name].sample, next_step, args.steps, device))
            next_step += args.steps
        peak_after = matmul_peak(args.peak_sizes, args.peak_repeats, device)
        bf16 = seqrl_side.accelerator.mixed_precision == "bf16"
        bf16_peak = matmul_peak(args.peak_sizes, args.peak_repeats, device, torch.bfloat16) if bf16 else None

    seqrl_params = sum(p.numel() for p in seqrl_side.unwrapped.parameters())
    peer_params = sum(p.numel() for p in peer_side.model.parameters())
    rates = {name: statistics.median(values) for name, values in step_rates.items()}
    flops = model_flops(state_dim=peer_side.collator.state_dim, act_dim=peer_side.collator.act_dim)
    peak, peak_size = max(peak_before, peak_after)

    print(f"data: {description}; {dataset.num_rows:,} steps, {episode_dataset.num_rows:,} episodes "
          f"(prepared in {prepared_s:.1f} s)")
    print(f"device {device}, {args.threads} threads; batch {BATCH_SIZE}, K={CONTEXT_LEN}, hidden {HIDDEN}, "
          f"{N_LAYER} layers, {N_HEAD} head; parameters: seqrl {seqrl_params:,}, peer {peer_params:,}"
          f"{'; seqrl compiled' if args.compile else ''}; seqrl mixed precision: {seqrl_side.accelerator.mixed_precision}")
    print(f"median of {args.repeats} repeats of {args.steps} steps per side "
          f"({args.warmup} warm-up steps per side excluded, {warmup_s:.1f} s), sampling included:")
    print(f"  peer  (transformers DecisionTransformerModel + blog collator): {rates['peer']:10,.0f} samples/s")
    print(f"  seqrl (TrajectorySampler + DT + training_step)               : {rates['seqrl']:10,.0f} samples/s")
    print(f"  ratio seqrl/peer                                             : {rates['seqrl'] / rates['peer']:10.2f}x")
    if args.breakdown:
        sampling = {name: statistics.median(values) for name, values in sample_rates.items()}
        print("  sampling alone (same repeats):")
        for name, label in (("peer", "peer blog collator       "), ("seqrl", "seqrl TrajectorySampler  ")):
            share = rates[name] / sampling[name]  # time share of sampling in a training step
            print(f"    {label}: {sampling[name]:12,.0f} samples/s (~{100 * share:.0f}% of a training step)")
    print(f"model FLOPs per training step (3 x forward, batch {BATCH_SIZE}): {flops / 1e9:.2f} GFLOP")
    print(f"float32 matmul peak ({args.threads} threads, best of sizes {args.peak_sizes}): {peak / 1e9:.1f} GFLOP/s "
          f"at {peak_size} (before {peak_before[0] / 1e9:.1f}, after {peak_after[0] / 1e9:.1f})")
    for name in ("peer", "seqrl"):
        achieved = flops * rates[name] / BATCH_SIZE
        print(f"  FLOP utilisation {name:5}: {achieved / 1e9:8.2f} GFLOP/s = {100 * achieved / peak:5.1f}% of the peak")
    if bf16_peak:  # seqrl trained under bf16 autocast: its bound is the bf16 matmul peak
        achieved = flops * rates["seqrl"] / BATCH_SIZE
        print(f"bf16 matmul peak (same sizes): {bf16_peak[0] / 1e9:.1f} GFLOP/s at {bf16_peak[1]}; seqrl reaches "
              f"{100 * achieved / bf16_peak[0]:.1f}% of it")


if __name__ == "__main__":
    main()
