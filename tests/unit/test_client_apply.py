"""The client and apply against an in-memory fake server (injected httpx transport)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest

from letta_apply import ApplyError, LettaClient, ServerUnreachable, apply_plan, plan_for
from letta_apply.errors import ApiError, LettaApplyError
from letta_apply.pipeline import load_manifest
from letta_apply.server.client import PAGE_SIZE
from tests.fakes import FakeLetta
from tests.helpers import SEED, desired


def test_apply_from_empty_then_converged() -> None:
    fake = FakeLetta()
    client = fake.client()
    plan = plan_for(client, desired(SEED))
    assert [(c.action, c.address) for c in plan.changes] == [
        ("create", "block.organization"),
        ("create", "agent.supervisor"),
        ("create", "agent.worker"),
    ]
    done = apply_plan(client, plan)
    assert len(done) == 3
    # Three creates plus one metadata fix-up for the supervisor's persona.
    assert fake.writes == 4
    org = next(b for b in fake.blocks.values() if b["label"] == "organization")
    for a in fake.agents.values():
        assert org["id"] in a["block_ids"]
    before = fake.writes
    again = plan_for(client, desired(SEED))
    assert again.changes == ()
    assert fake.writes == before


def test_reads_are_paginated_not_per_resource() -> None:
    fake = FakeLetta()
    client = fake.client()
    agents = "\n".join(
        f"  a{i}:\n    model: letta/letta-free\n    blocks: [organization]" for i in range(250)
    )
    text = f"version: 1\nstack: big\nblocks:\n  organization:\n    value: v\nagents:\n{agents}\n"
    apply_plan(client, plan_for(client, desired(text)), parallelism=8)
    fake.counts.clear()
    fake.calls.clear()
    plan = plan_for(client, desired(text))
    assert plan.changes == ()
    # 250 agents -> a page per PAGE_SIZE; 1 shared block -> 1 page; tools: 1; each listing ends
    # with an empty page. Identities and folders are not listed: the stack holds none.
    assert fake.counts["GET"] == math.ceil(250 / PAGE_SIZE) + 1 + 2 + 2, fake.calls
    assert fake.writes == 0


def test_transient_read_errors_are_retried() -> None:
    fake = FakeLetta()
    failures = iter([503, 429])

    def flaky(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET":
            status = next(failures, None)
            if status:
                return httpx.Response(status, headers={"Retry-After": "0"}, json={"detail": "busy"})
        return None

    fake.before.append(flaky)
    assert plan_for(fake.client(), desired(SEED)).has_changes


def test_a_failed_write_stops_new_work_and_says_what_was_done() -> None:
    fake = FakeLetta()

    def fail_blocks(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/v1/blocks/":
            return httpx.Response(500, json={"detail": "database is on fire"})
        return None

    fake.before.append(fail_blocks)
    client = fake.client()
    plan = plan_for(client, desired(SEED))
    with pytest.raises(ApplyError) as e:
        apply_plan(client, plan)
    assert e.value.failures == [
        "block.organization: create: POST /v1/blocks/: HTTP 500: database is on fire [LA506]"
    ]
    assert e.value.done == 0
    assert e.value.not_attempted == 2  # the agents need the block: never sent
    assert fake.counts["POST"] == 1  # writes are never blindly re-sent
    assert fake.agents == {}


def test_queued_work_is_cancelled_after_a_failure() -> None:
    fake = FakeLetta()

    def fail_agents(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/v1/agents/":
            return httpx.Response(500, json={"detail": "no capacity"})
        return None

    fake.before.append(fail_agents)
    client = fake.client()
    plan = plan_for(client, desired(SEED))
    with pytest.raises(ApplyError) as e:
        apply_plan(client, plan, parallelism=1)
    # One worker: the second agent was still queued when the first failed, and never ran.
    assert len(e.value.failures) == 1
    assert e.value.done == 1  # the shared block
    assert e.value.not_attempted == 1
    assert fake.counts["POST"] == 2


def test_unreachable_server_names_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = LettaClient(
        "http://127.0.0.1:9", transport=httpx.MockTransport(refuse), sleep=lambda s: None
    )
    with pytest.raises(ServerUnreachable) as e:
        client.health()
    assert "cannot reach the Letta server at http://127.0.0.1:9" in str(e.value)


def test_headers_and_secrets() -> None:
    seen: list[httpx.Request] = []

    def deny(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/projects":
            project = {"id": "4f1c-a", "slug": "team-a", "name": "Team A"}
            return httpx.Response(200, json={"projects": [project], "hasNextPage": False})
        return httpx.Response(401, json={"detail": "bad token"})

    client = LettaClient(
        "http://127.0.0.1:8283",
        api_key="sk-secret-1",
        project="Team A",
        transport=httpx.MockTransport(deny),
    )
    with pytest.raises(ApiError) as e:
        client.list_agents(tag="t")
    assert seen[0].url.params["name"] == "Team A"
    assert seen[1].headers["authorization"] == "Bearer sk-secret-1"
    assert (seen[1].headers["x-project-id"], seen[1].headers["x-project"]) == ("4f1c-a", "team-a")
    assert seen[1].url.params["project_id"] == "4f1c-a"
    assert "sk-secret-1" not in str(e.value)
    assert "check --api-key" in str(e.value)


def test_a_project_is_looked_up_once_and_must_exist() -> None:
    fake = FakeLetta()
    fake.projects = [{"id": "4f1c-a", "slug": "team-a", "name": "Team A"}]
    client = fake.client(project="team-a")
    client.list_agents(tag="t")
    client.list_blocks("t")
    assert [p for _, p in fake.calls].count("/v1/projects") == 1
    with pytest.raises(LettaApplyError, match=r"no project with that id, slug or name \(projects: "
                       r"team-a\)"):  # fmt: skip
        fake.client(project="team-b").list_agents(tag="t")
    fake.projects = None  # the self-hosted server has none
    with pytest.raises(LettaApplyError, match="has no projects"):
        fake.client(project="team-a").list_agents(tag="t")


def test_attach_detach_against_fake() -> None:
    fake = FakeLetta()
    client = fake.client()
    apply_plan(client, plan_for(client, desired(SEED)))
    text = SEED.replace("  organization:\n", "  tasks:\n    value: t\n  organization:\n").replace(
        "memory_blocks: [{label: persona, value: I am a worker}]\n    blocks: [organization]",
        "memory_blocks: [{label: persona, value: I am a worker}]\n    blocks: [tasks]",
    )
    plan = plan_for(client, desired(text))
    assert sorted((c.action, c.address, c.target) for c in plan.changes) == [
        ("attach", "agent.worker", "block.tasks"),
        ("create", "block.tasks", None),
        ("detach", "agent.worker", "block.organization"),
    ]
    apply_plan(client, plan)
    assert plan_for(client, desired(text)).changes == ()


def test_two_stacks_of_one_name_in_two_projects_never_see_each_other(tmp_path: Path) -> None:
    """Agents and blocks are listed by project; tools are the organization's, and their marks
    say whose project they belong to."""
    fake = FakeLetta()
    fake.projects = [
        {"id": "4f1c-a", "slug": "team-a", "name": "Team A"},
        {"id": "9d2e-b", "slug": "team-b", "name": "Team B"},
    ]
    (tmp_path / "greet.py").write_text(
        'def greet() -> str:\n    """Say hello."""\n    return "hi"\n'
    )
    path = tmp_path / "m.yaml"
    path.write_text(SEED + "tools:\n  greet: {source_file: greet.py}\n")
    for project in ("team-a", "team-b"):
        client = fake.client(project=project)
        apply_plan(client, plan_for(client, load_manifest(str(path))))
    # Each project has its own agents and blocks; a tool name is the organization's, so the
    # second project's tool clashes with the first's and is refused, never taken over.
    assert len(fake.agents) == 4
    (greet,) = [t for t in fake.tools.values() if t["name"] == "greet"]
    assert greet["metadata_"]["letta_apply"]["project"] == "4f1c-a"
    for project in ("team-a", "team-b"):
        client = fake.client(project=project)
        plan = plan_for(client, load_manifest(str(path)))
        assert plan.changes == ()
        refused = [p.address for p in plan.problems]
        assert refused == ([] if project == "team-a" else ["tool.greet"])


def test_a_project_on_a_later_page_of_the_listing_is_found() -> None:
    projects = [{"id": f"p{i}", "slug": f"team-{i}", "name": f"Team {i}"} for i in range(5)]

    def cloud(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/projects":
            if request.url.params.get("name"):  # the name filter knows names only
                named = [p for p in projects if p["name"] == request.url.params["name"]]
                return httpx.Response(200, json={"projects": named, "hasNextPage": False})
            at = int(request.url.params.get("offset", 0))
            page = projects[at : at + 2]
            return httpx.Response(200, json={"projects": page, "hasNextPage": at + 2 < 5})
        assert request.headers["x-project-id"] == "p4"
        return httpx.Response(200, json=[])

    client = LettaClient(
        "http://127.0.0.1:8283", project="team-4", transport=httpx.MockTransport(cloud)
    )
    assert client.list_agents(tag="t") == []
    assert client.project_id == "p4"


def test_creates_reuse_what_the_server_resolved_for_the_same_handles() -> None:
    sent: list[dict[str, object]] = []

    def create(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        resolved = {"handle": body["model"], "context_window": 30000}
        return httpx.Response(
            200,
            json={
                "id": f"agent-{len(sent)}",
                "llm_config": body.get("llm_config", resolved),
                "embedding_config": {"handle": body.get("embedding")},
            },
        )

    client = LettaClient("http://127.0.0.1:8283", transport=httpx.MockTransport(create))
    plain = {"model": "letta/letta-free", "embedding": "letta/letta-free"}
    client.create_agent({"name": "a", **plain})
    client.create_agent({"name": "b", **plain})
    client.create_agent({"name": "c", "model": "openai/gpt-4o-mini"})  # other handles
    client.create_agent({"name": "d", **plain, "context_window_limit": 8000})  # shaped
    client.create_agent({"name": "e", "model": "openai/gpt-4o-mini"})
    reused = {str(b["name"]): (b.get("llm_config"), b.get("embedding_config")) for b in sent}
    assert reused["a"] == reused["c"] == reused["d"] == (None, None)
    letta_free = {"handle": "letta/letta-free", "context_window": 30000}
    assert reused["b"] == (letta_free, {"handle": "letta/letta-free"})
    assert reused["e"] == (
        {"handle": "openai/gpt-4o-mini", "context_window": 30000},
        {"handle": None},
    )
    assert all(b["model"] for b in sent)  # the handles are always sent
