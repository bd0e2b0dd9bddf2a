"""`letta-apply export --format af`: the agents a stack owns on the server as one Agent File, as
Letta exports them (their blocks, tools, groups, folders and messages), for Letta's import or
for `convert` to make a manifest of again.

Which agents: those carrying the stack's mark (its tag, and the stack in their metadata), found
by their kind with one tag-filtered listing (kinds.holds_memory.ExportsAgentFiles); never by
name. Each is exported by Letta itself, a few side by side, and the exports merged
(memory.af_merge). Nothing is written to the server."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..core.jsonish import JsonObject
from ..errors import ExportError
from ..kinds import KINDS
from ..kinds.holds_memory import Exported, ExportsAgentFiles
from ..kinds.holds_memory import masked as masked_strings
from ..server.client import LettaClient
from .af_format import AgentFile, agents, blocks, check_agent_file
from .af_merge import merge_exports

PARALLEL_EXPORTS = 4
"""Exports asked for at once: each makes the server read an agent's whole history."""


@dataclass(frozen=True)
class AgentFileExport:
    """The Agent File, how many agents and blocks it holds, and in how many of its strings a
    sensitive value of the manifest was masked."""

    document: JsonObject
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
    kinds = [k for k in KINDS if isinstance(k, ExportsAgentFiles)]
    owned = [(k, e) for k in kinds for e in k.agent_file_sources(client, stack)]
    if not owned:
        raise ExportError(
            f"stack {stack!r} owns no agent on {client.base_url}; nothing was written",
            code="LA831",
        )
    owned.sort(key=lambda ke: (str(ke[1].mark.get("address")), ke[1].id))

    def export(ke: tuple[ExportsAgentFiles, Exported]) -> AgentFile:
        kind, e = ke
        raw = kind.agent_file_export(client, e.id)
        return check_agent_file(raw, f"Letta's export of {e.mark.get('address')} ({e.id})")

    with ThreadPoolExecutor(max_workers=min(PARALLEL_EXPORTS, len(owned))) as pool:
        files = list(pool.map(export, owned))
    doc = merge_exports(stack, [(e, af) for (_, e), af in zip(owned, files, strict=True)])
    masked = 0
    if mask is not None:
        doc, masked = masked_strings(doc, mask)
    return AgentFileExport(doc, len(agents(doc)), len(blocks(doc)), masked)
