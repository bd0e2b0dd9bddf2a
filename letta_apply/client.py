"""The one small HTTP client letta-apply talks to Letta through.

The transport is injectable (`httpx.MockTransport` in unit tests); every request is counted so
tests and users can see what a command cost. The API key travels only in the Authorization
header and is never part of a message.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from .errors import ApiError, ServerUnreachable

DEFAULT_BASE_URL = "http://localhost:8283"
PAGE_SIZE = 100
DEFAULT_MAX_CONNECTIONS = 32
# Below the server's keep-alive timeout (uvicorn: 5 s), so that a pooled connection is never
# reused at the moment the server closes it: that would fail a write the server never saw.
_KEEPALIVE_EXPIRY = 3.0
_RETRY_STATUS = {429, 502, 503, 504}
_RETRIES = 3


class LettaClient:
    """Blocking client for the parts of Letta's `/v1` API that letta-apply uses."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        project: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        """`max_connections` bounds concurrent requests: give it apply's parallelism, or
        requests beyond the pool wait for a free connection."""
        headers = {"User-Agent": "letta-apply", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if project:
            headers["X-Project"] = project
        self.base_url = base_url.rstrip("/")
        self.max_connections = max(1, max_connections)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
                keepalive_expiry=_KEEPALIVE_EXPIRY,
            ),
        )
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    # -- plumbing --------------------------------------------------------------------------

    @property
    def reads(self) -> int:
        return self.counts["GET"]

    @property
    def writes(self) -> int:
        return sum(n for m, n in self.counts.items() if m != "GET")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LettaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one request and return its decoded JSON body. Reads are retried on transient
        failures; a write is sent once, since the server may have acted on it."""
        attempts = _RETRIES if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            with self._lock:
                self.counts[method] += 1
            try:
                resp = self._http.request(method, path, params=params, json=json)
            except httpx.TimeoutException:
                if attempt < attempts:
                    time.sleep(0.5 * attempt)
                    continue
                raise ServerUnreachable(
                    f"no answer from the Letta server at {self.base_url} (timed out)",
                    method=method,
                    path=path,
                ) from None
            except httpx.TransportError as e:
                if attempt < attempts:
                    time.sleep(0.5 * attempt)
                    continue
                reason = str(e) or type(e).__name__
                raise ServerUnreachable(
                    f"cannot reach the Letta server at {self.base_url} ({reason})",
                    method=method,
                    path=path,
                ) from None
            if resp.status_code in _RETRY_STATUS and attempt < attempts:
                time.sleep(_retry_after(resp, attempt))
                continue
            return _decode(resp, method, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def paginate(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield every item of a list route, PAGE_SIZE items per request, oldest first.

        Each request asks for one item more than it keeps: that item says whether another page
        follows, so a list of exactly k pages costs k requests, not k + 1 (the last one empty).
        """
        after: str | None = None
        while True:
            page_params = {**params, "limit": PAGE_SIZE + 1, "order": "asc"}
            if after:
                page_params["after"] = after
            page = self.request("GET", path, params=page_params)
            if not isinstance(page, list):
                raise ApiError("expected a list", method="GET", path=path)
            yield from page[:PAGE_SIZE]
            if len(page) <= PAGE_SIZE:
                return
            after = page[PAGE_SIZE - 1]["id"]

    # -- reads -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/v1/health/")  # type: ignore[no-any-return]

    def list_blocks(self, tag: str) -> list[dict[str, Any]]:
        return list(self.paginate("/v1/blocks/", {"tags": [tag]}))

    def list_block_ids(
        self,
        tag: str | None,
        *,
        attached_more_than: int | None = None,
        attached_fewer_than: int | None = None,
    ) -> set[str]:
        """Ids of the blocks (carrying `tag`, or all) whose number of attached agents is in
        range."""
        params: dict[str, Any] = {"tags": [tag]} if tag else {}
        if attached_more_than is not None:
            params["connected_to_agents_count_gt"] = attached_more_than
        if attached_fewer_than is not None:
            params["connected_to_agents_count_lt"] = attached_fewer_than
        return {b["id"] for b in self.paginate("/v1/blocks/", params)}

    def list_agents(
        self, *, tag: str | None = None, name: str | None = None, include: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"include": list(include)}
        if tag:
            params["tags"] = [tag]
        if name:
            params["name"] = name
        return list(self.paginate("/v1/agents/", params))

    def list_tools(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        """Tools with these names, or every tool (base tools included) when `names` is None."""
        return list(self.paginate("/v1/tools/", {} if names is None else {"names": names}))

    def agent_block(self, agent_id: str, label: str) -> dict[str, Any]:
        """A block as one agent sees it, by label (the core-memory route)."""
        return self.request(  # type: ignore[no-any-return]
            "GET", f"/v1/agents/{agent_id}/core-memory/blocks/{label}"
        )

    def get_agent(self, agent_id: str, include: tuple[str, ...]) -> dict[str, Any]:
        return self.request(  # type: ignore[no-any-return]
            "GET", f"/v1/agents/{agent_id}", params={"include": list(include)}
        )

    def get_block(self, block_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/blocks/{block_id}")  # type: ignore[no-any-return]

    def block_agents(self, block_id: str) -> list[dict[str, Any]]:
        """The agents a block is attached to (names, tags and marks)."""
        return list(self.paginate(f"/v1/blocks/{block_id}/agents", {"include": ["agent.tags"]}))

    # -- writes ----------------------------------------------------------------------------

    def create_block(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/v1/blocks/", json=body)  # type: ignore[no-any-return]

    def update_block(self, block_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/blocks/{block_id}", json=body)  # type: ignore[no-any-return]

    def create_agent(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/v1/agents/", json=body)  # type: ignore[no-any-return]

    def update_agent(self, agent_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/agents/{agent_id}", json=body)  # type: ignore[no-any-return]

    def create_tool(self, body: Mapping[str, Any]) -> dict[str, Any]:
        # Letta upserts by name here: a tool with the same name is overwritten, not refused.
        return self.request("POST", "/v1/tools/", json=body)  # type: ignore[no-any-return]

    def update_tool(self, tool_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/tools/{tool_id}", json=body)  # type: ignore[no-any-return]

    def delete_tool(self, tool_id: str) -> None:
        self.request("DELETE", f"/v1/tools/{tool_id}")

    def tool_schema(self, source_code: str) -> dict[str, Any]:
        """The JSON schema the server derives from a tool's source (changes nothing)."""
        return self.request(  # type: ignore[no-any-return]
            "POST", "/v1/tools/generate-schema", json={"code": source_code}
        )

    def attach_block(self, agent_id: str, block_id: str) -> None:
        self.request("PATCH", f"/v1/agents/{agent_id}/core-memory/blocks/attach/{block_id}")

    def detach_block(self, agent_id: str, block_id: str) -> None:
        self.request("PATCH", f"/v1/agents/{agent_id}/core-memory/blocks/detach/{block_id}")

    def delete_agent(self, agent_id: str) -> None:
        self.request("DELETE", f"/v1/agents/{agent_id}")

    def delete_block(self, block_id: str) -> None:
        self.request("DELETE", f"/v1/blocks/{block_id}")

    def write_memory(self, agent_id: str, label: str, value: str) -> dict[str, Any]:
        """Write a block's value as an agent would, through the core-memory route."""
        return self.request(  # type: ignore[no-any-return]
            "PATCH", f"/v1/agents/{agent_id}/core-memory/blocks/{label}", json={"value": value}
        )


def _retry_after(resp: httpx.Response, attempt: int) -> float:
    try:
        return min(float(resp.headers.get("Retry-After", "")), 10.0)
    except ValueError:
        return 0.5 * attempt


def _decode(resp: httpx.Response, method: str, path: str) -> Any:
    if resp.is_success:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise ApiError(
                "the server answered with something that is not JSON",
                status=resp.status_code,
                method=method,
                path=path,
            ) from None
    detail: Any
    try:
        detail = resp.json().get("detail", resp.text)
    except (ValueError, AttributeError):
        detail = resp.text
    text = str(detail).strip().replace("\n", " ") or resp.reason_phrase
    if len(text) > 300:
        text = text[:297] + "..."
    if resp.status_code in (401, 403):
        text += " (check --api-key / LETTA_API_KEY)"
    raise ApiError(text, status=resp.status_code, method=method, path=path)
