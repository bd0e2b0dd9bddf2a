"""Agent routes of the fake Letta server (tests/fakes/server.py): agents made with their own
(inline) blocks, which lose their metadata, and Letta's base tools and rules; settings landing
where Letta 0.16.8 puts them; blocks attached (409 on a duplicate label) and detached (404 when
not attached); an agent's own blocks left behind when it is deleted."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tests.fakes.common import Http, Route, _public


class FakeAgents:
    """The agent part of the fake server; FakeLetta mixes it in."""

    agents: dict[str, dict[str, Any]]
    blocks: dict[str, dict[str, Any]]
    tools: dict[str, dict[str, Any]]
    identities: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    _seq: itertools.count[int]
    _new_block: Callable[..., dict[str, Any]]
    _list: Callable[[dict[str, dict[str, Any]], httpx.QueryParams], list[dict[str, Any]]]
    _get: Callable[[dict[str, dict[str, Any]], str], dict[str, Any]]

    def agent_routes(self, q: httpx.QueryParams, body: Any) -> list[Route]:
        return [
            (
                "GET",
                r"/v1/agents/(agent-[^/]+)",
                lambda i: self._agent_view(self._get(self.agents, i), q.get_list("include")),
            ),
            ("DELETE", r"/v1/agents/(agent-[^/]+)", self._delete_agent),
            (
                "GET",
                r"/v1/agents/",
                lambda: [
                    self._agent_view(a, q.get_list("include")) for a in self._list(self.agents, q)
                ],
            ),
            ("POST", r"/v1/agents/", lambda: self._create_agent(body)),
            ("PATCH", r"/v1/agents/(agent-[^/]+)", lambda i: self._patch_agent(i, body)),
            ("PATCH", r"/v1/agents/(agent-[^/]+)/core-memory/blocks/attach/([^/]+)", self._attach),
            ("PATCH", r"/v1/agents/(agent-[^/]+)/core-memory/blocks/detach/([^/]+)", self._detach),
            ("GET", r"/v1/agents/(agent-[^/]+)/core-memory/blocks/([^/]+)", self._by_label),
            (
                "PATCH",
                r"/v1/agents/(agent-[^/]+)/core-memory/blocks/([^/]+)",
                lambda a, label: self._patch_block(self._by_label(a, label)["id"], body),
            ),
        ]

    def _create_agent(self, body: dict[str, Any]) -> dict[str, Any]:
        # Letta keeps the tags of inline blocks but drops their metadata.
        own = [
            self._new_block(b, keep_metadata=False)["id"] for b in body.get("memory_blocks") or []
        ]
        shared = [i for i in body.get("block_ids") or [] if i in self.blocks]  # unknown ids dropped
        tools = list(body.get("tool_ids") or [])
        if body.get("include_base_tools", True):
            tools += [
                t["id"]
                for t in self.tools.values()
                if t["tool_type"] == "letta_core" and t["id"] not in tools
            ]
        # As Letta 0.16.8: include_base_tool_rules adds loop rules for the base tools it gives
        # (send_message ends the loop), after the declared rules; the agent does not report it.
        rules = list(body.get("tool_rules") or [])
        if body.get("include_base_tool_rules"):
            base = [
                self.tools[t]["name"] for t in tools if self.tools[t]["tool_type"] == "letta_core"
            ]
            rules += [
                {"type": "exit_loop" if n == "send_message" else "continue_loop", "tool_name": n}
                for n in base
            ]
        agent = self._new_agent(
            {**body, "id": None, "block_ids": own + shared, "tool_ids": tools, "tool_rules": rules}
        )
        # The agent's first messages (None: Letta's default greeting), kept where no view
        # shows them: letta-apply never reads messages.
        agent["_initial_messages"] = body.get("initial_message_sequence")
        self.served_by(agent)
        if body.get("enable_sleeptime"):
            self.make_sleeptime(agent)
        return self._agent_view(_public(agent))

    def _new_agent(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        aid = spec.get("id") or f"agent-{uuid.uuid4()}"
        self.agents[aid] = {
            "id": aid,
            "_seq": next(self._seq),
            "name": spec.get("name", ""),
            "description": spec.get("description"),
            "system": spec.get("system", "default system"),
            "model": spec.get("model"),
            "embedding": spec.get("embedding"),
            "agent_type": spec.get("agent_type") or "letta_v1_agent",  # Letta's default
            "tags": spec.get("tags") or [],
            "metadata": spec.get("metadata") or {},
            "block_ids": list(spec.get("block_ids") or []),
            "tool_ids": list(spec.get("tool_ids") or []),
            "tool_rules": spec.get("tool_rules") or [],
            "identity_ids": [i for i in spec.get("identity_ids") or [] if i in self.identities],
        }
        _land_settings(self.agents[aid], spec)
        return self.agents[aid]

    def _patch_agent(self, aid: str, body: dict[str, Any]) -> dict[str, Any]:
        if aid not in self.agents:
            raise Http(404, f"{aid} not found")
        for k, v in body.items():
            if k == "tool_rules" and _same_rules(self.agents[aid].get("tool_rules") or [], v):
                continue  # as in Letta, which compares a run_first rule without its args
            # Letta's UpdateAgent has no create-only fields: they are dropped.
            if v is not None and k not in (*_LANDED, *_SECRETS, *_CREATE_ONLY):
                self.agents[aid][k] = v
        _land_settings(self.agents[aid], body)
        self.sleeptime_patched(self.agents[aid], body)
        return self._agent_view(_public(self.agents[aid]))

    def _agent_view(self, a: dict[str, Any], include: list[str] | None = None) -> dict[str, Any]:
        out = {k: v for k, v in a.items() if k not in ("block_ids", "tool_ids")}
        self.sleeptime_view(out, include)
        # An agent's view of its blocks carries no tags, as in Letta.
        out["blocks"] = [
            {**_public(self.blocks[i]), "tags": []} for i in a["block_ids"] if i in self.blocks
        ]
        # As Letta: an explicit `include` without `agent.tools` lists no tools.
        tools = not include or "agent.tools" in include
        out["tools"] = [self.tools[t] for t in a["tool_ids"] if t in self.tools and tools]
        out["message_ids"] = (
            [m["id"] for m in self.messages_of(a["id"])] if a["id"] in self.agents else []
        )
        return out

    def _attach(self, aid: str, bid: str) -> dict[str, Any]:
        agent = self.agents[aid]
        if bid not in self.blocks:
            raise Http(404, f"{bid} not found")
        if bid in agent["block_ids"]:  # attaching again changes nothing, as in Letta
            return self._agent_view(_public(agent))
        labels = {self.blocks[i]["label"] for i in agent["block_ids"]}
        if self.blocks[bid]["label"] in labels:
            raise Http(409, "duplicate label")
        agent["block_ids"].append(bid)
        self.attach_sleeptime(aid, bid)
        return self._agent_view(_public(agent))

    def _detach(self, aid: str, bid: str) -> dict[str, Any]:
        agent = self.agents[aid]
        if bid not in agent["block_ids"]:
            raise Http(404, "block not attached")
        agent["block_ids"].remove(bid)
        return self._agent_view(_public(agent))

    def _delete_agent(self, aid: str) -> None:
        self._get(self.agents, aid)
        self.delete_sleeptime(aid)  # what Letta deletes with it
        if any(g.get("manager_agent_id") == aid for g in self.groups.values()):
            # The group's manager column is ON DELETE RESTRICT in Letta.
            raise Http(409, 'update or delete on table "agents" violates foreign key constraint')
        del self.agents[aid]  # its own blocks stay behind, as in Letta
        for g in self.groups.values():  # its memberships go with it
            g["agent_ids"] = [a for a in g["agent_ids"] if a != aid]

    def _by_label(self, aid: str, label: str) -> dict[str, Any]:
        for i in self.agents[aid]["block_ids"]:
            if self.blocks[i]["label"] == label:
                return _public(self.blocks[i])
        raise Http(404, f"no block labelled {label}")


def _same_rules(old: list[dict[str, Any]], new: Any) -> bool:
    """Letta's comparison of two rule lists: in order, a run_first rule without its args."""

    def compared(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if not (r.get("type") == "run_first" and k == "args")}

    return (
        isinstance(new, list)
        and len(old) == len(new)
        and all(compared(a) == compared(b) for a, b in zip(old, new, strict=True))
    )


