"""How convert (letta_apply.convert) writes what it takes from an Agent File in a manifest: every
string kept literal, and the stack's name made from the file's."""

from __future__ import annotations

import re
from pathlib import Path

from ..kinds.writing import Ref


def stack_name(path: str) -> str | None:
    """A stack name made from an Agent File's name (`Customer Support.af` gives
    `customer-support`), or None when nothing of it can make one."""
    stem = Path(path).name
    for suffix in (".af", ".json"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    name = re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-._")[:63].rstrip("-._")
    return name if re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", name) else None


def literal(value: object) -> object:
    """Every string from the file written so the manifest language takes it as it is: `${`
    would be read as a reference (`${env.HOME}` in a prompt would pull the environment in)."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value
