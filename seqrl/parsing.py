"""One command-line parser per config dataclass, built by draccus, so that ``--help`` lists exactly the keys
the command takes.

draccus' own parser adds a ``--config_path`` option and, for every nested config, an option named after it
("Config file for algo") that does not take what its name suggests; both are dropped here, and a command adds
its own ``--config`` where it reads YAML files. Three conveniences keep the command lines users already type:
a bare boolean flag means true (``--resume`` as well as ``--resume true``), list fields named in ``lists`` take
several values (``--target_returns 100 200`` as well as draccus' ``'[100, 200]'``), and every value is decoded
by draccus from the dataclass types, so an invalid one fails as a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterable
from pathlib import Path

import draccus
from draccus.argparsing import ArgumentParser as DraccusParser
from draccus.help_formatter import SimpleHelpFormatter

from seqrl.errors import SeqRLError


class ConfigError(SeqRLError):
    """An unknown key or a value that does not fit its field."""


class HelpFormatter(SimpleHelpFormatter):
    """draccus' help layout, without the "(default: None)" it appends to fields whose default is None: their
    help says what leaving them unset does ("default: the policy's saved mode"), and None would contradict it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def precision_name(value) -> str:
    """A ``--mixed_precision`` value as written: draccus decodes the YAML in a bare ``no`` to false."""
    return "no" if str(value).lower() in ("false", "off") else str(value)


def config_parser(config_class: type, prog: str, description: str, lists: Iterable[str] = (),
                  extra: Iterable[tuple[list[str], dict]] = ()) -> argparse.ArgumentParser:
    """The argparse parser draccus builds for ``config_class``, with the options that are not config keys removed.

    ``lists``: list fields that take several values. ``extra``: ``(option strings, add_argument kwargs)`` of
    options that are not fields (``--config``, ``--algo NAME``), added to the same parser so --help shows them."""
    parser = DraccusParser(config_class, prog=prog, description=description, exit_on_error=False,
                           formatter_class=HelpFormatter).parser
    # draccus keeps one copy of a field per choice class in the help (each algorithm's group lists its own fields
    # and defaults), so every group's copies are edited, not only the live actions.
    shown = [action for group in parser._action_groups for action in group._group_actions]
    for action in shown:
        if action.dest == "config_path" or (action.help or "").startswith("Config file for"):
            _remove(parser, action)
    for action in {id(a): a for a in parser._actions + shown}.values():
        if action.type is bool:  # `--flag` alone means true
            action.nargs, action.const, action.metavar = "?", "true", "BOOL"
        if action.dest in lists:
            action.nargs = "+"
    for options, kwargs in extra:
        parser.add_argument(*options, **kwargs)
    return parser


def _remove(parser: argparse.ArgumentParser, action: argparse.Action) -> None:
    """argparse has no public way to drop an option; these are the three places that hold it."""
    if action in parser._actions:
        parser._remove_action(action)
    for option in action.option_strings:
        if parser._option_string_actions.get(option) is action:
            del parser._option_string_actions[option]
    for group in parser._action_groups:
        if action in group._group_actions:
            group._group_actions.remove(action)


def read_options(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, object]:
    """The options given in ``argv`` (``--help`` prints the help and exits), as raw strings keyed by dest;
    unknown options are a :class:`ConfigError`."""
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        raise SystemExit(0)
    for action in parser._actions:
        action.default = argparse.SUPPRESS  # only what was given; draccus fills in the defaults
        action.type = None  # raw strings: draccus decodes them from the field types
    try:
        namespace, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError as error:
        raise ConfigError(f"Invalid configuration (command line): {error}. Run `{parser.prog} --help` to list every "
                          "option.") from error
    if unknown:
        raise ConfigError(f"Invalid configuration (command line): unrecognized arguments: {' '.join(unknown)}. "
                          f"Run `{parser.prog} --help` to list every option.")
    return vars(namespace)


def decode(config_class: type, options: dict[str, object], config_path: str | None = None, prog: str = "") -> object:
    """Build ``config_class`` from the YAML file ``config_path`` (if any) and ``options`` on top, with draccus."""
    args = []
    for key, value in options.items():
        if isinstance(value, list):  # several values of a list field, or one value in draccus' '[a, b]' syntax
            value = value[0] if len(value) == 1 and str(value[0]).startswith("[") else f"[{', '.join(map(str, value))}]"
        args.append(f"--{key}={value}")
    try:
        return draccus.parse(config_class, config_path=config_path, args=args, exit_on_error=False)
    except (draccus.utils.DecodingError, draccus.utils.DraccusException, draccus.ParsingError) as error:
        source = f"{config_path} / command line" if config_path else "command line"
        raise ConfigError(f"Invalid configuration ({source}): {error}. Run `{prog} --help` to list every key.") from error


def field_names(config_class: type, prefix: str = "") -> set[str]:
    """Every dotted key of ``config_class``, nested configs and (for a draccus choice registry) every registered
    choice's fields included: what ``--help`` must list."""
    names: set[str] = set()
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        kind = hints[field.name]
        classes = [kind] if dataclasses.is_dataclass(kind) else []
        if isinstance(kind, type) and issubclass(kind, draccus.ChoiceRegistry):
            names.add(f"{prefix}{field.name}.type")
            classes = [kind.get_choice_class(name) for name in kind.get_known_choices()]
        if classes:
            for cls in classes:
                names |= field_names(cls, f"{prefix}{field.name}.")
        else:
            names.add(f"{prefix}{field.name}")
    return names


def existing_file(path: str | None, flag: str, hint: str = "") -> str | None:
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"{flag} {path}: no such file.{' ' + hint if hint else ''}")
    return path
