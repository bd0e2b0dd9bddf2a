"""Group routes of the fake Letta server (tests/fakes/server.py). Groups as Letta 0.16.8 keeps
them (letta/services/group_manager.py): a PATCH ignores falsy values and shared_block_ids, and
refuses another manager type; a group's shared blocks (kept in "_shared") are never reported:
shared_block_ids reads empty."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.fakes.common import Http, Route, _public


class FakeGroups:
    """The group part of the fake server; FakeLetta mixes it in."""

    agents: dict[str, dict[str, Any]]
    blocks: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    _seq: itertools.count[int]
    _list: Callable[[dict[str, dict[str, Any]], httpx.QueryParams], list[dict[str, Any]]]
    _get: Callable[[dict[str, dict[str, Any]], str], dict[str, Any]]
    _delete: Callable[[dict[str, dict[str, Any]], str], None]

    def group_routes(self, q: httpx.QueryParams, body: Any) -> list[Route]:
        return [
            ("GET", r"/v1/groups/", lambda: self._list(self.groups, q)),
            ("POST", r"/v1/groups/", lambda: self._create_group(body)),
            ("PATCH", r"/v1/groups/(group-[^/]+)", lambda i: self._patch_group(i, body)),
            ("DELETE", r"/v1/groups/(group-[^/]+)", lambda i: self._delete(self.groups, i)),
            (
                "PATCH",
                r"/v1/groups/(group-[^/]+)/blocks/(attach|detach)/(block-[^/]+)",
                self._group_block,
            ),
        ]

    def _group_defaults(self) -> dict[str, Any]:
        return {"_seq": next(self._seq), "description": "", "agent_ids": [],
                "shared_block_ids": [], "_shared": [], "manager_agent_id": None}  # fmt: skip

    def _create_group(self, body: dict[str, Any]) -> dict[str, Any]:
        gid = f"group-{uuid.uuid4()}"
        unknown = [a for a in body["agent_ids"] if a not in self.agents]
        if unknown:
            raise Http(404, f"Items not found in agents: {unknown}")
        config = dict(body["manager_config"])
        self.groups[gid] = {
            **self._group_defaults(), "id": gid, "description": body["description"],
            "agent_ids": list(body["agent_ids"]),
            "_shared": list(body.get("shared_block_ids") or ()), **config,
        }  # fmt: skip
        return _public(self.groups[gid])

    def _patch_group(self, gid: str, body: dict[str, Any]) -> dict[str, Any]:
        group = self._get_group(gid)
        config = body.get("manager_config") or {}
        if config and config["manager_type"] != group["manager_type"]:
            raise Http(400, "Cannot change group pattern after creation")
        for k, v in config.items():
            if v:
                group[k] = v
        if body.get("description"):
            group["description"] = body["description"]
        if body.get("agent_ids"):
            group["agent_ids"] = list(body["agent_ids"])
        return _public(group)

    def _get_group(self, gid: str) -> dict[str, Any]:
        if gid not in self.groups:
            raise Http(404, f"{gid} not found")
        return self.groups[gid]

    def _group_block(self, gid: str, verb: str, bid: str) -> None:
        shared = self._get_group(gid)["_shared"]
        self._get(self.blocks, bid)
        if verb == "attach" and bid not in shared:
            shared.append(bid)
        elif verb == "detach" and bid in shared:
            shared.remove(bid)
