"""Gradient updates per second of seqrl's CQL, IQL and BCQ against d3rlpy, and against the FLOP bound.

Both sides train on the same transitions (``--dataset``, default ``mujoco/hopper/medium-v0`` from
``MINARI_DATASETS_PATH``, default ``../shared/datasets/minari`` beside the repository) with the same hyperparameters (seqrl's
config defaults, given to d3rlpy field by field: batch size, learning rates, hidden sizes, critics,
sampled actions, tau, gamma; CQL with a fixed conservative weight on both sides), the same thread count
and the same machine, in one run. An update includes drawing its batch:

- ``seqrl``: the training loop's pieces for the registered algorithm (``benchmarks/common.py``):
  ``TransitionSampler.sample`` -> device -> ``training_step``.
- ``d3rlpy``: ``benchmarks/d3rlpy_peer.py`` run with ``--d3rlpy-python`` (d3rlpy pins gymnasium 1.0,
  so it lives in its own virtual environment): ``algo.update(dataset.sample_transition_batch(...))``.

FLOP bound: the matmul FLOPs of one seqrl update (forward and backward, counted by
``torch.utils.flop_counter.FlopCounterMode``) against the matmul peak measured in the same run with the
same threads; updates/s at 100% would be ``peak / FLOPs``.

``--mixed-precision`` is seqrl's ``train.py --mixed_precision``: by default ``auto``, bf16 autocast on CPUs with
native bf16 (AMX-BF16 or AVX512-BF16; weights, optimizer and losses stay float32), where the peak is then measured
as a bf16 matmul, and float32 elsewhere; ``no`` forces float32. ``--compile`` times seqrl's algorithm under
``torch.compile`` (``train.py --compile true``; its compilation happens in the untimed warm-up). d3rlpy has
no mixed precision, so its side stays float32 and its bound column is then against the bf16 peak too.

Set up the peer once (``PEER_SETUP``): ``python -m venv .venv-d3rlpy && .venv-d3rlpy/bin/pip install torch==2.13.0
d3rlpy 'gymnasium[mujoco]==1.0.0'``.

Usage: ``python benchmarks/bench_value_speed.py [--algos cql iql bcq] [--steps 200] [--repeats 3]
[--threads 1] [--mixed-precision auto|no|bf16] [--compile] [--d3rlpy-python .venv-d3rlpy/bin/python]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import DEFAULT_MINARI_PATH, SeqrlTrainer, matmul_peak

HERE = Path(__file__).resolve().parent
PEER_SETUP = ("python -m venv .venv-d3rlpy && .venv-d3rlpy/bin/pip install torch==2.13.0 d3rlpy "
              "'gymnasium[mujoco]==1.0.0'")


def export_transitions(dataset, path: Path) -> None:
    """The dataset's steps as D4RL-style arrays for the peer (episodes stay contiguous)."""
    columns = dataset.with_format("numpy")
    np.savez(path, observations=np.asarray(columns["observations"], np.float32),
             actions=np.asarray(columns["actions"], np.float32), rewards=np.asarray(columns["rewards"], np.float32),
             terminals=np.asarray(columns["terminations"], np.float32),
             timeouts=np.asarray(columns["truncations"], np.float32))


def update_flops(trainer: SeqrlTrainer) -> float:
    """Matmul FLOPs of one seqrl update (forward + backward; the optimizer's elementwise work is not counted).
    Counted on the eager module: compiling under the counter's global module hooks would make
    ``torch.compile`` warn that they fire twice, and the compiled update does the same matmuls."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer.step(10_000, eager=True)
    return float(counter.get_total_flops())


def seqrl_rates(trainer: SeqrlTrainer, warmup: int, steps: int, repeats: int) -> list[float]:
    for step in range(warmup):
        trainer.step(step)
    rates, step = [], warmup
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(steps):
            trainer.step(step)
            step += 1
        rates.append(steps / (time.perf_counter() - began))
    return rates


def peer_hparams(config) -> str:
    """seqrl's algorithm config as the JSON ``d3rlpy_peer.py`` reads (its plain-valued fields)."""
    plain = (int, float, list, bool, str)
    return json.dumps({k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, plain)})


