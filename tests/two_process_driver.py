"""Started by torchrun with 2 gloo CPU processes (tests/test_registry_conformance.py): runs the training command
(train.py's `main`) once per job of a JSON file ``{name: argv}``, one after another in one process group, so
the suite pays the two processes' start-up once rather than once per registered algorithm.

Each job's stdout goes to ``<root>/<name>/stdout-rank<r>.txt``, and ``done-rank<r>`` marks a finished job; an
exception goes to ``error-rank<r>.txt`` and the next job still runs. Between jobs the process group stays up (each run's ``end_training`` would
destroy it) and Accelerate's singletons are reset, as for a new command.

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 two_process_driver.py JOBS ROOT
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from pathlib import Path
from unittest import mock

import torch.distributed as dist
from accelerate.state import AcceleratorState, GradientState, PartialState

from seqrl.training.command import main


def run_jobs(jobs: dict[str, list[str]], root: Path) -> None:
    rank = int(os.environ["RANK"])
    for name, argv in jobs.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"stdout-rank{rank}.txt", "w") as out, contextlib.redirect_stdout(out), \
                mock.patch.object(dist, "destroy_process_group"):
            try:
                main(argv)
                (folder / f"done-rank{rank}").touch()
            except BaseException:  # noqa: BLE001 - recorded for the job's test, which fails with it
                (folder / f"error-rank{rank}.txt").write_text(traceback.format_exc())
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        PartialState._reset_state()
        if dist.is_initialized():
            dist.barrier()  # both ranks start the next job together
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    run_jobs(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
