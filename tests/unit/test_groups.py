"""Groups against the fake server (which keeps groups as Letta 0.16.8 does): manifest rules with
their positions, the supervisor example from empty to zero writes, members, managers and shared
blocks changed in place, a new manager type replacing the group, prune leaving the agents, a
hand-built group never touched unless imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from letta_apply.kinds.group.kind import MARK_LABEL
from letta_apply.pipeline import load_manifest
from tests.helpers import Cli, at, diagnostics, write
from tests.unit.test_resilience import lose_answer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "examples" / "supervisor-group.yaml").read_text(encoding="utf-8")
HEAD = "version: 1\nstack: s\n"
AGENTS = HEAD + (
    "blocks:\n  org: {value: v}\n"
    "agents:\n"
    "  boss: {model: letta/letta-free, embedding: letta/letta-free}\n"
    "  worker: {model: letta/letta-free, embedding: letta/letta-free}\n"
    "  helper: {model: letta/letta-free, embedding: letta/letta-free}\n"
)


def errors(tmp_path: Path, text: str) -> list[tuple[tuple[int, int], str]]:
    found = diagnostics(write(tmp_path, text), lambda p: load_manifest(str(p)))
    return [(at(d), d.message) for d in found]


def group(cli: Cli) -> dict[str, Any]:
    (only,) = cli.fake.groups.values()
    return only


def agent_id(cli: Cli, name: str) -> str:
    return next(a["id"] for a in cli.fake.agents.values() if a["name"] == name)


def marks(cli: Cli) -> list[dict[str, Any]]:
    return [b for b in cli.fake.blocks.values() if b["label"] == MARK_LABEL]


def apply(cli: Cli, tmp_path: Path, text: str) -> str:
    r = cli("apply", "-f", str(write(tmp_path, text)), "--auto-approve")
    assert r.code == 0, r.out + r.err
    return r.out


def test_references_and_manager_rules_are_located_errors(tmp_path: Path) -> None:
    text = AGENTS + (
        "groups:\n"
        "  a: {manager_type: supervisor, manager_agent: bos, agents: [workr]}\n"
        "  b: {manager_type: round_robin, manager_agent: boss, agents: [worker], blocks: [nope]}\n"
        "  c: {manager_type: dynamic, agents: [worker], sleeptime_agent_frequency: 3}\n"
    )
    found = errors(tmp_path, text)
    assert ((10, 62), "groups.a.agents[0]: no agent 'workr' is declared; did you mean "
            "'worker'?") in found  # fmt: skip
    assert ((10, 48), "groups.a.manager_agent: no agent 'bos' is declared; did you mean "
            "'boss'?") in found  # fmt: skip
    assert any(m.startswith("groups.b.blocks[0]: no shared block 'nope'") for _, m in found)
    assert (
        (11, 34),
        "groups.b.manager_agent: a round_robin group has no manager agent",
    ) in found
    assert any(m == "groups.c: a dynamic group needs a manager_agent" for _, m in found)
    assert any(
        m.startswith("groups.c.sleeptime_agent_frequency: a dynamic group does not take it")
        for _, m in found
    )


def test_the_mark_label_is_reserved(tmp_path: Path) -> None:
    found = errors(tmp_path, HEAD + f"blocks:\n  x: {{label: {MARK_LABEL}, value: v}}\n")
    assert any(MARK_LABEL in m for _, m in found), found


def test_the_example_from_empty_then_zero_writes(tmp_path: Path, cli: Cli) -> None:
    out = apply(cli, tmp_path, EXAMPLE)
    assert "+ group.team: create" in out
    g = group(cli)
    assert g["manager_type"] == "supervisor"
    assert g["manager_agent_id"] == agent_id(cli, "supervisor")
    assert g["agent_ids"] == [agent_id(cli, "worker")]
    (org,) = [b["id"] for b in cli.fake.blocks.values() if b["label"] == "organization"]
    assert g["_shared"] == [org]  # attached to the group, through the group's block route
    (mark,) = marks(cli)
    assert mark["metadata"]["letta_apply"]["group"] == g["id"]
    assert mark["tags"] == ["letta-apply:supervisor-group-example"]
    writes = cli.fake.writes
    again = cli("apply", "-f", str(write(tmp_path, EXAMPLE)), "--auto-approve")
    assert "No changes." in again.out and cli.fake.writes == writes


GROUP = "groups:\n  team: {manager_type: supervisor, manager_agent: boss, agents: [%s]%s}\n"


def test_members_added_and_removed_in_place(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path, AGENTS + GROUP % ("worker", ""))
    gid = group(cli)["id"]
    out = apply(cli, tmp_path, AGENTS + GROUP % ("worker, helper", ""))
    assert "agents: [agent.worker] -> [agent.worker, agent.helper]" in out
    assert group(cli)["id"] == gid
    assert group(cli)["agent_ids"] == [agent_id(cli, "worker"), agent_id(cli, "helper")]
    apply(cli, tmp_path, AGENTS + GROUP % ("helper", ""))
    assert group(cli)["agent_ids"] == [agent_id(cli, "helper")]
    assert len(cli.fake.agents) == 3  # a member removed is left in place


def test_the_manager_changed_in_place(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path, AGENTS + GROUP % ("worker", ""))
    gid = group(cli)["id"]
    text = AGENTS + GROUP.replace("boss", "helper") % ("worker", "")
    out = apply(cli, tmp_path, text)
    assert 'manager_agent: "agent.boss" -> "agent.helper"' in out
    assert (group(cli)["id"], group(cli)["manager_agent_id"]) == (gid, agent_id(cli, "helper"))
    assert "No changes." in cli("plan", "-f", str(write(tmp_path, text))).out


def test_a_replaced_manager_is_deleted_once_the_group_names_its_replacement(
    tmp_path: Path, cli: Cli
) -> None:
    boss = "  boss: {model: letta/letta-free, embedding: letta/letta-free}\n"
    text = AGENTS.replace(boss, boss[:-2] + ", include_base_tools: %s}\n")
    apply(cli, tmp_path, text % "true" + GROUP % ("worker", ""))
    gid, old = group(cli)["id"], agent_id(cli, "boss")
    out = apply(cli, tmp_path, text % "false" + GROUP % ("worker", ""))
    assert 'manager_agent: "agent.boss" -> "agent.boss (new)"' in out
    new = agent_id(cli, "boss")
    assert new != old and old not in cli.fake.agents  # the fake refuses a manager's delete
    assert (group(cli)["id"], group(cli)["manager_agent_id"]) == (gid, new)
    plan = cli("plan", "-f", str(write(tmp_path, text % "false" + GROUP % ("worker", ""))))
    assert "No changes." in plan.out


def test_a_group_create_whose_answer_is_lost_is_adopted_by_its_intent_never_resent(
    tmp_path: Path, cli: Cli
) -> None:
    lose_answer(cli.fake, "POST", "/v1/groups/", status=502)
    apply(cli, tmp_path, AGENTS + GROUP % ("worker", ""))
    gid = group(cli)["id"]  # one group: the create was not sent again
    # The intent written before the create proves it: the group is marked, the intent gone.
    (mark,) = marks(cli)
    assert mark["metadata"]["letta_apply"]["group"] == gid
    assert "intent" not in mark["metadata"]["letta_apply"]


def test_a_group_create_whose_answer_is_lost_among_look_alikes_is_not_guessed(
    tmp_path: Path, cli: Cli
) -> None:
    manifest = write(tmp_path, AGENTS + GROUP % ("worker", ""))
    lose_answer(cli.fake, "POST", "/v1/groups/", status=502)
    twin = [True]

    def make_a_twin(request: httpx.Request) -> httpx.Response | None:
        # Someone makes the same group by hand while the create is in flight.
        if request.method == "POST" and request.url.path == "/v1/groups/" and twin[0]:
            twin[0] = False
            cli.fake._serve(request)
        return None

    cli.fake.before.append(make_a_twin)
    r = cli("apply", "-f", str(manifest), "--auto-approve")
    assert r.code == 1
    groups = [g["id"] for g in cli.fake.groups.values()]
    assert len(groups) == 2  # nothing was sent again
    assert "all look like what it sent" in r.err and all(g in r.err for g in groups)


def test_a_group_create_the_server_did_not_make_is_sent_again(tmp_path: Path, cli: Cli) -> None:
    refused = [True]

    def refuse_once(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/v1/groups/" and refused[0]:
            refused[0] = False
            return httpx.Response(502, json={"detail": "bad gateway"})  # before acting
        return None

    cli.fake.before.append(refuse_once)
    apply(cli, tmp_path, AGENTS + GROUP % ("worker", ""))
    assert [m["metadata"]["letta_apply"]["group"] for m in marks(cli)] == [group(cli)["id"]]


def test_shared_blocks_attached_and_detached_in_place(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path, AGENTS + GROUP % ("worker", ", blocks: [org]"))
    (org,) = [b["id"] for b in cli.fake.blocks.values() if b["label"] == "org"]
    assert group(cli)["_shared"] == [org]
    out = apply(cli, tmp_path, AGENTS + GROUP % ("worker", ", blocks: []"))
    assert "blocks: [block.org] -> []" in out
    assert group(cli)["_shared"] == []
    assert org in cli.fake.blocks  # detached, not deleted


def test_a_new_manager_type_replaces_the_group_create_first(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path, AGENTS + GROUP % ("worker", ""))
    old = group(cli)["id"]
    text = AGENTS + "groups:\n  team: {manager_type: round_robin, agents: [worker, boss]}\n"
    out = apply(cli, tmp_path, text)
    assert "-/+ group.team" in out or "replace" in out
    g = group(cli)
    assert g["id"] != old and g["manager_type"] == "round_robin"
    assert [m["metadata"]["letta_apply"]["group"] for m in marks(cli)] == [g["id"]]
    assert "No changes." in cli("plan", "-f", str(write(tmp_path, text))).out


def test_a_group_pruned_leaves_its_agents(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path, AGENTS + GROUP % ("worker", ", blocks: [org]"))
    out = apply(cli, tmp_path, AGENTS)
    assert "- group.team" in out
    assert cli.fake.groups == {} and marks(cli) == []
    assert len(cli.fake.agents) == 3 and any(b["label"] == "org" for b in cli.fake.blocks.values())


def test_prevent_destroy_refuses_the_prune(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path, AGENTS + GROUP % ("worker", ", prevent_destroy: true"))
    r = cli("apply", "-f", str(write(tmp_path, AGENTS)), "--auto-approve")
    assert r.code == 1 and "prevent_destroy is set" in r.out
    assert len(cli.fake.groups) == 1


def test_a_hand_built_group_is_never_touched_then_imported(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path, AGENTS)
    boss, worker = agent_id(cli, "boss"), agent_id(cli, "worker")
    hand = cli.fake._create_group(
        {"description": "team", "agent_ids": [worker],
         "manager_config": {"manager_type": "supervisor", "manager_agent_id": boss}}
    )  # fmt: skip
    same = AGENTS + GROUP % ("worker", ", description: team")
    plan = cli("plan", "-f", str(write(tmp_path, same)))
    assert "+ group.team: create" in plan.out  # a look-alike is not ours
    apply(cli, tmp_path, AGENTS + "groups: {}\n")  # prune sees nothing to delete
    assert list(cli.fake.groups) == [hand["id"]]
    imported = same + f"imports:\n  - {{to: group.team, id: {hand['id']}}}\n"
    out = apply(cli, tmp_path, imported)
    assert "group.team" in out and list(cli.fake.groups) == [hand["id"]]
    (mark,) = marks(cli)
    assert mark["metadata"]["letta_apply"]["group"] == hand["id"]
    writes = cli.fake.writes
    assert "No changes." in cli("apply", "-f", str(write(tmp_path, same)), "--auto-approve").out
    assert cli.fake.writes == writes


def test_a_group_of_a_refused_agent_is_refused_at_plan(tmp_path: Path, cli: Cli) -> None:
    # An agent named `worker` that the stack does not own: the manifest's is refused, and so
    # is the group that would take it as a member, before any request for either.
    cli.fake._new_agent({"id": "agent-00000000-0000-4000-8000-000000000000", "name": "worker"})
    r = cli("apply", "-f", str(write(tmp_path, AGENTS + GROUP % ("worker", ""))), "--auto-approve")
    assert r.code == 1
    assert "group.team: uses agent.worker, which apply refuses to make" in r.out
    assert cli.fake.groups == {}


def test_a_hand_built_group_exports_and_round_trips_to_no_changes(tmp_path: Path, cli: Cli) -> None:
    boss = cli.fake._new_agent({"name": "boss", "model": "letta/letta-free"})["id"]
    worker = cli.fake._new_agent({"name": "worker", "model": "letta/letta-free"})["id"]
    lone = cli.fake._new_agent({"name": "lone", "model": "letta/letta-free"})["id"]
    hand = cli.fake._create_group(
        {"description": "the team", "agent_ids": [worker],
         "manager_config": {"manager_type": "supervisor", "manager_agent_id": boss}}
    )  # fmt: skip
    cli.fake._create_group(  # a group of an agent not exported stays out
        {"description": "x", "agent_ids": [lone], "manager_config": {"manager_type": "round_robin"}}
    )
    out = tmp_path / "exported.yaml"
    r = cli("export", "--stack", "s", "--name", "boss", "--name", "worker", "-o", str(out))
    assert r.code == 0, r.err
    text = out.read_text()
    assert "groups:\n  boss_group:\n    manager_type: supervisor\n    manager_agent: boss\n" in text
    assert f"- to: group.boss_group\n  id: {hand['id']}" in text
    first = cli("apply", "-f", str(out), "--auto-approve")
    assert first.code == 0, first.out + first.err
    writes = cli.fake.writes
    again = cli("apply", "-f", str(out), "--auto-approve")
    assert "No changes." in again.out and cli.fake.writes == writes
    assert len(cli.fake.groups) == 2


def test_moved_and_ignore_changes(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path, AGENTS + GROUP % ("worker", ""))
    gid = group(cli)["id"]
    moved = AGENTS + GROUP.replace("team", "crew") % ("worker", "")
    out = apply(cli, tmp_path, moved + "moved:\n  - {from: group.team, to: group.crew}\n")
    assert group(cli)["id"] == gid and "- group" not in out
    (mark,) = marks(cli)
    assert mark["metadata"]["letta_apply"]["address"] == "group.crew"
    ignored = AGENTS + GROUP.replace("team", "crew") % ("helper", ", ignore_changes: [agents]")
    assert "No changes." in cli("plan", "-f", str(write(tmp_path, ignored))).out
