"""Backups and restore against the real server: an agent that wrote to its memory, with an archival
passage and messages, removed from the manifest and pruned is saved before any of its deletes
is sent (checked at each request, on disk, by a proxy in front of the server), and `restore`
brings back the same block values, passages and messages, converging with the manifest; a
failed export keeps the agent; a destroyed 50-agent stack is saved whole.

Messages come from `initial_message_sequence` (no model answers offline); the agent writes its
memory as Letta's memory tools do (the core-memory route) and remembers a passage embedded by
the local embedding endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Run
from tests.integration.faultproxy import FaultProxy

MANIFEST = """\
version: 1
stack: {stack}
blocks:
  organization: {value: Nothing here yet.}
agents:
  worker:
    name: {stack}-worker
    model: letta/letta-free
    embedding: letta/letta-free
    initial_message_sequence:
      - {role: user, content: "Hello, I am Ada."}
      - {role: assistant, content: "Hello Ada, I will remember that."}
    memory_blocks:
      - {label: persona, value: I am a worker}
    blocks: [organization]
  boss:
    name: {stack}-boss
    model: letta/letta-free
    embedding: letta/letta-free
    blocks: [organization]
"""
WITHOUT_WORKER = MANIFEST[: MANIFEST.index("  worker:")] + MANIFEST[MANIFEST.index("  boss:") :]
WRITTEN = "I am a worker. Ada likes tea."
REMEMBERED = "Ada prefers green tea in the afternoon."


@pytest.fixture
def proxy(server: str) -> Iterator[FaultProxy]:
    # Behind the session's own proxy, so that the contract test sees these requests too.
    p = FaultProxy(httpx.URL(server).port or 80).start()
    yield p
    p.stop()


@pytest.fixture
def archives_gone(api: httpx.Client, stack: str) -> Iterator[None]:
    """Letta keeps an agent's default archive after the agent: the test's go at the end."""
    yield
    for a in api.get("/v1/archives/", params={"limit": 1000}).json():
        if a["name"].startswith(stack):
            api.delete(f"/v1/archives/{a['id']}")


def the_agent(api: httpx.Client, name: str) -> dict[str, Any]:
    (found,) = api.get(
        "/v1/agents/", params={"name": name, "include": ["agent.blocks", "agent.tags"]}
    ).json()
    return found  # type: ignore[no-any-return]


def memory_of(api: httpx.Client, agent_id: str) -> dict[str, Any]:
    """What the agent remembers, as Letta shows it."""
    agent = api.get(f"/v1/agents/{agent_id}", params={"include": ["agent.blocks"]}).json()
    messages = api.get(f"/v1/agents/{agent_id}/messages", params={"limit": 1000}).json()
    passages = api.get(f"/v1/agents/{agent_id}/archival-memory", params={"limit": 1000}).json()
    return {
        "blocks": {b["label"]: b["value"] for b in agent["blocks"]},
        "messages": [(m["message_type"], str(m.get("content"))) for m in messages],
        "in_context": len(agent["message_ids"]),
        "passages": sorted(p["text"] for p in passages),
    }


def at_work(api: httpx.Client, agent: dict[str, Any], endpoint: str) -> None:
    """The agent writes its persona and remembers a passage (embedded by the local endpoint:
    offline, Letta's own embedding model is out of reach)."""
    embedding = {
        "embedding_endpoint_type": "openai", "embedding_endpoint": endpoint,
        "embedding_model": "hashed-words", "embedding_dim": 384, "handle": "letta/letta-free",
    }  # fmt: skip
    api.patch(f"/v1/agents/{agent['id']}", json={"embedding_config": embedding}).raise_for_status()
    api.patch(
        f"/v1/agents/{agent['id']}/core-memory/blocks/persona", json={"value": WRITTEN}
    ).raise_for_status()
    api.post(
        f"/v1/agents/{agent['id']}/archival-memory", json={"text": REMEMBERED, "tags": ["ada"]}
    ).raise_for_status()


def test_a_pruned_agent_is_saved_before_its_deletes_and_restored_whole(
    run: Run,
    api: httpx.Client,
    stack: str,
    manifest: Any,
    proxy: FaultProxy,
    endpoint: str,
    backups_apart: Path,
    archives_gone: None,
) -> None:
    full = manifest(MANIFEST)
    assert run("apply", "-f", full, "--auto-approve").code == 0
    worker = the_agent(api, f"{stack}-worker")
    at_work(api, worker, endpoint)
    before = memory_of(api, worker["id"])
    assert before["blocks"]["persona"] == WRITTEN and before["passages"] == [REMEMBERED]
    assert any("Hello, I am Ada." in c for _, c in before["messages"])
    persona = next(b["id"] for b in worker["blocks"] if b["label"] == "persona")
    org = next(b["id"] for b in worker["blocks"] if b["label"] == "organization")

    sent: list[tuple[str, str, int]] = []  # each request, and the records on disk as it left

    def on_request(method: str, path: str) -> None:
        sent.append((method, path, len(list(backups_apart.rglob("*.json")))))

    proxy.on_request = on_request
    pruned = run("apply", "-f", manifest(WITHOUT_WORKER), "--auto-approve",
                 base_url=proxy.url)  # fmt: skip
    assert pruned.code == 0, pruned.err
    order = [(m, p) for m, p, _ in sent]
    export = order.index(("GET", f"/v1/agents/{worker['id']}/export"))
    delete_block = order.index(("DELETE", f"/v1/blocks/{persona}"))
    delete_agent = order.index(("DELETE", f"/v1/agents/{worker['id']}"))
    assert export < delete_block < delete_agent
    # The whole record was on disk when the first delete (its own block's) left.
    assert sent[delete_block][2] == 1 and sent[delete_agent][2] == 1
    (record_path,) = backups_apart.rglob("*.json")
    record = json.loads(record_path.read_text())
    assert record["address"] == "agent.worker" and record["id"] == worker["id"]
    assert [p["text"] for p in record["passages"]] == [REMEMBERED]
    assert api.get(f"/v1/agents/{worker['id']}").status_code == 404

    restored = run("restore", str(record_path.parent))
    assert restored.code == 0, restored.err
    back = the_agent(api, f"{stack}-worker")
    assert back["id"] != worker["id"]
    after = memory_of(api, back["id"])
    assert after["blocks"] == before["blocks"]
    assert after["passages"] == before["passages"]
    assert len(after["messages"]) == len(before["messages"])
    assert after["in_context"] == before["in_context"]
    assert next(b["id"] for b in back["blocks"] if b["label"] == "organization") == org
    assert f"letta-apply:{stack}" in back["tags"]
    # Its address is declared again: the stack converges with no write.
    plan = run("plan", "-f", full)
    assert plan.code == 0 and "No changes." in plan.out, plan.out
    assert "agent.worker.memory_blocks.persona.value was written on the server" in plan.out
    again = run("apply", "-f", full, "--auto-approve")
    assert again.code == 0 and again.writes == 0, again.err


def test_a_failed_export_keeps_the_agent_and_exits_1(
    run: Run,
    api: httpx.Client,
    stack: str,
    manifest: Any,
    proxy: FaultProxy,
    backups_apart: Path,
) -> None:
    assert run("apply", "-f", manifest(MANIFEST), "--auto-approve").code == 0
    worker = the_agent(api, f"{stack}-worker")
    proxy.choose = lambda method, path: "500 after" if path.endswith("/export") else None
    r = run("apply", "-f", manifest(WITHOUT_WORKER), "--auto-approve", base_url=proxy.url)
    assert r.code == 1
    assert "the backup of agent.worker" in r.err and "so it was not deleted" in r.err
    assert proxy.injected["500 after"] >= 1
    kept = api.get(f"/v1/agents/{worker['id']}", params={"include": ["agent.blocks"]})
    assert kept.status_code == 200
    assert {b["id"] for b in kept.json()["blocks"]} == {b["id"] for b in worker["blocks"]}
    assert not list(backups_apart.rglob("*.json"))


def fleet(n: int) -> str:
    lines = ["version: 1", "stack: {stack}", "blocks:", "  org: {value: shared}", "agents:"]
    for i in range(n):
        lines += [
            f"  a{i}:",
            f"    name: {{stack}}-a{i}",
            "    model: letta/letta-free",
            "    embedding: letta/letta-free",
            f"    memory_blocks: [{{label: persona, value: agent {i}}}]",
            "    blocks: [org]",
        ]
    return "\n".join(lines) + "\n"


def test_destroying_50_agents_saves_all_50(
    run: Run, api: httpx.Client, stack: str, manifest: Any, backups_apart: Path
) -> None:
    path = manifest(fleet(50))
    assert run("apply", "-f", path, "--auto-approve").code == 0
    r = run("destroy", "-f", path, "--auto-approve")
    assert r.code == 0, r.err
    records = [json.loads(p.read_text()) for p in backups_apart.rglob("*.json")]
    agents = sorted(x["address"] for x in records if x["kind"] == "agent")
    assert agents == sorted(f"agent.a{i}" for i in range(50))
    assert [x["address"] for x in records if x["kind"] == "block"] == ["block.org"]
    assert len(list(backups_apart.rglob("*.af"))) == 50
    assert "Backups: 51 resource(s) saved in" in r.out
    assert api.get("/v1/agents/", params={"tags": [f"letta-apply:{stack}"]}).json() == []
