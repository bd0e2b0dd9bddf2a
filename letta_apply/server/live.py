"""Read what the server holds for one stack, in a few paginated list calls.

Cost: ceil(blocks/page) + ceil(agents/page) + ceil(tools/page) requests, the three listings read
side by side (Letta cannot filter tools by tag: the one tool listing finds the stack's tools, the
ids of the tools agents name and the names declared tools would take), plus name lookups only for
declared agents that do not exist yet (to find clashes with agents made by hand), plus, when a
plan may delete blocks, a few block listings filtered by attachment count (to find users outside
the stack), plus one agent listing when a plan may delete a tool (to find who else uses it).
Never one request per existing resource."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from ..errors import ApiError
from ..model import MARK_KEY, Desired, Import, Live, LiveAgent, LiveBlock, LiveTool, stack_tag
from ..plan.match import deletion_candidates, match
from .client import LettaClient
from .lock import is_lock_record

AGENT_INCLUDE = ("agent.blocks", "agent.tags", "agent.tools")
# Above this many missing agents one full listing is cheaper than one lookup per name.
_NAME_LOOKUPS_MAX = 5


def read_live(client: LettaClient, desired: Desired, *, destroy: bool = False) -> Live:
    """Read the live state that `desired` is compared with (for `destroy`, everything the stack
    owns), plus which agents use each block the plan may delete."""
    names = {} if destroy else {a.address: a.name for a in desired.agents.values()}
    for imp in desired.imports:
        names.pop(imp.address, None)  # an imported agent is adopted, not created
    live = read_stack(client, desired.stack, names, () if destroy else desired.imports)
    candidates = deletion_candidates(desired, live, destroy=destroy)
    blocks = [i for i in candidates if not i.startswith("tool-")]
    doomed_tools = [i for i in candidates if i.startswith("tool-")]
    return replace(
        live,
        users=_block_users(client, desired, live, blocks),
        tool_users=_tool_users(client, doomed_tools),
    )


def _block_users(
    client: LettaClient, desired: Desired, live: Live, candidates: list[str]
) -> dict[str, tuple[tuple[str, str, str | None], ...]]:
    """The agents using each of `candidates` (blocks the plan may delete), read only for the
    blocks that may have users outside the stack.

    The stack's agents were listed with their blocks, so how many of them use each block is
    known; a block whose attachment count on the server is higher has another user. Letta
    filters a list of blocks by attachment count, so the check costs one tag-filtered listing
    per distinct count instead of one request per block; only the blocks it flags (or that lack
    the stack's tag, which those listings would miss) are looked up one by one.
    """
    if not candidates:
        return {}
    m = match(desired.stack, desired.tag, live)
    ours = {a.id: a for a in [*m.agents.values(), *(a for _, a in m.superseded)]}
    known = Counter(i for a in ours.values() for i in set(a.block_ids))
    suspect = {i for i in candidates if i not in live.tagged_block_ids}
    groups: dict[int, set[str]] = {}
    for i in candidates:
        if i in live.tagged_block_ids:
            groups.setdefault(known[i], set()).add(i)
    tagged_known = [known[i] for i in live.tagged_block_ids]
    for count, ids in sorted(groups.items()):
        # Ask for the smaller side: the blocks used more than `count` times (suspects), or those
        # used at most `count` times (cleared). The known counts are lower bounds of the real
        # ones, so they estimate the size of each answer.
        above = sum(1 for k in tagged_known if k > count)
        if above <= len(tagged_known) - above:
            flagged = client.list_block_ids(desired.tag, attached_more_than=count)
            suspect |= ids & flagged
        else:
            cleared = client.list_block_ids(desired.tag, attached_fewer_than=count + 1)
            suspect |= ids - cleared
    return {
        bid: tuple((u["id"], u.get("name") or "", _stack_of(u)) for u in client.block_agents(bid))
        for bid in sorted(suspect)
    }


def _tool_users(
    client: LettaClient, tool_ids: list[str]
) -> dict[str, tuple[tuple[str, str, str | None], ...]]:
    """Agents using each of `tool_ids`: Letta has no route for a tool's agents, so one listing
    of every agent with its tools (only when a plan may delete a tool)."""
    if not tool_ids:
        return {}
    out: dict[str, list[tuple[str, str, str | None]]] = {i: [] for i in tool_ids}
    for a in client.list_agents(include=("agent.tools", "agent.tags")):
        for t in a.get("tools") or ():
            if t["id"] in out:
                out[t["id"]].append((a["id"], a.get("name") or "", _stack_of(a)))
    return {i: tuple(users) for i, users in out.items()}


def read_stack(
    client: LettaClient,
    stack: str,
    agent_names: Mapping[str, str],
    imports: Sequence[Import] = (),
) -> Live:
    """Read a stack's blocks, agents and tools (and every tool's name and id); look up the names
    of `agent_names` (address -> name) that have no agent yet, and the resources `imports`
    name."""
    tag = stack_tag(stack)
    # The listings do not depend on each other: on a big stack, reading them side by side
    # saves the time a plan waits for the server.
    with ThreadPoolExecutor(max_workers=3) as pool:
        blocks_read = pool.submit(client.list_blocks, tag)
        agents_read = pool.submit(client.list_agents, tag=tag, include=AGENT_INCLUDE)
        tools_read = pool.submit(client.list_tools)
        # Lock records never carry the stack's tag; the filter keeps them out regardless.
        tagged = [LiveBlock.from_api(b) for b in blocks_read.result() if not is_lock_record(b)]
        raw_agents = agents_read.result()
        tools = [LiveTool.from_api(t) for t in tools_read.result()]
    agents = tuple(LiveAgent.from_api(a) for a in raw_agents)
    present = {a.mark.get("address") for a in agents if a.mark.get("stack") == stack}
    present |= {b.mark.get("address") for b in tagged if b.mark.get("stack") == stack}
    present |= {t.mark.get("address") for t in tools if t.mark.get("stack") == stack}

    imported: dict[str, LiveAgent | LiveBlock | LiveTool | str] = {}
    for imp in imports:
        if imp.address in present:
            continue
        if imp.address.startswith("tool."):
            imported[imp.address] = _find_tool(tools, imp)
        else:
            found, raw = _find_import(client, imp)
            imported[imp.address] = found
            raw_agents.extend(raw)

    blocks = {b.id: b for b in tagged}
    # An agent's view of its blocks omits their tags: keep the tagged copy where there is one.
    for a in raw_agents:
        for b in a.get("blocks") or ():
            blocks.setdefault(b["id"], LiveBlock.from_api(b))
    for adopted in imported.values():
        if isinstance(adopted, LiveBlock):
            blocks.setdefault(adopted.id, adopted)

    return Live(
        blocks=blocks,
        agents=agents,
        tagged_block_ids=frozenset(b.id for b in tagged),
        clashes=_clashes(client, agent_names, present),
        tools={t.name: t.id for t in tools},
        imported=imported,
        custom_tools=tuple(t for t in tools if not t.is_base),
    )


def _find_tool(tools: Sequence[LiveTool], imp: Import) -> LiveTool | str:
    """The tool an import names, from the listing already read (tool names are unique)."""
    found = [t for t in tools if t.id == imp.id or (imp.name is not None and t.name == imp.name)]
    if not found:
        return f"no such tool on the server: {imp.id or imp.name}"
    if found[0].is_base:
        return f"{found[0].name} is one of the server's own tools; agents use it by name"
    return found[0]


def _find_import(
    client: LettaClient, imp: Import
) -> tuple[LiveAgent | LiveBlock | str, list[dict[str, Any]]]:
    """The resource an import names, with the raw agent read (for its blocks), or why none."""
    try:
        if imp.address.startswith("block."):
            assert imp.id is not None
            return LiveBlock.from_api(client.get_block(imp.id)), []
        if imp.id is not None:
            raw = client.get_agent(imp.id, AGENT_INCLUDE)
            return LiveAgent.from_api(raw), [raw]
    except ApiError as e:
        if e.status == 404:
            return f"no such resource on the server: {imp.id}", []
        raise
    assert imp.name is not None
    found = [
        raw for raw in client.list_agents(name=imp.name, include=AGENT_INCLUDE)
        if not LiveAgent.from_api(raw).mark
    ]  # fmt: skip
    if len(found) != 1:
        return (
            f"{len(found)} unmarked agents are named {imp.name!r}; import by id instead",
            [],
        )
    return LiveAgent.from_api(found[0]), found


def _stack_of(agent: Mapping[str, Any]) -> str | None:
    mark = (agent.get("metadata") or {}).get(MARK_KEY)
    return mark.get("stack") if isinstance(mark, Mapping) else None


def _clashes(
    client: LettaClient, names: Mapping[str, str], present: set[Any]
) -> dict[str, tuple[str, ...]]:
    """Unmarked agents whose name a declared, not yet created agent would take."""
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
