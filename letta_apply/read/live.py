"""Read what the server holds for one stack, in a few paginated list calls per kind.

Each kind lists its resources (letta_apply.kinds: blocks by the stack's tag, agents by the
stack's tag with their blocks, every tool); the listings are read side by side. A kind the
server cannot list by the stack's tag (identities, groups, folders, archives, MCP servers) is
listed with them when the manifest names it, else only when the stack's blocks, just read, say
it holds some (its mark blocks or its flag: see Kind.listing): a stack that holds none of a kind
never asks that kind's routes. Then the resources `imports:` name are looked up, and each kind
completes what depends on the match: the agents using what a plan may delete (a few filtered
listings, one lookup only for a block that may have users outside the stack), and the names a
create would clash with. Never one request per existing resource.

A kind's route that answers 404 Not Found or 410 Gone (a server that dropped it, as Letta Cloud
may drop deprecated routes) is one error naming the kind and the route (errors.RouteGone).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import TypeVar

from ..core.changes import CREATE, IMPORT, Plan
from ..core.jsonish import objs
from ..core.model import LOCK_LABEL, Desired, Import, Live, Resource, kind_of
from ..errors import ApiError, RouteGone, route_gone
from ..kinds import KINDS, AnyKind, kind, kind_of_address
from ..kinds.flags import FLAG_KIND, stack_flags
from ..server.client import LettaClient
from ..server.serial import stack_record, stack_serial

T = TypeVar("T")


def named_kinds(desired: Desired) -> set[str]:
    """The kinds a manifest names: declares, imports, moves or lets go of (`removed:`)."""
    addresses = [*desired.addresses, *(i.address for i in desired.imports), *desired.removed,
                 *desired.moved, *desired.moved.values()]  # fmt: skip
    return {kind_of(a) for a in addresses}


def read_live(
    client: LettaClient,
    desired: Desired,
    *,
    destroy: bool = False,
    listings: Mapping[str, object] | None = None,
) -> Live:
    """Read the live state that `desired` is compared with (for `destroy`, everything the stack
    owns), with who uses what a plan may delete. `listings`: kinds' listings of the stack
    already read (read.shared, for many stacks at once), not read again."""
    named = named_kinds(desired)
    imports = () if destroy else desired.imports
    live = read_stack(client, desired.stack, named, imports, desired, listings)
    doomed: set[str] = set()
    for k in KINDS:
        doomed |= k.deletion_candidates(desired, live, destroy=destroy)
    target = replace(desired, resources={}) if destroy else desired
    states = {
        k.name: _asking(
            k, _why(k, named, desired), partial(k.complete, client, target, live, doomed)
        )
        for k in KINDS
    }
    return replace(live, states=states)


def read_stack(
    client: LettaClient,
    stack: str,
    named: Collection[str],
    imports: Sequence[Import] = (),
    desired: Desired | None = None,
    listings: Mapping[str, object] | None = None,
) -> Live:
    """Every kind's listing for `stack` (a kind listed by marks or flag only when `named` names
    it or the stack's blocks say it holds some), and the resources `imports` name (those the
    stack does not already hold). A kind's listing in `listings` is taken as read."""

    given = listings or {}

    def listed(pool: ThreadPoolExecutor, kinds: list[AnyKind]) -> dict[str, object]:
        out = {k.name: given[k.name] for k in kinds if k.name in given}
        reads = {
            k.name: pool.submit(
                _asking, k, _why(k, named, desired), partial(k.read, client, stack, desired)
            )
            for k in kinds
            if k.name not in given
        }
        out.update({name: f.result() for name, f in reads.items()})
        return out

    # The listings do not depend on each other: on a big stack, reading them side by side
    # saves the time a plan waits for the server (the pool starts no thread for those given).
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        raw = listed(pool, listed_first(named))
        blocks = objs(raw.get(FLAG_KIND))  # flags, lock and serial records are blocks
        flags = stack_flags(blocks, stack, KINDS)
        raw.update(listed(pool, held_kinds(blocks, stack, raw)))
    raw.update({k.name: None for k in KINDS if k.name not in raw})
    # Only imports need it: a plan without any builds each kind's state once.
    present = _addresses(raw, stack) if imports else set()
    imported: dict[str, Resource | str] = {}
    seen: dict[str, list[object]] = {}  # kind -> what its imports read, as the server sent it
    for imp in imports:
        if imp.address in present:
            continue
        name = kind_of_address(imp.address)
        found, extra = kind(name).find(client, imp, raw)
        imported[imp.address] = found
        if extra is not None:
            seen.setdefault(name, []).append(extra)
    states = {k.name: k.state(raw, seen, stack) for k in KINDS}
    serial = stack_serial(blocks, stack)
    locks = tuple(b for b in blocks if b.get("label") == LOCK_LABEL)
    return Live(
        states,
        imported,
        project=client.project_id,
        serial=serial,
        locks=locks,
        flags=flags,
        recorded=stack_record(blocks, stack),
    )


def _addresses(raw: Mapping[str, object], stack: str) -> set[object]:
    """The addresses the stack's resources in the listings (`raw`) carry."""
    return {
        r.mark.get("address")
        for k in KINDS
        for r in k.resources(k.state(raw, {}, stack))
        if r.mark.get("stack") == stack
    }


def listed_first(named: Collection[str]) -> list[AnyKind]:
    """The kinds a plan lists before it knows what the stack holds: those listed always, and
    those the manifest (or a saved plan) names."""
    return [k for k in KINDS if k.listing == "always" or k.name in named]


def held_kinds(
    blocks: Sequence[Mapping[str, object]], stack: str, listed: Collection[str]
) -> list[AnyKind]:
    """The kinds not yet `listed` that the stack's `blocks` say it holds (their mark blocks,
    their flag): listed next."""
    flags = stack_flags(blocks, stack, KINDS)
    return [
        k for k in KINDS
        if k.name not in listed
        and (k.name in flags if k.listing == "flag" else k.marked(blocks, stack))
    ]  # fmt: skip


def _why(k: AnyKind, named: Collection[str], desired: Desired | None) -> str:
    """Why a plan asks a kind's routes, for the error that one of them is gone."""
    if k.name in named:
        if desired is None:
            return "which the plan changes"
        return f"which the manifest {'declares' if desired.of(k.name) else 'names'}"
    if k.listing == "always":
        return "which every plan reads"
    return "which the stack holds, as its blocks say"


def _asking(k: AnyKind, why: str, ask: Callable[[], T]) -> T:
    """`ask()`, a 404 or 410 of a route of the kind's (not of one resource) said as such."""
    try:
        return ask()
    except ApiError as e:
        if route_gone(e):
            raise RouteGone(k.section, e, why) from None
        raise


def read_saved(client: LettaClient, plan: Plan) -> Live:
    """The live state a saved plan is checked against: the stack's listings, the resources it
    imports, and what now holds the names of the resources it creates."""
    imports = [
        Import(c.address, id=c.remote_id)
        for c in plan.changes
        # Resources nested in another (an agent's own blocks) come with their owner.
        if c.action == IMPORT and c.remote_id and c.kind == kind_of(c.address)
    ]
    named = {kind_of(c.address) for c in plan.changes} | {c.kind for c in plan.changes}
    live = read_stack(client, plan.stack, named, imports)
    states = {}
    for k in KINDS:
        creates = [c for c in plan.changes if c.action == CREATE and c.kind == k.name]
        names = {k.created_name(c) for c in creates} - {""}
        states[k.name] = _asking(
            k, _why(k, named, None), partial(k.names_taken, client, live, names)
        )
    return replace(live, states=states)
