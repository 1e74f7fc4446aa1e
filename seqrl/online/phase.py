"""The online phase of the one training loop: act, store whole episodes, update, repeat.

After the offline steps (or straight from ``--init_from``), :func:`run_online` alternates rounds of
collection and gradient updates on the same Accelerator, model, optimizer and schedule:

- value heads (``data_shape == "transition"``): a round is one step of the vector env (``num_envs``
  env steps), followed by ``updates_per_step`` updates per env step (CORL, d3rlpy's ``fit_online``);
- sequence models (ODT): a round collects ``episodes_per_round`` whole episodes, then makes
  ``updates_per_round`` updates (the Online Decision Transformer's schedule).

Finished episodes enter the replay buffer (:mod:`seqrl.online.replay`) and the sampler is rebuilt, so
every update draws with the offline code. Under several processes each runs its own envs and buffer,
gradients are averaged by DDP as offline, and the phase stops for all at the first round boundary where
the env steps summed over processes reach ``env_steps``.

Checkpoints (every ``checkpoint_every`` env steps and at the end) end the episodes in progress as
truncated, store them, and save the online state beside Accelerate's: every online episode of each
process (``online/process-<i>.npz``, the schema's columns) and its counters. Resuming rebuilds the buffer
from the offline data and those episodes and restarts the envs with the seeds an uninterrupted run
would use next, so no transition is lost or repeated.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seqrl.envs import check_spaces, env_spaces, resolve_env
from seqrl.errors import SeqRLError
from seqrl.logs import progress_kwargs
from seqrl.online.collector import OnlineCollector
from seqrl.online.config import OnlineConfig
from seqrl.online.replay import Replay

ONLINE_FOLDER = "online"
HISTORY_FILE = "online_returns.json"


class OnlineConfigError(SeqRLError):
    pass


@dataclass
class OnlineCounters:
    """What one process has done in the online phase (saved in every checkpoint)."""

    env_steps: int = 0
    next_episode: int = 0
    updates: int = 0
    total_env_steps: int = 0  # over all processes, at the last round boundary
    seconds: float = 0.0  # wall time of collection and updates (no checkpoints or evaluations)
    done: bool = False
    history: dict = field(default_factory=lambda: {"episodes": [], "evaluations": []})  # main process


def online_env(cfg: OnlineConfig, metadata) -> tuple[str, dict]:
    """The env id and kwargs of the online phase: given ones, else the dataset's."""
    if cfg.env_id:
        return cfg.env_id, dict(cfg.env_kwargs)
    if not metadata.env_id:
        raise OnlineConfigError(
            f"--online.env_steps needs an environment, and the dataset '{metadata.dataset_id}' names none; pass "
            "--online.env_id ID (and --online.env_kwargs '{...}' if it takes arguments), or --data.env_id ID to give "
            "the data its env (then also used for evaluation).")
    kwargs = {}
    if metadata.env_spec:
        from gymnasium.envs.registration import EnvSpec

        kwargs = dict(EnvSpec.from_json(metadata.env_spec).kwargs)
    return metadata.env_id, {**kwargs, **cfg.env_kwargs}


def check_online(entry, cfg: OnlineConfig, metadata) -> OnlineConfig:
    """Fail before any training when the online settings cannot work; returns them with the algorithm's defaults."""
    from seqrl.registry import ALGORITHMS

    if cfg.env_steps < 0:
        raise OnlineConfigError(f"--online.env_steps must be >= 0, got {cfg.env_steps}.")
    if not entry.algorithm.supports_online:
        able = sorted(name for name, e in ALGORITHMS.items() if e.algorithm.supports_online)
        hint = " (a dt policy is fine-tuned online with --algo odt --init_from RUN)" if entry.name == "dt" else ""
        raise OnlineConfigError(f"--algo {entry.name} cannot be fine-tuned online{hint}. Algorithms that can: "
                                f"{', '.join(able)}.")
    cfg = cfg.resolved(entry.algorithm.online_defaults)
    if not 0.0 <= cfg.mix_ratio < 1.0:
        raise OnlineConfigError(f"--online.mix_ratio must be in [0, 1), got {cfg.mix_ratio}.")
    if cfg.updates_per_step < 0 or cfg.updates_per_round < 0 or cfg.episodes_per_round < 1 or cfg.num_envs < 1:
        raise OnlineConfigError("--online.updates_per_step/updates_per_round must be >= 0, episodes_per_round and "
                                "num_envs >= 1.")
    env_id, env_kwargs = online_env(cfg, metadata)
    # Make the env once now, so that a wrong id, kwargs or spaces fail before the offline steps, not after.
    obs_space, action_space = env_spaces(resolve_env(env_id, env_kwargs))
    check_spaces(env_id, obs_space, action_space, f"the dataset '{metadata.dataset_id}'", metadata.obs_dim,
                 metadata.is_discrete, metadata.action_dim)
    return cfg