def require_peer(python: str) -> None:
    """Exit with the set-up command when d3rlpy's interpreter is missing."""
    if not Path(python).exists():
        raise SystemExit(f"no d3rlpy interpreter at {python}; set it up with: {PEER_SETUP} (or pass --d3rlpy-python)")


def thread_env(threads: int) -> dict:
    """The environment for a subprocess limited to ``threads`` OpenMP/MKL threads."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def d3rlpy_rates(python: str, data: Path, name: str, config, args) -> dict:
    command = [python, str(HERE / "d3rlpy_peer.py"), str(data), name, peer_hparams(config), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True, env=thread_env(args.threads))
    if result.returncode != 0:
        raise SystemExit(f"d3rlpy side failed for {name}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mujoco/hopper/medium-v0")
    parser.add_argument("--algos", nargs="+", default=["cql", "iql", "bcq"])
    parser.add_argument("--steps", type=int, default=200, help="timed updates per repeat")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--d3rlpy-python", default=os.environ.get("D3RLPY_PYTHON", ".venv-d3rlpy/bin/python"))
    parser.add_argument("--peak-sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--mixed-precision", choices=["auto", "no", "bf16"], default="auto",
                        help="seqrl's autocast, as train.py --mixed_precision (default auto: bf16 on CPUs with native "
                             "bf16, else float32); d3rlpy has none and stays float32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the seqrl algorithm (train.py --compile true)")
    args = parser.parse_args()
    require_peer(args.d3rlpy_python)

    from seqrl import registry
    from seqrl.data.sources import load_dataset
    from seqrl.training.setup import resolve_precision

    args.mixed_precision = resolve_precision(args.mixed_precision) or os.environ["ACCELERATE_MIXED_PRECISION"]

    torch.set_num_threads(args.threads)
    os.environ.setdefault("MINARI_DATASETS_PATH", DEFAULT_MINARI_PATH)
    dataset = load_dataset(args.dataset)
    device = torch.device("cpu")
    precision = "bfloat16" if args.mixed_precision == "bf16" else "float32"
    peak, peak_size = matmul_peak(args.peak_sizes, 5, device, getattr(torch, precision))
    print(f"{args.dataset}: {dataset.num_rows:,} steps; {args.threads} threads; {args.steps} updates x {args.repeats} "
          f"repeats per side (after {args.warmup}), median; seqrl in {precision}, d3rlpy in float32; {precision} "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s at {peak_size}{'; seqrl compiled' if args.compile else ''}")
    print(f"{'algo':>5} {'seqrl upd/s':>12} {'d3rlpy upd/s':>13} {'ratio':>7} {'GFLOP/upd':>10} {'bound upd/s':>12} "
          f"{'seqrl % of bound':>17} {'d3rlpy % of bound':>18}")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "transitions.npz"
        export_transitions(dataset, data)
        for name in args.algos:
            config = registry.get(name).config()
            if args.compile:  # each algorithm compiles afresh, as in its own train.py process (the networks'
                torch._dynamo.reset()  # shared code would otherwise be recompiled for dynamic shapes)
            trainer = SeqrlTrainer(name, config, dataset, Path(tmp) / name, args.compile, args.mixed_precision)
            ours = statistics.median(seqrl_rates(trainer, args.warmup, args.steps, args.repeats))
            flops = update_flops(trainer)
            peer = d3rlpy_rates(args.d3rlpy_python, data, name, config, args)
            theirs = statistics.median(peer["updates_per_s"])
            bound = peak / flops
            print(f"{name:>5} {ours:12.1f} {theirs:13.1f} {ours / theirs:6.2f}x {flops / 1e9:10.3f} {bound:12.1f} "
                  f"{100 * ours / bound:16.1f}% {100 * theirs / bound:17.1f}%", flush=True)
    print(f"peer: d3rlpy {peer['d3rlpy']} ({args.d3rlpy_python}); python {sys.version.split()[0]}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
