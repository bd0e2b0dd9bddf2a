"""Groups against the real server: the supervisor example from empty to zero writes (with its
request counts), a member added and removed, the manager changed in place, a new manager type
replacing the group, a group pruned while its agents stay, and the ownership rule for a kind
with no tags and no metadata: a hand-built group with the same description, manager and
members is never touched, until `imports:` adopts it.

Agent names are derived from each test's stack (names clash across stacks otherwise)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from letta_apply.kinds.group.kind import MARK_LABEL
from tests.integration.conftest import (
    Run,
    agent_by_name,
    listing,
    project_lookup,
    server_count,
)

# Groups are a kind Letta Cloud marks deprecated: the Cloud-like proxy serves them here only.
pytestmark = pytest.mark.deprecated_routes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "examples" / "supervisor-group.yaml").read_text(encoding="utf-8")


def example() -> str:
    """The example, for this test's stack, its agents named after the stack."""
    text = EXAMPLE.replace("stack: supervisor-group-example", "stack: {stack}")
    for name in ("supervisor", "worker"):
        text = text.replace(
            f"  {name}:\n    model:", f"  {name}:\n    name: {{stack}}-{name}\n    model:"
        )
    return text


AGENTS = """\
version: 1
stack: {stack}
blocks:
  org: {value: v}
agents:
  boss: {name: "{stack}-boss", model: letta/letta-free, embedding: letta/letta-free}
  worker: {name: "{stack}-worker", model: letta/letta-free, embedding: letta/letta-free}
  helper: {name: "{stack}-helper", model: letta/letta-free, embedding: letta/letta-free}
"""
GROUP = "groups:\n  team: {manager_type: supervisor, manager_agent: %s, agents: [%s]%s}\n"


def groups(api: httpx.Client, agent_ids: set[str]) -> list[dict[str, Any]]:
    """The groups whose manager or members include one of `agent_ids`."""
    found = api.get("/v1/groups/", params={"limit": 1000}).json()
    return [
        g for g in found
        if g.get("manager_agent_id") in agent_ids or set(g.get("agent_ids") or ()) & agent_ids
    ]  # fmt: skip


def agent_id(api: httpx.Client, name: str) -> str:
    (agent,) = agent_by_name(api, name)
    return str(agent["id"])


def stack_agents(api: httpx.Client, stack: str) -> set[str]:
    found = api.get("/v1/agents/", params={"tags": [f"letta-apply:{stack}"], "limit": 1000})
    return {a["id"] for a in found.json()}


def marks(api: httpx.Client, stack: str) -> list[dict[str, Any]]:
    found = api.get("/v1/blocks/", params={"tags": [f"letta-apply:{stack}"], "limit": 1000})
    return [b for b in found.json() if b["label"] == MARK_LABEL]


@pytest.fixture
def cleanup(api: httpx.Client, stack: str) -> Iterator[None]:
    """Delete every group of the stack's agents, whoever made it (a group's manager cannot be
    deleted while the group exists)."""
    yield
    for g in groups(api, stack_agents(api, stack)):
        api.delete(f"/v1/groups/{g['id']}")


