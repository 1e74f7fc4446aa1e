"""Pieces the training loop assembles: the Accelerator, optimizers and schedules, compatibility
checks between an algorithm and a dataset, and the atomic save of the final policy."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

from seqrl.algos.base import AlgoConfig, Algorithm
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.policy import SeqRLPolicy
from seqrl.registry import ALGORITHMS, Entry

POLICY_FILES = ("model.safetensors", "config.json")  # weights first: a config never points at missing weights


class IncompatibleDatasetError(SeqRLError):
    pass


def make_accelerator(cfg, run_dir: Path, find_unused_parameters: bool = False) -> Accelerator:
    """The run's Accelerator, logging to ``cfg.report_to``. ``mixed_precision: auto`` defers to Accelerate's
    launcher settings where the run was launched with them. ``find_unused_parameters`` is for algorithms whose loss skips some
    parameters on some steps (``Algorithm.find_unused_parameters``); DDP needs to know."""
    _ask_once_for_lomo()
    report_to = getattr(cfg, "report_to", "tensorboard")
    return Accelerator(
        # Without an accelerator device, say so: Accelerate then runs torchrun / `accelerate launch`
        # processes as one gloo group (MULTI_CPU) instead of as independent copies.
        cpu=not torch.accelerator.is_available(),
        mixed_precision=resolve_precision(cfg.mixed_precision),
        # The warm-up counts gradient steps. Accelerate's default steps a prepared schedule once per
        # process per step (made for data loaders whose length shrinks with the process count); here
        # every process draws a full batch per step, so that would shorten the warm-up N-fold.
        step_scheduler_with_optimizer=False,
        log_with=None if report_to == "none" else report_to,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )


def resolve_precision(precision: str) -> str | None:
    """The ``mixed_precision`` to give Accelerate. "auto" defers to Accelerate's launcher settings
    (``accelerate launch --mixed_precision``, ``accelerate config``, which reach the process as
    ACCELERATE_MIXED_PRECISION) where the run was launched with them (None: Accelerate reads them), else picks bf16
    autocast where the hardware runs bf16 natively (GPUs that support it; CPUs with AMX-BF16 or AVX512-BF16, see
    :func:`cpu_bf16_instructions`) and float32 elsewhere. On Hopper, bf16 training scored within seed noise of
    float32 for IQL, TD3+BC, BC and DT (README, "bf16 against float32"). A precision the user names wins."""
    return _choose_precision(precision)[0]


def _choose_precision(precision: str) -> tuple[str | None, str]:
    """:func:`resolve_precision`'s choice and the reason for it, in words, for :func:`describe_precision`."""
    if precision != "auto":
        return precision, f"--mixed_precision {precision}"
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None, "the setting of accelerate launch / accelerate config"
    if torch.accelerator.is_available():
        device = torch.accelerator.current_accelerator().type
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16", f"{device} supports bf16"
        return "no", f"{device} lacks bf16"
    instructions = cpu_bf16_instructions()
    if instructions:
        return "bf16", f"this CPU has {instructions}"
    return "no", "this CPU has no native bf16 (AMX-BF16 or AVX512-BF16)"


def cpu_bf16_instructions() -> str | None:
    """The CPU's native bf16 matmul instructions ("AMX-BF16" or "AVX512-BF16"), or None where bf16 would be
    emulated (oneDNN then converts to float32 around every GEMM, slower than float32 itself)."""
    if getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)() and \
            torch._C._cpu._get_cpu_capability().get("amx_bf16", False):
        return "AMX-BF16"
    if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512-BF16"
    return None


def describe_precision(requested: str, accelerator: Accelerator) -> str:
    """One line for the start of a run: the precision it trains in, and why when ``auto`` chose it."""
    used = {"no": "float32", "bf16": "bf16 autocast (float32 weights and optimizer state)",
            "fp16": "fp16 autocast with loss scaling"}.get(accelerator.mixed_precision, accelerator.mixed_precision)
    why = _choose_precision(requested)[1]
    if requested != "auto":
        return f"Precision: {used} ({why})."
    other = "--mixed_precision no for float32" if accelerator.mixed_precision == "bf16" else "--mixed_precision bf16 to force it"
    return f"Precision: {used}, chosen by --mixed_precision auto: {why}; {other}."


