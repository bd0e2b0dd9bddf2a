"""How the text and the markdown plans word a value alike: escaped (a value must not drive the
reader's terminal), long (a diff), sensitive (never shown); and what happened to a resource on
the server."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable

from ..core.changes import Drift, FieldDiff
from ..core.model import SHOWN
from ..core.sensitive import Masked
from ..errors import escape_controls

INLINE_MAX = 72
"""A string longer than this (or of several lines) is shown as a block or a diff."""


def shown(lines: Iterable[str], keep: str = "\t") -> str:
    """Lines joined for a terminal, a log or a file, each with its control and format characters
    (a terminal escape, a carriage return, a bidirectional override) written as escapes: values
    come from manifests and from what agents wrote, and must neither drive the reader's terminal
    nor fake or hide a line of the plan. Tabs (`keep`) drive nothing and stay."""
    return "\n".join(escape_controls(piece, keep) for line in lines for piece in line.split("\n"))


def value_text(v: object) -> str:
    """A value on one line: a string quoted, a reference by what it names, a list of strings
    bare, anything else as JSON."""
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dict) and set(v) == {"$ref"}:
        return f"(id of {v['$ref']})"
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "[" + ", ".join(v) + "]"
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def is_long(v: object) -> bool:
    """Whether `v` is a string shown as a block or a diff rather than on one line."""
    return isinstance(v, str) and ("\n" in v or len(v) > INLINE_MAX)


def unified(before: str, after: str, indent: str, names: tuple[str, str]) -> list[str]:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), *names, lineterm="", n=2)
    return [indent + line for line in lines]


def secret_text(d: FieldDiff, *, create: bool) -> str | None:
    """How a sensitive field is shown: never its value, on either side."""
    if not (isinstance(d.after, Masked) or isinstance(d.before, Masked)):
        return None
    if create or d.before is None:
        return SHOWN
    return "(sensitive value changed)" if d.after is not None else "(sensitive value removed)"


def block_drift(d: Drift) -> str:
    """What happened to an agent's attachment on the server, and what apply does about it."""
    block = d.field[len("blocks[") : -1]
    if d.label:  # named by id: a block the stack does not manage
        fix = (
            "apply detaches it (--detach-unmanaged-blocks)"
            if d.restored
            else "left alone (apply --detach-unmanaged-blocks detaches it)"
        )
        what = f"block '{d.label}' ({block}, not managed by this stack)"
        return f"{what} was {d.live} on the server; {fix}"
    fix = "detaches it" if d.live == "attached" else "attaches it again"
    return f"{block} was {d.live} on the server; apply {fix}"


def deleted_drift(d: Drift) -> str:
    """What happened to a resource deleted on the server, and what apply does about it."""
    fix = "apply makes it again" if d.restored else "apply refuses to make it (see the plan)"
    return f"was deleted on the server (letta-apply had made it); {fix}"
