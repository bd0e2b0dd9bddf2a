"""What a plan's deletes hold of agents' memory, so that a reviewer sees what a delete would lose
(and what its backup keeps).

Each kind with the HoldsMemory capability (kinds.holds_memory) says what one of its deletes
holds, from the state the plan was read from, at no cost (an agent's messages in context and the
own blocks agents wrote, a block's value, an archive's passages); a resource nested in another
the plan deletes too (an agent's own block) is counted with its owner, and a kind's flag
(kinds.flags) is no memory. Then what a kind counts on the server (an agent's archival passages:
Letta counts them nowhere for free) is counted up to COUNT_PAGE, shown as "at least" beyond, for
at most MAX_COUNTED resources (the first in plan order), at most `workers` reads at a time: a
plan's cost stays bounded whatever it deletes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..core.changes import DELETE, REPLACE, Held, Plan
from ..core.model import Live
from ..kinds import flag_of
from ..server.client import LettaClient
from .holders import holder, owner_of

COUNT_PAGE = 100
"""What a deleted resource's kind counts on the server, at most (a page); more shows as "100+"."""
MAX_COUNTED = 50
"""Deleted resources a plan counts on the server: the reads stay bounded."""


def held_in(plan: Plan, live: Live) -> list[Held]:
    """What each memory-holding delete of `plan` removes, from the live state alone (nothing
    counted on the server yet)."""
    deleted = {c.address for c in plan.changes if c.action in (DELETE, REPLACE)}
    out: list[Held] = []
    for c in plan.changes:
        if c.action not in (DELETE, REPLACE) or not c.remote_id or flag_of(c) is not None:
            continue  # a kind's flag (kinds.flags) is no memory
        kind = holder(c.kind)
        if kind is None:
            continue
        owner = owner_of(c.address)
        if owner is not None and owner in deleted:
            continue  # counted with its owner
        found = kind.memory_held(c, live, plan.stack)
        if found is not None:
            out.append(found)
    return out


def memory_held(
    client: LettaClient, plan: Plan, live: Live, *, workers: int = 8
) -> tuple[Held, ...]:
    """What the plan's deletes hold: from `live`, and what their kinds count on the server for
    the first MAX_COUNTED of them (a read or two each, `workers` at a time)."""
    found = held_in(plan, live)
    counted = [
        i for i, h in enumerate(found) if (k := holder(h.kind)) is not None and k.counts_memory
    ][:MAX_COUNTED]
    if counted:

        def count(i: int) -> Held:
            kind = holder(found[i].kind)
            return found[i] if kind is None else kind.count_memory(client, found[i], COUNT_PAGE)

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(counted)))) as pool:
            done = list(pool.map(count, counted))
        for i, h in zip(counted, done, strict=True):
            found[i] = h
    return tuple(found)
