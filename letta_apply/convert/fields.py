"""How convert (letta_apply.convert) names the stack it writes from an Agent File (every string
it writes is kept literal by kinds.writing.literal)."""

from __future__ import annotations

import re
from pathlib import Path


def stack_name(path: str) -> str | None:
    """A stack name made from an Agent File's name (`Customer Support.af` gives
    `customer-support`), or None when nothing of it can make one."""
    stem = Path(path).name
    for suffix in (".af", ".json"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    name = re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-._")[:63].rstrip("-._")
    return name if re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", name) else None


