"""Checkpoint pushes in the background (``--push_every_checkpoint``): the step loop hands a checkpoint over and
goes on; one worker thread uploads them in order. Each policy is copied aside first, because the loop prunes
old checkpoints while an upload may still read them. A failed upload warns and training goes on; ``close()``
waits for the uploads still queued, so the final push comes after them."""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from seqrl.logs import get_logger

log = get_logger(__name__)


class CheckpointPusher:
    def __init__(self, repo_id: str, private: bool = False):
        self.repo_id, self.private = repo_id, private
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqrl-push")
        self._futures: list[Future] = []

    def __call__(self, checkpoint: Path, step: int) -> None:
        """Queue the policy of ``checkpoint`` for upload; returns at once."""
        staging = Path(tempfile.mkdtemp(prefix=f"seqrl-push-{step}-"))
        shutil.copytree(Path(checkpoint) / "policy", staging / "policy")
        self._futures.append(self._executor.submit(self._push, staging, step))

    def _push(self, staging: Path, step: int) -> None:
        from seqrl.hub import HubError, push_policy

        try:
            push_policy(staging / "policy", self.repo_id, private=self.private,
                        commit_message=f"Checkpoint at step {step}")
        except HubError as error:
            log.warning(f"warning: could not push the checkpoint at step {step}: {error}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def close(self) -> None:
        """Wait for the queued uploads."""
        self._executor.shutdown(wait=True)
        for future in self._futures:
            future.result()
