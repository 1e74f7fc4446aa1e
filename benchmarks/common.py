"""Pieces the benchmarks share: seqrl's training step as the loop runs it, timing on a device, the
measured float32 matmul peak, and where the shared datasets are."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch

# ../shared/datasets/minari beside the repository (the project's Hopper sets); MINARI_DATASETS_PATH wins.
DEFAULT_MINARI_PATH = str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "minari")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(sizes: list[int], repeats: int, device: torch.device,
                dtype: torch.dtype = torch.float32) -> tuple[float, int]:
    """(best median FLOP/s of an ``n x n`` matmul in ``dtype`` over ``sizes``, the size that reached it)."""
    best, best_size = 0.0, 0
    for n in sizes:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        out = torch.empty(n, n, device=device, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up
        synchronize(device)
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            torch.mm(a, b, out=out)
            synchronize(device)
            times.append(time.perf_counter() - began)
        rate = 2.0 * n**3 / statistics.median(times)
        if rate > best:
            best, best_size = rate, n
    return best, best_size


class SeqrlTrainer:
    """The pieces of ``seqrl.training.loop.train`` for registered algorithm ``name``, assembled the same
    way: the sampler, ``build_optimizer``, ``make_accelerator``, ``accelerator.prepare`` (optionally
    ``torch.compile``), then per step ``sampler.sample(step)`` -> device -> ``training_step`` and the
    loop's metric accumulation."""

    def __init__(self, name: str, config, dataset, run_dir: Path, compile_model: bool = False,
                 mixed_precision: str = "no"):
        from seqrl import registry
        from seqrl.data.schema import get_metadata
        from seqrl.training.memory import keep_freed_memory
        from seqrl.training.setup import build_optimizer, make_accelerator

        keep_freed_memory()  # as train() does
        entry = registry.get(name)
        self.config = config
        algorithm = entry.algorithm(self.config, get_metadata(dataset))
        self.sampler = algorithm.make_sampler(dataset, seed=0)
        self.accelerator = make_accelerator(SimpleNamespace(mixed_precision=mixed_precision), run_dir,
                                            entry.algorithm.find_unused_parameters)
        algorithm, self.optimizer, self.scheduler = self.accelerator.prepare(algorithm,
                                                                            *build_optimizer(algorithm, self.config))
        self.eager = algorithm
        if compile_model:
            algorithm = torch.compile(algorithm)
        self.algorithm = algorithm
        self.unwrapped = self.accelerator.unwrap_model(algorithm)
        self.unwrapped.train()
        self.running: dict[str, torch.Tensor] = {}

    def sample(self, step: int):
        return self.sampler.sample(step)

    def step(self, step: int, eager: bool = False) -> None:
        """One training step; ``eager`` runs the module as prepared, before any ``torch.compile``."""
        from seqrl.training.loop import training_step

        device = self.accelerator.device
        batch = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in self.sampler.sample(step).items()}
        algorithm = self.eager if eager else self.algorithm
        output = training_step(self.accelerator, algorithm, self.unwrapped, self.optimizer, self.scheduler, batch, step,
                               self.config.grad_clip)
        for key, value in output.metrics.items():  # what the loop does with the metrics between logs
            self.running[key] = self.running.get(key, 0.0) + value.detach().float()
