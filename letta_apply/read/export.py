"""Write a manifest from agents and blocks that already exist, with the `imports:` that adopt
them: the way in for fleets built by hand. Server defaults are left out, so the manifest says
only what the user chose."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from ..core.marks import user_metadata
from ..errors import ApiError, route_gone
from ..kinds.agent.create_only import DEFAULT_AGENT_TYPE
from ..kinds.agent.kind import AGENT_INCLUDE, LiveAgent
from ..kinds.block.kind import LiveBlock, export_block
from ..kinds.group.kind import GroupKind, LiveGroup
from ..kinds.identity.kind import IdentityKind, LiveIdentity
from ..manifest.published import manifest_schema_id
from ..server.client import LettaClient
from .export_mcp import export_mcp


@dataclass
class Selection:
    """Which agents to export: by id, name or tag, or all of them."""

    ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    everything: bool = False


ExportFormat = Literal["yaml", "json"]


@dataclass
class Exported:
    document: dict[str, Any]  # the manifest, as data
    agents: int
    blocks: int
    skipped: list[str]  # why some selected agents were left out

    def text(self, fmt: ExportFormat = "yaml") -> str:
        """The manifest as a file: YAML with a header naming the schema (for editors) and
        what the imports do, or JSON (YAML's subset: `-f` loads it like any manifest)."""
        if fmt == "json":
            return json.dumps(self.document, indent=2, ensure_ascii=False) + "\n"
        body = yaml.dump(
            self.document, Dumper=ManifestDumper, sort_keys=False, allow_unicode=True, width=100
        )
        return _HEADER + body

    @property
    def manifest(self) -> str:
        """The manifest as YAML."""
        return self.text("yaml")


_HEADER = (
    f"# yaml-language-server: $schema={manifest_schema_id()}\n"
    "# Written by `letta-apply export`. The imports adopt these resources into the stack on\n"
    "# the next apply (it marks them; nothing else changes). Review, then commit.\n"
)


def manifest_key(text: str, taken: set[str]) -> str:
    """A manifest key made from a name or label, unlike any in `taken` (it joins them)."""
    key = re.sub(r"[^A-Za-z0-9_-]+", "_", text.strip()).strip("_-").lower()[:60] or "x"
    if not re.match(r"[A-Za-z_]", key):
        key = "_" + key
    base, n = key, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


ON_REQUEST = ("letta_builtin",)
"""Types of the server's own tools that an agent gets only when it asks for them by name."""

# Above this many blocks, one listing of the server's multi-attached blocks is cheaper.
_BLOCK_LOOKUPS_MAX = 10


def _select(client: LettaClient, sel: Selection) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if sel.everything:
        for raw in client.list_agents(include=AGENT_INCLUDE):
            found[raw["id"]] = raw
    for agent_id in sel.ids:
        raw = client.get_agent(agent_id, AGENT_INCLUDE)
        found[raw["id"]] = raw
    for name in sel.names:
        for raw in client.list_agents(name=name, include=AGENT_INCLUDE):
            found[raw["id"]] = raw
    for tag in sel.tags:
        for raw in client.list_agents(tag=tag, include=AGENT_INCLUDE):
            found[raw["id"]] = raw
    return list(found.values())


def export_manifest(
    client: LettaClient, stack: str, sel: Selection, *, include_system: bool = False
) -> Exported:
    """A manifest for stack `stack` declaring the selected agents and their blocks, and the
    `imports:` that adopt them into the stack on the next apply."""
    skipped: list[str] = []
    agents: list[tuple[LiveAgent, dict[str, Any]]] = []
    for raw in sorted(_select(client, sel), key=lambda r: (r.get("name") or "", r["id"])):
        agent = LiveAgent.from_api(raw)
        if agent.mark:
            owner = agent.mark.get("stack")
            skipped.append(f"{agent.name} ({agent.id}): already managed by stack '{owner}'")
            continue
        agents.append((agent, raw))

    blocks: dict[str, LiveBlock] = {}
    holders: dict[str, int] = {}
    for _, raw in agents:
        for b in raw.get("blocks") or ():
            blocks.setdefault(b["id"], LiveBlock.from_api(b))
            holders[b["id"]] = holders.get(b["id"], 0) + 1
    # A block only one exported agent uses is its own, unless another agent uses it too. For a
    # few blocks, ask each; for more, one listing of every block attached to more than one agent
    # on the server says which, whatever the number of blocks exported.
    shared_ids = {bid for bid, n in holders.items() if n > 1}
    single = sorted(bid for bid, n in holders.items() if n == 1)
    selected = {a.id for a, _ in agents}
    if len(single) <= _BLOCK_LOOKUPS_MAX:
        shared_ids |= {
            bid for bid in single if any(u["id"] not in selected for u in client.block_agents(bid))
        }
    else:
        shared_ids |= set(single) & client.list_block_ids(None, attached_more_than=1)

    block_keys: dict[str, str] = {}
    taken: set[str] = set()
    manifest_blocks: dict[str, Any] = {}
    imports: list[dict[str, str]] = []
    for bid in sorted(shared_ids, key=lambda i: (blocks[i].label, i)):
        b = blocks[bid]
        key = manifest_key(b.label, taken)
        block_keys[bid] = key
        manifest_blocks[key] = export_block(b, label=key != b.label)
        imports.append({"to": f"block.{key}", "id": bid})

    identity_keys, manifest_identities = _identities(client, agents, imports)
    manifest_mcp, mcp_tools = export_mcp(client, (a for a, _ in agents), imports, manifest_key)

    manifest_agents: dict[str, Any] = {}
    agent_keys: set[str] = set()
    key_of_agent: dict[str, str] = {}
    for agent, _ in agents:
        key = manifest_key(agent.name, agent_keys)
        key_of_agent[agent.id] = key
        refs = _Refs(blocks, shared_ids, block_keys, identity_keys, mcp_tools)
        spec = _agent_spec(agent, key, refs, include_system=include_system)
        manifest_agents[key] = spec
        imports.append({"to": f"agent.{key}", "id": agent.id})
    manifest_groups = _groups(client, key_of_agent, imports)

    doc: dict[str, Any] = {"version": 1, "stack": stack}
    if manifest_identities:
        doc["identities"] = manifest_identities
    if manifest_blocks:
        doc["blocks"] = manifest_blocks
    if manifest_mcp:
        doc["mcp_servers"] = manifest_mcp
    if manifest_agents:
        doc["agents"] = manifest_agents
    if manifest_groups:
        doc["groups"] = manifest_groups
    if imports:
        doc["imports"] = imports
    return Exported(doc, len(manifest_agents), len(manifest_blocks), skipped)


@dataclass(frozen=True)
class _Refs:
    """How an exported agent names what it uses: its blocks (by id), which are shared, and the
    manifest keys of the shared blocks and identities."""

    blocks: Mapping[str, LiveBlock]
    shared_ids: set[str]
    block_keys: Mapping[str, str]
    identity_keys: Mapping[str, str]
    mcp_tools: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)  # by agent id


