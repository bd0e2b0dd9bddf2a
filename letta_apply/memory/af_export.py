"""`letta-apply export --format af`: the agents a stack owns on the server as one Agent File, as
Letta exports them (their blocks, tools, groups, folders and messages), for Letta's import or
for `convert` to make a manifest of again.

Which agents: those carrying the stack's mark (its tag, and the stack in their metadata), found
with one tag-filtered listing; never by name. Each is exported by Letta itself, a few side by
side, and the exports merged (memory.af_merge). Nothing is written to the server."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..core.model import stack_tag
from ..errors import ExportError
from ..kinds.base import mark_of
from ..server.client import LettaClient
from .af_edit import masked as masked_strings
from .af_format import AgentFile, check_agent_file
from .af_merge import merge_exports

PARALLEL_EXPORTS = 4
"""Exports asked for at once: each makes the server read an agent's whole history."""


@dataclass(frozen=True)
class AgentFileExport:
    """The Agent File, how many agents and blocks it holds, and in how many of its strings a
    sensitive value of the manifest was masked."""

    document: dict[str, Any]
    agents: int
    blocks: int
    masked: int = 0

    def text(self) -> str:
        return json.dumps(self.document, indent=2, ensure_ascii=False) + "\n"


def export_agent_file(
    client: LettaClient, stack: str, *, mask: Callable[[str], str] | None = None
) -> AgentFileExport:
    """The agents stack `stack` owns, exported by Letta and merged into one Agent File. `mask`
    rewrites each string of it (the CLI masks the manifest's sensitive values)."""
    listed = client.list_agents(tag=stack_tag(stack), include=("agent.blocks",))
    owned = [a for a in listed if mark_of(a.get("metadata")).get("stack") == stack]
    if not owned:
        raise ExportError(
            f"stack {stack!r} owns no agent on {client.base_url}; nothing was written",
            code="LA831",
        )
    owned.sort(key=lambda a: (str(mark_of(a.get("metadata")).get("address")), a["id"]))

    def export(agent: Mapping[str, Any]) -> AgentFile:
        raw = client.request("GET", f"/v1/agents/{agent['id']}/export")
        address = mark_of(agent.get("metadata")).get("address")
        return check_agent_file(raw, f"Letta's export of {address} ({agent['id']})")

    with ThreadPoolExecutor(max_workers=min(PARALLEL_EXPORTS, len(owned))) as pool:
        files = list(pool.map(export, owned))
    doc = merge_exports(stack, list(zip(owned, files, strict=True)))
    masked = 0
    if mask is not None:
        doc, masked = masked_strings(doc, mask)
    return AgentFileExport(doc, len(doc["agents"]), len(doc["blocks"]), masked)
