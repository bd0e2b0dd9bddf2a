"""Load the planner's golden cases: `tests/plans/<case>/` holds `manifest.yaml` (the desired
state), `live.json` (the server's state as its list calls return it) and `expected.txt` (the plan
as `plan_text` renders it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from letta_apply.manifest.files import load_file
from letta_apply.manifest.validate import validate
from letta_apply.model import Desired, Live, LiveAgent, LiveBlock, LiveTool
from letta_apply.plan.planner import Plan, make_plan

PLANS = Path(__file__).resolve().parent / "plans"
BASE_URL = "http://127.0.0.1:8283"
CASES = sorted(p.name for p in PLANS.iterdir() if (p / "manifest.yaml").is_file())


def live_from_json(data: Mapping[str, Any]) -> Live:
    """Build Live the way `letta_apply.server.live.read_live` does from the same responses.

    `blocks` is GET /v1/blocks/?tags=<stack tag>; `agents` is GET /v1/agents/?tags=<stack tag>
    with blocks, tags and tools included; `clashes` and `tools` are the name lookups' results;
    `imported` maps an address of `imports:` to the agent or block read for it (or why none);
    `users` maps a block id to the agents it is attached to ({"id", "name", "stack"});
    `custom_tools` is GET /v1/tools/ without the base tools (whose names and ids `tools` has),
    and `tool_users` maps a tool id to the agents that use it.
    """
    custom = tuple(LiveTool.from_api(t) for t in data.get("custom_tools", ()))
    tagged = [LiveBlock.from_api(b) for b in data.get("blocks", ())]
    blocks = {b.id: b for b in tagged}
    # An agent's view of its blocks leaves their tags out: the tagged copy wins.
    for a in data.get("agents", ()):
        for b in a.get("blocks") or ():
            blocks.setdefault(b["id"], LiveBlock.from_api(b))
    return Live(
        blocks=blocks,
        agents=tuple(LiveAgent.from_api(a) for a in data.get("agents", ())),
        tagged_block_ids=frozenset(b.id for b in tagged),
        clashes={name: tuple(ids) for name, ids in data.get("clashes", {}).items()},
        tools={**data.get("tools", {}), **{t.name: t.id for t in custom}},
        custom_tools=custom,
        tool_users={
            tid: tuple((u["id"], u["name"], u.get("stack")) for u in users)
            for tid, users in data.get("tool_users", {}).items()
        },
        imported={
            address: _imported(r) if isinstance(r, dict) else r
            for address, r in data.get("imported", {}).items()
        },
        users={
            bid: tuple((u["id"], u["name"], u.get("stack")) for u in users)
            for bid, users in data.get("users", {}).items()
        },
    )


def _imported(r: dict[str, Any]) -> LiveAgent | LiveBlock | LiveTool:
    if r["id"].startswith("agent-"):
        return LiveAgent.from_api(r)
    return LiveTool.from_api(r) if r["id"].startswith("tool-") else LiveBlock.from_api(r)


def raw_live(case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PLANS / case / "live.json").read_text(encoding="utf-8"))
    return data


def load_case(case: str) -> tuple[Desired, Live]:
    desired = validate(load_file(PLANS / case / "manifest.yaml"))
    return desired, live_from_json(raw_live(case))


def plan_case(case: str) -> Plan:
    return make_plan(*load_case(case))
