"""Decide what would change: a pure function of the desired and the live state. No I/O.

Generic over resource kinds (letta_apply.kinds): live resources are matched to the manifest by
their marks only (each kind knows where its marks live); anything without this stack's marks is
never changed. `removed:` lets go of what it names (its marks taken off, never deleted); moves
and imports re-address matched resources; then each kind plans its declared resources in
dependency order, and prunes what it owns and no longer declares in the reverse order, and the
flags of the kinds listed by flag follow what the stack holds (kinds.flags). Every
mark records a digest of each field as letta-apply last wrote it: that is how a difference is
explained without a state file (drift when the live field no longer matches its digest, the
manifest otherwise). A plan carries fingerprints of what it touches
(fingerprint.py), so a saved plan can be checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from ..core.changes import CREATE, DELETED, DRIFT, Change, Drift, Plan, Problem, natural_key
from ..core.model import Desired, Live
from ..core.record import record_of
from ..kinds import KINDS, apply_order, kind, kind_of_address
from ..kinds.base import declared_at
from ..kinds.context import Context
from ..kinds.flags import plan_flags
from .fingerprint import ABSENT, blanks_of, fingerprints, marked_blanks, seal, sealed, watched
from .match import matched_ids


def _forgets(ctx: Context) -> None:
    """`removed:` entries: what the stack owns there is let go of (its marks taken off, the
    resource kept), never deleted, prevent_destroy or not. An entry naming nothing the stack
    owns (let go of already) is a note: it may stay in the manifest."""
    for address in ctx.desired.removed:
        name = kind_of_address(address)
        found = ctx.pool(name).pop(address, None)
        if found is None:
            ctx.notes.append(
                f"removed: {address}: this stack manages nothing there on the server (let go "
                "of already, or never made); the entry can go"
            )
            continue
        kind(name).forget(ctx, address, found)


def _moves(ctx: Context) -> None:
    for src, dst in ctx.desired.moved.items():
        pool = ctx.pool(kind_of_address(src))
        if src not in pool:
            continue
        if dst in pool:
            ctx.notes.append(
                f"moved: {src} -> {dst}: both exist on the server; {src} is left as it is"
            )
            continue
        pool[dst] = pool.pop(src)
        ctx.ids[dst] = ctx.ids.pop(src)
        ctx.moved[dst] = src


def _imports(ctx: Context) -> None:
    ours = {r.id: a for pool in ctx.pools.values() for a, r in pool.items()}
    for imp in ctx.desired.imports:
        pool = ctx.pool(kind_of_address(imp.address))
        if imp.address in pool:
            continue  # adopted already
        found = ctx.live.imported.get(imp.address)
        if found is None:
            continue
        if isinstance(found, str):
            ctx.problems.append(
                Problem(
                    imp.address, f"cannot import: {found}", "fix the `imports:` entry", code="LA623"
                )
            )
            continue
        if found.id in ours:
            ctx.problems.append(
                Problem(
                    imp.address,
                    f"cannot import {found.id}: this stack already manages it as {ours[found.id]}",
                    "use `moved:` to rename an address",
                    code="LA624",
                )
            )
            continue
        if found.mark:
            ctx.problems.append(
                Problem(
                    imp.address,
                    f"cannot import {found.id}: it belongs to stack '{found.mark.get('stack')}'",
                    "a resource has one owner; remove it from the other stack first",
                    code="LA625",
                )
            )
            continue
        pool[imp.address] = found
        ctx.ids[imp.address] = found.id
        ctx.importing.add(imp.address)


def _deleted_on_server(ctx: Context) -> set[str]:
    """Declared resources the stack's record says it held, that the server no longer holds:
    deleted outside letta-apply since a run made them (moved ones by their old address).
    Apply makes them again. Without a record nothing tells them from new ones."""
    before = ctx.live.recorded
    if not before:
        return set()
    was = {dst: src for src, dst in ctx.desired.moved.items()}
    return {
        address
        for k in KINDS
        for address in ctx.desired.of(k.name)
        if address not in ctx.pool(k.name) and (address in before or was.get(address) in before)
    }


def _refs(value: object) -> set[str]:
    """Addresses a request body refers to (`{"$ref": address}`: made by this plan)."""
    if isinstance(value, dict):
        if set(value) == {"$ref"}:
            return {str(value["$ref"])}
        return {a for v in value.values() for a in _refs(v)}
    if isinstance(value, list):
        return {a for v in value for a in _refs(v)}
    return set()


def _refuse_dependents(ctx: Context) -> None:
    """A change that needs a resource apply refuses to make is refused too, until none is."""
    refused = {p.address for p in ctx.problems}
    while True:
        more: dict[str, set[str]] = {}
        for c in ctx.changes:
            if c.address not in refused and _refs(c.body) & refused:
                more.setdefault(c.address, set()).update(_refs(c.body) & refused)
        if not more:
            return
        for address, refs in more.items():
            # Each refused resource it needs: fixing one would not be enough.
            for ref in sorted(refs, key=natural_key):
                ctx.problems.append(
                    Problem(
                        address,
                        f"uses {ref}, which apply refuses to make",
                        f"see {ref}",
                        code="LA622",
                    )
                )
            refused.add(address)


def _finish(ctx: Context, held: set[str], gone: set[str], seal_key: str = "") -> Plan:
    _refuse_dependents(ctx)
    refused = {p.address for p in ctx.problems}

    def is_refused(address: str | None) -> bool:
        # A refused resource takes the resources nested in it with it.
        return address is not None and any(
            address == r or address.startswith(r + ".") for r in refused
        )

    changes = [
        # Made again because it was deleted on the server: that is why.
        replace(c, why=(DRIFT,)) if c.action == CREATE and c.address in gone else c
        for c in ctx.changes
        if not is_refused(c.address) and not is_refused(c.target)
    ]
    made = {c.address for c in changes if c.action == CREATE}
    ctx.drift += [Drift(a, "", "present", "deleted", DELETED, a in made) for a in gone]
    changes.sort(
        key=lambda c: (
            apply_order(c),
            natural_key(c.address),
            natural_key(c.target or ""),
            c.action,
            c.key,
        )
    )
    creates = {c.address: kind(c.kind).created_name(c) for c in changes if c.action == CREATE}
    blanks = marked_blanks(ctx.live)
    for c in changes:
        declared = declared_at(ctx.desired, c.address)
        if c.remote_id and declared is not None:
            hidden = kind(c.kind).hidden(declared)
            blanks[c.remote_id] = blanks.get(c.remote_id, frozenset()) | hidden
    prints = fingerprints(ctx.live, {}, creates, blanks, watched(changes))
    plan = Plan(
        stack=ctx.stack,
        changes=tuple(changes),
        drift=tuple(sorted(ctx.drift, key=lambda d: (natural_key(d.address), d.field))),
        problems=tuple(sorted(ctx.problems, key=lambda p: (not p.fatal, natural_key(p.address)))),
        notes=tuple(sorted(ctx.notes)),
        ids=dict(sorted(ctx.ids.items())),
        # A mark block that marks nothing has no fingerprint: its deletion is never stale.
        fingerprints={c.key: prints.get(c.key, ABSENT) for c in changes},
        serial=ctx.live.serial,
        locks=ctx.live.locks,
        record=record_of(ctx.live.recorded, held, changes, gone),
    )
    return replace(plan, seal=seal(plan, ctx.live, ctx.desired.secrets, seal_key))


def make_plan(
    desired: Desired,
    live: Live,
    *,
    destroy: bool = False,
    detach_unmanaged: bool = False,
    seal_key: str = "",
) -> Plan:
    """Compare desired with live and return the changes that converge the server; with
    `destroy`, the changes that delete everything the stack owns. `seal_key` (the API key)
    keys the plan's seal along with the manifest's secrets."""
    ctx = Context(desired, live, detach_unmanaged=detach_unmanaged)
    held: set[str] = set()  # what the stack's marks hold, before forgets and moves
    for k in KINDS:
        m = k.match(desired.stack, live)
        ctx.pools[k.name] = dict(m.pool)
        held.update(m.pool)
        ctx.extra[k.name] = m.extra
        ctx.notes.extend(m.notes)
        # Nested resources (an agent's own blocks) get their ids as their owner is planned.
        ctx.ids.update({a: r.id for a, r in m.pool.items()})
    _forgets(ctx)  # destroy too: what the manifest lets go of is never deleted
    gone: set[str] = set()
    if not destroy:
        _moves(ctx)
        _imports(ctx)
        for k in KINDS:
            k.plan(ctx)
        gone = _deleted_on_server(ctx)
    for k in reversed(KINDS):
        k.prune(ctx, destroy=destroy)
    plan_flags(ctx, KINDS, destroy=destroy)
    return _finish(ctx, held, gone, seal_key)


def stale(plan: Plan, live: Live) -> list[str]:
    """Addresses whose live state differs from what `plan` was computed from (with the fields
    each saved fingerprint left out, left out again)."""
    creates = {c.address: kind(c.kind).created_name(c) for c in plan.changes if c.action == CREATE}
    blanks = blanks_of(plan)
    now = fingerprints(live, matched_ids(plan.stack, live), creates, blanks, watched(plan.changes))
    return sorted(
        {c.address for c in plan.changes if now.get(c.key, ABSENT) != plan.fingerprints.get(c.key)}
    )


def stale_secrets(plan: Plan, live: Live, secrets: Sequence[str], seal_key: str = "") -> list[str]:
    """Addresses of the changes writing sensitive values, when one of the fields they write
    was changed on the server since the plan was made (the plan's seal no longer matches)."""
    if plan.seal is None:
        return []
    if sealed(plan.stack, plan.seal.resources, live, secrets, seal_key) == plan.seal.digest:
        return []
    ids = {rid for rid, _ in plan.seal.resources}
    by_id = {v: k for k, v in plan.ids.items()}
    return sorted({by_id.get(rid, rid) for rid in ids})


def restrict(plan: Plan, desired: Desired, targets: Iterable[str]) -> Plan:
    """Only the changes of `targets` and what they depend on (an agent's own blocks, the shared
    blocks, tools and identities it uses). Drift and notes of other resources are dropped too."""
    keep: set[str] = set()
    for t in targets:
        keep.add(t)
        declared = desired.of(kind_of_address(t)).get(t)
        if declared is not None:
            keep.update(kind(kind_of_address(t)).references(declared, desired))

    def kept(address: str) -> bool:
        return any(address == k or address.startswith(k + ".") for k in keep)

    changes = tuple(c for c in plan.changes if kept(c.address))
    record = plan.record
    if record is not None:  # what the other changes would have done to it is not done
        record = record_of(record.before, record.held, changes, record.gone)
    return replace(
        plan,
        changes=changes,
        record=record,
        drift=tuple(d for d in plan.drift if kept(d.address)),
        problems=tuple(p for p in plan.problems if kept(p.address)),
        fingerprints={
            c.key: plan.fingerprints[c.key] for c in changes if c.key in plan.fingerprints
        },
    )


__all__ = ["Change", "Plan", "make_plan", "restrict", "stale", "stale_secrets"]
