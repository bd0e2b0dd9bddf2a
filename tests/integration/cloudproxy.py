"""Proxies on 127.0.0.1 in front of the real Letta server, for the integration tests:

- `TapProxy` records every request and passes bytes through untouched, both ways, over one
  server connection per client connection (keep-alive, timeouts and dropped connections are the
  server's own): the direct runs go through it so that the contract test sees every request,
  those of subprocesses included.
- `CloudProxy` behaves like Letta Cloud where Cloud differs from a self-hosted server:
    * a request without `Authorization: Bearer <key>` is refused (401);
    * a method and path that Cloud's API description lacks answers 404;
    * it serves `GET /v1/projects` itself, with the fixed `PROJECTS` (`name` filters by name);
    * every other request but `/v1/health/` needs `X-Project-Id` naming one of them and
      `X-Project` giving its slug (400 otherwise);
    * resources belong to a project: what a request creates (agents, their own blocks, blocks,
      identities, groups) belongs to its project; what the proxy did not see created (made behind
      letta-apply's back by a test) belongs to the first project, the organization's default.
      A path or a body naming an agent, block, identity or group of another project answers
      404, and lists leave them out: by `project_id` on the routes that declare it (as Cloud
      filters them: without it, they list every project's), by the request's project on the
      others.
      Tools belong to the organization (Cloud's tool routes take no project): never filtered;
    * list pages hold at most 7 items, 5 on every third page of a walk, whatever `limit` asks;
    * given `removed` (route -> 404 or 410), it answers those routes and every route under
      them as a Cloud that dropped them would: the suite's proxy drops the routes Cloud marks
      deprecated (`DEPRECATED`: groups, identities, sources), except during the tests marked
      `deprecated_routes` (see conftest.py), so that every other test proves letta-apply does
      not need them.
  It records what it receives too, as sent (the API key is never kept).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from tests.contract.openapi import CLOUD_SPEC, Api, Match, Sent


@dataclass(frozen=True)
class Project:
    id: str
    slug: str
    name: str

    def listed(self) -> dict[str, str]:
        return {"id": self.id, "slug": self.slug, "name": self.name}


TEAM_A = Project("proj-0a1b2c3d-0000-4000-8000-00000000000a", "team-a", "Team A")
TEAM_B = Project("proj-0a1b2c3d-0000-4000-8000-00000000000b", "team-b", "Team B")
# The organization's projects, the first its default; more than a page of them, team B on the
# second page, so that finding it takes reading the listing to its end.
PROJECTS = (
    TEAM_A,
    *(Project(f"proj-0a1b2c3d-0000-4000-8000-0000000001{i:02}", f"p-{i}", f"P {i}")
      for i in range(8)),
    TEAM_B,
)  # fmt: skip
PROJECT_PAGE = 7  # projects a page of the listing holds
API_KEY = "sk-letta-cloud-test-5b1d"  # what the proxy accepts; kept out of recordings and logs
# Routes Cloud's API description marks deprecated (and the official SDK dropped groups and
# identities), answered as a Cloud that removed them would, both ways it might.
DEPRECATED = {"/v1/groups": 404, "/v1/identities": 410, "/v1/sources": 410}

# Ids of project-scoped resources start like this; anything else (tools) is organization-wide.
_SCOPED = ("agent-", "block-", "identity-", "group-")
# Creates whose answer names what they made (and an agent's answer its own blocks).
_CREATES = {("POST", "/v1/agents/"), ("POST", "/v1/blocks/"), ("POST", "/v1/identities/"),
            ("PUT", "/v1/identities/"), ("POST", "/v1/groups/")}  # fmt: skip
_UNFORWARDED = {"host", "connection", "keep-alive", "content-length", "transfer-encoding",
                "authorization", "x-project", "x-project-id", "accept-encoding"}  # fmt: skip
_BATCH = 50  # items per upstream page while filling a capped page


def every_third_short(page: int) -> int:
    """Cloud-like page caps: 7 items, 5 on every third page of a walk."""
    return 5 if page % 3 == 0 else 7


class Recorder:
    """What was sent, in order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[Sent] = []

    def add(self, sent: Sent) -> None:
        with self._lock:
            self._sent.append(sent)

    @property
    def sent(self) -> list[Sent]:
        with self._lock:
            return list(self._sent)


# -- HTTP/1.1 framing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes  # exactly as read (the tap forwards these bytes)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def sent(self, *, cloud: bool) -> Sent:
        return Sent(
            self.method, self.target, self.body, self.header("content-type") or "", cloud,
            self.header("user-agent") or "",
        )  # fmt: skip


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection, None at a clean end of it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in lines[1:] if h)]
    raw, body = head, b""
    fields = {k.lower(): v for k, v in headers}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            raw += size_line + chunk
            body += chunk[:-2]
            if size == 0:
                raw += await _trailer(reader)
                break
    elif int(fields.get("content-length", "0")):
        body = await reader.readexactly(int(fields["content-length"]))
        raw += body
    return Request(method, target, headers, body, raw)


