"""Planning the blocks an agent holds (kinds.agent): its own blocks (`memory_blocks`), made,
updated or refused when the agent holds another block of their label; the shared blocks it
attaches (`blocks`), attached and detached, a difference made on the server shown as drift;
blocks the stack does not manage attached to it by hand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...core.changes import (
    ATTACH,
    CONFIGURATION,
    DETACH,
    DRIFT,
    MANIFEST,
    NEW,
    Change,
    Drift,
    Problem,
    Why,
)
from ...core.jsonish import obj, strings
from ...errors import define
from ..block.kind import BLOCKS_DECLARED, LiveBlock, create_block_change, update_block
from ..resource import applied_of
from .plan import blocks_of, shared_addresses

if TYPE_CHECKING:
    from ..context import Context
    from .model import DesiredAgent, LiveAgent

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA635", "Problem", "a label already on the agent",
       "The agent already holds a block with the label of a block the manifest gives it.",
       "Detach that block from the agent, or give the manifest's block another label.")
# fmt: on


def agent_blocks(
    ctx: Context,
    da: DesiredAgent,
    la: LiveAgent,
    applied: Mapping[str, object] | None,
    *,
    adopt: bool,
) -> None:
    state = blocks_of(ctx)
    attached = [state.blocks[i] for i in la.block_ids if i in state.blocks]
    by_label = {b.label: b for b in attached}
    if "memory_blocks" not in da.ignore:
        _own_blocks(ctx, da, la, by_label, applied, adopt=adopt)
    if "blocks" not in da.ignore:
        _shared_blocks(ctx, da, la, attached, by_label, applied)


def _own_blocks(
    ctx: Context,
    da: DesiredAgent,
    la: LiveAgent,
    by_label: Mapping[str, LiveBlock],
    applied: Mapping[str, object] | None,
    *,
    adopt: bool,
) -> None:
    shared_ids = shared_addresses(ctx)
    state = blocks_of(ctx)
    owned_applied = obj((applied or {}).get("memory_blocks"))
    taken = "detach that block from the agent or give the declared block another label"
    for db in da.memory_blocks:
        lb = by_label.get(db.label)
        if lb is None:
            ctx.changes.append(create_block_change(ctx, db))
            ctx.changes.append(
                Change(da.address, ATTACH, la.id, target=db.address, why=(NEW,), kind="agent")
            )
        elif lb.id in shared_ids:
            ctx.problems.append(
                Problem(
                    db.address,
                    f"the agent already has a block labelled '{db.label}' ({lb.id}, "
                    f"{shared_ids[lb.id]})",
                    taken,
                    code="LA635",
                )
            )
        elif lb.id in state.tagged and not adopt:
            ctx.ids[db.address] = lb.id
            # Blocks created inline with an agent carry no mark of their own until letta-apply
            # updates them; until then the agent's mark speaks for them.
            own = applied_of(lb)
            if own is None:
                marked = owned_applied.get(db.label)
                own = marked if isinstance(marked, Mapping) else None
            update_block(ctx, db, lb, own)
        elif adopt and not lb.mark:
            ctx.ids[db.address] = lb.id
            update_block(ctx, db, lb, None, adopt=True)
        else:
            ctx.problems.append(
                Problem(
                    db.address,
                    f"the agent already has a block labelled '{db.label}' ({lb.id}, a block "
                    "this stack does not manage)",
                    taken,
                    code="LA635",
                )
            )


def _shared_blocks(
    ctx: Context,
    da: DesiredAgent,
    la: LiveAgent,
    attached: list[LiveBlock],
    by_label: Mapping[str, LiveBlock],
    applied: Mapping[str, object] | None,
) -> None:
    shared_ids = shared_addresses(ctx)
    state = blocks_of(ctx)
    listed = applied.get("blocks") if applied else None
    was = set(strings(listed)) if isinstance(listed, list) else None
    wanted = set(da.blocks)
    for addr in da.blocks:
        lb = ctx.pool("block").get(addr)
        if lb is not None and lb.id in la.block_ids:
            continue
        label = BLOCKS_DECLARED.of(ctx.desired)[addr].label
        other = by_label.get(label)
        if other is not None and other.id not in shared_ids:
            ctx.problems.append(
                Problem(
                    da.address,
                    f"cannot attach {addr}: the agent already has a block labelled "
                    f"'{label}' ({other.id})",
                    "detach that block from the agent or give the shared block another label",
                    code="LA635",
                )
            )
            continue
        # Declared and attached before, missing now: someone detached it on the server.
        why: Why = DRIFT if was is not None and addr in was and lb is not None else MANIFEST
        ctx.changes.append(Change(da.address, ATTACH, la.id, target=addr, why=(why,), kind="agent"))
        if why == DRIFT:
            ctx.drift.append(
                Drift(da.address, f"blocks[{addr}]", "attached", "detached", CONFIGURATION, True)
            )
    declared_labels = {b.label for b in da.memory_blocks}
    for b in attached:
        shared = shared_ids.get(b.id)
        if shared is not None and shared not in wanted:
            # Never attached by letta-apply: someone attached it on the server.
            why = DRIFT if was is not None and shared not in was else MANIFEST
            ctx.changes.append(
                Change(da.address, DETACH, la.id, target=shared, why=(why,), kind="agent")
            )
            if why == DRIFT:
                ctx.drift.append(
                    Drift(
                        da.address, f"blocks[{shared}]", "detached", "attached", CONFIGURATION,
                        True,
                    )
                )  # fmt: skip
        elif shared is None and b.id not in state.tagged and b.label not in declared_labels:
            _unmanaged_block(ctx, da, la, b)


def _unmanaged_block(ctx: Context, da: DesiredAgent, la: LiveAgent, b: LiveBlock) -> None:
    """A block this stack does not manage, attached to one of its agents by hand: drift,
    detached only when asked (--detach-unmanaged-blocks), else left alone."""
    ctx.drift.append(
        Drift(
            da.address, f"blocks[{b.id}]", "detached", "attached", CONFIGURATION,
            ctx.detach_unmanaged, label=b.label,
        )
    )  # fmt: skip
    if ctx.detach_unmanaged:
        ctx.changes.append(
            Change(da.address, DETACH, la.id, target=b.id, why=(DRIFT,), kind="agent")
        )
