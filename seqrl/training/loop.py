"""The one training loop, on Accelerate, for every algorithm in the registry.

Per step: sample on the host, copy the batch to the device, compute the named losses under
autocast, backpropagate their sum once (each reaches only its own named parameter group), clip each
group when gradients sync, step the one optimizer, ``after_step``.
Metrics stay on the device until a log step, so the step itself never waits on ``.item()``.
``accelerate launch`` / ``torchrun`` run the same function on several processes (DDP); every
process samples its own stream, and only the main process writes files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import draccus
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from seqrl.data.schema import get_metadata
from seqrl.logs import get_logger, progress_kwargs
from seqrl.online.phase import check_online
from seqrl.registry import entry_for_config
from seqrl.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    trainer_state,
)
from seqrl.training.config import TrainConfig
from seqrl.training.data import load_training_data
from seqrl.training.memory import keep_freed_memory
from seqrl.training.setup import (
    build_optimizer,
    check_compatible,
    describe_precision,
    initialize_from,
    make_accelerator,
    params_by_name,
    save_policy,
)


log = get_logger(__name__)

# Settings of one invocation, not of the run: train_config.yaml leaves them out, so that a config downloaded
# from a model card neither pushes to that card's repo nor resumes someone else's checkpoint.
INVOCATION_FIELDS = {"push_to_hub": None, "private": False, "push_every_checkpoint": False, "resume": False,
                     "resume_from_checkpoint": None}


def train(cfg: TrainConfig, on_checkpoint: Callable[[Path, int], None] | None = None) -> Path:
    """Train ``cfg.algo`` on ``cfg.data`` for ``cfg.steps`` steps; returns the run folder.

    ``on_checkpoint(checkpoint_dir, step)`` runs on the main process after each checkpoint is
    complete (``train.py --push_to_hub ... --push_every_checkpoint`` queues its upload and goes on)."""
    entry = entry_for_config(cfg.algo)
    keep_freed_memory()  # large activations stay in the heap between steps instead of page-faulting back
    run_dir = Path(cfg.output_dir or f"runs/{entry.name}-{Path(cfg.data.dataset).name}")
    accelerator = make_accelerator(cfg, run_dir, entry.algorithm.find_unused_parameters)
    log.debug(f"Accelerator: {accelerator.num_processes} process(es) on {accelerator.device}, mixed precision "
              f"{accelerator.mixed_precision}, trackers: {cfg.report_to}")
    _main_log(accelerator)(describe_precision(cfg.mixed_precision, accelerator))
    set_seed(cfg.seed)  # identical initial weights on every process
    with accelerator.main_process_first():  # the main process generates or caches the data once
        dataset = load_training_data(cfg, _main_log(accelerator))
    metadata = get_metadata(dataset)
    check_compatible(entry, metadata, cfg.data.dataset)
    online = check_online(entry, cfg.online, metadata) if cfg.online.env_steps else None  # before any training
    algorithm = entry.algorithm(cfg.algo, metadata)
    if cfg.init_from and not (cfg.resume and latest_checkpoint(run_dir)):
        initialize_from(algorithm, cfg.init_from, _main_log(accelerator))
    sampler = algorithm.make_sampler(dataset, cfg.seed, accelerator.process_index, accelerator.num_processes)
    algorithm, optimizer, scheduler = accelerator.prepare(algorithm, *build_optimizer(algorithm, cfg.algo, cfg.steps))
    if cfg.compile:
        algorithm = torch.compile(algorithm)

    start, saved_online = 0, None
    if cfg.resume_from_checkpoint:
        checkpoint = Path(cfg.resume_from_checkpoint)
    else:
        checkpoint = latest_checkpoint(run_dir) if cfg.resume else None
    if checkpoint is not None:
        start = load_checkpoint(accelerator, checkpoint)  # also restores every process's RNG states
        saved_online = trainer_state(checkpoint).get("online")
        where = f"env step {saved_online['total_env_steps']} of the online phase" if saved_online else f"step {start}"
        _main_log(accelerator)(f"Resuming from {checkpoint} at {where}.")
    else:
        if cfg.resume:
            _main_log(accelerator)(f"--resume: no complete checkpoint in {run_dir / 'checkpoints'}; starting at step 0.")
        set_seed(cfg.seed, device_specific=True)  # dropout differs per process
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(run_dir / "train_config.yaml", draccus.dump(dataclasses.replace(cfg, **INVOCATION_FIELDS)))
        _write_atomic(run_dir / "dataset_metadata.json", metadata.to_json())  # statistics for the model card
    accelerator.init_trackers("seqrl", config=_flat_hparams(cfg))

    unwrapped = accelerator.unwrap_model(algorithm)
    progress = tqdm(range(start, cfg.steps), initial=min(start, cfg.steps), total=cfg.steps, desc=f"train {entry.name}",
                    dynamic_ncols=True, **progress_kwargs(accelerator.is_local_main_process and start < cfg.steps))
    running: dict[str, tuple[torch.Tensor, int]] = {}
    for step in progress:
        batch = {k: torch.from_numpy(v).to(accelerator.device, non_blocking=True) for k, v in sampler.sample(step).items()}
        output = training_step(accelerator, algorithm, unwrapped, optimizer, scheduler, batch, step, cfg.algo.grad_clip)
        accumulate(running, output.metrics)

        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            logs = reduce_logs(accelerator, running)
            logs.update(_learning_rates(optimizer))
            accelerator.log(logs, step=done)
            progress.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if not k.startswith("lr/")})
            running = {}
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
            checkpoint = save_checkpoint(accelerator, algorithm, run_dir, done, cfg.keep_checkpoints)
            if on_checkpoint is not None and accelerator.is_main_process:
                on_checkpoint(checkpoint, done)
        if cfg.eval.every and done % cfg.eval.every == 0 and done < cfg.steps:
            _evaluate(accelerator, unwrapped.policy(), cfg, run_dir, done, final=False)

    progress.close()
    if start < cfg.steps:
        save_checkpoint(accelerator, algorithm, run_dir, cfg.steps, cfg.keep_checkpoints)
    step = max(start, cfg.steps)
    if online is not None:
        from seqrl.online.phase import run_online

        ctx = SimpleNamespace(accelerator=accelerator, algorithm=algorithm, unwrapped=unwrapped, optimizer=optimizer,
                              scheduler=scheduler, dataset=dataset, metadata=metadata, cfg=cfg, run_dir=run_dir,
                              name=entry.name)
        step = run_online(ctx, online, step, saved_online, checkpoint)
    if accelerator.is_main_process:
        save_policy(unwrapped.policy(), run_dir)
    if cfg.eval.final:
        _evaluate(accelerator, unwrapped.policy(), cfg, run_dir, step, final=True)
    # Free DDP's reducer before end_training() destroys the process group. Freed after it, the reducer
    # would own the group last and join gloo's worker threads while holding the GIL, which a worker still
    # releasing tensors needs: a 2-process TD3+BC run once hung at exit in exactly that join.
    del algorithm
    accelerator.free_memory()
    accelerator.end_training()
    return run_dir


def training_step(accelerator: Accelerator, algorithm, unwrapped, optimizer, scheduler,
                  batch: dict[str, torch.Tensor], step: int, grad_clip: float | None):
    """One gradient step of any algorithm: forward under autocast, one backward of the summed named
    losses (each reaches only its own named parameter group, and DDP allows one backward per
    forward), clip each named group's gradient norm when gradients sync, step, then ``after_step``."""
    with accelerator.accumulate(algorithm), accelerator.autocast():
        output = algorithm(batch, step)
        accelerator.backward(sum(output.losses().values()))
        if accelerator.sync_gradients and grad_clip:
            for params in params_by_name(optimizer).values():
                accelerator.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    unwrapped.after_step(step)
    return output