def _ask_once_for_lomo() -> None:
    """Accelerate's optimizer wrapper asks importlib whether ``lomo_optim`` is installed twice in every
    ``step()`` (0.1-0.25 ms a step on a CPU core, a few percent of IQL's step). The answer cannot change
    during a run, so the wrapper gets a cached copy of the same check."""
    import accelerate.optimizer

    check = accelerate.optimizer.is_lomo_available
    if not hasattr(check, "cache_info"):
        accelerate.optimizer.is_lomo_available = functools.cache(check)


def build_optimizer(algorithm: Algorithm, cfg: AlgoConfig, total_steps: int | None = None
                    ) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """One fused AdamW over all of the algorithm's named parameter groups, and its learning-rate schedule from
    ``transformers.get_scheduler`` (see :func:`build_schedule`).

    Each named group of ``optimizer_groups`` (actor, critic, value, ...) becomes torch param groups
    tagged with its ``name``, keeping its own ``lr``, ``weight_decay`` (and ``betas``, where it sets them).
    AdamW updates every parameter from its own gradient and moments, so this steps exactly as one
    optimizer per name would, but behind one Accelerate wrapper and one schedule (on one CPU core, IQL's
    three wrapped optimizers with their schedules took 0.79 ms a step; the fused AdamW step itself takes
    0.29 ms). DeepSpeed also takes only one optimizer.
    """
    groups = [{**group, "name": name} for name, named in algorithm.optimizer_groups().items() for group in named]
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
    return optimizer, build_schedule(optimizer, cfg, total_steps)


# lr_schedule -> the transformers scheduler: a linear warm-up over warmup_steps, then the named shape.
SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine_with_min_lr"}


def build_schedule(optimizer: torch.optim.Optimizer, cfg: AlgoConfig, total_steps: int | None
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """One learning-rate multiplier per parameter group, from transformers' schedules (``get_scheduler``): warm-up
    from 0 over ``warmup_steps``, then constant, linear decay to 0 at ``total_steps``, or cosine decay to
    ``min_lr_ratio`` of the rate at ``total_steps`` (the reference Trajectory Transformer's).

    The shape is ``cfg.lr_schedule`` unless a group names its own (``lr_schedule`` and ``min_lr_ratio`` keys in
    ``optimizer_groups``: IQL's actor decays with a cosine to 0, as its reference). Without ``total_steps`` there is
    nothing to decay towards, so the rate stays constant after the warm-up. Past ``total_steps`` (the online phase
    after offline training) every group runs at its base rate again: a fine-tuning phase that kept a decayed rate
    of 0 would not learn."""
    constant = _schedule_factor("constant", cfg.warmup_steps, None, 0.0)
    factors = []
    for group in optimizer.param_groups:
        name = group.get("lr_schedule") or cfg.lr_schedule
        decay = _schedule_factor(name, cfg.warmup_steps, total_steps, group.get("min_lr_ratio", cfg.min_lr_ratio))
        factors.append(functools.partial(_offline_then_base, decay, constant, total_steps or 0))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def _schedule_factor(name: str, warmup_steps: int, total_steps: int | None, min_lr_ratio: float):
    """transformers' multiplier function (step -> factor) of one named schedule."""
    from transformers import get_scheduler

    kind = SCHEDULES[name] if total_steps else SCHEDULES["constant"]
    specific = {"min_lr_rate": min_lr_ratio} if kind == "cosine_with_min_lr" else None
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)  # get_scheduler wants an optimizer
    return get_scheduler(kind, probe, num_warmup_steps=warmup_steps, num_training_steps=total_steps,
                         scheduler_specific_kwargs=specific).lr_lambdas[0]


def _offline_then_base(decay, constant, total_steps: int, step: int) -> float:
    # Without total_steps, decay is the constant schedule already, so either branch gives the same factor.
    return decay(step) if step < total_steps else constant(step)


