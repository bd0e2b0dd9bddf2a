"""Kind flags: how a plan knows, at no cost, whether a stack may hold resources of a kind the
server cannot list by the stack's tag (a kind whose `listing` is "flag": folders, identities).

A stack that holds such resources carries the kind's *flag*: a block labelled
`letta-apply-<section>` (`letta-apply-folders`, `letta-apply-identities`), tagged with the
stack, marked with the stack alone (no address: the block kind leaves it alone), attached to no
agent. Every plan reads the stack's blocks, so the flag costs no request; the kind is listed
only when the manifest names it or its flag is there (read.live), so a stack that holds none
never asks the kind's routes (which a server may drop: Letta Cloud marks identities deprecated).

- Written before the stack holds one: apply writes it, once per run, right before the first
  change that makes or adopts one (create, replace, import) when the plan did not find it
  (`raise_flag`). A run killed right after that change leaves the flag, and the next plan
  lists the kind and finds what it made.
- Deleted once the stack holds none: when the manifest declares none of the kind (or for
  destroy) and the plan deletes every one the stack holds (or none is left: deleted by hand),
  the plan deletes the flag too, shown as `- block.<label>`, in a stage of its own after every
  other delete (kinds.apply_order). A delete that fails stops the run before it, so the flag
  stays while one does; a run killed in between leaves a flag that costs a listing until the
  next plan deletes it.
- A stack made before its kind had a flag (identities, by letta-apply before flags) holds some
  without it: a plan that lists the kind (the manifest declares it) and finds some of them
  kept writes it, shown as `+ block.<label>`, once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from ..core.changes import CREATE, DELETE, DESTROY, MANIFEST, NEW, Change, Why
from ..core.jsonish import JsonObject, items
from ..core.model import MARK_KEY, stack_tag
from ..errors import ApiError
from .base import AnyKind
from .context import Context, Run
from .resource import mark_of

# Flags are blocks: their changes go to the blocks' routes, shown under a block address.
FLAG_KIND = "block"

# A flag is written once per run, however many changes of its kind run at once.
_lock = threading.Lock()


def flag_label(k: AnyKind) -> str:
    return f"letta-apply-{k.section}"


def flag_address(k: AnyKind) -> str:
    """Where a plan shows the flag's changes (no block of a manifest may take it)."""
    return f"{FLAG_KIND}.{flag_label(k)}"


def stack_flags(
    blocks: Iterable[Mapping[str, object]], stack: str, kinds: Iterable[AnyKind]
) -> dict[str, str]:
    """The stack's flags among its blocks, as its block listing read them: kind name -> the
    flag's id."""
    labels = {flag_label(k): k.name for k in kinds if k.listing == "flag"}
    out: dict[str, str] = {}
    for b in blocks:
        name = labels.get(str(b.get("label")))
        if (
            name is not None
            and stack_tag(stack) in items(b.get("tags"))
            and mark_of(b.get("metadata")).get("stack") == stack
        ):
            out.setdefault(name, str(b["id"]))
    return out


def plan_flags(ctx: Context, kinds: Iterable[AnyKind], *, destroy: bool) -> None:
    """The plan's flag changes, once every kind has planned and pruned (see the module's
    docstring). A flag found is recorded among the plan's ids: apply writes only a missing
    one."""
    why: Why = DESTROY if destroy else MANIFEST
    for k in kinds:
        if k.listing != "flag":
            continue
        address = flag_address(k)
        flag = ctx.live.flags.get(k.name)
        deleted = {c.address for c in ctx.changes if c.kind == k.name and c.action == DELETE}
        kept = sorted(a for a in ctx.pool(k.name) if a not in deleted)
        if flag is not None:
            ctx.ids[address] = flag
            if kept or (ctx.desired.of(k.name) and not destroy):
                continue
            ctx.changes.append(Change(address, DELETE, flag, why=(why,), kind=FLAG_KIND))
            ctx.notes.append(
                f"{address} ({flag}): the stack's {k.section} flag; deleted, the stack keeps no "
                f"{k.section}"
            )
        elif kept:
            ctx.changes.append(Change(address, CREATE, why=(NEW,), kind=FLAG_KIND))
            ctx.notes.append(
                f"{address}: the stack holds {k.section} ({', '.join(kept)}) but not its flag "
                "that says so (made by a letta-apply before it had one): written now, once, so "
                "that a plan still finds them when the manifest declares none"
            )


def raise_flag(run: Run, k: AnyKind) -> str:
    """Write the stack's flag for `k` unless the plan found it or this run wrote it; its id."""
    address = flag_address(k)
    with _lock:
        known = run.id_of(address)
        if known != address:
            return known

        def find() -> JsonObject | None:
            found = run.client.list_blocks(run.tag, label=flag_label(k))
            return next(
                (b for b in found if mark_of(b.get("metadata")).get("stack") == run.stack), None
            )

        value = (
            f"letta-apply: stack '{run.stack}' holds {k.section}. This block is not memory and "
            f"is attached to no agent; it is deleted with the stack's last {k.name}."
        )
        made = run.client.create_block(
            {
                "label": flag_label(k),
                "value": value,
                "tags": [run.tag],
                "metadata": {MARK_KEY: {"stack": run.stack}},
            },
            find=find,
        )
        run.record(address, str(made["id"]))
        return str(made["id"])


def apply_flag(run: Run, change: Change, k: AnyKind) -> str:
    """Carry out a flag's own change (a plan's `+` or `-` of it)."""
    if change.action == CREATE:
        return raise_flag(run, k)
    rid = change.remote_id or ""
    try:
        run.client.delete_block(rid)
    except ApiError as e:
        if e.status != 404:  # gone already (another run's delete): nothing to do
            raise
    return rid