def _learning_rates(optimizer) -> dict[str, float]:
    """``lr/<name>`` of each named parameter group (its first torch group) for the logs."""
    rates: dict[str, float] = {}
    for group in optimizer.param_groups:
        rates.setdefault(f"lr/{group['name']}", group["lr"])
    return rates


def accumulate(running: dict[str, tuple[torch.Tensor, int]], metrics: dict[str, torch.Tensor]) -> None:
    """Add one step's metrics to the running (sum, count) of each: a metric an algorithm reports on only some
    steps (TD3+BC's delayed actor loss) is averaged over those steps only."""
    for key, value in metrics.items():
        total, count = running.get(key, (0.0, 0))
        running[key] = (total + value.detach().float(), count + 1)


def reduce_logs(accelerator: Accelerator, running: dict[str, tuple[torch.Tensor, int]]) -> dict[str, float]:
    """Mean of each metric over the steps since the last log that reported it, and over processes (one host
    sync)."""
    if not running:
        return {}
    names = sorted(running)
    values = accelerator.reduce(torch.stack([running[n][0] / running[n][1] for n in names]), reduction="mean")
    return {f"train/{n}": v for n, v in zip(names, values.tolist())}


def _evaluate(accelerator: Accelerator, policy, cfg: TrainConfig, run_dir: Path, step: int, final: bool) -> None:
    """Roll the policy out with the code evaluate.py uses (main process; the others wait). A policy whose data
    named no environment is not evaluated; the final call says how to evaluate it in one."""
    if not policy.config.env_id:
        if final:
            _main_log(accelerator)(f"Evaluation skipped: the dataset names no environment. Evaluate the policy in one with "
                              f"`python evaluate.py --policy {run_dir} --env_id ENV_ID`.")
        return
    if accelerator.is_main_process:
        from seqrl.evaluation.report import format_table, write_report
        from seqrl.evaluation.rollout import evaluate_policy

        targets = cfg.eval.target_returns or None
        results = evaluate_policy(policy, target_returns=targets, episodes=cfg.eval.episodes,
                                  num_envs=cfg.eval.num_envs, seed=cfg.eval.seed)
        accelerator.log({f"eval/return_target_{r['target_return']}": r["return_mean"] for r in results["results"]}, step=step)
        if final:
            write_report(results, run_dir / "eval_info.json")
            log.info(format_table(results))
            if cfg.eval.video:
                from seqrl.evaluation.video import record_videos

                for path in record_videos(policy, run_dir / "videos", targets, seed=cfg.eval.seed):
                    log.info(f"Recorded {path}")
    accelerator.wait_for_everyone()


def _main_log(accelerator: Accelerator) -> Callable[[str], None]:
    """``log.info`` on the main process only (the other processes have the same things to say)."""
    return log.info if accelerator.is_main_process else (lambda message: None)


def _flat_hparams(cfg: TrainConfig) -> dict:
    """Scalar hyperparameters for the trackers (TensorBoard shows only flat scalars)."""
    flat = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        elif isinstance(value, (int, float, str, bool)):
            flat[prefix[:-1]] = value
        elif value is not None:
            flat[prefix[:-1]] = json.dumps(value)

    walk("", draccus.encode(cfg))
    return flat


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
