"""Shared command-line behaviour: input errors print one clear line and exit with status 2."""

from __future__ import annotations

import argparse
import json
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


def json_object(text: str) -> dict:
    """An argparse type for keyword arguments on the command line: a JSON object such as '{"g": 5.0}'."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}); write e.g. '{{\"g\": 5.0}}'") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"g\": 5.0}}', got {text!r}")
    return value
