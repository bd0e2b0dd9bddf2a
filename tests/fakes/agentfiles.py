"""Agent File routes of the fake Letta server (tests/fakes/server.py), shaped as Letta 0.16.8 shapes
them (letta/services/agent_serialization_manager.py): an agent's export and the import of a file,
an agent's messages and archival memory, and one archive by id.

- Export: as tests/fakes/agentfile.py shapes it (file ids, blocks without tags, secrets with
  empty values, no identities, the messages of the agent's context).
- Import (multipart: the file, `name`, `override_existing_tools`...): every block created anew
  with the file's tags and metadata, tools upserted by name (kept unless overridden), the agent
  named `<name>_copy` unless `name` is given, its context the file's messages.
- An agent's messages start as Letta's: a system message, then its initial message sequence
  (Letta's greeting when it has none). Inserting archival memory into an agent without an
  archive makes its default archive, `<name>'s Archive`.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.fakes.common import Http, _public

_GREETING = [
    {"role": "assistant", "content": "More human than human is our motto."},
    {"role": "user", "content": "login"},
]


def _form(request: httpx.Request) -> tuple[dict[str, str], bytes]:
    """The fields and the file of a multipart form."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    fields: dict[str, str] = {}
    file = b""
    for part in msg.iter_parts():
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            file = data
        else:
            fields[str(part.get_param("name", header="content-disposition"))] = data.decode()
    return fields, file


class FakeAgentFiles:
    """The Agent File half of the fake server; FakeLetta mixes it in."""

    agents: dict[str, dict[str, Any]]
    blocks: dict[str, dict[str, Any]]
    tools: dict[str, dict[str, Any]]
    archives: dict[str, dict[str, Any]]
    passages: dict[str, dict[str, Any]]
    identities: dict[str, dict[str, Any]]
    _new_block: Callable[..., dict[str, Any]]
    _new_agent: Callable[..., dict[str, Any]]
    _store_passage: Callable[..., dict[str, Any]]
    _archive: Callable[[str], dict[str, Any]]

    def agent_file_routes(
        self, request: httpx.Request, seq: Callable[[], int]
    ) -> list[tuple[str, str, Callable[..., Any]]]:
        q = request.url.params
        return [
            ("GET", r"/v1/agents/(agent-[^/]+)/export", self._export),
            ("POST", r"/v1/agents/import", lambda: self._import(request)),
            ("GET", r"/v1/agents/(agent-[^/]+)/messages", lambda i: self._messages(i, q)),
            (
                "GET",
                r"/v1/agents/(agent-[^/]+)/archival-memory",
                lambda i: self._archival(i, q),
            ),
            (
                "POST",
                r"/v1/agents/(agent-[^/]+)/archival-memory",
                lambda i: self._remember(i, json.loads(request.content), seq),
            ),
            ("GET", r"/v1/archives/(archive-[^/]+)", lambda i: _public(self._archive(i))),
            (
                "PATCH",
                r"/v1/agents/(agent-[^/]+)/identities/(attach|detach)/([^/]+)",
                self._agent_identity,
            ),
        ]

    def _agent_identity(self, aid: str, verb: str, iid: str) -> dict[str, Any]:
        agent = self._agent(aid)
        if iid not in self.identities:
            raise Http(404, f"{iid} not found")
        have = [i for i in agent.get("identity_ids") or () if i != iid]
        agent["identity_ids"] = [*have, iid] if verb == "attach" else have
        return _public(agent)

    def _agent(self, aid: str) -> dict[str, Any]:
        if aid not in self.agents:
            raise Http(404, f"{aid} not found")
        return self.agents[aid]

    def messages_of(self, aid: str) -> list[dict[str, Any]]:
        """An agent's messages (made as Letta makes them on the first look)."""
        agent = self._agent(aid)
        if "_messages" not in agent:
            first = agent.get("_initial_messages")
            made = [{"role": "system", "content": agent.get("system") or ""}]
            made += [dict(m) for m in (first if first is not None else _GREETING)]
            agent["_messages"] = [{"id": f"message-{uuid.uuid4()}", **m} for m in made]
        messages: list[dict[str, Any]] = agent["_messages"]
        return messages

    def _messages(self, aid: str, q: httpx.QueryParams) -> list[dict[str, Any]]:
        found = [
            {"id": m["id"], "message_type": f"{m['role']}_message", "content": m["content"]}
            for m in self.messages_of(aid)
        ]
        return found[: int(q.get("limit") or 100)]

    def _archival(self, aid: str, q: httpx.QueryParams) -> list[dict[str, Any]]:
        have = set(self._agent(aid).get("archive_ids") or ())
        items = sorted(
            (p for p in self.passages.values() if p["archive_id"] in have),
            key=lambda p: (p["created_at"], p["_seq"]),
        )
        if q.get("after"):
            ids = [p["id"] for p in items]
            items = items[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
        cap: Callable[[], int] | None = getattr(self, "page_cap", None)  # Cloud's page caps
        limit = cap() if cap else int(q.get("limit") or 100)
        return [{**_public(p), "embedding": [0.0] * 4} for p in items[:limit]]

    def _remember(self, aid: str, body: dict[str, Any], seq: Callable[[], int]) -> list[Any]:
        agent = self._agent(aid)
        if not agent.get("archive_ids"):
            made = f"archive-{uuid.uuid4()}"
            self.archives[made] = {
                "_seq": seq(), "id": made, "name": f"{agent['name']}'s Archive",
                "description": None, "metadata": None, "embedding_config": {"handle": "x"},
            }  # fmt: skip
            agent["archive_ids"] = [made]
        return [_public(self._store_passage(agent["archive_ids"][0], body, seq()))]

    # -- the Agent File --------------------------------------------------------------------

    def _export(self, aid: str) -> dict[str, Any]:
        from tests.fakes.agentfile import letta_export  # it names FakeLetta, which mixes this in

        self._agent(aid)
        return letta_export(self, aid)  # type: ignore[arg-type]

    def _import(self, request: httpx.Request) -> dict[str, Any]:
        fields, raw = _form(request)
        doc = json.loads(raw)
        override = fields.get("override_existing_tools", "true") == "true"
        ids: dict[str, str] = {}
        for t in doc.get("tools") or ():
            same = [x for x in self.tools.values() if x["name"] == t["name"]]
            tool = same[0] if same else {"id": f"tool-{uuid.uuid4()}"}
            if not same or override:
                tool.update({k: v for k, v in t.items() if k != "id"}, id=tool["id"])
            self.tools[tool["id"]] = tool
            ids[t["id"]] = tool["id"]
        for b in doc.get("blocks") or ():
            ids[b["id"]] = self._new_block({k: v for k, v in b.items() if k != "id"})["id"]
        made = []
        for a in doc["agents"]:
            name = fields.get("name") or f"{a['name']}_copy"
            agent = self._new_agent({
                **{k: v for k, v in a.items() if k not in ("id", "block_ids", "tool_ids")},
                "name": name, "block_ids": [ids[b] for b in a.get("block_ids") or ()],
                "tool_ids": [ids[t] for t in a.get("tool_ids") or ()],
            })  # fmt: skip
            context = set(a.get("in_context_message_ids") or ())
            agent["_messages"] = [
                {**{k: v for k, v in m.items() if k not in ("agent_id",)},
                 "id": f"message-{uuid.uuid4()}"}
                for m in a.get("messages") or () if m["id"] in context
            ]  # fmt: skip
            made.append(agent["id"])
        return {"agent_ids": made}
