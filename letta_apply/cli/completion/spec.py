"""The command line as completion sees it, read from the parser: its commands, their options,
and what each option's value completes."""

from __future__ import annotations

import argparse
import contextlib
import re
from dataclasses import dataclass
from typing import Literal

from .addresses import PROG, addresses_parser

ValueKind = Literal["none", "files", "addresses", "words"]
_FILE_METAVARS = ("PATH", "FILE", "PLAN")


@dataclass(frozen=True)
class Values:
    """What completes a value: nothing, file names, addresses, or these words."""

    kind: ValueKind = "none"
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]  # "-f", "--file"
    help: str
    takes_value: bool
    repeatable: bool
    values: Values
    metavar: str


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    flags: tuple[Flag, ...]
    positional: Flag | None  # the first positional argument, if any


@dataclass(frozen=True)
class Spec:
    """The command line as completion sees it."""

    flags: tuple[Flag, ...]  # before the command: --version, --help
    commands: tuple[Command, ...]
    # The options __complete-addresses takes (the ones that load a manifest), by what they take.
    forwarded_values: tuple[str, ...]
    forwarded_flags: tuple[str, ...]


# Defaults are left out of the descriptions: some come from the environment (LETTA_BASE_URL), and
# a script must not depend on where it was generated.
_DEFAULT = re.compile(r"\s*\(default %\(default\)s\)|; default %\(default\)s")


def _help(action: argparse.Action) -> str:
    text = _DEFAULT.sub("", action.help or "")
    with contextlib.suppress(KeyError, TypeError, ValueError):
        text = text % {"prog": PROG}
    return " ".join(text.split())


def _values(action: argparse.Action) -> Values:
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return Values("words", tuple(str(c) for c in action.choices))
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if "|" in metavar:
        return Values("words", tuple(metavar.split("|")))
    if metavar in _FILE_METAVARS:
        return Values("files")
    if metavar == "ADDRESS":
        return Values("addresses")
    return Values()


def _flag(action: argparse.Action) -> Flag:
    takes_value = action.nargs != 0
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return Flag(
        names=tuple(action.option_strings) or (action.dest,),
        help=_help(action),
        takes_value=takes_value,
        repeatable=isinstance(action, argparse._AppendAction),
        values=_values(action) if takes_value else Values(),
        metavar=metavar,
    )


def _flags(parser: argparse.ArgumentParser) -> tuple[Flag, ...]:
    return tuple(
        _flag(a) for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS
    )


def spec(parser: argparse.ArgumentParser) -> Spec:
    """Commands, options and what their values complete, read from `parser`."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    commands = []
    for name, p in sub.choices.items():
        positionals = [a for a in p._actions if not a.option_strings]
        commands.append(
            Command(
                name=name,
                help=" ".join(helps.get(name, "").split()),
                flags=_flags(p),
                positional=_flag(positionals[0]) if positionals else None,
            )
        )
    loader = _flags(addresses_parser())
    return Spec(
        flags=_flags(parser),
        commands=tuple(commands),
        forwarded_values=tuple(n for f in loader if f.takes_value for n in f.names),
        forwarded_flags=tuple(n for f in loader if not f.takes_value for n in f.names),
    )
