"""Several of Letta's own Agent File exports made one file (export --format af).

Letta 0.16.8 exports one agent per request (`GET /v1/agents/{id}/export`; the manager of a group
brings the group and its members along), each file numbering its entities from 0 (`agent-0`,
`block-0`...). A stack's agents share blocks and tools, so the merged file holds each thing once,
recognised across exports by what identifies it on the server:

- an agent by its id: the one each export was asked for leads it; another of the stack's agents
  in it (a group's member) carries the stack's mark, naming its address;
- a block by its id, found through an agent of the stack that holds it: labels are unique among
  an agent's blocks, and the stack's listing gave each agent's blocks with their ids;
- a tool by its name, an MCP server by its name, a folder (`sources`) by its name, and a file by
  its folder and name: Letta keeps each unique;
- anything else (a member outside the stack, a group) belongs to its one export.

Then every id is renumbered for the merged file, every reference rewritten, and letta-apply's
marks (the stack's tag, the `letta_apply` metadata entry) and secret values taken out: a file
made to share must not make whoever imports it a second owner of the stack's addresses."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from ..core.jsonish import JsonObject, items, obj, objs, strings
from ..core.model import MARK_KEY, stack_tag
from ..errors import ServerStateError
from ..kinds.holds_memory import Exported
from .af_format import (
    AGENTS,
    BLOCKS,
    FILES,
    GROUPS,
    LISTS,
    MCP_SERVERS,
    PREFIXES,
    SOURCES,
    TOOLS,
    AgentFile,
)

__all__ = ["PREFIXES", "merge_exports"]

# Order in which one export's entities are taken: what is named before what names it.
_ORDER = (MCP_SERVERS, TOOLS, SOURCES, FILES, BLOCKS, AGENTS, GROUPS)


def merge_exports(stack: str, exports: Sequence[tuple[Exported, AgentFile]]) -> JsonObject:
    """One Agent File holding what `exports` hold, each thing once. Each export comes with the
    stack's agent it was asked for, as the stack's listing gave it (with its blocks)."""
    merger = _Merger(stack, [live for live, _ in exports])
    for k, (live, af) in enumerate(exports):
        merger.add(k, live, af)
    first = exports[0][1].data if exports else {}
    doc: JsonObject = {kind: merger.lists[kind] for kind in LISTS}
    doc["skills"] = merger.skills
    doc["metadata"] = dict(obj(first.get("metadata")))
    doc["created_at"] = first.get("created_at")
    return doc


class _Merger:
    def __init__(self, stack: str, agents: Sequence[Exported]) -> None:
        self.stack, self.tag = stack, stack_tag(stack)
        self.lists: dict[str, list[JsonObject]] = {kind: [] for kind in LISTS}
        self.skills: list[object] = []
        self.ids: dict[Hashable, str] = {}  # what identifies a thing -> its id in the merged file
        self.counts = dict.fromkeys(PREFIXES, 0)
        self.messages = 0
        # The stack's agents come first, numbered in the order given.
        self.by_address = {str(a.mark.get("address") or a.id): a.id for a in agents}
        self.labels = {a.id: a.blocks for a in agents}
        for a in agents:
            self.ids[(AGENTS, a.id)] = self._new_id(AGENTS)

    def _new_id(self, kind: str) -> str:
        n = self.counts[kind]
        self.counts[kind] += 1
        return f"{PREFIXES[kind]}-{n}"

    def add(self, k: int, live: Exported, af: AgentFile) -> None:
        """Take export `k` (of the stack's agent `live`): what it holds that no earlier export
        held, its ids renumbered."""
        agents = af.entities(AGENTS)
        if not agents or agents[0].get("name") != live.name:
            raise ServerStateError(
                f"{af.name}: Letta's export does not lead with the agent asked for; nothing "
                "was written",
                code="LA821",
            )
        db = {str(agents[0]["id"]): live.id}
        for a in agents[1:]:
            address = _mark(a.get("metadata")).get("address")
            ours = _mark(a.get("metadata")).get("stack") == self.stack
            if ours and isinstance(address, str) and address in self.by_address:
                db[str(a["id"])] = self.by_address[address]
        known = self._known_blocks(af, db)
        fmap: dict[str, str] = {}
        placed: list[tuple[str, JsonObject]] = []
        for kind in _ORDER:
            for e in af.entities(kind):
                if kind == AGENTS and e["id"] in db:
                    ident: Hashable = (AGENTS, db[str(e["id"])])
                    first = e is agents[0]  # the stack's other agents come with their own export
                else:
                    ident = self._identity(kind, k, e, known, fmap)
                    first = ident not in self.ids
                if ident not in self.ids:
                    self.ids[ident] = self._new_id(kind)
                fmap[str(e["id"])] = self.ids[ident]
                if first:
                    placed.append((kind, e))
        for kind, e in placed:
            self.lists[kind].append(self._rewritten(kind, e, fmap))
        names = {str(s.get("name")) for s in self.skills if isinstance(s, dict)}
        for skill in items(af.data.get("skills")):
            if not isinstance(skill, dict) or str(skill.get("name")) not in names:
                self.skills.append(skill)

    def _known_blocks(self, af: AgentFile, db: Mapping[str, str]) -> dict[str, str]:
        """The server ids of the export's blocks that one of the stack's agents holds."""
        blocks = af.by_id(BLOCKS)
        known: dict[str, str] = {}
        for a in af.entities(AGENTS):
            labels = self.labels.get(db.get(str(a["id"]), ""), {})
            for bid in strings(a.get("block_ids")):
                found = labels.get(str(blocks[bid].get("label")))
                if found:
                    known[bid] = found
        return known

    def _identity(
        self,
        kind: str,
        k: int,
        e: Mapping[str, object],
        known: Mapping[str, str],
        fmap: Mapping[str, str],
    ) -> Hashable:
        if kind == BLOCKS and e["id"] in known:
            return (BLOCKS, known[str(e["id"])])
        if kind == TOOLS:
            return (TOOLS, e["name"])
        if kind == MCP_SERVERS:
            return (MCP_SERVERS, e["server_name"])
        if kind == SOURCES and e.get("name"):
            return (SOURCES, e["name"])
        if kind == FILES and e.get("file_name"):
            return (FILES, fmap[str(e["source_id"])], e["file_name"])
        return (kind, k, e["id"])

    def _rewritten(self, kind: str, e: Mapping[str, object], fmap: Mapping[str, str]) -> JsonObject:
        out = dict(e)
        out["id"] = fmap[str(e["id"])]
        for field in ("metadata", "metadata_"):
            given = out.get(field)
            if isinstance(given, dict):
                out[field] = {k: v for k, v in given.items() if k != MARK_KEY}
        tags = out.get("tags")
        if isinstance(tags, list):
            out["tags"] = [t for t in tags if t != self.tag]
        if kind == FILES:
            out["source_id"] = fmap[str(e["source_id"])]
        elif kind == GROUPS:
            out["agent_ids"] = [fmap[str(a)] for a in items(e["agent_ids"])]
            config = dict(obj(e.get("manager_config")))
            manager = config.get("manager_agent_id")
            if manager in fmap:
                config["manager_agent_id"] = fmap[str(manager)]
            out["manager_config"] = config
        elif kind == AGENTS:
            self._agent(out, e, fmap)
        return out

    def _agent(self, out: JsonObject, e: Mapping[str, object], fmap: Mapping[str, str]) -> None:
        for field in ("block_ids", "tool_ids", "source_ids", "folder_ids"):
            if e.get(field) is not None:
                out[field] = [fmap[str(i)] for i in items(e[field])]
        out["group_ids"] = [fmap[str(g)] for g in items(e.get("group_ids")) if g in fmap]
        for field in ("secrets", "tool_exec_environment_variables"):
            given = e.get(field)
            if isinstance(given, dict):  # Letta blanks them too: never a value
                out[field] = dict.fromkeys(given, "")
        messages: dict[str, str] = {}
        written: list[JsonObject] = []
        for m in objs(e.get("messages")):
            messages[str(m["id"])] = f"message-{self.messages}"
            self.messages += 1
            written.append({**m, "id": messages[str(m["id"])], "agent_id": out["id"]})
        out["messages"] = written
        in_context = items(e.get("in_context_message_ids"))
        out["in_context_message_ids"] = [messages[str(i)] for i in in_context]
        files_agents: list[JsonObject] = []
        for fa in objs(e.get("files_agents")):
            files_agents.append(
                {**fa, "agent_id": out["id"], "file_id": fmap[str(fa["file_id"])],
                 "source_id": fmap[str(fa["source_id"])]}
            )  # fmt: skip
        out["files_agents"] = files_agents


def _mark(metadata: object) -> Mapping[str, object]:
    mark = metadata.get(MARK_KEY) if isinstance(metadata, dict) else None
    return mark if isinstance(mark, dict) else {}
