"""Agent File interop against the real server: the seed example's stack exported as one Agent File
(which Letta's own import takes), converted back into a manifest and applied as another stack,
converges at once with the same agents; and an agent made by hand, exported by Letta itself,
converts and applies."""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from letta_apply.cli import main
from tests.integration.conftest import SEED, Result, Run, stack_resources


def _another_stack() -> str:
    """A second stack for a test, named so that the suite's clean-up knows it too."""
    return f"t{uuid.uuid4().hex[:10]}"


def _convert(*args: str) -> Result:
    """`convert`, which sends no request (so takes no server options)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(["convert", *args], out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue())


def _agents(api: httpx.Client, stack: str) -> dict[str, dict[str, Any]]:
    """The stack's agents by name, as the server holds them."""
    _, agents = stack_resources(api, stack)
    out = {}
    for a in agents:
        full = api.get(f"/v1/agents/{a['id']}", params={"include": ["agent.tools"]}).json()
        out[a["name"]] = {**a, "tools": sorted(t["name"] for t in full["tools"])}
    return out


def test_the_seed_stack_survives_export_convert_apply(
    run: Run, api: httpx.Client, manifest: Any, stack: str, tmp_path: Path
) -> None:
    seed = manifest(SEED)
    assert run("apply", "-f", seed, "--auto-approve").code == 0
    af = tmp_path / "seed.af"
    started = time.monotonic()
    exported = run("export", "--format", "af", "-f", seed, "-o", str(af))
    took = time.monotonic() - started
    assert exported.code == 0, exported.err
    assert exported.writes == 0
    print(f"export --format af of 2 agents: {exported.reads} reads, {took:.2f} s")
    doc = json.loads(af.read_text())
    assert "letta_apply" not in af.read_text() and f"letta-apply:{stack}" not in af.read_text()

    # Letta's own import takes the file: the shared block is made once, for both agents.
    imported = api.post("/v1/agents/import", files={"file": ("seed.af", af.read_bytes())})
    assert imported.status_code == 200, imported.text
    copies = [api.get(f"/v1/agents/{i}", params={"include": ["agent.blocks"]}).json()
              for i in imported.json()["agent_ids"]]  # fmt: skip
    assert sorted(c["name"] for c in copies) == [f"{stack}-supervisor_copy", f"{stack}-worker_copy"]
    org = {b["id"] for c in copies for b in c["blocks"] if b["label"] == "organization"}
    assert len(org) == 1
    assert all(c["tags"] == [] and "letta_apply" not in (c["metadata"] or {}) for c in copies)
    for c in copies:
        api.delete(f"/v1/agents/{c['id']}")

    # Converted and applied as another stack: the same agents, converged at once.
    other = _another_stack()
    made = tmp_path / "copy" / "copy.yaml"
    converted = _convert(str(af), "--stack", other, "-o", str(made))
    assert converted.code == 0, converted.err
    notes = [line for line in converted.err.splitlines() if line.startswith("note: ")]
    assert len(notes) == len(doc["agents"]) and all("messages" in n for n in notes), notes
    assert run("apply", "-f", str(made), "--auto-approve").code == 0
    plan = run("plan", "-f", str(made), "--detailed-exitcode")
    assert plan.code == 0 and "No changes." in plan.out, plan.out
    assert run("plan", "-f", seed, "--detailed-exitcode").code == 0  # the original untouched

    before, after = _agents(api, stack), _agents(api, other)
    assert sorted(after) == sorted(before) == [f"{stack}-supervisor", f"{stack}-worker"]
    for name, was in before.items():
        now = after[name]
        assert now["system"] == was["system"]
        assert now["tools"] == was["tools"]
        assert now["llm_config"]["handle"] == was["llm_config"]["handle"]
        own = sorted((b["label"], b["value"]) for b in now["blocks"])
        assert own == sorted((b["label"], b["value"]) for b in was["blocks"])
    shared = [
        {b["id"] for b in a["blocks"] if b["label"] == "organization"} for a in after.values()
    ]
    assert shared[0] == shared[1] and len(shared[0]) == 1  # one block, attached to both
    assert shared[0] != {b["id"] for b in before[f"{stack}-worker"]["blocks"]
                         if b["label"] == "organization"}  # fmt: skip
    assert run("destroy", "-f", str(made), "--auto-approve").code == 0


SOURCE = '''def {fn}(ticket_id: str) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id, e.g. T-1234.
    """
    return f"{{ticket_id}}: open"
'''


