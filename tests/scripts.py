"""Running train.py, evaluate.py and the collector in the test process, as their command lines do.

In-process runs skip a Python start and the imports of torch and transformers (seconds each) while going
through the same ``main`` and the same :func:`seqrl.cli.run_cli` that turns input errors into one
``error:`` line and exit status 2."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from seqrl.cli import run_cli

from .conftest import REPO


def load_script(name: str) -> ModuleType:
    """``train.py`` or ``evaluate.py`` of the repository as a module."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(main, argv: list[str], capfd) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``main(argv)`` run as its command line runs it. ``capfd`` captures at the
    file descriptors, so output written by C libraries (HDF5) is seen too."""
    capfd.readouterr()
    try:
        run_cli(lambda: main(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    out, err = capfd.readouterr()
    return code, out, err
