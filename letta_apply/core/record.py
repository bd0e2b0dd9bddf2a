"""The stack's record of what it holds on the server, and what a plan does to it.

A resource the manifest declares that the server does not hold is either new (never made yet) or
deleted on the server since a run made it: without a state file, only a record of what the stack
held tells the two apart. The record (the addresses of the stack's resources, top-level ones:
an agent's own blocks go with their agent) lives in the stack's serial record (server.serial),
which the plan reads with the stack's blocks at no extra request, and which every run that
writes rewrites before it lets go of the lock.

It must never name what letta-apply itself took away, even if the run is killed: a run that
deletes, forgets or moves a recorded resource writes the record without it first (`ahead`).
What a run made is recorded once it is over (`after`); a run killed before that leaves those
unrecorded, and the record then misses what exists (`lacking`): the next apply writes it, even
with nothing else to do. So a recorded, declared resource the server does not hold was deleted
outside letta-apply; a declared one that is not recorded is simply new.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass

from .changes import CREATE, DELETE, FORGET, IMPORT, REPLACED, Change
from .model import kind_of


@dataclass(frozen=True)
class Record:
    """What a plan means for the stack's record. `before`: as the plan read it (None: the
    stack has none yet); `held`: the addresses the stack's marks held then; `kept`: those the
    plan leaves held (where a move puts them); `gone`: recorded and declared, no longer on the
    server (deleted there: drift, recorded until made again); `taken`: recorded ones the plan
    takes away (deletes, forgets, moves); `adds`: what its creates and imports make."""

    before: frozenset[str] | None
    held: frozenset[str]
    kept: frozenset[str]
    gone: frozenset[str] = frozenset()
    taken: frozenset[str] = frozenset()
    adds: frozenset[str] = frozenset()

    @property
    def ahead(self) -> frozenset[str] | None:
        """The record to write before the plan's first write, when it takes a recorded
        resource away (None: nothing to write first)."""
        return self.kept | self.gone if self.taken else None

    def after(self, made: Iterable[str]) -> frozenset[str]:
        """The record once the run is over, `made` the addresses of the changes it made."""
        return self.kept | self.gone | (self.adds & set(made))

    @property
    def lacking(self) -> bool:
        """Whether the record misses a resource the stack holds: none was written yet (older
        releases), or a run was killed after it made something."""
        return not self.kept <= (self.before or frozenset())


def top_level(change: Change) -> bool:
    """Whether a change is about a resource of its own, not one nested in another (an agent's
    own blocks)."""
    return change.kind == kind_of(change.address)


def record_of(
    before: frozenset[str] | None,
    held: Set[str],
    changes: Sequence[Change],
    gone: Set[str] = frozenset(),
) -> Record:
    """The record a plan leads to: `held` the addresses the stack's marks held when it was
    read, `changes` the plan's, `gone` the declared resources found deleted on the server."""
    top = [c for c in changes if top_level(c)]
    moves = {str(d.before): str(d.after) for c in top for d in c.diffs if d.field == "address"}
    removed = {
        c.address
        for c in top
        # A replacement's old copy goes, its address stays (held by the new one).
        if c.action in (DELETE, FORGET) and REPLACED not in c.why
    }
    kept = {moves.get(a, a) for a in held if a not in removed}
    adds = {c.address for c in top if c.action in (CREATE, IMPORT)}
    taken = (removed | set(moves)) & (before or set())
    return Record(
        before, frozenset(held), frozenset(kept), frozenset(gone), frozenset(taken),
        frozenset(adds),
    )  # fmt: skip