def test_an_agent_exported_by_letta_converts_and_applies(
    run: Run, api: httpx.Client, stack: str, tmp_path: Path
) -> None:
    fn = f"lookup_{stack.replace('-', '_')}"
    tool = api.post("/v1/tools/", json={"source_code": SOURCE.format(fn=fn), "tags": ["support"]})
    assert tool.status_code == 200, tool.text
    web = api.get("/v1/tools/", params={"name": "web_search"}).json()[0]
    agent = api.post(
        "/v1/agents/",
        json={
            "name": f"{stack}-helpdesk", "model": "letta/letta-free",
            "embedding": "letta/letta-free", "agent_type": "memgpt_v2_agent",
            "system": "You are the help desk. Quote prices as ${price}.",
            "description": "Answers tickets", "tags": ["support"],
            "metadata": {"team": "support", "tier": 2},
            "memory_blocks": [{"label": "persona", "value": "I help.", "limit": 5000},
                              {"label": "human", "value": "Unknown"}],
            "tool_ids": [tool.json()["id"], web["id"]],
            "tool_rules": [{"type": "max_count_per_step", "tool_name": fn, "max_count_limit": 2}],
            "secrets": {"TICKET_API_KEY": "from-the-author-123"},
            "initial_message_sequence": [{"role": "user", "content": "hello there"}],
        },
    )  # fmt: skip
    assert agent.status_code == 200, agent.text
    exported = api.get(f"/v1/agents/{agent.json()['id']}/export")
    assert exported.status_code == 200
    af = tmp_path / "helpdesk.af"
    af.write_text(exported.text)
    # The file now stands for an agent from elsewhere: its original leaves this server.
    api.delete(f"/v1/agents/{agent.json()['id']}")
    for b in agent.json()["memory"]["blocks"]:
        api.delete(f"/v1/blocks/{b['id']}")
    api.delete(f"/v1/tools/{tool.json()['id']}")

    made = tmp_path / "stack" / "helpdesk.yaml"
    r = _convert(str(af), "--stack", stack, "-o", str(made), "--messages")
    assert r.code == 0, r.err
    assert "from-the-author" not in made.read_text() + r.err
    assert (tmp_path / "stack" / "tools" / f"{fn}.py").read_text() == SOURCE.format(fn=fn)
    var = f"--var={stack.replace('-', '_')}_helpdesk_TICKET_API_KEY=given-by-the-user-456"
    applied = run("apply", "-f", str(made), var, "--auto-approve")
    assert applied.code == 0, applied.err
    plan = run("plan", "-f", str(made), var, "--detailed-exitcode")
    assert plan.code == 0 and "No changes." in plan.out, plan.out

    (made_agent,) = [a for a in stack_resources(api, stack)[1] if a["name"] == f"{stack}-helpdesk"]
    full = api.get(
        f"/v1/agents/{made_agent['id']}",
        params={"include": ["agent.tools", "agent.blocks", "agent.tags", "agent.secrets"]},
    ).json()
    assert full["system"] == "You are the help desk. Quote prices as ${price}."
    assert full["agent_type"] == "memgpt_v2_agent"
    assert set(full["tags"]) == {"support", f"letta-apply:{stack}"}
    assert {k: v for k, v in full["metadata"].items() if k != "letta_apply"} == {
        "team": "support",
        "tier": 2,
    }
    blocks = {b["label"]: (b["value"], b["limit"]) for b in full["blocks"]}
    assert blocks == {"persona": ("I help.", 5000), "human": ("Unknown", 100000)}
    assert {fn, "web_search", "send_message"} <= {t["name"] for t in full["tools"]}
    assert {"type": "max_count_per_step", "tool_name": fn, "max_count_limit": 2} in [
        {k: v for k, v in rule.items() if v is not None and k != "prompt_template"}
        for rule in full["tool_rules"]
    ]
    assert [(s["key"], s["value"]) for s in full["secrets"]] == [
        ("TICKET_API_KEY", "given-by-the-user-456")
    ]
    messages = api.get(f"/v1/agents/{made_agent['id']}/messages").json()
    assert any("hello there" in json.dumps(m) for m in messages)
    assert run("destroy", "-f", str(made), var, "--auto-approve").code == 0


SLEEPY = """\
version: 1
stack: {stack}
agents:
  thinker:
    name: {stack}-thinker
    model: letta/letta-free
    embedding: letta/letta-free
    enable_sleeptime: true
    memory_blocks: [{label: persona, value: I think.}]
"""


def test_an_agent_with_letta_s_sleep_time_agent_comes_back_as_enable_sleeptime(
    run: Run, api: httpx.Client, manifest: Any, stack: str, tmp_path: Path
) -> None:
    """Letta's export of such an agent brings its sleep-time agent and group along: the
    manifest made of it says `enable_sleeptime: true`, and Letta makes them again."""
    source = manifest(SLEEPY)
    assert run("apply", "-f", source, "--auto-approve").code == 0
    af = tmp_path / "sleepy.af"
    assert run("export", "--format", "af", "-f", source, "-o", str(af)).code == 0
    doc = json.loads(af.read_text())
    assert sorted(a["agent_type"] for a in doc["agents"]) == ["letta_v1_agent", "sleeptime_agent"]
    assert [g["manager_config"]["manager_type"] for g in doc["groups"]] == ["sleeptime"]
    other = _another_stack()
    made = tmp_path / "copy" / "sleepy.yaml"
    r = _convert(str(af), "--stack", other, "-o", str(made))
    assert r.code == 0, r.err
    assert "Letta's sleep-time group; not converted" in r.err
    assert run("apply", "-f", str(made), "--auto-approve").code == 0
    plan = run("plan", "-f", str(made), "--detailed-exitcode")
    assert plan.code == 0 and "No changes." in plan.out, plan.out
    (copy,) = stack_resources(api, other)[1]
    full = api.get(f"/v1/agents/{copy['id']}", params={"include": ["agent.managed_group"]}).json()
    assert full["enable_sleeptime"] is True
    assert (full.get("multi_agent_group") or full.get("managed_group") or {}).get(
        "manager_type"
    ) == "sleeptime"
