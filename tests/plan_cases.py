"""Load the planner's golden cases: `tests/plans/<case>/` holds `manifest.yaml` (the desired
state), `live.json` (the server's state as its list calls return it) and `expected.txt` (the plan
as `plan_text` renders it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from letta_apply.kinds import KINDS
from letta_apply.kinds.agent import LiveAgent
from letta_apply.kinds.block import LiveBlock
from letta_apply.kinds.tool import LiveTool
from letta_apply.model import Desired, Live
from letta_apply.pipeline import load_manifest
from letta_apply.plan.changes import Plan
from letta_apply.plan.planner import make_plan

PLANS = Path(__file__).resolve().parent / "plans"
BASE_URL = "http://127.0.0.1:8283"
CASES = sorted(p.name for p in PLANS.iterdir() if (p / "manifest.yaml").is_file())


def live_from_json(data: Mapping[str, Any]) -> Live:
    """Build Live the way `letta_apply.server.live.read_live` does from the same responses: each
    kind's state from the listings, through the kind's own `state()`.

    `blocks` is GET /v1/blocks/?tags=<stack tag>; `agents` is GET /v1/agents/?tags=<stack tag>
    with blocks, tags and tools included; `custom_tools` is GET /v1/tools/ without the base
    tools, and `tools` the names and ids of other tools on the server; `identities` is GET
    /v1/identities/; `clashes` are the agent name lookups' results; `imported` maps an address
    of `imports:` to what was read for it (or why nothing was); `users` maps a block id to the
    agents it is attached to ({"id", "name", "stack"}), and `tool_users` a tool id.
    """
    tools = [*data.get("custom_tools", ())]
    tools += [{"id": i, "name": n, "tool_type": "custom"} for n, i in data.get("tools", {}).items()]
    raw = {
        "block": data.get("blocks", ()),
        "agent": data.get("agents", ()),
        "tool": tools,
        "identity": data.get("identities", ()),
    }
    imported = {
        address: _imported(r) if isinstance(r, dict) else r
        for address, r in data.get("imported", {}).items()
    }
    seen = {
        "agent": [r for r in data.get("imported", {}).values() if _is(r, "agent-")],
        "block": [r for r in data.get("imported", {}).values() if _is(r, "block-")],
    }
    states = {k.name: k.state(raw, seen, "") for k in KINDS}
    states["block"] = replace(states["block"], users=_users(data.get("users", {})))
    states["tool"] = replace(states["tool"], users=_users(data.get("tool_users", {})))
    clashes = {name: tuple(ids) for name, ids in data.get("clashes", {}).items()}
    states["agent"] = replace(states["agent"], clashes=clashes)
    return Live(states, imported)


def _is(r: Any, prefix: str) -> bool:
    return isinstance(r, dict) and str(r.get("id", "")).startswith(prefix)


def _users(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        rid: tuple((u["id"], u["name"], u.get("stack")) for u in users)
        for rid, users in data.items()
    }


def _imported(r: dict[str, Any]) -> Any:
    if r["id"].startswith("agent-"):
        return LiveAgent.from_api(r)
    return LiveTool.from_api(r) if r["id"].startswith("tool-") else LiveBlock.from_api(r)


def raw_live(case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PLANS / case / "live.json").read_text(encoding="utf-8"))
    return data


def load_case(case: str) -> tuple[Desired, Live]:
    desired = load_manifest(str(PLANS / case / "manifest.yaml"))
    return desired, live_from_json(raw_live(case))


def plan_case(case: str) -> Plan:
    return make_plan(*load_case(case))