def params_by_name(optimizer) -> dict[str, list[torch.nn.Parameter]]:
    """The optimizer's parameters per named group (``build_optimizer``'s ``name`` tags)."""
    named: dict[str, list[torch.nn.Parameter]] = {}
    for group in optimizer.param_groups:
        named.setdefault(group["name"], []).extend(group["params"])
    return named


def check_compatible(entry: Entry, metadata: DatasetMetadata, source: str) -> None:
    """Fail before training when the algorithm cannot handle the dataset's action space."""
    algorithm = entry.algorithm
    kind = "discrete" if metadata.is_discrete else "continuous"
    if (metadata.is_discrete and algorithm.supports_discrete) or (not metadata.is_discrete and algorithm.supports_continuous):
        return
    wanted = "supports_discrete" if metadata.is_discrete else "supports_continuous"
    alternatives = sorted(name for name, e in ALGORITHMS.items() if getattr(e.algorithm, wanted))
    raise IncompatibleDatasetError(
        f"--algo {entry.name} needs {'continuous' if kind == 'discrete' else 'discrete'} actions, but "
        f"'{source}' has {kind} actions ({metadata.action_space_obj}). Algorithms for {kind} actions: "
        f"{', '.join(alternatives)}."
    )


def initialize_from(algorithm: Algorithm, source: str, log=print) -> None:
    """Start ``algorithm`` from the trained policy at ``source`` (folder or Hub id), then restart its
    target networks as copies of the loaded ones.

    From a run folder whose latest checkpoint holds a module of exactly this algorithm's layout (same
    algorithm and sizes, or CQL's for Cal-QL), every trained module comes from it: critics, value
    networks, temperatures, not only the acting policy. Otherwise only the policy's weights are loaded
    and the rest starts fresh (said in the log)."""
    from seqrl.registry import load_policy

    policy = algorithm.policy()
    pretrained = load_policy(source)
    if type(pretrained) is not type(policy):
        raise IncompatibleDatasetError(
            f"--init_from {source} holds a {type(pretrained).__name__}, but this run trains a "
            f"{type(policy).__name__}; pass --algo {pretrained.config.algo} or another policy."
        )
    own = policy.state_dict()
    mismatched = [k for k, v in pretrained.state_dict().items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise IncompatibleDatasetError(
            f"--init_from {source}: weight shapes differ from this run's model ({', '.join(mismatched[:5])}); "
            "use the same model sizes (e.g. its train_config.yaml) and a dataset with the same spaces."
        )
    algorithm.load_policy_weights(pretrained)
    state = _checkpoint_state(Path(source))
    expected = algorithm.state_dict()
    if state is not None and state.keys() == expected.keys() and all(state[k].shape == expected[k].shape for k in state):
        algorithm.load_state_dict(state)
        log(f"--init_from {source}: loaded every trained module of its latest checkpoint (policy, critics, ...).")
    elif algorithm.targets or len(expected) > len(own):
        acting = {id(p) for p in policy.parameters()}
        fresh = sorted({name.split(".")[0] for name, p in algorithm.named_parameters() if id(p) not in acting})
        log(f"--init_from {source}: loaded the policy only; {', '.join(fresh) or 'the other modules'} start fresh. "
            "Pass a run folder of the same algorithm to carry them over.")
    algorithm.sync_targets()


def _checkpoint_state(source: Path) -> dict[str, torch.Tensor] | None:
    """The algorithm weights in the latest checkpoint of the run folder ``source`` (None if there is none)."""
    from safetensors.torch import load_file

    from seqrl.training.checkpoint import latest_checkpoint

    if not source.is_dir():
        return None
    checkpoint = latest_checkpoint(source)
    weights = None if checkpoint is None else checkpoint / "model.safetensors"
    return load_file(str(weights)) if weights is not None and weights.is_file() else None


def save_policy(policy: SeqRLPolicy, run_dir: Path) -> None:
    """Write the policy into ``run_dir`` without ever leaving a half-written file there."""
    tmp = run_dir / ".policy-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    for name in POLICY_FILES:
        os.replace(tmp / name, run_dir / name)
    shutil.rmtree(tmp, ignore_errors=True)
