"""Projects on Letta Cloud, through the Cloud-like proxy (in either mode): the same stack applied
in two projects makes two sets of resources that never meet. Each project's plan sees its own,
an edit applied in one changes that one's, a destroy in one removes that one's. Tools belong to
the organization, not to a project: a tool the stack made in one project is refused to the same
stack in another, never taken over, and a destroy there leaves it alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .cloudproxy import API_KEY, PROJECTS, TEAM_A, TEAM_B, CloudProxy, Project
from .conftest import SEED, Result, Run, stack_resources

In = Callable[..., Result]
Team = Callable[..., In]  # (project, *, checked=True) -> a run in that project


@pytest.fixture
def team(run: Run, cloud: CloudProxy) -> Team:
    """Runs letta-apply against the Cloud-like proxy as a member of one project."""

    def _in(project: Project, *, checked: bool = True) -> In:
        def _run(*args: str) -> Result:
            r = run(*args, "--api-key", API_KEY, "--project", project.slug, base_url=cloud.url)
            # The proxy refuses a request that does not name the project as Cloud wants.
            assert not checked or "HTTP 400" not in r.err, r.err
            return r

        return _run

    return _in


@pytest.fixture
def teardown(team: Team) -> Iterator[list[str]]:
    """Manifests destroyed in both projects at the end, whatever happened."""
    paths: list[str] = []
    yield paths
    for path in paths:
        for project in (TEAM_A, TEAM_B):
            team(project, checked=False)("destroy", "-f", path, "--auto-approve")


def owners(cloud: CloudProxy, resources: list[dict[str, Any]]) -> Counter[str]:
    """How many of `resources` each project owns, by slug."""
    slugs = {p.id: p.slug for p in PROJECTS}
    return Counter(slugs[cloud.owner.get(r["id"], TEAM_A.id)] for r in resources)


def test_the_same_stack_in_two_projects_never_meets(
    team: Team,
    cloud: CloudProxy,
    manifest: Callable[[str], str],
    api: httpx.Client,
    stack: str,
    teardown: list[str],
) -> None:
    a, b = team(TEAM_A), team(TEAM_B)
    path = manifest(SEED)
    teardown.append(path)
    first = a("apply", "-f", path, "--auto-approve")
    assert first.code == 0, first.err
    assert first.writes == 3
    # Team B's apply of the same stack sees nothing of team A's: it makes its own.
    second = b("apply", "-f", path, "--auto-approve")
    assert second.code == 0, second.err
    assert "Plan: 3 to create, 0 to update" in second.out, second.out
    assert second.writes == 3
    for project in (a, b):
        again = project("plan", "-f", path, "--detailed-exitcode")
        assert again.code == 0, again.out
        assert "No changes. The server matches the manifest." in again.out
    blocks, agents = stack_resources(api, stack)
    shared = [x for x in blocks if x["label"] == "organization"]
    assert owners(cloud, agents) == {"team-a": 2, "team-b": 2}
    assert owners(cloud, shared) == {"team-a": 1, "team-b": 1}
    own = [x for agent in agents for x in agent["blocks"] if x["label"] == "persona"]
    assert owners(cloud, own) == {"team-a": 2, "team-b": 2}

    # An edit applied in team B changes team B's block only.
    edited = manifest(SEED.replace("within the organization.", "within team B."))
    r = b("apply", "-f", edited, "--auto-approve")
    assert r.code == 0, r.err
    assert r.writes == 1
    descriptions = {
        cloud.owner.get(x["id"]): api.get(f"/v1/blocks/{x['id']}").json()["description"]
        for x in shared
    }
    assert descriptions == {
        TEAM_A.id: "Shared information between all agents within the organization.",
        TEAM_B.id: "Shared information between all agents within team B.",
    }
    assert a("plan", "-f", path, "--detailed-exitcode").code == 0

    # A destroy in team B removes team B's stack; team A's is untouched and still converged.
    gone = b("destroy", "-f", edited, "--auto-approve")
    assert gone.code == 0, gone.err
    blocks, agents = stack_resources(api, stack)
    assert owners(cloud, agents) == {"team-a": 2}
    assert owners(cloud, [x for x in blocks if x["label"] == "organization"]) == {"team-a": 1}
    kept = a("plan", "-f", path, "--detailed-exitcode")
    assert kept.code == 0, kept.out
    assert "Plan: 3 to create" in b("plan", "-f", path).out


TOOL = '''def {fn}(ticket_id: str) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id, e.g. T-1234.

    Returns:
        str: the ticket's subject and status
    """
    return f"{{ticket_id}}: open"
'''

WITH_TOOL = """\
version: 1
stack: {stack}
tools:
  lookup:
    source_file: tools/lookup.py
agents:
  helper:
    name: {stack}-helper
    model: letta/letta-free
    embedding: letta/letta-free
    tools: [lookup]
"""


def test_a_tool_of_one_project_is_never_taken_by_the_same_stack_in_another(
    team: Team,
    manifest: Callable[[str], str],
    api: httpx.Client,
    stack: str,
    tmp_path: Path,
    teardown: list[str],
) -> None:
    fn = "lookup_" + stack.replace("-", "_")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "lookup.py").write_text(TOOL.format(fn=fn), encoding="utf-8")
    path = manifest(WITH_TOOL)
    teardown.append(path)
    try:
        a, b = team(TEAM_A), team(TEAM_B)
        made = a("apply", "-f", path, "--auto-approve")
        assert made.code == 0, made.err
        [tool] = api.get("/v1/tools/", params={"names": [fn]}).json()
        # Tool names are the organization's: team B's stack finds team A's tool under the
        # name it declares, and is refused it rather than taking it over.
        refused = b("apply", "-f", path, "--auto-approve")
        assert refused.code == 1, refused.out
        assert f"a tool named '{fn}' already exists" in refused.out + refused.err
        assert refused.writes == 0
        # Nor does a destroy in team B remove it: team A's stack is still whole.
        assert b("destroy", "-f", path, "--auto-approve").code == 0
        assert api.get(f"/v1/tools/{tool['id']}").status_code == 200
        kept = a("plan", "-f", path, "--detailed-exitcode")
        assert kept.code == 0, kept.out
    finally:
        for t in api.get("/v1/tools/", params={"names": [fn]}).json():
            api.delete(f"/v1/tools/{t['id']}")
