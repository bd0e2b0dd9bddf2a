"""The stack's resources among the live ones, found by their marks only (never by name or
label), across every kind."""

from __future__ import annotations

from ..core.model import Live
from ..kinds import KINDS


def matched_ids(stack: str, live: Live) -> dict[str, str]:
    """Every address of `stack` that exists on the server, nested ones included, -> its id."""
    out: dict[str, str] = {}
    for k in KINDS:
        out.update(k.match(stack, live).ids)
    return out