def _agent_spec(agent: LiveAgent, key: str, refs: _Refs, *, include_system: bool) -> dict[str, Any]:
    """An agent's manifest entry, in the order a person writes it."""
    spec: dict[str, Any] = {}
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
    mcp = refs.mcp_tools.get(agent.id, [])
    from_mcp = {n for e in mcp for n in e["tools"]}
    # The server's own tools it attaches only when asked (web_search, run_code...) are named
    # too: a copy made from the export would go without them.
    tools = sorted(
        t.name
        for t in agent.tools
        if (not t.is_base or t.tool_type in ON_REQUEST) and t.name not in from_mcp
    )
    if tools:
        spec["tools"] = tools
    if mcp:
        spec["mcp_tools"] = mcp
    ids = [i for i in agent.block_ids if i in refs.blocks]
    own = [refs.blocks[i] for i in ids if i not in refs.shared_ids]
    if own:
        spec["memory_blocks"] = [export_block(b, label=True) for b in _by_label(own)]
    shared = [refs.block_keys[i] for i in ids if i in refs.shared_ids]
    if shared:
        spec["blocks"] = sorted(shared)
    idents = sorted(refs.identity_keys[i] for i in agent.identity_ids if i in refs.identity_keys)
    if idents:
        spec["identities"] = idents
    return spec


def _groups(
    client: LettaClient, key_of_agent: Mapping[str, str], imports: list[dict[str, str]]
) -> dict[str, Any]:
    """The groups made only of exported agents (manager and members; one listing, only when
    agents are exported), with their imports. A stack's group has the stack's agents in it,
    which are never exported, so none of these is a stack's. Their shared blocks are left out:
    Letta does not report them. A server that does not offer groups (Letta Cloud marks them
    deprecated) has none to export."""
    if not key_of_agent:
        return {}
    try:
        listed = list(client.paginate("/v1/groups/", {}))
    except ApiError as e:
        if route_gone(e):
            return {}
        raise
    kind = GroupKind()
    entries: dict[str, Any] = {}
    taken: set[str] = set()
    for raw in listed:
        group = LiveGroup.from_api(raw)
        members = [*group.agent_ids, *([group.manager_agent_id] if group.manager_agent_id else [])]
        if not members or any(a not in key_of_agent for a in members):
            continue
        entry = kind.export(group)
        entry["agents"] = [key_of_agent[a] for a in entry["agents"]]
        if "manager_agent" in entry:
            entry["manager_agent"] = key_of_agent[entry["manager_agent"]]
        key = manifest_key(f"{entry.get('manager_agent') or entry['agents'][0]}_group", taken)
        entries[key] = entry
        imports.append({"to": f"group.{key}", "id": group.id})
    return entries


def _identities(
    client: LettaClient,
    agents: list[tuple[LiveAgent, dict[str, Any]]],
    imports: list[dict[str, str]],
) -> tuple[dict[str, str], dict[str, Any]]:
    """The identities the exported agents act for (one listing, only when there are some):
    their keys by id, and their manifest entries; each gets an import. One another stack
    owns is left out: a resource has one owner."""
    wanted = {i for agent, _ in agents for i in agent.identity_ids}
    if not wanted:
        return {}, {}
    kind = IdentityKind()
    keys: dict[str, str] = {}
    entries: dict[str, Any] = {}
    taken: set[str] = set()
    found = [LiveIdentity.from_api(r) for r in client.paginate("/v1/identities/", {})]
    for identity in sorted(found, key=lambda i: (i.identifier_key, i.id)):
        if identity.id not in wanted or identity.mark:
            continue
        key = manifest_key(identity.identifier_key, taken)
        keys[identity.id] = key
        entry = kind.export(identity)
        if entry.get("identifier_key") == key:
            del entry["identifier_key"]  # it defaults to the key
        if entry.get("name") == key:
            del entry["name"]
        entries[key] = entry
        imports.append({"to": f"identity.{key}", "id": identity.id})
    return keys, entries


def _by_label(blocks: Iterable[LiveBlock]) -> list[LiveBlock]:
    return sorted(blocks, key=lambda b: b.label)


class ManifestDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so that personas read like text."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not value.startswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


ManifestDumper.add_representer(str, _str)
