"""Shared command-line behaviour: input errors print one clear line and exit with status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from seqrl.errors import SeqRLError


def run_cli(main: Callable[[], None]) -> None:
    """Run ``main``; a :class:`SeqRLError` becomes ``error: <message>`` on stderr and exit code 2
    instead of a traceback. Anything else is a bug and keeps its traceback."""
    try:
        main()
    except SeqRLError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
