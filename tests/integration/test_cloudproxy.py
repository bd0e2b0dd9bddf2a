"""The Cloud-like proxy itself, in front of the real server, with plain requests: what it
refuses, how it pages, and how it keeps projects apart. The integration tests run through it
(LETTA_TEST_PROXY=cloud) prove letta-apply against it; these prove it is the Cloud they need."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .cloudproxy import (
    API_KEY,
    DEPRECATED,
    PROJECT_PAGE,
    PROJECTS,
    TEAM_A,
    TEAM_B,
    CloudProxy,
)


def _client(proxy: CloudProxy, project: Any = TEAM_A, key: str | None = API_KEY) -> httpx.Client:
    headers = {"X-Project-Id": project.id, "X-Project": project.slug} if project else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.Client(base_url=proxy.url, headers=headers, timeout=60)


@pytest.fixture
def team_a(cloud: CloudProxy) -> Iterator[httpx.Client]:
    with _client(cloud) as c:
        yield c


@pytest.fixture
def team_b(cloud: CloudProxy) -> Iterator[httpx.Client]:
    with _client(cloud, TEAM_B) as c:
        yield c


def walk(c: httpx.Client, path: str, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Every page of a list, asked for until one comes back empty (the empty one left out)."""
    pages: list[list[dict[str, Any]]] = []
    after: dict[str, str] = {}
    while True:
        r = c.get(path, params={**params, **after, "limit": 1000, "order": "asc"})
        assert r.status_code == 200, r.text
        if not r.json():
            return pages
        pages.append(r.json())
        after = {"after": pages[-1][-1]["id"]}


def test_refuses_what_cloud_refuses(cloud: CloudProxy, stack: str) -> None:
    with _client(cloud, key=None) as c:
        assert c.get("/v1/blocks/").status_code == 401
    with _client(cloud, key="sk-someone-else") as c:
        assert c.get("/v1/blocks/").status_code == 401
    with _client(cloud) as c:
        r = c.post("/v1/tools/generate-schema", json={"code": "def f() -> str: ..."})
        assert r.status_code == 404, r.text  # a self-hosted route
        assert c.get("/v1/health/").status_code == 200
    with _client(cloud, project=None) as c:
        r = c.get("/v1/blocks/", params={"tags": [f"letta-apply:{stack}"]})
        assert r.status_code == 400 and "X-Project-Id" in r.json()["detail"], r.text
        assert c.get("/v1/health/").status_code == 200  # no project needed
    mismatched = {"X-Project-Id": TEAM_A.id, "X-Project": TEAM_B.slug}
    with _client(cloud, project=None) as c:
        r = c.get("/v1/blocks/", headers=mismatched)
        assert r.status_code == 400 and "X-Project" in r.json()["detail"], r.text


def test_lists_the_test_projects_filtered_by_name(cloud: CloudProxy) -> None:
    with _client(cloud, project=None) as c:
        first = c.get("/v1/projects").json()
        rest = c.get("/v1/projects", params={"offset": PROJECT_PAGE, "limit": 100}).json()
        assert first["hasNextPage"] and not rest["hasNextPage"]
        assert len(first["projects"]) == PROJECT_PAGE  # whatever the limit
        assert first["projects"] + rest["projects"] == [p.listed() for p in PROJECTS]
        for given in (TEAM_B.name, TEAM_B.name.upper()):
            found = c.get("/v1/projects", params={"name": given}).json()
            assert found == {"projects": [TEAM_B.listed()], "hasNextPage": False}, given
        for other in (TEAM_B.slug, TEAM_B.id, "nobody"):
            assert c.get("/v1/projects", params={"name": other}).json()["projects"] == []


def test_pages_are_capped_whatever_the_limit(
    team_a: httpx.Client, api: httpx.Client, stack: str
) -> None:
    tag = f"letta-apply:{stack}"
    made = [
        team_a.post("/v1/blocks/", json={"label": f"b{i}", "value": "v", "tags": [tag]}).json()
        for i in range(22)
    ]
    try:
        pages = walk(team_a, "/v1/blocks/", {"tags": [tag]})
        assert [len(p) for p in pages] == [7, 7, 5, 3]
        assert [b["id"] for p in pages for b in p] == [b["id"] for b in made]  # each once
        # The server itself, asked the same, answers in one page.
        direct = api.get("/v1/blocks/", params={"tags": [tag], "limit": 1000, "order": "asc"})
        assert len(direct.json()) == 22
    finally:
        for b in made:
            api.delete(f"/v1/blocks/{b['id']}")


