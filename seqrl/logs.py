"""seqrl's messages go through the ``seqrl`` logger, so ``--log_level`` (or ``logging`` in a program) sets how much
is said. The commands print it to stdout as plain lines, the way they always read; a program that configures
logging itself gets the records like any library's."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("seqrl")


def get_logger(name: str) -> logging.Logger:
    """The logger of a seqrl module (a child of ``seqrl``)."""
    return logging.getLogger(name)


class _StdoutHandler(logging.StreamHandler):
    """Writes to the ``sys.stdout`` of the moment (a notebook or a test may replace it), as ``print`` does."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def set_log_level(level: str) -> None:
    """Show seqrl's messages at ``level`` ("debug", "info", "warning", "error") and above, as plain lines on stdout."""
    if not any(isinstance(handler, _StdoutHandler) for handler in logger.handlers):
        logger.addHandler(_StdoutHandler())
        logger.propagate = False
    logger.setLevel(level.upper())


def progress_kwargs(show: bool) -> dict:
    """``disable=`` for tqdm: hidden where ``show`` is false (other processes); elsewhere left out, because tqdm
    reads TQDM_DISABLE=1 from the environment only when ``disable`` is not passed."""
    return {} if show else {"disable": True}
