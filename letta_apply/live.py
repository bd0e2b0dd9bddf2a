"""Read what the server holds for one stack, in a few paginated list calls.

Cost: ceil(blocks/page) + ceil(agents/page) requests, plus one tool lookup when the manifest names
tools, plus name lookups only for declared agents that do not exist yet (to find clashes with
agents made by hand). Never one request per existing resource.
"""

from __future__ import annotations

from collections.abc import Mapping

from .client import LettaClient
from .model import Desired, Live, LiveAgent, LiveBlock, stack_tag

AGENT_INCLUDE = ("agent.blocks", "agent.tags", "agent.tools")
# Above this many missing agents one full listing is cheaper than one lookup per name.
_NAME_LOOKUPS_MAX = 5


def read_live(client: LettaClient, desired: Desired) -> Live:
    """Read the live state that `desired` is compared with."""
    names = {a.address: a.name for a in desired.agents.values()}
    return read_stack(client, desired.stack, names, sorted(desired.tool_names()))


def read_stack(
    client: LettaClient, stack: str, agent_names: Mapping[str, str], tool_names: list[str]
) -> Live:
    """Read a stack's blocks and agents; look up the names of `agent_names` (address -> name)
    that have no agent yet, and the ids of `tool_names`."""
    tag = stack_tag(stack)
    tagged = [LiveBlock.from_api(b) for b in client.list_blocks(tag)]
    raw_agents = client.list_agents(tag=tag, include=AGENT_INCLUDE)

    blocks = {b.id: b for b in tagged}
    # An agent's view of its blocks omits their tags: keep the tagged copy where there is one.
    for a in raw_agents:
        for b in a.get("blocks") or ():
            blocks.setdefault(b["id"], LiveBlock.from_api(b))
    agents = tuple(LiveAgent.from_api(a) for a in raw_agents)

    return Live(
        blocks=blocks,
        agents=agents,
        tagged_block_ids=frozenset(b.id for b in tagged),
        clashes=_clashes(client, stack, agent_names, agents),
        tools=_tools(client, tool_names),
    )


def _clashes(
    client: LettaClient, stack: str, names: Mapping[str, str], agents: tuple[LiveAgent, ...]
) -> dict[str, tuple[str, ...]]:
    """Unmarked agents whose name a declared, not yet created agent would take."""
    present = {a.mark.get("address") for a in agents if a.mark.get("stack") == stack}
    missing = {name for address, name in names.items() if address not in present}
    if not missing:
        return {}
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
    return {name: tuple(ids) for name, ids in out.items()}


def _tools(client: LettaClient, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    return {t["name"]: t["id"] for t in client.list_tools(names)}
