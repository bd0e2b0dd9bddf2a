"""What a plan's deletes hold of agents' memory, so that a reviewer sees what a delete would lose
(and what its backup keeps).

From the state the plan was read from, at no cost: the messages in a deleted agent's context
window (what its backup holds: Letta's export keeps those), which of its own blocks agents wrote
(the value's digest no longer the one letta-apply last wrote: the base of the three-way memory
decision, see kinds.block.kind.plan_value), a deleted block's value likewise, and a deleted
archive's passages (those without the stack's seed mark were written by agents). Then, per
deleted agent, its archival passages are counted up to COUNT_PAGE (Letta counts them nowhere for
free): one read when it has none, a page and the empty page that ends it otherwise (more pages
on a server that caps them); COUNT_PAGE or more is shown as "at least". At most MAX_COUNTED
agents are counted (the first in plan order), at most `workers` reads at a time: a plan's cost
stays bounded whatever it deletes.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from ..core.changes import DELETE, REPLACE, Held, Plan
from ..core.marks import digest
from ..core.model import Live
from ..errors import ApiError
from ..kinds import flag_of
from ..kinds.archive.passages import ours
from ..kinds.base import applied_of
from ..kinds.block.kind import BlockState, LiveBlock, owned_of
from ..server.client import LettaClient

COUNT_PAGE = 100
"""Passages counted per deleted agent, at most (a page); more shows as "100+"."""
MAX_COUNTED = 50
"""Deleted agents whose passages a plan counts: the reads stay bounded."""


def _written(b: LiveBlock, base: Any) -> str:
    """Whether agents wrote a block: "written", "same" or "unknown" (no base recorded: a
    sensitive value, or marks older than the base)."""
    if not isinstance(base, str):
        return "unknown"
    return "same" if digest(b.value) == base else "written"


def _value_base(mark_applied: Mapping[str, Any] | None) -> Any:
    return (mark_applied or {}).get("value")


def _agent(address: str, agent: Any, blocks: BlockState) -> Held:
    own = (applied_of(agent) or {}).get("memory_blocks")
    own = own if isinstance(own, Mapping) else {}
    written, unknown = [], []
    for b in owned_of(agent, blocks, set()):
        entry = own.get(b.label)
        base = _value_base(applied_of(b)) or (entry.get("value") if isinstance(entry, Mapping)
                                              else None)  # fmt: skip
        state = _written(b, base)
        if state == "written":
            written.append(b.label)
        elif state == "unknown":
            unknown.append(b.label)
    return Held(address, agent.id, "agent", messages=agent.in_context,
                written=tuple(sorted(written)), unknown=tuple(sorted(unknown)))  # fmt: skip


def held_in(plan: Plan, live: Live) -> list[Held]:
    """What each memory-holding delete of `plan` removes, from the live state alone (no
    counts of messages and passages yet)."""
    blocks: BlockState = live.of("block")
    agents = {a.id: a for a in live.of("agent").agents}
    deleted_agents = {
        c.address for c in plan.changes if c.kind == "agent" and c.action in (DELETE, REPLACE)
    }
    out: list[Held] = []
    for c in plan.changes:
        if c.action not in (DELETE, REPLACE) or not c.remote_id or flag_of(c) is not None:
            continue  # a kind's flag (kinds.flags) is no memory
        if c.kind == "agent" and c.remote_id in agents:
            out.append(_agent(c.address, agents[c.remote_id], blocks))
        elif c.kind == "block" and c.remote_id in blocks.blocks:
            owner = c.address.split(".memory_blocks.", 1)[0]
            if owner != c.address and owner in deleted_agents:
                continue  # counted with its agent
            state = _written(blocks.blocks[c.remote_id], _value_base(applied_of(
                blocks.blocks[c.remote_id])))  # fmt: skip
            out.append(Held(
                c.address, c.remote_id, "block",
                written=("value",) if state == "written" else (),
                unknown=("value",) if state == "unknown" else (),
            ))  # fmt: skip
        elif c.kind == "archive":
            archives = live.of("archive")
            passages = list(getattr(archives, "passages", {}).get(c.remote_id, ()))
            seeded = len(ours(passages, plan.stack, c.address))
            out.append(Held(c.address, c.remote_id, "archive", passages=len(passages),
                            agent_passages=len(passages) - seeded))  # fmt: skip
    return out


def _count(client: LettaClient, h: Held) -> Held:
    """An agent's archival passages, up to COUNT_PAGE: pages until an empty one (a server may
    cap its pages below what was asked, as Letta Cloud does: a short page is no end). A failed
    read leaves them uncounted: a plan is not refused for what it only reports."""
    seen: set[str] = set()
    params: dict[str, Any] = {"limit": COUNT_PAGE, "ascending": True}
    try:
        while len(seen) < COUNT_PAGE:
            path = f"/v1/agents/{h.remote_id}/archival-memory"
            page = client.request("GET", path, params=params)
            fresh = [str(p["id"]) for p in page or () if str(p.get("id")) not in seen]
            if not fresh:
                break
            seen.update(fresh)
            params = {**params, "after": fresh[-1]}
    except ApiError:
        return h
    n = min(len(seen), COUNT_PAGE)
    return replace(h, passages=n, capped=("passages",) if n == COUNT_PAGE else ())


def memory_held(
    client: LettaClient, plan: Plan, live: Live, *, workers: int = 8
) -> tuple[Held, ...]:
    """What the plan's deletes hold: from `live`, and the passages of the first MAX_COUNTED
    deleted agents (a read or two each, `workers` at a time)."""
    found = held_in(plan, live)
    agents = [i for i, h in enumerate(found) if h.kind == "agent"][:MAX_COUNTED]
    if agents:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(agents)))) as pool:
            counted = list(pool.map(lambda i: _count(client, found[i]), agents))
        for i, h in zip(agents, counted, strict=True):
            found[i] = h
    return tuple(found)
