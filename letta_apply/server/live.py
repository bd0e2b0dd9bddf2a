"""Read what the server holds for one stack, in a few paginated list calls per kind.

Each kind lists its resources (letta_apply.kinds: blocks by the stack's tag, agents by the
stack's tag with their blocks, tools and identities, every tool, every identity); the listings
are read side by side. Then the resources `imports:` name are looked up, and each kind completes
what depends on the match: the agents using what a plan may delete (a few filtered listings,
one lookup only for a block that may have users outside the stack), and the names a create
would clash with. Never one request per existing resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from ..kinds import KINDS, kind, kind_of_address
from ..model import Desired, Import, Live, kind_of
from ..plan.changes import CREATE, IMPORT, Plan
from .client import LettaClient
from .lock import LOCK_LABEL
from .serial import stack_record, stack_serial


def read_live(client: LettaClient, desired: Desired, *, destroy: bool = False) -> Live:
    """Read the live state that `desired` is compared with (for `destroy`, everything the stack
    owns), with who uses what a plan may delete."""
    live = read_stack(client, desired.stack, () if destroy else desired.imports, desired)
    doomed: set[str] = set()
    for k in KINDS:
        doomed |= k.deletion_candidates(desired, live, destroy=destroy)
    target = replace(desired, resources={}) if destroy else desired
    states = {k.name: k.complete(client, target, live, doomed) for k in KINDS}
    return replace(live, states=states)


def read_stack(
    client: LettaClient,
    stack: str,
    imports: Sequence[Import] = (),
    desired: Desired | None = None,
) -> Live:
    """Every kind's listing for `stack`, and the resources `imports` name (those the stack
    does not already hold)."""
    # The listings do not depend on each other: on a big stack, reading them side by side
    # saves the time a plan waits for the server.
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        reads = {k.name: pool.submit(k.read, client, stack, desired) for k in KINDS}
        raw: dict[str, Any] = {name: f.result() for name, f in reads.items()}
    present = {
        r.mark.get("address")
        for k in KINDS
        for r in k.resources(k.state(raw, {}, stack))
        if r.mark.get("stack") == stack
    }
    imported: dict[str, Any] = {}
    seen: dict[str, list[Any]] = {}  # kind -> what its imports read, as the server sent it
    for imp in imports:
        if imp.address in present:
            continue
        name = kind_of_address(imp.address)
        found, extra = kind(name).find(client, imp, raw)
        imported[imp.address] = found
        if extra is not None:
            seen.setdefault(name, []).append(extra)
    states = {k.name: k.state(raw, seen, stack) for k in KINDS}
    blocks = raw.get("block") or ()
    locks = tuple(b for b in blocks if b.get("label") == LOCK_LABEL)
    return Live(
        states, imported, project=client.project_id, serial=stack_serial(blocks, stack),
        recorded=stack_record(blocks, stack), locks=locks,
    )  # fmt: skip


def read_saved(client: LettaClient, plan: Plan) -> Live:
    """The live state a saved plan is checked against: the stack's listings, the resources it
    imports, and what now holds the names of the resources it creates."""
    imports = [
        Import(c.address, id=c.remote_id)
        for c in plan.changes
        # Resources nested in another (an agent's own blocks) come with their owner.
        if c.action == IMPORT and c.remote_id and c.kind == kind_of(c.address)
    ]
    live = read_stack(client, plan.stack, imports)
    states = {}
    for k in KINDS:
        creates = [c for c in plan.changes if c.action == CREATE and c.kind == k.name]
        states[k.name] = k.names_taken(client, live, {k.created_name(c) for c in creates} - {""})
    return replace(live, states=states)
