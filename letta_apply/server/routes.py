"""Letta's routes, each named once: the one way letta-apply addresses the server.

A `Route` is a path and the requests that can be sent to it; `route.at(id, "refresh")` is the
route below it. A kind declares its collection once, in its folder (`ROUTE = Route("/v1/...")`);
the collections the client itself serves (blocks, agents, tools) are declared here. Everything
else (retries, errors, Cloud project scoping, request counts) stays in `LettaClient.request`:
a route only says where a request goes, so what is sent is what a raw path would have sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.jsonish import JsonObject

if TYPE_CHECKING:  # the client imports the routes it serves
    from .client import Finder, LettaClient, Params


@dataclass(frozen=True)
class Route:
    """One route of Letta's API, e.g. `Route("/v1/blocks/")`, and what may be sent to it."""

    path: str

    def at(self, *parts: str) -> Route:
        """The route below this one: `Route("/v1/blocks/").at(bid, "agents")` is
        `/v1/blocks/{bid}/agents` (a collection's trailing slash is not doubled)."""
        return Route(self.path.removesuffix("/") + "/" + "/".join(parts))

    def get(self, client: LettaClient, params: Params | None = None) -> object:
        return client.request("GET", self.path, params=params)

    def list(self, client: LettaClient, params: Params | None = None) -> Iterator[JsonObject]:
        """Every item of a list route, page by page as it is read (see `LettaClient.paginate`):
        stopping early sends no more requests."""
        return client.paginate(self.path, params or {})

    def post(
        self,
        client: LettaClient,
        body: object = None,
        *,
        params: Params | None = None,
        find: Finder | None = None,
        read: bool = False,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> object:
        """A create (`find` recovers it after an ambiguous failure), an upload (`files`), or a
        search that changes nothing (`read`): see `LettaClient.request`."""
        return client.request(
            "POST", self.path, params=params, json=body, files=files, data=data, find=find,
            read=read,
        )  # fmt: skip

    def patch(self, client: LettaClient, body: object = None) -> object:
        return client.request("PATCH", self.path, json=body)

    def delete(self, client: LettaClient) -> object:
        return client.request("DELETE", self.path)


BLOCKS = Route("/v1/blocks/")
AGENTS = Route("/v1/agents/")
TOOLS = Route("/v1/tools/")
HEALTH = Route("/v1/health/")
PROJECTS = Route("/v1/projects")
