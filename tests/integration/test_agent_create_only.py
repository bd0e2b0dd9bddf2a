"""What an agent is made with and cannot change, against the real server: `agent_type` (a change
replaces the agent in one apply), `include_base_tool_rules`, and `initial_message_sequence`
(in the agent's messages after its create, never sent again)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.conftest import Run, agent_by_name

MANIFEST = """\
version: 1
stack: {stack}
agents:
  helper:
    name: {stack}-helper
    model: letta/letta-free
    embedding: letta/letta-free
    agent_type: memgpt_v2_agent
    include_base_tool_rules: false
    initial_message_sequence:
      - {role: user, content: 'Hello, I am Ada.'}
      - {role: assistant, content: 'Hi Ada, how can I help?'}
"""


def messages(api: httpx.Client, agent_id: str) -> list[tuple[str, Any]]:
    found = api.get(f"/v1/agents/{agent_id}/messages", params={"limit": 100}).json()
    return [(m["message_type"], m.get("content")) for m in found]


def test_type_and_first_messages_are_made_once_and_a_type_change_replaces(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(MANIFEST)
    r = run("apply", "-f", path, "--auto-approve")
    assert r.code == 0, r.out + r.err
    (a,) = agent_by_name(api, f"{stack}-helper")
    assert a["agent_type"] == "memgpt_v2_agent"
    # A memgpt_v2_agent gets loop rules for its base tools unless told otherwise.
    assert a["tool_rules"] == []
    said = messages(api, a["id"])
    assert [t for t, _ in said] == ["system_message", "user_message", "assistant_message"]
    assert said[1:] == [
        ("user_message", "Hello, I am Ada."),
        ("assistant_message", "Hi Ada, how can I help?"),
    ]
    again = run("apply", "-f", path, "--auto-approve")
    assert again.code == 0 and "No changes." in again.out, again.out
    assert again.writes == 0

    # Editing the first messages of a live agent changes nothing: they are never sent again.
    edited = manifest(MANIFEST.replace("Hello, I am Ada.", "Hello, I am Grace."))
    again = run("apply", "-f", edited, "--auto-approve")
    assert again.code == 0 and "No changes." in again.out, again.out
    assert again.writes == 0
    assert messages(api, a["id"]) == said

    # A new type: a new agent, made first, in one apply; then nothing left to do.
    retyped = manifest(MANIFEST.replace("memgpt_v2_agent", "letta_v1_agent"))
    plan = run("plan", "-f", retyped)
    assert 'agent_type: "memgpt_v2_agent" -> "letta_v1_agent"  (forces replacement)' in plan.out, (
        plan.out
    )
    r = run("apply", "-f", retyped, "--auto-approve")
    assert r.code == 0, r.out + r.err
    (b,) = agent_by_name(api, f"{stack}-helper")
    assert b["id"] != a["id"] and b["agent_type"] == "letta_v1_agent"
    assert api.get(f"/v1/agents/{a['id']}").status_code == 404
    assert messages(api, b["id"])[1:] == said[1:]  # the new agent starts with them
    again = run("apply", "-f", retyped, "--auto-approve")
    assert again.code == 0 and "No changes." in again.out, again.out
    assert again.writes == 0


TYPES = """\
version: 1
stack: {stack}
agents:
  voice:
    name: {stack}-voice
    model: letta/letta-free
    embedding: letta/letta-free
    agent_type: voice_convo_agent
    enable_sleeptime: true
  split:
    name: {stack}-split
    model: letta/letta-free
    embedding: letta/letta-free
    agent_type: split_thread_agent
    system: You answer in one thread.
  flow:
    name: {stack}-flow
    model: letta/letta-free
    embedding: letta/letta-free
    agent_type: workflow_agent
    include_base_tool_rules: true
    initial_message_sequence: []
"""


def test_the_types_with_conditions_are_made_as_validate_lets_them(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    """What `validate` accepts for the types Letta puts conditions on, Letta makes, and a
    second apply writes nothing."""
    path = manifest(TYPES)
    r = run("apply", "-f", path, "--auto-approve")
    assert r.code == 0, r.out + r.err
    for key, kind in (
        ("voice", "voice_convo_agent"),
        ("split", "split_thread_agent"),
        ("flow", "workflow_agent"),
    ):
        (a,) = agent_by_name(api, f"{stack}-{key}")
        assert a["agent_type"] == kind
    (flow,) = agent_by_name(api, f"{stack}-flow")
    assert [t for t, _ in messages(api, flow["id"])] == ["system_message"]
    again = run("apply", "-f", path, "--auto-approve")
    assert again.code == 0 and "No changes." in again.out, again.out
    assert again.writes == 0
    # Letta 0.16.8 cannot export a voice_convo_agent (its export builds a CreateAgent without
    # enable_sleeptime, which that type requires): its backup fails, so destroy keeps it, and
    # says how to delete it anyway.
    r = run("destroy", "-f", path, "--auto-approve")
    assert r.code == 1
    assert "the backup of agent.voice failed, so it was not deleted" in r.err
    assert "an agent Letta cannot export is deleted only with --no-backup" in r.err
    r = run("destroy", "-f", path, "--auto-approve", "--no-backup")
    assert r.code == 0, r.out + r.err
