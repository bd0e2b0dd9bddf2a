"""Letta's Agent File (`.af`): JSON in the shape of Letta 0.16.8's `AgentFileSchema`
(letta/schemas/agent_file.py), as `GET /v1/agents/{id}/export` writes it and
`POST /v1/agents/import` reads it.

Lists of agents, blocks, tools, groups, MCP servers, folders (`sources`) and their files, each
entity with an `id` of the file's own (`agent-0`, `block-3`...) that the others name it by: an
agent's `block_ids`, `tool_ids` and `source_ids`, a group's `agent_ids`. Agents carry their
messages. An Agent File comes from anywhere (a download, a colleague), so it is checked before
anything reads it: its size, that it is JSON, its nesting, the type of every field read, and
that every id it names is one of its own. The first problem found is an AgentFileError naming
the file and where in it (`agents[0].block_ids[1]`, or line:col for bad JSON).

The format's keys are data of that format, not letta-apply's kinds, though its lists share
names with kinds' sections (`agents`, `blocks`, `tools`...): those names, and its ids' prefixes,
are named here alone (memory.af_merge takes them from here), and backups and restore read and
edit a file only through the functions at the end of this module (`checked` ...
`blank_secrets`, handed to the kinds as kinds.holds_memory.AgentFiles)."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core.jsonish import JsonObject, items, obj
from ..errors import Diagnostic, LettaApplyError
from ..manifest.files import Unreadable, clip, clip_path, read_regular

MAX_BYTES = 100 * 1024 * 1024
"""The largest Agent File read: Letta's export of an agent with a long history is a few MB."""
MAX_DEPTH = 64
"""Nesting deeper than this is refused: Letta's own files nest about a dozen levels."""

SUFFIX = ".af"
AGENTS, GROUPS, BLOCKS, FILES = "agents", "groups", "blocks", "files"
SOURCES, TOOLS, MCP_SERVERS = "sources", "tools", "mcp_servers"
LISTS = (AGENTS, GROUPS, BLOCKS, FILES, SOURCES, TOOLS, MCP_SERVERS)
"""The entity lists of an Agent File, each entity with an `id` of the file's own."""
PREFIXES = {
    AGENTS: "agent", GROUPS: "group", BLOCKS: "block", FILES: "file", SOURCES: "source",
    TOOLS: "tool", MCP_SERVERS: "mcp_server",
}  # fmt: skip
"""The id prefix of each list's entities (Letta's PrimitiveType), as Letta's import checks."""

SECRETS = ("secrets", "tool_exec_environment_variables")
"""Where an agent keeps the values its tools run with (two names for one thing)."""

# The fields letta-apply reads, by list, and their JSON types ("?": null allowed). Fields not
# listed are carried as they are and never read.
_FIELDS: dict[str, dict[str, str]] = {
    "agents": {
        "id": "string", "name": "string?", "system": "string?", "description": "string?",
        "agent_type": "string?", "model": "string?", "embedding": "string?",
        "llm_config": "object?", "embedding_config": "object?", "tags": "strings?",
        "metadata": "object?", "tool_rules": "objects?", "block_ids": "strings?",
        "tool_ids": "strings?", "source_ids": "strings?", "folder_ids": "strings?",
        "group_ids": "strings?", "identity_ids": "strings?", "messages": "objects?",
        "in_context_message_ids": "strings?", "files_agents": "objects?",
        "secrets": "object?", "tool_exec_environment_variables": "object?",
        "timezone": "string?", "message_buffer_autoclear": "bool?",
        "max_files_open": "integer?", "per_file_view_window_char_limit": "integer?",
        "response_format": "object?",
    },
    "blocks": {
        "id": "string", "label": "string", "value": "string?", "limit": "integer?",
        "description": "string?", "read_only": "bool?", "metadata": "object?", "tags": "strings?",
    },
    "tools": {
        "id": "string", "name": "string", "tool_type": "string?", "source_type": "string?",
        "source_code": "string?", "description": "string?", "tags": "strings?",
        "json_schema": "object?", "return_char_limit": "integer?",
        "pip_requirements": "objects?", "default_requires_approval": "bool?",
        "metadata_": "object?",
    },
    "groups": {
        "id": "string", "agent_ids": "strings", "description": "string?",
        "manager_config": "object?", "shared_block_ids": "strings?",
    },
    "mcp_servers": {
        "id": "string", "server_name": "string", "server_type": "string?",
        "server_url": "string?", "stdio_config": "object?", "metadata_": "object?",
    },
    "sources": {"id": "string", "name": "string?"},
    "files": {"id": "string", "source_id": "string", "file_name": "string?"},
}  # fmt: skip
_MESSAGE = {"id": "string", "role": "string", "tool_calls": "objects?"}
_FILE_AGENT = {"file_id": "string", "source_id": "string"}
# What each agent field names, by the list it names into.
# (`group_ids` is not checked: Letta's export names there the group a member manages even when
# the file leaves that group out, and its import never reads it.)
_AGENT_REFS = {
    "block_ids": "blocks", "tool_ids": "tools", "source_ids": "sources", "folder_ids": "sources",
}  # fmt: skip