def test_the_example_from_empty_then_zero_writes(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    path = manifest(example())
    cold = run("plan", "-f", path)  # 10 reads on an empty server (the model lists included)
    first = run("apply", "-f", path, "--auto-approve")
    assert first.code == 0, first.out + first.err
    ((g,),) = [groups(api, stack_agents(api, stack))]
    assert g["manager_type"] == "supervisor"
    assert g["manager_agent_id"] == agent_id(api, f"{stack}-supervisor")
    assert g["agent_ids"] == [agent_id(api, f"{stack}-worker")]
    (mark,) = marks(api, stack)
    assert mark["metadata"]["letta_apply"]["group"] == g["id"]
    # The plan once (under the stack lock it stands: no other run wrote to the stack since),
    # and a listing after each stage of creates that settles duplicates (the blocks', the
    # agents'; a group has no mark to look up before its mark block exists), its page and the
    # empty page. Writes: the block, the agents, the group's mark block (as the intent to
    # create it, before the group), the group, its mark completed, the organization block's
    # attachment to the group. On an empty server: 14 reads.
    settling = listing(1) + listing(2)
    assert (first.reads, first.writes) == (cold.reads + settling, 7), first.err
    # Blocks (organization, two personas, the mark; the stack's serial), agents, tools, groups
    # (the mark block says the stack holds some; no identities: it holds none): a page each and
    # the empty page that ends it. On an empty server: 8 reads.
    tools = server_count(api, "/v1/tools/")
    reads = project_lookup() + listing(4) + listing(2) + listing(tools)
    reads += listing(server_count(api, "/v1/groups/"))
    plan = run("plan", "-f", path)
    assert "No changes." in plan.out and (plan.reads, plan.writes) == (reads, 0)
    again = run("apply", "-f", path, "--auto-approve")
    assert "No changes." in again.out and (again.reads, again.writes) == (reads, 0)


def test_members_and_manager_change_in_place(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    assert run("apply", "-f", manifest(AGENTS + GROUP % ("boss", "worker", "")),
               "--auto-approve").code == 0  # fmt: skip
    (g,) = groups(api, stack_agents(api, stack))
    worker, helper, boss = (agent_id(api, f"{stack}-{n}") for n in ("worker", "helper", "boss"))
    added = run("apply", "-f", manifest(AGENTS + GROUP % ("boss", "worker, helper", "")),
                "--auto-approve")  # fmt: skip
    assert added.code == 0 and added.writes == 2, added.err  # the PATCH and the mark
    (now,) = groups(api, stack_agents(api, stack))
    assert (now["id"], now["agent_ids"]) == (g["id"], [worker, helper])
    removed = run("apply", "-f", manifest(AGENTS + GROUP % ("boss", "helper", "")),
                  "--auto-approve")  # fmt: skip
    assert removed.code == 0
    (now,) = groups(api, stack_agents(api, stack))
    assert now["agent_ids"] == [helper] and worker in stack_agents(api, stack)
    text = AGENTS + GROUP % ("worker", "helper", "")
    moved = run("apply", "-f", manifest(text), "--auto-approve")
    assert moved.code == 0, moved.out
    (now,) = groups(api, stack_agents(api, stack))
    assert (now["id"], now["manager_agent_id"]) == (g["id"], worker)
    assert boss in stack_agents(api, stack)
    assert "No changes." in run("plan", "-f", manifest(text)).out


TEMPLATED = """\
version: 1
stack: {stack}
blocks:
  region: {for_each: [eu, us], value: v}
agents:
  boss:
    for_each: [eu, us]
    name: "{stack}-boss-${each.key}"
    model: letta/letta-free
    embedding: letta/letta-free
  w:
    count: 2
    name: "{stack}-w-${count.index}"
    model: letta/letta-free
    embedding: letta/letta-free
groups:
  team:
    manager_type: supervisor
    manager_agent: boss[eu]
    agents:
      - w[*]
      - boss['us']
    blocks:
      - region[eu]
"""


def test_a_group_of_template_instances_named_as_agents_name_blocks(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    path = manifest(TEMPLATED)
    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0, applied.out + applied.err
    (g,) = groups(api, stack_agents(api, stack))
    assert g["manager_agent_id"] == agent_id(api, f"{stack}-boss-eu")
    assert g["agent_ids"] == [agent_id(api, f"{stack}-{n}") for n in ("w-0", "w-1", "boss-us")]
    (mark,) = marks(api, stack)
    assert mark["metadata"]["letta_apply"]["blocks"] == ['block.region["eu"]']
    again = run("plan", "-f", path, "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out, again.out + again.err


def test_a_new_manager_type_replaces_and_a_pruned_group_leaves_its_agents(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    assert run("apply", "-f", manifest(AGENTS + GROUP % ("boss", "worker", ", blocks: [org]")),
               "--auto-approve").code == 0  # fmt: skip
    (old,) = groups(api, stack_agents(api, stack))
    text = AGENTS + "groups:\n  team: {manager_type: round_robin, agents: [worker, helper]}\n"
    replaced = run("apply", "-f", manifest(text), "--auto-approve")
    assert replaced.code == 0, replaced.out + replaced.err
    (new,) = groups(api, stack_agents(api, stack))
    assert new["id"] != old["id"] and new["manager_type"] == "round_robin"
    assert [m["metadata"]["letta_apply"]["group"] for m in marks(api, stack)] == [new["id"]]
    pruned = run("apply", "-f", manifest(AGENTS), "--auto-approve")
    assert pruned.code == 0 and "- group.team" in pruned.out
    assert groups(api, stack_agents(api, stack)) == [] and marks(api, stack) == []
    assert len(stack_agents(api, stack)) == 3


def test_a_hand_built_group_is_never_touched_until_imported(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    assert run("apply", "-f", manifest(AGENTS), "--auto-approve").code == 0
    boss, worker = agent_id(api, f"{stack}-boss"), agent_id(api, f"{stack}-worker")
    hand = api.post(
        "/v1/groups/",
        json={"description": "team", "agent_ids": [worker],
              "manager_config": {"manager_type": "supervisor", "manager_agent_id": boss}},
    )  # fmt: skip
    hand.raise_for_status()
    gid = hand.json()["id"]
    same = AGENTS + GROUP % ("boss", "worker", ", description: team")
    plan = run("plan", "-f", manifest(same))
    assert "+ group.team: create" in plan.out  # a look-alike is not the stack's
    assert run("apply", "-f", manifest(AGENTS + "groups: {}\n"), "--auto-approve").code == 0
    assert [g["id"] for g in groups(api, {boss, worker})] == [gid]  # never pruned
    imported = run(
        "apply", "-f", manifest(same + f"imports:\n  - {{to: group.team, id: {gid}}}\n"),
        "--auto-approve",
    )  # fmt: skip
    assert imported.code == 0, imported.out + imported.err
    assert [g["id"] for g in groups(api, {boss, worker})] == [gid]
    (mark,) = marks(api, stack)
    assert mark["metadata"]["letta_apply"]["group"] == gid
    again = run("apply", "-f", manifest(same), "--auto-approve")
    assert "No changes." in again.out and again.writes == 0


def test_a_replaced_manager_is_swapped_in_one_apply(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    boss = '  boss: {name: "{stack}-boss", model: letta/letta-free, embedding: letta/letta-free}\n'
    assert boss in AGENTS
    text = AGENTS.replace(boss, boss[:-2] + ", include_base_tools: %s}\n")
    assert run("apply", "-f", manifest(text % "true" + GROUP % ("boss", "worker", "")),
               "--auto-approve").code == 0  # fmt: skip
    (g,) = groups(api, stack_agents(api, stack))
    old = agent_id(api, f"{stack}-boss")
    # Letta refuses to delete a group's manager: the old agent goes once the group names the
    # new one, in the same apply.
    swapped = run("apply", "-f", manifest(text % "false" + GROUP % ("boss", "worker", "")),
                  "--auto-approve")  # fmt: skip
    assert swapped.code == 0, swapped.out + swapped.err
    new = agent_id(api, f"{stack}-boss")
    (now,) = groups(api, stack_agents(api, stack))
    assert new != old and (now["id"], now["manager_agent_id"]) == (g["id"], new)
    assert api.get(f"/v1/agents/{old}").status_code == 404
    again = run("apply", "-f", manifest(text % "false" + GROUP % ("boss", "worker", "")),
                "--auto-approve")  # fmt: skip
    assert "No changes." in again.out and again.writes == 0


SLEEPERS = AGENTS + (
    '  notes: {name: "{stack}-notes", model: letta/letta-free, embedding: letta/letta-free}\n'
    "groups:\n"
    "  sleep: {manager_type: sleeptime, manager_agent: boss, agents: [worker],\n"
    "          sleeptime_agent_frequency: %d}\n"
    "  voice: {manager_type: voice_sleeptime, manager_agent: helper, agents: [notes],\n"
    "          max_message_buffer_length: %d, min_message_buffer_length: 5}\n"
)


def test_sleeptime_and_voice_sleeptime_groups_converge_and_change_in_place(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    made = run("apply", "-f", manifest(SLEEPERS % (3, 10)), "--auto-approve")
    assert made.code == 0, made.out + made.err
    found = {g["manager_type"]: g for g in groups(api, stack_agents(api, stack))}
    assert found["sleeptime"]["sleeptime_agent_frequency"] == 3
    assert found["sleeptime"]["agent_ids"] == [agent_id(api, f"{stack}-worker")]
    assert found["voice_sleeptime"]["manager_agent_id"] == agent_id(api, f"{stack}-helper")
    assert (found["voice_sleeptime"]["max_message_buffer_length"],
            found["voice_sleeptime"]["min_message_buffer_length"]) == (10, 5)  # fmt: skip
    again = run("apply", "-f", manifest(SLEEPERS % (3, 10)), "--auto-approve")
    assert "No changes." in again.out and again.writes == 0
    changed = run("apply", "-f", manifest(SLEEPERS % (5, 12)), "--auto-approve")
    assert changed.code == 0, changed.out + changed.err
    assert "sleeptime_agent_frequency: 3 -> 5" in changed.out
    assert "max_message_buffer_length: 10 -> 12" in changed.out
    now = {g["manager_type"]: g for g in groups(api, stack_agents(api, stack))}
    assert {t: g["id"] for t, g in now.items()} == {t: g["id"] for t, g in found.items()}
    assert now["sleeptime"]["sleeptime_agent_frequency"] == 5
    assert now["voice_sleeptime"]["max_message_buffer_length"] == 12
    assert "No changes." in run("plan", "-f", manifest(SLEEPERS % (5, 12))).out


def test_a_hand_built_group_exports_and_round_trips_to_no_changes(
    run: Run, api: httpx.Client, stack: str, tmp_path: Path, cleanup: None
) -> None:
    tag = f"export-{stack}"
    made = {}
    for role in ("lead", "member"):
        r = api.post(
            "/v1/agents/",
            json={"name": f"{stack}-{role}", "model": "letta/letta-free",
                  "embedding": "letta/letta-free", "tags": [tag]},
        )  # fmt: skip
        r.raise_for_status()
        made[role] = r.json()["id"]
    hand = api.post(
        "/v1/groups/",
        json={"description": "Reviews every answer.", "agent_ids": [made["member"]],
              "manager_config": {"manager_type": "dynamic", "manager_agent_id": made["lead"],
                                 "max_turns": 4, "termination_token": "DONE"}},
    )  # fmt: skip
    hand.raise_for_status()
    gid = hand.json()["id"]
    out = tmp_path / "exported.yaml"
    exported = run("export", "--stack", stack, "--tag", tag, "-o", str(out))
    assert exported.code == 0, exported.err
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    ((key, spec),) = doc["groups"].items()
    assert spec == {
        "manager_type": "dynamic", "manager_agent": f"{stack}-lead",
        "agents": [f"{stack}-member"], "description": "Reviews every answer.",
        "max_turns": 4, "termination_token": "DONE",
    }  # fmt: skip
    assert {"to": f"group.{key}", "id": gid} in doc["imports"]
    plan = run("plan", "-f", str(out))
    assert f"= group.{key} ({gid}): import" in plan.out, plan.out
    assert "0 to create, 0 to update" in plan.out and "0 to delete" in plan.out
    adopted = run("apply", "-f", str(out), "--auto-approve")
    assert adopted.code == 0, adopted.out + adopted.err
    (mark,) = marks(api, stack)
    assert mark["metadata"]["letta_apply"]["group"] == gid
    assert [g["id"] for g in groups(api, set(made.values()))] == [gid]
    again = run("apply", "-f", str(out), "--auto-approve")
    assert "No changes." in again.out and again.writes == 0
