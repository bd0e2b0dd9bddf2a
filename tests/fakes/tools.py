"""Tool routes of the fake Letta server (tests/fakes/server.py): a create upserts by name (the
name and description derived from the source, as Letta derives its schema), new source alone
keeps the old schema and name, and a deleted tool is detached from every agent."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.fakes.common import Http, Route


class FakeTools:
    """The tool part of the fake server; FakeLetta mixes it in."""

    agents: dict[str, dict[str, Any]]
    tools: dict[str, dict[str, Any]]
    _list: Callable[[dict[str, dict[str, Any]], httpx.QueryParams], list[dict[str, Any]]]
    _get: Callable[[dict[str, dict[str, Any]], str], dict[str, Any]]

    def tool_routes(self, q: httpx.QueryParams, body: Any) -> list[Route]:
        return [
            ("GET", r"/v1/tools/", lambda: self._list(self.tools, q)),
            ("POST", r"/v1/tools/", lambda: self._upsert_tool(body)),
            ("GET", r"/v1/tools/(tool-[^/]+)", lambda i: self._get(self.tools, i)),
            ("PATCH", r"/v1/tools/(tool-[^/]+)", lambda i: self._patch_tool(i, body)),
            ("DELETE", r"/v1/tools/(tool-[^/]+)", lambda i: self.tools.pop(i) and None),
        ]

    def _upsert_tool(self, body: dict[str, Any]) -> dict[str, Any]:
        # As in Letta, creating a tool whose name exists overwrites that tool.
        schema = _schema(body["source_code"])
        found = [t for t in self.tools.values() if t["name"] == schema["name"]]
        new: dict[str, Any] = {"id": f"tool-{uuid.uuid4()}", "tool_type": "custom"}
        tool = found[0] if found else new
        tool.update(body, name=schema["name"], json_schema=schema, metadata_={})
        tool.setdefault("description", schema["description"])
        self.tools[tool["id"]] = tool
        return tool

    def _patch_tool(self, tid: str, body: dict[str, Any]) -> dict[str, Any]:
        if tid not in self.tools:
            raise Http(404, f"{tid} not found")
        # As in Letta, new source alone keeps the old schema and name; a schema renames.
        self.tools[tid].update({k: v for k, v in body.items() if v is not None})
        if "json_schema" in body:
            self.tools[tid]["name"] = body["json_schema"]["name"]
        return self.tools[tid]

    def _delete_tool(self, tid: str) -> None:
        self.tools.pop(tid, None)
        for a in self.agents.values():
            if tid in a["tool_ids"]:
                a["tool_ids"].remove(tid)


def _schema(source: str) -> dict[str, Any]:
    """A stand-in for Letta's schema derivation: the last function's name and docstring."""
    name = re.findall(r"^\s*def (\w+)", source, re.M)[-1]
    doc = re.search(r'"""(.*?)(\n|""")', source)
    return {"name": name, "description": doc.group(1) if doc else "", "parameters": {}}
