"""letta-apply against a real Letta 0.16.8: the seed setup, idempotence, memory and attachments."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .conftest import (
    MODE,
    RECORDER,
    SEED,
    Run,
    agent_by_name,
    listing,
    project_lookup,
    server_count,
    stack_resources,
)


def _ids(api: httpx.Client, stack: str) -> dict[str, str]:
    blocks, agents = stack_resources(api, stack)
    out = {a["metadata"]["letta_apply"]["address"]: a["id"] for a in agents}
    out.update(
        {
            b["metadata"]["letta_apply"]["address"]: b["id"]
            for b in blocks
            if b["metadata"].get("letta_apply")
        }
    )
    return out


def test_seed_setup_from_empty(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(SEED)

    plan = run("plan", "-f", path, "--detailed-exitcode")
    assert plan.code == 2, plan.err
    assert "Plan: 3 to create, 0 to update, 0 to attach, 0 to detach, 0 to delete." in plan.out
    assert plan.writes == 0

    first = run("apply", "-f", path, "--auto-approve")
    assert first.code == 0, first.err
    # One request per resource: a shared block and two agents, each with its own block inline.
    assert first.writes == 3
    assert "block.organization: created (block-" in first.out
    assert "agent.worker: created (agent-" in first.out

    blocks, agents = stack_resources(api, stack)
    assert sorted(a["name"] for a in agents) == [f"{stack}-supervisor", f"{stack}-worker"]
    shared = [b for b in blocks if b["label"] == "organization"]
    assert len(shared) == 1
    assert shared[0]["value"] == "Nothing here yet, we should update this over time."
    assert (
        shared[0]["description"] == "Shared information between all agents within the organization."
    )
    for a in agents:
        labels = {b["label"]: b for b in a["blocks"]}
        assert labels["organization"]["id"] == shared[0]["id"]
        role = a["name"].rsplit("-", 1)[1]
        assert labels["persona"]["value"] == f"I am a {role}"
        mark = a["metadata"]["letta_apply"]
        assert (mark["stack"], mark["address"]) == (stack, f"agent.{role}")
        assert mark["applied"]["blocks"] == ["block.organization"]
        assert f"letta-apply:{stack}" in a["tags"]

    again = run("plan", "-f", path, "--detailed-exitcode")
    assert again.code == 0, again.out
    assert "No changes. The server matches the manifest." in again.out
    assert again.writes == 0


def test_second_apply_sends_no_writes(
    run: Run, manifest: Callable[[str], str], api: httpx.Client
) -> None:
    path = manifest(SEED)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    before = len(RECORDER.sent)
    second = run("apply", "-f", path, "--auto-approve")
    assert second.code == 0
    assert "No changes" in second.out
    assert second.writes == 0
    # Reads are list calls, not one per resource: blocks, agents and tools, one page each and
    # the empty page that ends it (tools are the server's, all listed); through the Cloud-like
    # proxy, as many pages as its caps make, and the project's lookup. Not identities, groups,
    # folders, archives or MCP servers: the stack holds none.
    read = {s.path for s in RECORDER.sent[before:] if s.method == "GET"}
    lists = {"/v1/blocks/", "/v1/agents/", "/v1/tools/"}
    assert read == (lists if MODE == "direct" else lists | {"/v1/projects"})
    tools = server_count(api, "/v1/tools/")
    assert second.reads == project_lookup() + listing(3) + listing(2) + listing(tools)


def test_shared_memory_between_agents(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
    ids = _ids(api, stack)
    r = api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/organization",
        json={"value": "Organization: Letta"},
    )
    assert r.status_code == 200, r.text
    seen = api.get(f"/v1/agents/{ids['agent.supervisor']}/core-memory/blocks/organization").json()
    assert seen["value"] == "Organization: Letta"


def test_agent_written_value_is_kept(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(SEED)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    ids = _ids(api, stack)
    api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/organization",
        json={"value": "Organization: Letta"},
    )
    api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/persona",
        json={"value": "I am a tired worker"},
    )

    plan = run("plan", "-f", path, "--detailed-exitcode")
    assert plan.code == 0, plan.out
    assert "block.organization.value was written on the server" in plan.out
    assert "agent.worker.memory_blocks.persona.value was written on the server" in plan.out
    assert '"Organization: Letta"' in plan.out
    assert "2 agent-written values kept." in plan.out

    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0
    assert applied.writes == 0
    org = api.get(f"/v1/agents/{ids['agent.supervisor']}/core-memory/blocks/organization").json()
    assert org["value"] == "Organization: Letta"


def test_memory_values_are_decided_three_ways(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
    ids = _ids(api, stack)

    def value(address: str) -> str:
        agent, _, label = address.partition(".memory_blocks.")
        url = (
            f"/v1/agents/{ids[agent]}/core-memory/blocks/{label}"
            if label
            else f"/v1/blocks/{ids[address]}"
        )
        got: str = api.get(url).json()["value"]
        return got

    # The manifest changes a shared value and an agent's own one, the server is untouched:
    # manifest changes, written (the own block's base comes from its agent's marks).
    edited = SEED.replace(
        "Nothing here yet, we should update this over time.", "Acme, CET"
    ).replace(
        "{label: persona, value: I am a worker}", "{label: persona, value: I am the night worker}"
    )
    plan = run("plan", "-f", manifest(edited))
    assert "written on the server" not in plan.out and "Drift" not in plan.out, plan.out
    assert "- Nothing here yet, we should update this over time.\n+ Acme, CET" in plan.out or (
        '"Nothing here yet, we should update this over time." -> "Acme, CET"' in plan.out
    ), plan.out
    assert '"I am a worker" -> "I am the night worker"' in plan.out
    assert run("drift", "-f", manifest(edited)).code == 0
    assert run("apply", "-f", manifest(edited), "--auto-approve").code == 0
    assert value("block.organization") == "Acme, CET"
    assert value("agent.worker.memory_blocks.persona") == "I am the night worker"
    assert "The server matches the manifest" in run("plan", "-f", manifest(edited)).out

    # An agent writes its persona and the manifest changes it too: a conflict, the agent's
    # value kept, and still a conflict after an apply that rewrote the agent's marks.
    r = api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/persona",
        json={"value": "I am a worker who likes night shifts"},
    )
    assert r.status_code == 200, r.text
    both = edited.replace("I am the night worker", "I am the day worker").replace(
        "    name: {stack}-worker\n", "    name: {stack}-worker\n    description: Day shift.\n"
    )
    plan = run("plan", "-f", manifest(both))
    assert (
        "agent.worker.memory_blocks.persona.value changed both in the manifest and on the server"
        in plan.out
    ), plan.out
    assert 'declared: "I am the day worker"' in plan.out
    assert 'live:     "I am a worker who likes night shifts"' in plan.out
    assert run("drift", "-f", manifest(both)).code == 2
    assert run("apply", "-f", manifest(both), "--auto-approve").code == 0
    assert value("agent.worker.memory_blocks.persona") == "I am a worker who likes night shifts"
    again = run("plan", "-f", manifest(both))
    assert "1 memory conflict." in again.out and "No changes." in again.out, again.out


def test_enforced_value_is_restored(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(
        SEED.replace(
            "    value: Nothing here yet, we should update this over time.\n",
            "    value: Nothing here yet, we should update this over time.\n"
            "    enforce_value: true\n",
        )
    )
    assert run("apply", "-f", path, "--auto-approve").code == 0
    ids = _ids(api, stack)
    api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/organization",
        json={"value": "scribbled"},
    )

    plan = run("plan", "-f", path, "--detailed-exitcode")
    assert plan.code == 2
    assert "enforce_value restores it" in plan.out
    assert '"scribbled" -> "Nothing here yet, we should update this over time."' in plan.out

    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0, applied.err
    assert applied.writes == 1
    org = api.get(f"/v1/blocks/{ids['block.organization']}").json()
    assert org["value"] == "Nothing here yet, we should update this over time."
    assert run("apply", "-f", path, "--auto-approve").writes == 0


def test_configuration_changes_are_enforced(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
    ids = _ids(api, stack)
    changed = manifest(
        SEED.replace("within the organization.", "within the company.").replace(
            "    name: {stack}-worker\n",
            "    name: {stack}-worker\n    description: Does the work.\n    tags: [team-a]\n",
        )
    )
    plan = run("plan", "-f", changed)
    assert "~ block.organization (" in plan.out
    assert (
        'description: "Shared information between all agents within the organization." -> '
        in plan.out
    )
    assert "tags: [] -> [team-a]" in plan.out

    applied = run("apply", "-f", changed, "--auto-approve")
    assert applied.code == 0, applied.err
    assert applied.writes == 2
    assert (
        api.get(f"/v1/blocks/{ids['block.organization']}")
        .json()["description"]
        .endswith("the company.")
    )
    worker = api.get(f"/v1/agents/{ids['agent.worker']}", params={"include": ["agent.tags"]}).json()
    assert worker["description"] == "Does the work."
    assert sorted(worker["tags"]) == sorted(["team-a", f"letta-apply:{stack}"])
    # A description changed by hand is configuration: the manifest wins.
    api.patch(f"/v1/blocks/{ids['block.organization']}", json={"description": "hand edit"})
    assert run("apply", "-f", changed, "--auto-approve").writes == 1
    assert (
        api.get(f"/v1/blocks/{ids['block.organization']}")
        .json()["description"]
        .endswith("the company.")
    )
    assert run("apply", "-f", changed, "--auto-approve").writes == 0


def test_attach_and_detach_shared_blocks(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
    with_tasks = SEED.replace(
        "agents:\n",
        "  tasks:\n    value: No tasks yet.\nagents:\n",
    ).replace(
        "      - {label: persona, value: I am a worker}\n    blocks: [organization]",
        "      - {label: persona, value: I am a worker}\n    blocks: [organization, tasks]",
    )
    path = manifest(with_tasks)
    plan = run("plan", "-f", path)
    assert "+ agent.worker: attach block.tasks" in plan.out
    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0, applied.err
    assert applied.writes == 2  # create block.tasks, attach it
    ids = _ids(api, stack)
    worker = api.get(
        f"/v1/agents/{ids['agent.worker']}", params={"include": ["agent.blocks"]}
    ).json()
    assert {b["label"] for b in worker["blocks"]} == {"persona", "organization", "tasks"}

    without = with_tasks.replace("blocks: [organization, tasks]", "blocks: [organization]")
    path = manifest(without)
    plan = run("plan", "-f", path)
    assert "- agent.worker: detach block.tasks" in plan.out
    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0
    assert applied.writes == 1
    worker = api.get(
        f"/v1/agents/{ids['agent.worker']}", params={"include": ["agent.blocks"]}
    ).json()
    assert {b["label"] for b in worker["blocks"]} == {"persona", "organization"}
    # Detached, not deleted.
    assert api.get(f"/v1/blocks/{ids['block.tasks']}").status_code == 200
    assert run("apply", "-f", path, "--auto-approve").writes == 0


def test_shared_block_attached_by_hand_is_detected(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    text = SEED.replace("agents:\n", "  notes:\n    value: private notes\nagents:\n").replace(
        "      - label: persona\n        value: I am a supervisor\n    blocks: [organization]",
        "      - label: persona\n        value: I am a supervisor\n"
        "    blocks: [organization, notes]",
    )
    path = manifest(text)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    ids = _ids(api, stack)
    r = api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/attach/{ids['block.notes']}"
    )
    assert r.status_code == 200, r.text

    plan = run("plan", "-f", path, "--detailed-exitcode")
    assert plan.code == 2
    assert "- agent.worker: detach block.notes" in plan.out
    assert run("apply", "-f", path, "--auto-approve").writes == 1
    worker = api.get(
        f"/v1/agents/{ids['agent.worker']}", params={"include": ["agent.blocks"]}
    ).json()
    assert "notes" not in {b["label"] for b in worker["blocks"]}


def test_unmarked_agent_with_a_declared_name_is_untouched(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    hand = api.post(
        "/v1/agents/",
        json={
            "name": f"{stack}-worker",
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "memory_blocks": [{"label": "persona", "value": "made by hand"}],
            "tags": ["hand-made"],
        },
    )
    assert hand.status_code == 200, hand.text
    hand_id = hand.json()["id"]
    before = agent_by_name(api, f"{stack}-worker")
    try:
        path = manifest(SEED)
        plan = run("plan", "-f", path)
        assert plan.code == 1
        assert f"x agent.worker: an agent named '{stack}-worker' already exists" in plan.out
        assert "hint:" in plan.out

        applied = run("apply", "-f", path, "--auto-approve")
        assert applied.code == 1
        assert "agent.worker" in applied.err and "already exists" in applied.err
        assert applied.writes == 2  # the shared block and the supervisor; nothing for the worker
        after = agent_by_name(api, f"{stack}-worker")
        assert [a["id"] for a in after] == [hand_id]
        assert after[0]["blocks"] == before[0]["blocks"]
        assert after[0]["tags"] == ["hand-made"]
        assert after[0]["metadata"] == before[0]["metadata"]
    finally:
        api.delete(f"/v1/agents/{hand_id}")


def test_unmarked_block_with_a_declared_label_is_no_clash(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    other = api.post(
        "/v1/blocks/", json={"label": "organization", "value": "someone else's"}
    ).json()
    try:
        assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
        blocks, _ = stack_resources(api, stack)
        ours = [b for b in blocks if b["label"] == "organization"]
        assert len(ours) == 1 and ours[0]["id"] != other["id"]
        still = api.get(f"/v1/blocks/{other['id']}").json()
        assert still["value"] == "someone else's"
        assert still["metadata"] in ({}, None)
    finally:
        api.delete(f"/v1/blocks/{other['id']}")


FULL = """\
version: 1
stack: {stack}
blocks:
  organization:
    label: org
    description: Shared facts.
    value: |
      Line one.
      Line two.
    limit: 5000
    read_only: true
    metadata: {team: support, nested: {level: 2}}
    tags: [shared, facts]
