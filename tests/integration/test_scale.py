"""Reads that do not grow with the stack, against a real Letta: the blocks a destroy would delete
are checked for users outside the stack with listings filtered by attachment count, and only the
blocks those flag are looked up one by one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from .conftest import RECORDER, Run, listing, server_count, stack_resources

FLEET = """\
version: 1
stack: {stack}
blocks:
  everyone: {value: used by every agent}
  some: {value: used by half of them}
  spare: {value: used by none}
agents:
"""


def _fleet(agents: int) -> str:
    text = FLEET
    for i in range(agents):
        shared = "everyone, some" if i % 2 else "everyone"
        text += (
            f"  a{i}:\n"
            f"    name: {{stack}}-a{i}\n"
            "    model: letta/letta-free\n"
            "    embedding: letta/letta-free\n"
            f"    memory_blocks: [{{label: persona, value: agent {i}}}]\n"
            f"    blocks: [{shared}]\n"
        )
    return text


def _by_hand(api: httpx.Client, stack: str, **extra: Any) -> dict[str, Any]:
    """An agent made outside letta-apply, from the handles the fleet's agents declare."""
    body = {"name": f"{stack}-by-hand", "model": "letta/letta-free",
            "embedding": "letta/letta-free", **extra}  # fmt: skip
    made: dict[str, Any] = api.post("/v1/agents/", json=body).json()
    return made


def test_destroy_finds_outside_users_without_reading_every_block(
    run: Run, api: httpx.Client, manifest: Callable[[str], str], stack: str
) -> None:
    path = manifest(_fleet(6))
    assert run("apply", "-f", path, "--auto-approve").code == 0
    blocks, agents = stack_resources(api, stack)
    a0 = next(a for a in agents if a["name"] == f"{stack}-a0")
    persona = next(b["id"] for b in a0["blocks"] if b["label"] == "persona")
    spare = next(b["id"] for b in blocks if b["label"] == "spare")
    hand = _by_hand(api, stack, block_ids=[spare, persona])
    try:
        plan = run("plan", "-f", path, "--destroy")
        assert plan.code == 1, plan.out  # refused resources
        for address in ("block.spare", "agent.a0.memory_blocks.persona"):
            assert (
                f"x {address}: not deleted: still attached to agents this stack does not "
                f"manage: {stack}-by-hand ({hand['id']})"
            ) in plan.out
        assert "- block.everyone" in plan.out and "- agent.a0" in plan.out
        # Blocks and agents: a page each; tools: every one on the server, page by page (no
        # identities: the stack holds none); one filtered listing per attachment count (0, 1,
        # 3, 6); the users of the two blocks found. Each listing ends with an empty page (one
        # request when it is empty). Not one request per block (6 personas + 3 shared). And, to
        # say what the deleted agents hold, a page of each one's passages (memory.held).
        tools = server_count(api, "/v1/tools/")
        fixed = listing(9) + listing(6) + listing(tools) + 2 * listing(1) + 6
        assert fixed + 4 <= plan.reads <= fixed + 4 * listing(1), plan.err
    finally:
        api.delete(f"/v1/agents/{hand['id']}")
    gone = run("destroy", "-f", path, "--auto-approve")
    assert gone.code == 0, gone.err
    assert stack_resources(api, stack) == ([], [])


def test_export_finds_blocks_shared_outside_the_selection(
    run: Run, api: httpx.Client, stack: str, tmp_path: Path
) -> None:
    shared = api.post("/v1/blocks/", json={"label": "organization", "value": "v"}).json()
    made = [
        api.post(
            "/v1/agents/",
            json={
                "name": f"{stack}-{role}",
                "model": "letta/letta-free",
                "embedding": "letta/letta-free",
                "memory_blocks": [{"label": "persona", "value": f"I am a {role}"}],
                "block_ids": [shared["id"]],
            },
        ).json()
        for role in ("supervisor", "worker")
    ]
    try:
        out = tmp_path / "exported.yaml"
        r = run("export", "--stack", stack, "--id", made[1]["id"], "-o", str(out))
        assert r.code == 0, r.err
        doc = yaml.safe_load(out.read_text())
        # Only the worker is exported, but the supervisor uses the block too: it is shared.
        assert list(doc["blocks"]) == ["organization"]
        agent = doc["agents"][f"{stack}-worker"]
        assert agent["blocks"] == ["organization"]
        assert [b["label"] for b in agent["memory_blocks"]] == ["persona"]
        # The agent, then who uses its two blocks (a few blocks: asked one by one), and the
        # server's groups, listed once.
        groups = server_count(api, "/v1/groups/")
        assert r.reads == 1 + 2 * listing(2) + listing(groups), r.err
    finally:
        for a in made:
            api.delete(f"/v1/agents/{a['id']}")
            for b in a["blocks"]:
                if b["id"] != shared["id"]:
                    api.delete(f"/v1/blocks/{b['id']}")
        api.delete(f"/v1/blocks/{shared['id']}")


def test_creates_after_the_first_carry_the_configuration_letta_resolved(
    run: Run, api: httpx.Client, manifest: Callable[[str], str], stack: str
) -> None:
    """Agents made in one apply, the first with handles only and the others with what Letta
    resolved for it (sparing the server a provider lookup per agent), are the agent Letta makes
    from the handles alone."""
    before = len(RECORDER.sent)
    path = manifest(_fleet(6))
    made = run("apply", "-f", path, "--auto-approve", "--parallelism", "1")
    assert made.code == 0, made.err
    creates = [
        json.loads(s.body)
        for s in RECORDER.sent[before:]
        if s.method == "POST" and s.target.split("?")[0] == "/v1/agents/" and s.by_letta_apply
    ]
    assert len(creates) == 6
    assert "llm_config" not in creates[0] and all("llm_config" in c for c in creates[1:])
    assert all(c["model"] == "letta/letta-free" for c in creates)  # the handles go too
    hand = _by_hand(api, stack)
    try:
        _, agents = stack_resources(api, stack)
        assert len(agents) == 6
        for a in agents:
            assert a["llm_config"] == hand["llm_config"]
            assert a["embedding_config"] == hand["embedding_config"]
            assert (a.get("model"), a.get("embedding")) == (
                hand.get("model"),
                hand.get("embedding"),
            )
            assert len(a["message_ids"]) == len(hand["message_ids"])
    finally:
        api.delete(f"/v1/agents/{hand['id']}")
    again = run("plan", "-f", path, "--detailed-exitcode")
    assert again.code == 0, again.out
