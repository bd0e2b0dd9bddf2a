"""Letta's export and import of one agent, and what backups and restore do to its Agent File
(memory.af_format reads and checks one).

What Letta 0.16.8 does with a file (letta/services/agent_serialization_manager.py):
- Export writes an agent's secrets with empty values, no block tags and no identities; it holds
  the messages of the agent's context window (`in_context_message_ids`), not the older ones,
  and no archival passages. The manager of a group comes with the group's other agents.
- Import creates every block of the file anew (with the file's tags and metadata), upserts
  tools by name (`override_existing_tools` decides whether an existing tool's source is
  overwritten), creates each agent without messages, then gives it the file's messages, those
  `in_context_message_ids` names as its context. It appends `_copy` to the name unless `name`
  is given.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..core.model import MARK_KEY, SHOWN
from ..errors import ServerStateError
from ..server.client import LettaClient
from .af_format import check_agent_file, parse_agent_file

SUFFIX = ".af"
SECRETS = ("secrets", "tool_exec_environment_variables")
"""Where an agent keeps the values its tools run with (two names for one thing)."""


def export_agent(client: LettaClient, agent_id: str) -> dict[str, Any]:
    """The agent as Letta exports it, checked (a group's manager brings its members)."""
    found = client.request("GET", f"/v1/agents/{agent_id}/export")
    name = f"Letta's export of {agent_id}"
    # Described as answering the file as a JSON string; Letta 0.16.8 answers the object.
    af = parse_agent_file(found, name) if isinstance(found, str) else check_agent_file(found, name)
    return dict(af.data)


def import_agent_file(
    client: LettaClient,
    doc: Mapping[str, Any],
    *,
    name: str | None = None,
    override_existing_tools: bool = False,
) -> list[str]:
    """Import an Agent File; returns the ids of the agents made. `name` keeps the agent's name
    (without it Letta appends `_copy`); tools of the same name already on the server are kept
    unless `override_existing_tools`."""
    data = {"override_existing_tools": "true" if override_existing_tools else "false"}
    if name is not None:
        data["name"] = name
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    answer = client.request(
        "POST", "/v1/agents/import", files={"file": ("agent.af", body, "application/json")},
        data=data,
    )  # fmt: skip
    ids = answer.get("agent_ids") if isinstance(answer, Mapping) else None
    if not isinstance(ids, list) or not ids:
        raise ServerStateError(
            f"the server's import made no agent (it answered {answer!r:.200})", code="LA820"
        )
    return [str(i) for i in ids]


def dumps(doc: Mapping[str, Any]) -> bytes:
    """The file's bytes, as Letta writes them (indented JSON)."""
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


def blocks_of(doc: Mapping[str, Any], agent: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The file's blocks an agent names, in its order."""
    by_id = {b.get("id"): b for b in doc.get("blocks") or ()}
    return [by_id[i] for i in agent.get("block_ids") or () if i in by_id]


def only(doc: Mapping[str, Any], agent_id: str) -> dict[str, Any]:
    """The file with one of its agents alone (a group's export holds the others too): the
    blocks, tools, sources and files it names, no group."""
    out = copy.deepcopy(dict(doc))
    (agent,) = [a for a in out["agents"] if a.get("id") == agent_id]
    agent["group_ids"] = []
    out["agents"], out["groups"] = [agent], []
    keep = {
        "blocks": set(agent.get("block_ids") or ()),
        "tools": set(agent.get("tool_ids") or ()),
        "sources": set(agent.get("source_ids") or ()),
        "files": {f.get("file_id") for f in agent.get("files_agents") or ()},
    }
    for key, ids in keep.items():
        out[key] = [x for x in out.get(key) or () if x.get("id") in ids]
    return out


def without_blocks(doc: Mapping[str, Any], file_ids: Iterable[str]) -> dict[str, Any]:
    """The file without these blocks (the agents' `block_ids` too): blocks that already exist,
    attached after the import instead of copied by it."""
    gone = set(file_ids)
    out = copy.deepcopy(dict(doc))
    out["blocks"] = [b for b in out.get("blocks") or () if b.get("id") not in gone]
    for a in out["agents"]:
        a["block_ids"] = [i for i in a.get("block_ids") or () if i not in gone]
    return out


def blank_secrets(doc: dict[str, Any]) -> list[str]:
    """Empty every agent's secret values in place (Letta's export does too; never trusted
    to); returns their names."""
    names: set[str] = set()
    for a in doc.get("agents") or ():
        for key in SECRETS:
            given = a.get(key)
            if isinstance(given, dict):
                names.update(map(str, given))
                a[key] = dict.fromkeys(given, "")
    return sorted(names)


def mask_fields(entry: dict[str, Any], names: Iterable[str]) -> list[str]:
    """Replace fields the marks name sensitive (`system`, `metadata.key`...) in place by
    SHOWN; returns those that held a value."""
    done = []
    for name in sorted(set(names)):
        head, _, key = name.partition(".")
        if key and isinstance(entry.get(head), dict) and entry[head].get(key) is not None:
            entry[head][key] = SHOWN
            done.append(name)
        elif not key and entry.get(head) not in (None, ""):
            entry[head] = SHOWN
            done.append(name)
    return done


def masked(value: Any, mask: Callable[[str], str]) -> tuple[Any, int]:
    """`value` with every string passed through `mask`, and how many it changed. letta-apply's
    marks are left as they are: they never hold a secret, and their digests must survive a
    restore. (The data's nesting is bounded: Agent Files are checked, records are ours.)"""
    if isinstance(value, str):
        shown = mask(value)
        return shown, int(shown != value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        n = 0
        for k, v in value.items():
            out[k], changed = (v, 0) if k == MARK_KEY else masked(v, mask)
            n += changed
        return out, n
    if isinstance(value, list):
        items = [masked(v, mask) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0
