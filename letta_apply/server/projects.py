"""Letta Cloud projects: the one a client is given is looked up once, by id, slug or name, and
then scopes every request (see LettaClient: its headers, and its `project_id` on the listings
that take one)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..core.jsonish import items
from ..errors import ApiError, ServerStateError

PROJECT_LISTS = frozenset({"/v1/agents/", "/v1/blocks/", "/v1/identities/", "/v1/groups/"})
"""List routes that take a `project_id` (Letta Cloud): each lists one project's resources."""

Page = Callable[[dict[str, str | int]], object]
"""Sends GET /v1/projects with these query parameters and returns the answer's JSON."""


@dataclass(frozen=True)
class Project:
    """A Letta Cloud project: its id, and its slug (what the X-Project header takes)."""

    id: str
    slug: str


def look_up(given: str, server: str, page: Page) -> Project:
    """The project `given` names among those `server` lists (`page` asks for one page of its
    listing). A server without projects (the self-hosted server) cannot scope anything: that
    is an error, never ignored."""
    try:
        found = _listing(page, {"name": given})
        if not any(_matches(p, given) for p in found):
            found = _listing(page, {})  # by id or slug: the name filter knows neither
    except ApiError as e:
        if e.status == 404:
            raise ServerStateError(
                f"project {given!r}: {server} has no projects (GET /v1/projects: "
                "404); projects are Letta Cloud's: leave out --project (LETTA_PROJECT)",
                code="LA512",
            ) from None
        raise
    matching = [p for p in found if _matches(p, given)]
    if len(matching) != 1:
        known = ", ".join(sorted(str(p.get("slug")) for p in found)) or "none"
        what = "no project" if not matching else "more than one project"
        raise ServerStateError(
            f"project {given!r}: {what} with that id, slug or name (projects: {known})",
            code="LA511",
        )
    return Project(str(matching[0]["id"]), str(matching[0]["slug"]))


def _listing(page: Page, params: dict[str, str | int]) -> list[Mapping[str, object]]:
    """Every project the listing holds, page by page (Cloud pages it with `offset` and says
    `hasNextPage`)."""
    out: list[Mapping[str, object]] = []
    for _ in range(1000):  # a server that never says the end is not followed forever
        answer = page({**params, "offset": len(out)})
        got = _projects(answer)
        out += got
        if not got or not (isinstance(answer, Mapping) and answer.get("hasNextPage")):
            break
    return out


def _projects(found: object) -> list[Mapping[str, object]]:
    listed = found.get("projects") if isinstance(found, Mapping) else found
    return [p for p in items(listed) if isinstance(p, Mapping) and "id" in p and "slug" in p]


def _matches(project: Mapping[str, object], given: str) -> bool:
    return given in (project.get("id"), project.get("slug"), project.get("name"))
