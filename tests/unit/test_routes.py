"""server.routes: a route sends through the client exactly what a raw path would have sent
(method, path, query, body, upload), so moving a request onto it changes nothing on the wire."""

from __future__ import annotations

import json

import httpx

from letta_apply.server.client import LettaClient
from letta_apply.server.routes import AGENTS, BLOCKS, Route


def _client(seen: list[tuple[str, str, str, bytes]]) -> LettaClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.url.query.decode(), request.content))
        if request.method == "GET" and request.url.params.get("after"):
            return httpx.Response(200, json=[])  # the listing's last page
        body = [{"id": "x-1"}] if request.url.path.endswith("/") else {"id": "x-1"}
        return httpx.Response(200, json=body)

    return LettaClient("http://127.0.0.1:9", transport=httpx.MockTransport(answer))


def test_a_route_below_another_joins_its_parts_without_doubling_the_slash() -> None:
    assert Route("/v1/folders/").at("f-1", "files").path == "/v1/folders/f-1/files"
    assert AGENTS.at("a-1", "core-memory/blocks", "attach", "b-1").path == (
        "/v1/agents/a-1/core-memory/blocks/attach/b-1"
    )
    assert BLOCKS.at("").path == "/v1/blocks/"  # as f"/v1/blocks/{''}" was


def test_each_verb_sends_what_the_raw_request_sent() -> None:
    by_route: list[tuple[str, str, str, bytes]] = []
    raw: list[tuple[str, str, str, bytes]] = []
    folders = Route("/v1/folders/")
    with _client(by_route) as c:
        list(folders.list(c, {"name": "n"}))
        folders.at("f-1").get(c, {"limit": 1})
        folders.post(c, {"name": "n"})
        folders.at("f-1", "upload").post(
            c, params={"name": "a.txt"}, files={"file": ("a.txt", b"hi", "text/plain")}
        )
        Route("/v1/passages/").at("search").post(c, {"limit": 1}, read=True)
        folders.at("f-1").patch(c, {"metadata": {}})
        AGENTS.at("a-1", "folders", "attach", "f-1").patch(c)
        folders.at("f-1").delete(c)
        reads, writes = c.reads, c.writes
    with _client(raw) as c:
        list(c.paginate("/v1/folders/", {"name": "n"}))
        c.request("GET", "/v1/folders/f-1", params={"limit": 1})
        c.request("POST", "/v1/folders/", json={"name": "n"})
        c.request(
            "POST", "/v1/folders/f-1/upload", params={"name": "a.txt"},
            files={"file": ("a.txt", b"hi", "text/plain")},
        )  # fmt: skip
        c.request("POST", "/v1/passages/search", json={"limit": 1}, read=True)
        c.request("PATCH", "/v1/folders/f-1", json={"metadata": {}})
        c.request("PATCH", "/v1/agents/a-1/folders/attach/f-1")
        c.request("DELETE", "/v1/folders/f-1")
        assert (c.reads, c.writes) == (reads, writes) == (4, 5)
    # Multipart boundaries are random: compare the uploads by what they carry.
    upload = 4  # after the listing's two pages, the read and the create
    assert [r for i, r in enumerate(by_route) if i != upload] == [
        r for i, r in enumerate(raw) if i != upload
    ]
    assert by_route[upload][:3] == raw[upload][:3]
    assert b"hi" in by_route[upload][3] and b'filename="a.txt"' in by_route[upload][3]
    assert json.loads(by_route[3][3]) == {"name": "n"}