agents:
  helper:
    name: {stack} helper's agent
    description: Answers questions.
    system: You are a careful helper. Keep answers short.
    model: letta/letta-free
    embedding: letta/letta-free
    tags: [helpers, tier-1]
    metadata: {owner: platform, cost_center: 42}
    tools: [web_search, conversation_search]
    memory_blocks:
      - label: persona
        value: I help.
        description: Who I am.
        limit: 3000
        read_only: false
        metadata: {kind: persona}
      - label: human
        value: The user.
    blocks: [organization]
"""


def test_every_field_round_trips_with_zero_writes(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(FULL)
    first = run("apply", "-f", path, "--auto-approve")
    assert first.code == 0, first.err
    second = run("plan", "-f", path, "--detailed-exitcode")
    assert second.code == 0, second.out
    assert "No changes. The server matches the manifest." in second.out
    assert run("apply", "-f", path, "--auto-approve").writes == 0

    ids = _ids(api, stack)
    agent = api.get(
        f"/v1/agents/{ids['agent.helper']}",
        params={"include": ["agent.blocks", "agent.tags", "agent.tools"]},
    ).json()
    assert agent["name"] == f"{stack} helper's agent"
    assert agent["system"] == "You are a careful helper. Keep answers short."
    assert {"web_search", "conversation_search"} <= {t["name"] for t in agent["tools"]}
    persona = next(b for b in agent["blocks"] if b["label"] == "persona")
    assert (persona["description"], persona["limit"]) == ("Who I am.", 3000)
    assert persona["metadata"] == {"kind": "persona"}
    org = api.get(f"/v1/blocks/{ids['block.organization']}").json()
    assert org["label"] == "org" and org["read_only"] is True
    assert org["value"] == "Line one.\nLine two.\n"
    assert org["metadata"]["nested"] == {"level": 2}


def test_unknown_tool_is_refused_at_plan(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(FULL.replace("[web_search, conversation_search]", "[web_search, no_such_tool]"))
    plan = run("plan", "-f", path)
    assert plan.code == 1
    assert "x agent.helper: unknown tool 'no_such_tool'" in plan.out