class AgentFileError(LettaApplyError):
    """An Agent File letta-apply will not read: where in it, and why, on one line."""

    code = "LA802"

    def __init__(self, file: str, where: str, message: str, line: int = 0, col: int = 0) -> None:
        self.file, self.where = file, where
        text = f"{where}: {message}" if where else message
        super().__init__(str(Diagnostic(file, line, col, text, code=self.code)))


@dataclass(frozen=True)
class AgentFile:
    """A checked Agent File: `data` as read (every list present, possibly empty)."""

    name: str  # the file, as messages name it
    data: Mapping[str, object]

    def entities(self, kind: str) -> list[JsonObject]:
        return _entities(self.data.get(kind))

    def by_id(self, kind: str) -> dict[str, JsonObject]:
        return {str(e["id"]): e for e in self.entities(kind)}


def _entities(value: object) -> list[JsonObject]:
    """The entities of a list of a checked file (each an object, edited in place)."""
    return [e for e in items(value) if isinstance(e, dict)]


def read_agent_file(path: str | Path) -> AgentFile:
    """Read and check the Agent File at `path`."""
    shown = clip_path(str(path))
    try:
        raw = read_regular(path, MAX_BYTES)
    except Unreadable as e:
        raise AgentFileError(shown, "", str(e)) from None
    return parse_agent_file(raw, shown)


def parse_agent_file(raw: bytes | str, name: str) -> AgentFile:
    """Check an Agent File given as its bytes or text; `name` says where it came from."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise AgentFileError(name, "", f"not UTF-8 text (byte {e.start})") from None
    if len(raw) > MAX_BYTES:
        raise AgentFileError(name, "", f"is over {MAX_BYTES} characters")
    data = _json(raw, name)
    if isinstance(data, str):  # Letta's import takes a JSON string holding the file too
        with contextlib.suppress(AgentFileError):  # else refused below, as a string
            data = _json(data, name)
    return check_agent_file(data, name)


def check_agent_file(data: object, name: str) -> AgentFile:
    """Check decoded JSON (`data`) as an Agent File."""
    if not isinstance(data, dict):
        raise AgentFileError(name, "", f"expected a JSON object (an Agent File), got {_type(data)}")
    _check_depth(data, name)
    if not isinstance(data.get("agents"), list):
        got = "nothing" if "agents" not in data else _type(data["agents"])
        raise AgentFileError(name, "agents", f"expected a list of agents, got {got}")
    checked: JsonObject = dict(data)
    for kind in LISTS:
        listed = data.get(kind)
        if listed is None:
            checked[kind] = []
            continue
        if not isinstance(listed, list):
            raise AgentFileError(name, kind, f"expected a list, got {_type(listed)}")
        for i, item in enumerate(listed):
            _fields(item, _FIELDS[kind], f"{kind}[{i}]", name)
    for i, agent in enumerate(_entities(checked["agents"])):
        for j, m in enumerate(items(agent.get("messages"))):
            _fields(m, _MESSAGE, f"agents[{i}].messages[{j}]", name)
        for j, fa in enumerate(items(agent.get("files_agents"))):
            _fields(fa, _FILE_AGENT, f"agents[{i}].files_agents[{j}]", name)
    if data.get("skills") is not None and not isinstance(data["skills"], list):
        raise AgentFileError(name, "skills", f"expected a list, got {_type(data['skills'])}")
    af = AgentFile(name, checked)
    _check_ids(af)
    _check_references(af)
    return af


def _json(text: str, name: str) -> object:
    def constant(word: str) -> object:
        raise ValueError(f"{word} is not a JSON number")

    try:
        found: object = json.loads(text, parse_constant=constant)
        return found
    except json.JSONDecodeError as e:
        raise AgentFileError(name, "", f"not valid JSON: {e.msg}", e.lineno, e.colno) from None
    except RecursionError:
        raise AgentFileError(name, "", f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:  # NaN, Infinity, an integer of thousands of digits
        raise AgentFileError(name, "", f"not valid JSON: {e}") from None


def _check_depth(data: object, name: str) -> None:
    """Nesting is bounded before anything walks the data recursively."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise AgentFileError(name, "", f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


