"""How a kind's `match` picks the stack's resources out of the live ones, by their marks only
(kinds.resource.owned_by): one resource per address, and what to do when several carry one.

Two rules, one per kind of history:
- `one_per_address`: several resources carrying one address are a mistake made outside
  letta-apply (a copy, a restore): the first is used, the others are left alone, with a note.
- `replacement_wins`: several carrying one address are an interrupted replacement (the new one
  made first, its mark naming the one it replaces): the replacement is used and the resources it
  replaces are left for prune to delete.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from .resource import Resource, owned_by

R = TypeVar("R", bound=Resource)


def one_per_address(
    found: Iterable[R], stack: str, kind: str, noun: str
) -> tuple[dict[str, R], tuple[str, ...]]:
    """The stack's resources of `kind` by address, the first of each address, and a note for
    each other one (`noun`: what one is called in the note)."""
    pool: dict[str, R] = {}
    notes: list[str] = []
    for r in found:
        address = owned_by(r, stack, kind)
        if address is None:
            continue
        if address in pool:
            notes.append(
                f"{address}: more than one {noun} carries this address ({pool[address].id}, "
                f"{r.id}); using {pool[address].id}, the other is left alone"
            )
        else:
            pool[address] = r
    return pool, tuple(notes)


def replacement_wins(
    found: Iterable[R], stack: str, kind: str
) -> tuple[dict[str, R], tuple[tuple[str, R], ...]]:
    """The stack's resources of `kind` by address, and the (address, resource) pairs an
    interrupted replacement left behind: of those carrying one address, the one no other's mark
    says it `replaces` wins (the first, should that not decide)."""
    by_address: dict[str, list[R]] = {}
    for r in found:
        address = owned_by(r, stack, kind)
        if address is not None:
            by_address.setdefault(address, []).append(r)
    pool: dict[str, R] = {}
    leftovers: list[tuple[str, R]] = []
    for address, rs in by_address.items():
        replaced = {r.mark.get("replaces") for r in rs}
        winners = [r for r in rs if r.id not in replaced] or rs
        pool[address] = winners[0]
        leftovers.extend((address, r) for r in rs if r is not winners[0])
    return pool, tuple(leftovers)