def _online_target(policy, cfg: OnlineConfig) -> float | None:
    if not policy.uses_target_return:
        return None
    if cfg.online_rtg is not None:
        return float(cfg.online_rtg)
    best = max(policy.config.target_returns)
    return 2.0 * best if best > 0 else 0.0


def run_online(ctx, cfg: OnlineConfig, step: int, saved: dict | None, checkpoint: Path | None) -> int:
    """Run (or continue) the online phase; returns the gradient step it ended at.

    ``ctx`` carries the loop's pieces (accelerator, algorithm, unwrapped, optimizer, scheduler, dataset,
    metadata, run config, run folder, logging); ``saved`` is the checkpoint's ``online`` state, if any."""
    from seqrl.training.checkpoint import save_checkpoint
    from seqrl.training.loop import accumulate, reduce_logs, training_step

    accelerator, unwrapped, run = ctx.accelerator, ctx.unwrapped, ctx.cfg
    process, processes = accelerator.process_index, accelerator.num_processes
    counters = OnlineCounters()
    if saved is not None and checkpoint is not None:
        _check_processes(checkpoint, processes)
        counters = _load_counters(checkpoint, process)
    env_id, env_kwargs = online_env(cfg, ctx.metadata)
    policy_config = unwrapped.policy().config
    if cfg.env_id or policy_config.env_id is None:
        # The policy records the env it was fine-tuned in (--online.env_id's, when given: data from Hopper-v4
        # fine-tuned in Hopper-v5 is evaluated in Hopper-v5), so the evaluations during the phase, the final
        # one and the saved folder use it without --env_id. Set before the early return below, so a resumed
        # run that had finished saves it too.
        policy_config.env_id, policy_config.env_kwargs = env_id, dict(env_kwargs)
    if counters.done:  # finished before a kill: write what the end of the phase writes, if it had not yet
        if accelerator.is_main_process and not (Path(ctx.run_dir) / HISTORY_FILE).is_file():
            _finish(ctx, cfg, counters, checkpoint, env_id, processes, resumed=True)
        accelerator.wait_for_everyone()
        return step
    replay = Replay(unwrapped, ctx.dataset, cfg, run.seed, process, processes)
    if counters.env_steps:
        replay.add(_load_episodes(checkpoint, process))
    policy = unwrapped.policy()
    collector = OnlineCollector(policy, env_id, env_kwargs, cfg.num_envs, run.seed, process, cfg.exploration,
                                cfg.noise_std, cfg.random_steps, _online_target(policy, cfg), counters.next_episode,
                                counters.env_steps)
    trajectory = unwrapped.data_shape == "trajectory"
    recent = deque((r for _, r, _ in counters.history["episodes"][-cfg.log_episodes:]), maxlen=cfg.log_episodes)
    running: dict[str, tuple[torch.Tensor, int]] = {}
    progress = tqdm(total=cfg.env_steps, initial=min(counters.total_env_steps, cfg.env_steps), unit="env step",
                    desc=f"online {ctx.name} {env_id}", dynamic_ncols=True,
                    **progress_kwargs(accelerator.is_local_main_process))

    def checkpoint_now(final: bool) -> None:
        replay.add(collector.cut())
        counters.next_episode, counters.env_steps, counters.done = collector.next_episode, collector.env_steps, final
        save_checkpoint(accelerator, ctx.algorithm, ctx.run_dir, step, run.keep_checkpoints,
                        state={"online": {"total_env_steps": counters.total_env_steps, "done": final}},
                        write_extra=lambda folder: _write_online(folder, process, counters, replay))

    def record(episodes: list[dict]) -> None:
        replay.add(episodes)
        for episode in episodes:
            ret, length = float(np.sum(episode["rewards"], dtype=np.float64)), len(episode["rewards"])
            recent.append(ret)
            position = collector.env_steps * processes
            counters.history["episodes"].append([position, ret, length])
            accelerator.log({"online/episode_return": ret, "online/episode_length": length}, step=position)

    try:
        while counters.total_env_steps < cfg.env_steps:
            # Collect one round (the policy acts in eval mode: no dropout; it trains again below).
            round_began = time.perf_counter()
            before = collector.env_steps
            policy.eval()
            with torch.no_grad(), accelerator.autocast():
                if trajectory:
                    finished = 0
                    while finished < cfg.episodes_per_round:
                        episodes = collector.step()
                        record(episodes)
                        finished += len(episodes)
                else:
                    record(collector.step())
            unwrapped.train()
            if trajectory:
                updates = cfg.updates_per_round
            else:  # fractional rates carry over: floor(n * rate) updates after n env steps in all
                updates = math.floor(collector.env_steps * cfg.updates_per_step) - math.floor(before * cfg.updates_per_step)
            for _ in range(updates):
                batch = {k: torch.from_numpy(np.ascontiguousarray(v)).to(accelerator.device, non_blocking=True)
                         for k, v in replay.sample(step).items()}
                output = training_step(accelerator, ctx.algorithm, unwrapped, ctx.optimizer, ctx.scheduler, batch, step,
                                       run.algo.grad_clip)
                accumulate(running, output.metrics)
                step += 1
                counters.updates += 1
                if step % run.log_every == 0:
                    accelerator.log(reduce_logs(accelerator, running), step=step)
                    running = {}

            counters.seconds += time.perf_counter() - round_began
            previous_total = counters.total_env_steps
            counters.total_env_steps = _sum_over_processes(accelerator, collector.env_steps)
            progress.update(min(counters.total_env_steps, cfg.env_steps) - min(previous_total, cfg.env_steps))
            progress.set_postfix(episodes=replay.collected.num_episodes, ret=f"{np.mean(recent):.4g}" if recent else "-",
                                 updates=counters.updates, refresh=False)  # drawn at tqdm's next refresh
            if counters.total_env_steps >= cfg.env_steps:
                break
            if _crossed(previous_total, counters.total_env_steps, cfg.eval_every):
                _evaluate(ctx, policy, counters)
            if _crossed(previous_total, counters.total_env_steps, cfg.checkpoint_every):
                checkpoint_now(final=False)
        checkpoint_now(final=True)
    finally:
        progress.close()
        collector.close()
    if accelerator.is_main_process:
        _finish(ctx, cfg, counters, checkpoint=_latest(ctx.run_dir), env_id=env_id, processes=processes)
    accelerator.wait_for_everyone()
    return step