# Agent settings as Letta 0.16.8 keeps them: some requested at the top land in `llm_config` (and
# in `model_settings`, which the server derives from it); the objects it keeps come back completed
# with its defaults.
_LANDED = {"context_window_limit": "context_window", "max_tokens": "max_tokens"}
_KEPT = (
    "llm_config", "model_settings", "compaction_settings", "response_format", "timezone",
    "enable_sleeptime", "message_buffer_autoclear", "max_files_open",
    "per_file_view_window_char_limit",
)  # fmt: skip


# As Letta: secrets are sent as a mapping and returned as rows with their values in plain; a
# write of them replaces the set, each row with a new id.
_SECRETS = ("secrets", "tool_exec_environment_variables")
_CREATE_ONLY = (
    "agent_type", "include_base_tools", "include_base_tool_rules", "initial_message_sequence",
)  # fmt: skip


def _land_settings(agent: dict[str, Any], body: Mapping[str, Any]) -> None:
    # Only what a body sets: agents of other tests keep the fields they were made with.
    for name in _SECRETS:
        given = body.get(name)
        if isinstance(given, list):  # a case's live.json: rows as the server returns them
            agent["secrets"] = given
        elif isinstance(given, Mapping):
            agent["secrets"] = [
                {"id": f"agent-env-{uuid.uuid4()}", "key": k, "value": str(v)}
                for k, v in given.items()
            ]
    for k in _KEPT:
        if body.get(k) is not None:
            agent[k] = body[k]
    if isinstance(body.get("model_settings"), Mapping):
        agent["model_settings"] = {"temperature": 0.7, "strict": True, **body["model_settings"]}
    if isinstance(body.get("compaction_settings"), Mapping):
        agent["compaction_settings"] = {"clip_chars": 50000, **body["compaction_settings"]}
    llm = agent.get("llm_config") or {}
    settings = agent.get("model_settings") or {}
    for request, landed in _LANDED.items():
        if body.get(request) is not None:
            llm[landed] = body[request]
    if body.get("max_tokens") is not None:
        settings["max_output_tokens"] = body["max_tokens"]
    if body.get("parallel_tool_calls") is not None:
        llm["parallel_tool_calls"] = settings["parallel_tool_calls"] = body["parallel_tool_calls"]
    if llm:
        agent["llm_config"] = llm
    if settings:
        agent["model_settings"] = settings
