"""Agents in the manifests export writes (kinds.writing): the agents export selects (by id, name
or tag, or all) that no stack manages, each declared as it is (server defaults left out), naming
by key what the kinds before it exported (shared blocks, identities, MCP servers). Its own blocks
are declared with it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...core.jsonish import JsonObject, objs, strings, text
from ...core.marks import user_metadata
from ...server.client import LettaClient
from ..block.kind import BlockKind, LiveBlock
from ..block.writing import export_block
from ..identity.kind import IdentityKind
from ..mcp_server.kind import McpServerKind
from ..tool.kind import ON_REQUEST
from ..writing import Export, Selected, Selection
from .create_only import DEFAULT_AGENT_TYPE
from .kind import AgentKind
from .model import AGENT_INCLUDE, LiveAgent


def selected_agents(client: LettaClient, sel: Selection) -> Selected:
    """The agents `sel` names, by name, that no stack manages; why the others are left out."""
    listed: list[Mapping[str, object]] = []
    if sel.everything:
        listed += client.list_agents(include=AGENT_INCLUDE)
    listed += [client.get_agent(agent_id, AGENT_INCLUDE) for agent_id in sel.ids]
    for name in sel.names:
        listed += client.list_agents(name=name, include=AGENT_INCLUDE)
    for tag in sel.tags:
        listed += client.list_agents(tag=tag, include=AGENT_INCLUDE)
    found = {str(raw["id"]): raw for raw in listed}
    kept: list[Mapping[str, object]] = []
    skipped: list[str] = []
    for raw in sorted(found.values(), key=lambda r: (text(r.get("name")), str(r["id"]))):
        agent = LiveAgent.from_api(raw)
        if agent.mark:
            owner = agent.mark.get("stack")
            skipped.append(f"{agent.name} ({agent.id}): already managed by stack '{owner}'")
            continue
        kept.append(raw)
    return Selected(kept, skipped)


def export_agents(ex: Export) -> JsonObject:
    """The selected agents, each by a key made from its name, naming the shared blocks,
    identities and MCP servers exported before them by their keys."""
    shared = ex.keys.get(BlockKind.name, {})
    identity_keys = ex.keys.get(IdentityKind.name, {})
    mcp_tools: Mapping[str, list[JsonObject]] = ex.extra.get(McpServerKind.name) or {}
    out: JsonObject = {}
    for raw in ex.selected:
        agent = LiveAgent.from_api(raw)
        key = ex.key(AgentKind.name, agent.id, agent.name)
        own = [LiveBlock.from_api(b) for b in objs(raw.get("blocks")) if b["id"] not in shared]
        spec = _spec(agent, key, include_system=ex.include_system)
        used = mcp_tools.get(agent.id, [])
        from_mcp = {n for e in used for n in strings(e["tools"])}
        # The server's own tools it attaches only when asked (web_search, run_code...) are
        # named too: a copy made from the export would go without them.
        tools = sorted(
            t.name
            for t in agent.tools
            if (not t.is_base or t.tool_type in ON_REQUEST) and t.name not in from_mcp
        )
        if tools:
            spec["tools"] = tools
        if used:
            spec["mcp_tools"] = used
        if own:
            spec["memory_blocks"] = [export_block(b, label=True) for b in _by_label(own)]
        named = [shared[i] for i in agent.block_ids if i in shared]
        if named:
            spec["blocks"] = sorted(named)
        idents = sorted(identity_keys[i] for i in agent.identity_ids if i in identity_keys)
        if idents:
            spec["identities"] = idents
        out[key] = spec
    return out


def _spec(agent: LiveAgent, key: str, *, include_system: bool) -> JsonObject:
    """What the agent is, in the order a person writes it."""
    spec: JsonObject = {}
    if agent.name != key:
        spec["name"] = agent.name
    if agent.description:
        spec["description"] = agent.description
    if include_system and agent.system:
        spec["system"] = agent.system
    if agent.model:
        spec["model"] = agent.model
    if agent.embedding:
        spec["embedding"] = agent.embedding
    if agent.agent_type and agent.agent_type != DEFAULT_AGENT_TYPE:
        spec["agent_type"] = agent.agent_type  # a copy made from the export is of its type
    if agent.tags:
        spec["tags"] = sorted(agent.tags)
    if user_metadata(agent.metadata):
        spec["metadata"] = user_metadata(agent.metadata)
    return spec


def _by_label(blocks: Iterable[LiveBlock]) -> list[LiveBlock]:
    return sorted(blocks, key=lambda b: b.label)
