"""Load the planner's golden cases. `tests/plans/<case>/` holds:

- `manifest.yaml`: the desired state (with any files it names, such as tools/*.py);
- `live.json`: what the server holds, loaded into the fake server (tests/fakes/server.py) and read
  back with `read_live`, as the CLI reads a real server;
- `expected.txt`, `expected.json`, `expected.md`: the plan as text, as a saved plan file and as a
  pull-request comment (tests/unit/test_plans.py; `UPDATE_GOLDEN=1` rewrites them).

`live.json` lists everything on the server, in the order it was made, resources as the server
stores them:

    {
      "tools":  [{"id": "tool-...", "name": "memory_insert", "tool_type": "letta_core"}, ...],
      "blocks": [{"id": "block-...", "label": "persona", "value": "...", "tags": [...],
                  "metadata": {"letta_apply": {"stack": ..., "address": ...}}}, ...],
      "agents": [{"id": "agent-...", "name": "worker", "model": "...", "tags": [...],
                  "metadata": {...}, "block_ids": ["block-..."], "tool_ids": ["tool-..."],
                  "identity_ids": ["identity-..."]}, ...],
      "identities": [{"id": "identity-...", "identifier_key": "...", "name": "...",
                      "identity_type": "user", "properties": [...]}, ...],
      "mcp_servers": [{"id": "mcp_server-...", "server_name": "...", "mcp_server_type": "...",
                       ..., "offers": ["tool names the MCP server itself offers"]}, ...],
      "providers": [{"id": "provider-...", "name": "...", "provider_type": "openai",
                     "api_key_enc": "the key as stored", "updated_at": "...", ...}, ...]
    }

An MCP server's registered tools are tools with `tool_type` "external_mcp" and
`metadata_.mcp.server_id`; its mark is a block labelled `letta-apply-mcp-server` (a provider's,
`letta-apply-provider`).

Base tools are the ones whose `tool_type` starts with "letta" (a custom tool defaults to
"custom"); there are none but those listed. A field left out takes the value a create gives it
(no description, limit 100000, no tags or metadata...). A stack's resources carry its tag
(`letta-apply:<stack>`) and its marks; anything else the server holds is written the same way:
an unmarked agent named like a declared one (a name clash), agents of other stacks or made by
hand that use the stack's blocks or tools, resources named by `imports:`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from letta_apply.core.changes import Plan
from letta_apply.core.model import Desired, Live
from letta_apply.core.sensitive import mask_plan
from letta_apply.pipeline import load_manifest
from letta_apply.plan.planner import make_plan
from letta_apply.read.live import read_live
from tests.fakes import FakeLetta

PLANS = Path(__file__).resolve().parent / "plans"
BASE_URL = "http://127.0.0.1:8283"
CASES = sorted(p.name for p in PLANS.iterdir() if (p / "manifest.yaml").is_file())


def server(case: str) -> FakeLetta:
    """A fake server holding what the case's live.json says."""
    state: dict[str, Any] = json.loads((PLANS / case / "live.json").read_text(encoding="utf-8"))
    return FakeLetta.holding(state)


def load_case(case: str) -> tuple[Desired, Live]:
    """The case's desired state, and the live state read from its server the way plans read it."""
    desired = load_manifest(str(PLANS / case / "manifest.yaml"))
    with server(case).client() as client:
        return desired, read_live(client, desired)


def plan_case(case: str) -> Plan:
    """The case's plan as every command shows and saves it: sensitive values masked."""
    return mask_plan(make_plan(*load_case(case)))
