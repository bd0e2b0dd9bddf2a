"""Sleep-time agents (kinds.agent): what Letta makes beside an agent with `enable_sleeptime`.

Letta 0.16.8 (letta/server/server.py, create_sleeptime_agent_async) makes, right after the agent,
an agent of its own (`sleeptime_agent`, `voice_sleeptime_agent` beside a voice agent; named
`<name>-sleeptime`, with no tags and no metadata) and a group of manager_type `sleeptime` that
the agent manages, with that agent in it. The sleep-time agent holds the agent's blocks, own and
shared (a block attached to the agent later is attached to it too; a detach is not passed on),
and one block made for it alone, labelled `memory_persona`. Deleting the agent deletes the
sleep-time agent and the group, but no block: that one would be left with no agent and no mark,
nothing any later run could tie to the stack.

So, with the stack's agents listed with `agent.managed_group`, the agents of the sleep-time group
one of them manages count as the stack's where its blocks are deleted (unless another stack's
marks say otherwise): they hold the agent's blocks because Letta put them there. Before a plan
deletes an agent (destroy, no longer declared, replaced), each of those agents is read: one Letta
made for it goes with it, and the block Letta made for that one (its label, no mark, held by it
alone) is deleted by the agent's own change, right before the agent: a run stopped in between
leaves the agent, which the next run still sees. An agent Letta did not make (another stack's,
or of another type, put in the group by hand) would be deleted along by Letta: the agent is then
not deleted, and the plan says why. The stack's own agents (a `sleeptime` group the manifest
declares) are planned at their own addresses: left out here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...core.changes import Problem
from ...core.jsonish import objs
from ...errors import ApiError, define
from ..context import Context, StateOf
from ..resource import mark_of

if TYPE_CHECKING:
    from ...server.client import LettaClient
    from .model import AgentState, LiveAgent

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA639", "Problem", "an agent whose sleep-time group holds another agent",
       "An agent the plan deletes (destroy, no longer declared, replaced) manages a sleep-time "
       "group (`enable_sleeptime`) holding an agent Letta did not make for it: another stack's, "
       "or one put in the group by hand. Letta would delete that agent with it, so the agent "
       "is not deleted.",
       "Take that agent out of the group first (the hint names both).")
# fmt: on

GROUP_TYPES = frozenset({"sleeptime", "voice_sleeptime"})
"""Manager types of the groups Letta makes for `enable_sleeptime`."""
AGENT_TYPES = frozenset({"sleeptime_agent", "voice_sleeptime_agent"})
"""Types of the agents Letta puts in them."""
PERSONA = "memory_persona"
"""The label of the block Letta makes for a sleep-time agent."""
BLOCKS = "sleeptime_blocks"
"""Where an agent's delete change names those blocks (deleted first, in the same change)."""
INCLUDE = ("agent.blocks", "agent.tags")


@dataclass(frozen=True)
class SleeptimeAgent:
    """An agent of the sleep-time group one of the stack's agents manages, as read before the
    plan deletes that agent: `stranger` says why Letta did not make it ("" when it did),
    `blocks` holds the ids of the blocks Letta made for it, `kept` those of them that other
    agents use too (left as they are)."""

    id: str
    name: str
    stranger: str = ""
    blocks: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


def group_of(raw: Mapping[str, object]) -> tuple[str, tuple[str, ...]]:
    """The sleep-time group an agent (as listed with `agent.managed_group`) manages: its id and
    its agents; ("", ()) when it manages none."""
    group = raw.get("managed_group") or raw.get("multi_agent_group")
    if not isinstance(group, Mapping) or group.get("manager_type") not in GROUP_TYPES:
        return "", ()
    return str(group.get("id") or ""), tuple(str(i) for i in group.get("agent_ids") or ())


def read(
    client: LettaClient, agent: LiveAgent, stack: str, ours: Iterable[str] = ()
) -> tuple[SleeptimeAgent, ...]:
    """The agents of `agent`'s sleep-time group but the stack's own (`ours`, listed already),
    each read with its blocks (one request each, and one for the agents holding a block Letta
    made for it)."""
    out = []
    for aid in sorted(set(agent.sleeptime) - set(ours)):
        try:
            raw = client.get_agent(aid, INCLUDE)
        except ApiError as e:
            if e.status == 404:  # gone since the listing: nothing of it to delete
                continue
            raise
        found = _examined(client, raw, agent, stack)
        if found is not None:
            out.append(found)
    return tuple(out)


