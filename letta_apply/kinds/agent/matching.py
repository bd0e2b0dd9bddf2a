"""Reading the stack's agents (kinds.agent) and matching them by their marks: an agent to import
(by id, or the one unmarked agent of a name), the unmarked agents holding the names declared
agents would take, the sleep-time agents of those a plan may delete, and the match itself (an
interrupted replacement, the agents' own blocks, those left behind by agents now gone)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ...core.model import Desired, Import, Live
from ...errors import ApiError
from ..block.kind import BLOCKS, leftover_own_blocks, owned_block_address, owned_of
from ..context import Matched
from ..resource import applied_of
from . import create_only as agent_create_only
from . import sleeptime as agent_sleeptime
from .model import AGENTS, AGENTS_DECLARED, WITH_SECRETS, AgentMatch, AgentState, LiveAgent

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ...server.client import LettaClient

# Above this many missing agents one full listing is cheaper than one lookup per name.
_NAME_LOOKUPS_MAX = 5


def find_agent(
    client: LettaClient, imp: Import
) -> tuple[LiveAgent | str, Mapping[str, object] | None]:
    """An agent by id, or the one unmarked agent of a name; with the agent as read (its
    blocks go to the blocks' state)."""
    if imp.id is not None:
        try:
            found = client.get_agent(imp.id, WITH_SECRETS)
        except ApiError as e:
            if e.status == 404:
                return f"no such resource on the server: {imp.id}", None
            raise
        return LiveAgent.from_api(found), found
    assert imp.name is not None
    named = [
        a for a in client.list_agents(name=imp.name, include=WITH_SECRETS)
        if not LiveAgent.from_api(a).mark
    ]  # fmt: skip
    if len(named) != 1:
        return (
            f"{len(named)} unmarked agents are named {imp.name!r}; import by id instead",
            None,
        )
    return LiveAgent.from_api(named[0]), named[0]


def completed(
    client: LettaClient, desired: Desired, live: Live, m: Matched[LiveAgent]
) -> AgentState:
    """The agents' state with the unmarked agents whose name a declared, not yet created agent
    would take, and the agents of the sleep-time groups of those the plan may delete
    (kinds.agent.sleeptime)."""
    imported = {imp.address for imp in desired.imports}
    missing = {
        a.name
        for address, a in AGENTS_DECLARED.of(desired).items()
        if address not in m.pool and address not in imported
    }
    state = names_taken(client, AGENTS.of(live), missing)
    ours = {a.id for a in state.ours(desired.stack)}
    read = {
        a.id: agent_sleeptime.read(client, a, desired.stack, ours)
        for a in agent_sleeptime.at_risk(_deletable(desired, m))
    }
    return replace(state, sleeptime=read)


def names_taken(client: LettaClient, state: AgentState, names: set[str]) -> AgentState:
    """The state with the unmarked agents that hold any of `names` (agent names may
    repeat: the listing cannot say)."""
    missing = names
    if not missing:
        return state
    if state.unmarked is not None:  # seen by a listing of every agent: nothing to ask
        taken = {n: state.unmarked[n] for n in sorted(missing) if n in state.unmarked}
        return replace(state, clashes=taken)
    if len(missing) <= _NAME_LOOKUPS_MAX:
        found = [
            a for n in sorted(missing) for a in client.list_agents(name=n, include=("agent.tags",))
        ]
    else:
        found = client.list_agents(include=("agent.tags",))
    out: dict[str, list[str]] = {}
    for raw in found:
        agent = LiveAgent.from_api(raw)
        if agent.name in missing and not agent.mark:
            out.setdefault(agent.name, []).append(agent.id)
    return replace(state, clashes={name: tuple(ids) for name, ids in out.items()})


def _deletable(desired: Desired, m: Matched[LiveAgent]) -> list[LiveAgent]:
    """The stack's agents a plan may delete: those no longer declared (all, for destroy), those
    an interrupted replacement left behind, and those a create-only field now replaces."""
    extra = left(m)
    out = [a for _, a in extra.superseded]
    for address, la in m.pool.items():
        if address in desired.removed:
            continue  # let go of, never deleted
        da = AGENTS_DECLARED.of(desired).get(desired.moved.get(address, address))
        if da is None or agent_create_only.replacement(da, la, applied_of(la)) is not None:
            out.append(la)
    return out


def match_agents(stack: str, live: Live) -> Matched[LiveAgent]:
    """Should two agents carry one address, the one that replaces the other wins (an
    interrupted replacement), else the oldest; the others are reported and left alone."""
    state = AGENTS.of(live)
    pool, superseded, notes = _by_address(state, stack)
    blocks = BLOCKS.of(live)
    shared = {
        b.id
        for b in blocks.blocks.values()
        if b.id in blocks.tagged and str(b.mark.get("address", "")).startswith("block.")
        and b.mark.get("stack") == stack
    }  # fmt: skip
    owned = {
        owned_block_address(address, b.label): b
        for address, a in pool.items()
        for b in owned_of(a, blocks, shared)
    }
    ids = {a: r.id for a, r in pool.items()} | {a: b.id for a, b in owned.items()}
    leftovers = tuple(leftover_own_blocks(blocks, state.agents, stack))
    # Who another stack's marks claim, as the users of blocks a plan may delete say.
    elsewhere = {
        u for users in blocks.users.values() for u, _, s in users if s not in (None, stack)
    }
    companions = agent_sleeptime.companions(
        state, [*pool.values(), *(a for _, a in superseded)], elsewhere
    )
    extra = AgentMatch(tuple(superseded), owned, leftovers, companions)
    return Matched(pool, ids, tuple(notes), extra)


def _by_address(
    state: AgentState, stack: str
) -> tuple[dict[str, LiveAgent], list[tuple[str, LiveAgent]], list[str]]:
    """The stack's agents by the address their marks carry (the pool), those an interrupted
    replacement superseded, and notes on the others carrying an address twice."""
    tag = f"letta-apply:{stack}"
    candidates: dict[str, list[LiveAgent]] = {}
    for a in state.agents:
        address = a.mark.get("address")
        ours = tag in a.tags and a.mark.get("stack") == stack
        if ours and isinstance(address, str) and address.startswith("agent."):
            candidates.setdefault(address, []).append(a)
    pool: dict[str, LiveAgent] = {}
    superseded: list[tuple[str, LiveAgent]] = []
    notes: list[str] = []
    for address, found in candidates.items():
        replaced = {a.mark.get("replaces") for a in found}
        winner = next((a for a in found if a.mark.get("replaces")), found[0])
        pool[address] = winner
        for a in found:
            if a is winner:
                continue
            if a.id in replaced:
                superseded.append((address, a))
            else:
                notes.append(
                    f"{address}: more than one agent carries this address ({winner.id}, "
                    f"{a.id}); using {winner.id}, the other is left alone"
                )
    return pool, superseded, notes


def left(m: Matched[LiveAgent]) -> AgentMatch:
    """What the agents' match left for planning (it always leaves an AgentMatch)."""
    assert isinstance(m.extra, AgentMatch), "the agents' match left no AgentMatch"
    return m.extra