async def _trailer(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while True:
        line = await reader.readuntil(b"\r\n")
        data += line
        if line == b"\r\n":
            return data


def response(
    status: int, body: bytes, headers: list[tuple[str, str]] | None = None, *, close: bool = False
) -> bytes:
    reason = httpx.codes.get_reason_phrase(status) or "Unknown"
    kept = [
        (k, v) for k, v in headers or () if k.lower() not in _UNFORWARDED | {"content-encoding"}
    ]
    kept += [("content-length", str(len(body))), ("connection", "close" if close else "keep-alive")]
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept)
    return head.encode("latin-1") + b"\r\n" + body


def detail(status: int, text: str, *, close: bool = False) -> bytes:
    body = json.dumps({"detail": text}).encode()
    return response(status, body, [("content-type", "application/json")], close=close)


# -- the event loop both proxies run in ----------------------------------------------------


P = TypeVar("P", bound="_Proxy")


class _Proxy:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self: P) -> P:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _closed(self) -> None:
        """Release what the proxy holds, in its loop."""

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


_GONE = (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError)


class TapProxy(_Proxy):
    """Records each request and forwards the bytes, unchanged, to `upstream_port`."""

    def __init__(self, upstream_port: int, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.upstream = ("127.0.0.1", upstream_port)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            await self._server_down(reader, writer)
            return
        answers = asyncio.ensure_future(self._pipe(up_reader, writer))
        try:
            while (request := await read_request(reader)) is not None:
                self.recorder.add(request.sent(cloud=False))
                up_writer.write(request.raw)
                await up_writer.drain()
        except (*_GONE, asyncio.CancelledError):
            pass
        finally:
            up_writer.close()
            answers.cancel()
            await asyncio.gather(answers, return_exceptions=True)
            writer.close()

    async def _pipe(self, up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The server's bytes to the client; the client's connection ends with the server's."""
        try:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
        except _GONE:
            pass
        finally:
            writer.close()

    async def _server_down(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The server is not listening (restarting): a gateway's answer."""
        try:
            request = await read_request(reader)
            if request is not None:
                self.recorder.add(request.sent(cloud=False))
                writer.write(detail(502, "the Letta server is not answering", close=True))
                await writer.drain()
        except _GONE:
            pass
        finally:
            writer.close()


class CloudProxy(_Proxy):
    """Letta Cloud's behaviour in front of a self-hosted server at `upstream` (see the module's
    docstring). `page_cap(n)` is the most items page n of a list walk holds."""

    def __init__(
        self,
        upstream: str,
        recorder: Recorder,
        *,
        api: Api | None = None,
        api_key: str = API_KEY,
        projects: tuple[Project, ...] = PROJECTS,
        page_cap: Callable[[int], int] = every_third_short,
        removed: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(recorder)
        self.upstream = upstream
        self.api = api or Api.load(CLOUD_SPEC)
        self.api_key = api_key
        self.projects = {p.id: p for p in projects}
        self.default_project = projects[0].id
        self.page_cap = page_cap
        self.removed = dict(removed or {})  # route -> its status: see the module's docstring
        self.owner: dict[str, str] = {}  # resource id -> project id
        self.pages: dict[tuple[Any, ...], int] = {}  # list walk -> pages served
        self.refused: list[tuple[int, str]] = []  # (status, what), for the tests to show
        self._http: httpx.AsyncClient | None = None

    async def _listen(self) -> None:
        self._http = httpx.AsyncClient(base_url=self.upstream, timeout=120)
        await super()._listen()

    async def _closed(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    # Idle connections are closed as a server would (uvicorn: after 5 s).
                    request = await asyncio.wait_for(read_request(reader), timeout=5)
                except asyncio.TimeoutError:
                    break
                if request is None:
                    break
                close = (request.header("connection") or "").lower() == "close"
                try:
                    answer = await self._answer(request, close)
                except httpx.TransportError:
                    writer.transport.abort()  # the server dropped it: so does the "gateway"
                    return
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (*_GONE, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    # -- deciding --------------------------------------------------------------------------

    def _refuse(self, status: int, text: str, close: bool) -> bytes:
        self.refused.append((status, text))
        return detail(status, text, close=close)

    async def _answer(self, request: Request, close: bool) -> bytes:
        self.recorder.add(request.sent(cloud=True))
        method, path = request.method, request.path
        if request.header("authorization") != f"Bearer {self.api_key}":
            return self._refuse(401, "Unauthorized: a valid API key is required", close)
        for route, status in self.removed.items():
            if path.rstrip("/") == route or path.startswith(route + "/"):
                what = "Gone: no longer offered" if status == 410 else "Not Found"
                return self._refuse(status, f"{what}: {method} {path}", close)
        found = self.api.match(method, path)
        if found is None:
            return self._refuse(404, f"Not Found: {method} {path}", close)
        if found.operation.template == "/v1/projects":
            if method != "GET":
                return self._refuse(403, "projects are fixed in this test organization", close)
            return self._projects(request, close)
        if found.operation.template == "/v1/health/":
            return await self._forward(request, found, close)
        project_id = request.header("x-project-id")
        project = self.projects.get(project_id or "")
        if project is None:
            return self._refuse(
                400, f"X-Project-Id {project_id!r} names no project of this organization", close
            )
        if request.header("x-project") != project.slug:
            return self._refuse(
                400,
                f"X-Project {request.header('x-project')!r} is not the slug of project "
                f"{project.id} ({project.slug!r})",
                close,
            )
        named = [v for k, v in found.params.items() if k.endswith("_id")]
        for rid in [*named, *_referenced(request)]:
            if not self._visible(rid, project.id):
                return self._refuse(404, f"{rid} not found in project {project.slug}", close)
        if method == "GET" and "after" in found.operation.query:
            return await self._page(request, found, project.id, close)
        return await self._forward(request, found, close, project.id)

    def _visible(self, rid: str, project_id: str | None) -> bool:
        """Whether a project sees a resource (None: every project does)."""
        if project_id is None or not rid.startswith(_SCOPED):
            return True
        return self.owner.get(rid, self.default_project) == project_id

    def _projects(self, request: Request, close: bool) -> bytes:
        query = dict(httpx.URL(request.target).params)
        # Filtered by name only (the slug and the id are not names): a client given one of
        # those finds its project in the whole list.
        wanted = (query.get("name") or "").lower()
        found = [p.listed() for p in self.projects.values() if wanted in ("", p.name.lower())]
        offset = int(query.get("offset") or 0)
        page = found[offset : offset + PROJECT_PAGE]
        body = {"projects": page, "hasNextPage": offset + len(page) < len(found)}
        return response(200, json.dumps(body).encode(), [("content-type", "application/json")],
                        close=close)  # fmt: skip

    # -- talking to the server -------------------------------------------------------------

    def _upstream_headers(self, request: Request) -> dict[str, str]:
        return {k: v for k, v in request.headers if k.lower() not in _UNFORWARDED}

    async def _forward(
        self, request: Request, found: Match, close: bool, project_id: str | None = None
    ) -> bytes:
        assert self._http is not None
        # The server knows no projects: filtered by one, its lists would be empty.
        query = httpx.URL(request.target).params.remove("project_id")
        resp = await self._http.request(
            request.method, request.path, params=query, content=request.body,
            headers=self._upstream_headers(request),
        )  # fmt: skip
        created = (request.method, found.operation.template) in _CREATES
        if resp.is_success and project_id and created:
            for rid in _made(resp.json()):
                self.owner.setdefault(rid, project_id)
        return response(resp.status_code, resp.content, list(resp.headers.items()), close=close)

    async def _page(self, request: Request, found: Match, project_id: str, close: bool) -> bytes:
        """One capped page of a list, the items other projects own left out; it goes on from
        `after` as the server does, so a client that asks until a page comes back empty gets
        every item once."""
        assert self._http is not None
        given = httpx.URL(request.target).params
        if "project_id" in found.operation.query:
            # Cloud filters such lists by the parameter; without it they span the organization.
            scope: str | None = given.get("project_id")
        else:
            scope = project_id
        query = [(k, v) for k, v in given.multi_items()
                 if k not in ("limit", "after", "project_id")]  # fmt: skip
        cursor = given.get("after")
        walk = (request.path, tuple(sorted(query)))
        number = self.pages.get(walk, 0) + 1 if cursor else 1
        self.pages[walk] = number
        cap = self.page_cap(number)
        kept: list[Any] = []
        while len(kept) < cap:
            asked = [*query, ("limit", str(_BATCH))] + ([("after", cursor)] if cursor else [])
            resp = await self._http.get(
                request.path, params=asked, headers=self._upstream_headers(request)
            )
            items = resp.json() if resp.is_success else None
            if not isinstance(items, list):
                return response(resp.status_code, resp.content, list(resp.headers.items()),
                                close=close)  # fmt: skip
            for item in items:
                rid = item.get("id", "") if isinstance(item, dict) else ""
                if self._visible(rid, scope) and len(kept) < cap:
                    kept.append(item)
            last = items[-1].get("id") if items and isinstance(items[-1], dict) else None
            if len(items) < _BATCH or not last:
                break
            cursor = last
        return response(200, json.dumps(kept).encode(), [("content-type", "application/json")],
                        close=close)  # fmt: skip


def _referenced(request: Request) -> list[str]:
    """Ids a JSON body names in its top-level `..._id` and `..._ids` fields."""
    try:
        body = json.loads(request.body) if request.body else None
    except ValueError:
        return []
    if not isinstance(body, Mapping):
        return []
    ids: list[str] = []
    for key, value in body.items():
        if key.endswith("_id") and isinstance(value, str):
            ids.append(value)
        elif key.endswith("_ids") and isinstance(value, list):
            ids += [v for v in value if isinstance(v, str)]
    return ids


def _made(created: Any) -> list[str]:
    """Ids a create's answer names: the resource, and an agent's blocks."""
    if not isinstance(created, Mapping):
        return []
    ids = [created.get("id")]
    for blocks in (created.get("blocks"), (created.get("memory") or {}).get("blocks")):
        ids += [b.get("id") for b in blocks or () if isinstance(b, Mapping)]
    return [i for i in ids if isinstance(i, str) and i.startswith(_SCOPED)]