def _examined(
    client: LettaClient, raw: Mapping[str, object], agent: LiveAgent, stack: str
) -> SleeptimeAgent | None:
    aid, name = str(raw["id"]), str(raw.get("name") or "")
    owner = mark_of(raw.get("metadata")).get("stack")
    if owner == stack:
        return None  # the stack's own agent, planned at its own address
    if owner is not None:
        return SleeptimeAgent(aid, name, f"stack '{owner}' manages it")
    if raw.get("agent_type") not in AGENT_TYPES:
        return SleeptimeAgent(aid, name, f"an agent of type {raw.get('agent_type')}")
    made: list[str] = []
    kept: list[str] = []
    for b in objs(raw.get("blocks")):
        # Letta's block for it: its label, no mark, not the agent's; deleted if it is its alone.
        if b.get("label") != PERSONA or mark_of(b.get("metadata")) or b["id"] in agent.block_ids:
            continue
        users = {str(u["id"]) for u in client.block_agents(str(b["id"]))}
        (made if users == {aid} else kept).append(str(b["id"]))
    return SleeptimeAgent(aid, name, blocks=tuple(made), kept=tuple(kept))


def made_blocks(client: LettaClient, agent: LiveAgent, stack: str) -> list[str]:
    """Ids of the blocks Letta made for `agent`'s sleep-time agents, read now (an agent this
    apply made and deletes again)."""
    return [bid for s in read(client, agent, stack) if not s.stranger for bid in s.blocks]


def at_risk(agents: Iterable[LiveAgent]) -> list[LiveAgent]:
    """Those of `agents` (the ones a plan may delete) that manage a sleep-time group."""
    return [a for a in agents if a.sleeptime]


def companions(
    state: AgentState, agents: Iterable[LiveAgent], elsewhere: set[str]
) -> frozenset[str]:
    """Ids of the agents of the sleep-time groups `agents` manage, but those another stack's
    marks claim (`elsewhere`, as the users of blocks said) or that reading them found Letta did
    not make."""
    strangers = {s.id for found in state.sleeptime.values() for s in found if s.stranger}
    ids = {i for a in agents for i in a.sleeptime}
    return frozenset(ids - strangers - elsewhere)


def _read(ctx: Context, agent: LiveAgent) -> tuple[SleeptimeAgent, ...]:
    state = StateOf["AgentState"]("agent").of(ctx.live)
    return state.sleeptime.get(agent.id, ())


def refused(ctx: Context, address: str, agent: LiveAgent) -> bool:
    """Refuse to delete `agent` when Letta would delete with it an agent it did not make for it
    (a problem)."""
    strangers = [s for s in _read(ctx, agent) if s.stranger]
    for s in strangers:
        ctx.problems.append(
            Problem(
                address,
                f"not deleted: Letta deletes the agents of the sleep-time group it manages "
                f"({agent.sleeptime_group}) with it, and {s.name} ({s.id}) is not one Letta made "
                f"for it ({s.stranger})",
                f"take {s.id} out of group {agent.sleeptime_group} first",
                code="LA639",
            )
        )
    return bool(strangers)


def blocks(ctx: Context, agent: LiveAgent) -> list[str]:
    """Ids of the blocks Letta made for `agent`'s sleep-time agents: deleted before it."""
    return [bid for s in _read(ctx, agent) for bid in s.blocks]


def going(ctx: Context, address: str, agent: LiveAgent, whose: str = "its") -> None:
    """Say what of the sleep-time group goes with `agent` (a note)."""
    found = _read(ctx, agent)
    if not found:
        return
    names = ", ".join(f"{s.name} ({s.id})" for s in found)
    made = ", ".join(f"{PERSONA} ({bid})" for s in found for bid in s.blocks)
    kept = ", ".join(f"{PERSONA} ({bid})" for s in found for bid in s.kept)
    ctx.notes.append(
        f"{address}: Letta deletes {whose} sleep-time agent {names} and group "
        f"({agent.sleeptime_group}) with it"
        + (f"; the block Letta made for that agent, {made}, is deleted first" if made else "")
        + (f"; {kept} is kept: other agents use it too" if kept else "")
    )
