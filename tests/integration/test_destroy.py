"""Destroy leaves nothing of a stack on a real Letta server: no block tagged with the stack, its
lock or its serial, whatever kinds it held, and after a destroy that was stopped midway, the
next one finishes it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from .conftest import Run

STACK = """\
version: 1
stack: {stack}
blocks:
  organization: {value: Shared by every agent.}
folders:
  handbook:
    name: {stack}-handbook
    embedding: letta/letta-free
agents:
  supervisor:
    name: {stack}-supervisor
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: I am the supervisor}]
    blocks: [organization]
    folders: [handbook]
  worker:
    name: {stack}-worker
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: I am a worker}, {label: notes, value: none}]
    blocks: [organization]
groups:
  team: {manager_type: round_robin, agents: [supervisor, worker]}
"""


def tagged(api: httpx.Client, stack: str) -> list[tuple[str, str]]:
    """(label, id) of every block tagged with the stack, its lock or its serial."""
    tags = [f"letta-apply:{stack}", f"letta-apply-lock:{stack}", f"letta-apply-serial:{stack}"]
    found = api.get("/v1/blocks/", params={"tags": tags, "limit": 1000}).json()
    return sorted((b["label"], b["id"]) for b in found)


@pytest.mark.deprecated_routes  # the stack holds a group
def test_destroy_leaves_no_block_of_the_stack(
    run: Run, api: httpx.Client, manifest: Callable[[str], str], stack: str
) -> None:
    path = manifest(STACK)
    made = run("apply", "-f", path, "--auto-approve")
    assert made.code == 0, made.out + made.err
    labels = [label for label, _ in tagged(api, stack)]
    assert "letta-apply-folders" in labels and labels.count("persona") == 2  # something to go
    gone = run("destroy", "-f", path, "--auto-approve")
    assert gone.code == 0, gone.out + gone.err
    assert tagged(api, stack) == []
    assert "Nothing to destroy" in run("destroy", "-f", path, "--auto-approve").out


def test_the_blocks_of_an_agent_deleted_by_hand_go_with_the_stack(
    run: Run, api: httpx.Client, manifest: Callable[[str], str], stack: str
) -> None:
    agents = "".join(
        f"  w{i}:\n    name: {{stack}}-w{i}\n    model: letta/letta-free\n"
        "    embedding: letta/letta-free\n    memory_blocks: [{label: persona, value: hi}]\n"
        for i in range(3)
    )
    text = "version: 1\nstack: {stack}\nagents:\n" + agents
    assert run("apply", "-f", manifest(text), "--auto-approve").code == 0
    # An edit of the personas gives each the stack's mark for its address.
    path = manifest(text.replace("value: hi", "value: hello"))
    assert run("apply", "-f", path, "--auto-approve").code == 0
    listed = api.get(
        "/v1/agents/", params={"tags": [f"letta-apply:{stack}"], "include": ["agent.blocks"]}
    ).json()
    (persona,) = [b["id"] for b in listed[0]["blocks"] if b["label"] == "persona"]
    api.delete(f"/v1/agents/{listed[0]['id']}").raise_for_status()
    gone = run("destroy", "-f", path, "--auto-approve")
    assert gone.code == 0, gone.out + gone.err
    assert f"({persona}): its agent is gone; the block is deleted" in gone.out
    assert tagged(api, stack) == []