def test_projects_do_not_see_each_others_resources(
    cloud: CloudProxy, team_a: httpx.Client, team_b: httpx.Client, api: httpx.Client, stack: str
) -> None:
    tag = f"letta-apply:{stack}"
    block = team_a.post("/v1/blocks/", json={"label": "org", "value": "A's", "tags": [tag]})
    agent = team_a.post(
        "/v1/agents/",
        json={"name": f"{stack}-a", "model": "letta/letta-free", "embedding": "letta/letta-free",
              "memory_blocks": [{"label": "persona", "value": "A's own"}], "tags": [tag]},
    )  # fmt: skip
    hand = api.post("/v1/blocks/", json={"label": "hand", "value": "by hand", "tags": [tag]})
    try:
        assert block.status_code == agent.status_code == hand.status_code == 200
        bid, aid, hid = block.json()["id"], agent.json()["id"], hand.json()["id"]
        own = next(b["id"] for b in agent.json()["blocks"] if b["label"] == "persona")
        assert (cloud.owner[bid], cloud.owner[aid], cloud.owner[own]) == (TEAM_A.id,) * 3

        def listed(c: httpx.Client, path: str, project: str | None) -> set[str]:
            scope = {"project_id": project} if project else {}
            return {r["id"] for p in walk(c, path, {"tags": [tag], **scope}) for r in p}

        # Made behind letta-apply's back: the organization's default project, team A.
        assert listed(team_a, "/v1/blocks/", TEAM_A.id) == {bid, hid}
        assert listed(team_a, "/v1/agents/", TEAM_A.id) == {aid}
        assert listed(team_b, "/v1/blocks/", TEAM_B.id) == set()
        assert listed(team_b, "/v1/agents/", TEAM_B.id) == set()
        # Cloud filters these lists by project_id: without it, they span the organization.
        assert listed(team_b, "/v1/blocks/", None) == {bid, hid}
        for path in (f"/v1/blocks/{bid}", f"/v1/blocks/{own}", f"/v1/agents/{aid}",
                     f"/v1/agents/{aid}/core-memory/blocks/persona"):  # fmt: skip
            assert team_a.get(path).status_code == 200, path
            assert team_b.get(path).status_code == 404, path
        assert team_b.patch(f"/v1/blocks/{bid}", json={"value": "B's now"}).status_code == 404
        assert team_b.delete(f"/v1/agents/{aid}").status_code == 404
        theirs = team_b.post(
            "/v1/agents/",
            json={"name": f"{stack}-b", "model": "letta/letta-free",
                  "embedding": "letta/letta-free", "block_ids": [bid], "tags": [tag]},
        )  # fmt: skip
        assert theirs.status_code == 404, theirs.text  # A's block, named in B's body
        assert api.get(f"/v1/blocks/{bid}").json()["value"] == "A's"
        assert api.get(f"/v1/agents/{aid}").status_code == 200
    finally:
        made = [f"/v1/agents/{agent.json().get('id')}", f"/v1/blocks/{hand.json().get('id')}",
                f"/v1/blocks/{block.json().get('id')}"]  # fmt: skip
        made += [f"/v1/blocks/{b['id']}" for b in agent.json().get("blocks", ())]
        for path in made:
            api.delete(path)


def test_tools_belong_to_the_organization(team_a: httpx.Client, team_b: httpx.Client) -> None:
    def names(c: httpx.Client) -> list[str]:
        return [t["name"] for p in walk(c, "/v1/tools/", {}) for t in p]

    seen_by_a = names(team_a)
    assert "send_message" in seen_by_a
    assert names(team_b) == seen_by_a


def test_drops_the_routes_cloud_marks_deprecated(team_a: httpx.Client) -> None:
    for route, status in DEPRECATED.items():
        assert team_a.get(f"{route}/").status_code == status, route
        one = f"{route}/{route[4:-1]}-00000000-0000-4000-8000-000000000000"
        assert team_a.get(one).status_code == status, one
    assert team_a.get("/v1/folders/").status_code == 200  # what Cloud offers instead of sources


@pytest.mark.deprecated_routes
def test_serves_them_during_a_test_that_uses_them(team_a: httpx.Client) -> None:
    assert team_a.get("/v1/identities/").status_code == 200
    assert team_a.get("/v1/groups/").status_code == 200