def _crossed(before: int, after: int, every: int) -> bool:
    return bool(every) and after // every > before // every


def _sum_over_processes(accelerator, value: int) -> int:
    if accelerator.num_processes == 1:
        return int(value)
    total = accelerator.reduce(torch.tensor([value], dtype=torch.long, device=accelerator.device), reduction="sum")
    return int(total.item())


def _evaluate(ctx, policy, counters: OnlineCounters) -> None:
    """Evaluate a copy of the policy (the collector's acting state stays as it is) on the main process."""
    accelerator = ctx.accelerator
    if accelerator.is_main_process:
        from seqrl.evaluation.rollout import evaluate_policy

        frozen = copy.deepcopy(policy)
        eval_cfg = ctx.cfg.eval
        report = evaluate_policy(frozen, target_returns=eval_cfg.target_returns or None, episodes=eval_cfg.episodes,
                                 num_envs=eval_cfg.num_envs, seed=eval_cfg.seed, progress=False)
        best = max(report["results"], key=lambda r: r["return_mean"])
        point = {"env_step": counters.total_env_steps, "return_mean": best["return_mean"],
                 "return_std": best["return_std"], "normalized_score_mean": best["normalized_score_mean"],
                 "target_return": best["target_return"]}
        counters.history["evaluations"].append(point)
        logs = {"online/eval_return": best["return_mean"]}
        if best["normalized_score_mean"] is not None:
            logs["online/eval_normalized_score"] = best["normalized_score_mean"]
        accelerator.log(logs, step=counters.total_env_steps)
    accelerator.wait_for_everyone()


