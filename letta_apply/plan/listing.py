"""What `show` lists: the stack's resources on the server, by address, with their ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.model import Desired, Live
from ..kinds import KINDS
from .match import matched_ids


@dataclass(frozen=True)
class Listed:
    """One resource the stack owns on the server: its kind, id, and what it is (a name, a
    label, the blocks an agent sees...), as its kind describes it."""

    address: str
    kind: str
    id: str
    description: str


@dataclass(frozen=True)
class Listing:
    """The stack's resources found on the server (dependents first: agents, then blocks, tools
    and identities, each sorted by address), the declared ones not found, and every found id
    by address."""

    stack: str
    found: tuple[Listed, ...]
    missing: tuple[str, ...]
    ids: dict[str, str] = field(default_factory=dict)


def list_stack(desired: Desired, live: Live) -> Listing:
    """The stack's resources in `live`, found by their marks."""
    found = [
        Listed(address, k.name, rid, text)
        for k in reversed(KINDS)
        for address, rid, text in k.show(desired, live)
    ]
    ids = matched_ids(desired.stack, live)
    missing = [a for a in desired.addresses if a not in ids]
    return Listing(desired.stack, tuple(found), tuple(missing), dict(sorted(ids.items())))