_EXPECTED = {
    "string": (str, "a string"),
    "object": (dict, "an object"),
    "bool": (bool, "true or false"),
    "integer": (int, "a whole number"),
    "strings": (list, "a list of strings"),
    "objects": (list, "a list of objects"),
}


def _fields(item: object, spec: Mapping[str, str], where: str, name: str) -> None:
    if not isinstance(item, dict):
        raise AgentFileError(name, where, f"expected an object, got {_type(item)}")
    for field, kind in spec.items():
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        value = item.get(field)
        if value is None:
            if optional:
                continue
            raise AgentFileError(name, f"{where}.{field}", f"missing ({_EXPECTED[kind][1]})")
        pytype, expected = _EXPECTED[kind]
        ok = isinstance(value, pytype) and not (kind == "integer" and isinstance(value, bool))
        if not ok:
            raise AgentFileError(
                name, f"{where}.{field}", f"expected {expected}, got {_type(value)}"
            )
        if kind in ("strings", "objects"):
            inner, what = (str, "a string") if kind == "strings" else (dict, "an object")
            for j, v in enumerate(items(value)):
                if not isinstance(v, inner):
                    at = f"{where}.{field}[{j}]"
                    raise AgentFileError(name, at, f"expected {what}, got {_type(v)}")


def _check_ids(af: AgentFile) -> None:
    """Ids are unique across the whole file (Letta's import requires it), messages included."""
    seen: dict[str, str] = {}
    for where, eid in _ids(af):
        if eid in seen:
            raise AgentFileError(af.name, where, f"id {clip(eid)} is also the id of {seen[eid]}")
        seen[eid] = where


def _ids(af: AgentFile) -> Iterator[tuple[str, str]]:
    for kind in LISTS:
        for i, e in enumerate(af.entities(kind)):
            yield f"{kind}[{i}].id", str(e["id"])
    for i, agent in enumerate(af.entities("agents")):
        for j, m in enumerate(_entities(agent.get("messages"))):
            yield f"agents[{i}].messages[{j}].id", str(m["id"])


def _check_references(af: AgentFile) -> None:
    """Every id an entity names is one of the file's own, of the right list."""
    ids = {kind: set(af.by_id(kind)) for kind in LISTS}
    for i, agent in enumerate(af.entities("agents")):
        where = f"agents[{i}]"
        for field, kind in _AGENT_REFS.items():
            for j, ref in enumerate(items(agent.get(field))):
                _known(af, ids[kind], ref, f"{where}.{field}[{j}]", kind)
        own = {m["id"] for m in _entities(agent.get("messages"))}
        for j, ref in enumerate(items(agent.get("in_context_message_ids"))):
            _known(af, own, ref, f"{where}.in_context_message_ids[{j}]", f"{where}.messages")
        for j, fa in enumerate(_entities(agent.get("files_agents"))):
            _known(af, ids["files"], fa["file_id"], f"{where}.files_agents[{j}].file_id", "files")
            at = f"{where}.files_agents[{j}].source_id"
            _known(af, ids["sources"], fa["source_id"], at, "sources")
    for i, group in enumerate(af.entities("groups")):
        for j, ref in enumerate(items(group["agent_ids"])):
            _known(af, ids["agents"], ref, f"groups[{i}].agent_ids[{j}]", "agents")
        manager = obj(group.get("manager_config")).get("manager_agent_id")
        if manager is not None:
            at = f"groups[{i}].manager_config.manager_agent_id"
            if not isinstance(manager, str):
                raise AgentFileError(af.name, at, f"expected a string, got {_type(manager)}")
            _known(af, ids["agents"], manager, at, "agents")
    for i, f in enumerate(af.entities("files")):
        _known(af, ids["sources"], f["source_id"], f"files[{i}].source_id", "sources")


