"""Reads that do not grow with the stack, against a real Letta: the blocks a destroy would delete
are checked for users outside the stack with listings filtered by attachment count, and only the
blocks those flag are looked up one by one."""

from __future__ import annotations

import math
from collections.abc import Callable

import httpx

from letta_apply.client import PAGE_SIZE

from .conftest import Run, stack_resources

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


def test_destroy_finds_outside_users_without_reading_every_block(
    run: Run, api: httpx.Client, manifest: Callable[[str], str], stack: str
) -> None:
    path = manifest(_fleet(6))
    assert run("apply", "-f", path, "--auto-approve").code == 0
    blocks, agents = stack_resources(api, stack)
    a0 = next(a for a in agents if a["name"] == f"{stack}-a0")
    persona = next(b["id"] for b in a0["blocks"] if b["label"] == "persona")
    spare = next(b["id"] for b in blocks if b["label"] == "spare")
    hand = api.post(
        "/v1/agents/",
        json={
            "name": f"{stack}-by-hand",
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "block_ids": [spare, persona],
        },
    ).json()
    try:
        plan = run("plan", "-f", path, "--destroy")
        assert plan.code == 1, plan.out  # refused resources
        for address in ("block.spare", "agent.a0.memory_blocks.persona"):
            assert (
                f"x {address}: not deleted: still attached to agents this stack does not "
                f"manage: {stack}-by-hand ({hand['id']})"
            ) in plan.out
        assert "- block.everyone" in plan.out and "- agent.a0" in plan.out
        # Blocks and agents: a page each; tools: every tool on the server, page by page; one
        # filtered listing per attachment count (0, 1, 3, 6); two lookups. Not one request per
        # block (6 personas + 3 shared).
        tools = len(api.get("/v1/tools/", params={"limit": 100000}).json())
        assert plan.reads == 2 + math.ceil(tools / PAGE_SIZE) + 4 + 2, plan.err
    finally:
        api.delete(f"/v1/agents/{hand['id']}")
    gone = run("destroy", "-f", path, "--auto-approve")
    assert gone.code == 0, gone.err
    assert stack_resources(api, stack) == ([], [])