def _write_online(folder: Path, process: int, counters: OnlineCounters, replay: Replay) -> None:
    target = folder / ONLINE_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    np.savez(target / f"process-{process}.npz", **replay.collected.columns())
    (target / f"process-{process}.json").write_text(json.dumps(counters.__dict__))


def _check_processes(checkpoint: Path, processes: int) -> None:
    """Each process continues its own envs and buffer shard, so a resumed online phase needs as many processes
    as wrote the checkpoint; with fewer, some shards' episodes would be dropped."""
    written = len(list((Path(checkpoint) / ONLINE_FOLDER).glob("process-*.json")))
    if written and written != processes:
        raise OnlineConfigError(
            f"{checkpoint} holds the online state of {written} processes, and this run has {processes}; resume with "
            f"the same number (accelerate launch --num_processes {written}), so that every process's envs and "
            "episodes continue.")


def _load_counters(checkpoint: Path, process: int) -> OnlineCounters:
    path = Path(checkpoint) / ONLINE_FOLDER / f"process-{process}.json"
    if not path.is_file():  # the checkpoint at the hand-over from offline training
        return OnlineCounters()
    return OnlineCounters(**json.loads(path.read_text()))


def _load_episodes(checkpoint: Path, process: int) -> list[dict[str, np.ndarray]]:
    """The online episodes a process had collected at ``checkpoint``, in order."""
    from seqrl.data.schema import episode_boundaries

    with np.load(Path(checkpoint) / ONLINE_FOLDER / f"process-{process}.npz") as saved:
        columns = {name: saved[name] for name in saved.files}
    starts, lengths = episode_boundaries(columns["episode_index"])
    return [{name: values[s:s + n] for name, values in columns.items() if name != "episode_index"}
            for s, n in zip(starts, lengths)]


def _latest(run_dir: Path) -> Path:
    from seqrl.training.checkpoint import latest_checkpoint

    return latest_checkpoint(run_dir)


def online_episodes(checkpoint: Path) -> dict[str, np.ndarray]:
    """Every process's online episodes in a checkpoint, as one set of schema columns (process order)."""
    from seqrl.online.buffer import EpisodeStore

    files = sorted((Path(checkpoint) / ONLINE_FOLDER).glob("process-*.npz"), key=lambda p: int(p.stem.split("-")[1]))
    store = None
    for index in range(len(files)):
        for episode in _load_episodes(checkpoint, index):
            if store is None:
                store = EpisodeStore({k: v[:1] for k, v in episode.items()} | {"episode_index": np.zeros(1, np.int64)})
            store.add(episode)
    return {} if store is None else store.columns()


def _finish(ctx, cfg: OnlineConfig, counters: OnlineCounters, checkpoint: Path, env_id: str, processes: int,
            resumed: bool = False) -> None:
    """Main process: the plot of returns, the collected episodes as a dataset if asked, and last the returns
    history (its presence tells a resumed run that the phase's outputs are complete)."""
    from seqrl.data.collect import DatasetExistsError
    from seqrl.online.plots import plot_online_returns

    run_dir = Path(ctx.run_dir)
    plot_online_returns(counters.history, run_dir / "online_returns.png", f"{env_id}: online fine-tuning ({ctx.name})")
    if cfg.save_dataset:
        from seqrl.online.export import save_online_dataset

        try:
            save_online_dataset(online_episodes(checkpoint), ctx.metadata, cfg.save_dataset, env_id, ctx.name)
        except DatasetExistsError:
            if not resumed:
                raise  # a resumed run finds the dataset its first attempt wrote before it was killed
    summary = {"env_steps": counters.total_env_steps, "updates": counters.updates, "seconds": counters.seconds,
               "processes": processes}
    tmp = run_dir / f".{HISTORY_FILE}.tmp"
    tmp.write_text(json.dumps({**counters.history, "summary": summary}))
    tmp.replace(run_dir / HISTORY_FILE)