def _known(af: AgentFile, ids: Collection[object], ref: object, where: str, kind: str) -> None:
    """`ref` (a string, as checked) is one of `ids`."""
    if ref not in ids:
        raise AgentFileError(af.name, where, f"{clip(str(ref))} is not the id of any of {kind}")


# -- what backups and restore do to a file (kinds.holds_memory.AgentFiles) -------------------


def checked(answer: object, name: str) -> JsonObject:
    """Letta's export answer checked as an Agent File (the file, or the file as a JSON
    string); `name` says where it came from."""
    if isinstance(answer, str):
        return dict(parse_agent_file(answer, name).data)
    return dict(check_agent_file(answer, name).data)


def load(path: Path) -> JsonObject:
    """The Agent File at `path`, checked."""
    return dict(read_agent_file(path).data)


def dumps(doc: Mapping[str, object]) -> bytes:
    """The file's bytes, as Letta writes them (indented JSON)."""
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


def agents(doc: Mapping[str, object]) -> list[JsonObject]:
    return _entities(doc.get("agents"))


def blocks(doc: Mapping[str, object]) -> list[JsonObject]:
    return _entities(doc.get("blocks"))


def blocks_of(doc: Mapping[str, object], agent: Mapping[str, object]) -> list[JsonObject]:
    """The file's blocks an agent names, in its order."""
    by_id = {b.get("id"): b for b in _entities(doc.get("blocks"))}
    return [by_id[i] for i in items(agent.get("block_ids")) if i in by_id]


def message_counts(agent: Mapping[str, object]) -> tuple[int, int]:
    """An agent's messages in the file, and how many of them are in its context."""
    return len(items(agent.get("messages"))), len(items(agent.get("in_context_message_ids")))


def only(doc: Mapping[str, object], agent_id: str) -> JsonObject:
    """The file with one of its agents alone (a group's export holds the others too): the
    blocks, tools, sources and files it names, no group."""
    out = copy.deepcopy(dict(doc))
    (agent,) = [a for a in _entities(out["agents"]) if a.get("id") == agent_id]
    agent["group_ids"] = []
    out["agents"], out["groups"] = [agent], []
    keep = {
        "blocks": set(items(agent.get("block_ids"))),
        "tools": set(items(agent.get("tool_ids"))),
        "sources": set(items(agent.get("source_ids"))),
        "files": {f.get("file_id") for f in _entities(agent.get("files_agents"))},
    }
    for key, ids in keep.items():
        out[key] = [x for x in _entities(out.get(key)) if x.get("id") in ids]
    return out


def without_blocks(doc: Mapping[str, object], file_ids: Iterable[str]) -> JsonObject:
    """The file without these blocks (the agents' `block_ids` too): blocks that already exist,
    attached after the import instead of copied by it."""
    gone = set(file_ids)
    out = copy.deepcopy(dict(doc))
    out["blocks"] = [b for b in _entities(out.get("blocks")) if b.get("id") not in gone]
    for a in _entities(out["agents"]):
        a["block_ids"] = [i for i in items(a.get("block_ids")) if i not in gone]
    return out


def blank_secrets(doc: JsonObject) -> list[str]:
    """Empty every agent's secret values in place (Letta's export does too; never trusted
    to); returns their names."""
    names: set[str] = set()
    for a in _entities(doc.get("agents")):
        for key in SECRETS:
            given = a.get(key)
            if isinstance(given, dict):
                names.update(map(str, given))
                a[key] = dict.fromkeys(given, "")
    return sorted(names)
