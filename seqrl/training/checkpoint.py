"""Atomic checkpoints: written to a hidden temporary folder, then renamed into place.

A checkpoint folder ``checkpoints/step-00001000`` exists only once it is complete (the rename is the
commit), so killing the run at any moment never leaves a half checkpoint behind; leftover temporary
folders are ignored and cleared on the next save. Each holds Accelerate's state (weights, optimizers,
schedulers, every process's RNG states), ``trainer_state.json`` with the step, and ``policy/``, a
ready-to-evaluate policy folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from accelerate import Accelerator

STEP_DIR = re.compile(r"^step-(\d+)$")
STATE_FILE = "trainer_state.json"


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return None
    complete = [d for d in root.iterdir() if STEP_DIR.match(d.name) and (d / STATE_FILE).is_file()]
    return max(complete, key=lambda d: int(STEP_DIR.match(d.name).group(1)), default=None)


def save_checkpoint(accelerator: Accelerator, algorithm, run_dir: Path, step: int, keep: int,
                    state: dict | None = None, write_extra: Callable[[Path], None] | None = None) -> Path:
    """Write the state at ``step`` (all processes call this; only the main one renames and prunes).

    ``state`` joins ``trainer_state.json``; ``write_extra(folder)`` runs on every process before the
    checkpoint is committed, to add files of its own (the online phase's episodes and counters)."""
    root = checkpoint_root(run_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))  # each process adds only its own RNG state file
    if write_extra is not None:
        write_extra(tmp)
        accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(algorithm).policy().save_pretrained(tmp / "policy")
        (tmp / STATE_FILE).write_text(json.dumps({**(state or {}), "step": step}))
        _fsync_tree(tmp)
        if final.exists():
            # A checkpoint at the same step already exists (the online phase checkpoints by env steps, and may
            # make no update in between). Deleting it in place would show a half-deleted checkpoint, still with
            # its trainer_state.json, to a resume after a kill; renamed aside first, it is never seen partly gone.
            aside = root / f".old-step-{step:08d}"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(final, aside)
        os.replace(tmp, final)
        _prune(root, keep)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, checkpoint: Path) -> int:
    """Restore the state saved in ``checkpoint`` and return its step."""
    accelerator.load_state(str(checkpoint))
    return int(trainer_state(checkpoint)["step"])


def trainer_state(checkpoint: Path) -> dict:
    """The ``trainer_state.json`` of a checkpoint (``step`` and, in the online phase, ``online``)."""
    return json.loads((Path(checkpoint) / STATE_FILE).read_text())


def _prune(root: Path, keep: int) -> None:
    steps = sorted((d for d in root.iterdir() if STEP_DIR.match(d.name)), key=lambda d: d.name)
    for old in steps[: max(0, len(steps) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in [*root.glob(".tmp-step-*"), *root.glob(".old-step-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush file contents to disk before the rename makes the checkpoint visible."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
