"""The one small HTTP client letta-apply talks to Letta through.

The transport is injectable (`httpx.MockTransport` in unit tests); every request is counted so
tests and users can see what a command cost. The API key travels only in the Authorization
header and is never part of a message.

Transient failures (no connection, timeouts, 429, 502, 503, 504, 409 with Retry-After) are
retried with exponential backoff and jitter, honouring Retry-After, bounded in count and in time
(RetryPolicy). A create is never blindly re-sent: see `LettaClient.request`.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx

from ..errors import ApiError, ServerStateError, ServerUnreachable, UsageError

DEFAULT_BASE_URL = "http://localhost:8283"
PAGE_SIZE = 500
PROJECT_LISTS = frozenset({"/v1/agents/", "/v1/blocks/", "/v1/identities/", "/v1/groups/"})
"""List routes that take a `project_id` (Letta Cloud): each lists one project's resources."""
DEFAULT_MAX_CONNECTIONS = 32
# Below the server's keep-alive timeout (uvicorn: 5 s), so that a pooled connection is never
# reused at the moment the server closes it: that would fail a write the server never saw.
_KEEPALIVE_EXPIRY = 3.0
_RETRY_STATUS = {429, 502, 503, 504}

# Fields of an agent create that change the configuration Letta builds from its model and
# embedding handles: a create with any of them has its handles resolved by the server.
_SHAPING = frozenset({
    "llm_config", "embedding_config", "context_window_limit", "max_tokens",
    "max_reasoning_tokens", "enable_reasoner", "reasoning", "model_settings",
    "parallel_tool_calls", "embedding_chunk_size", "enable_sleeptime",
})  # fmt: skip

Finder = Callable[[], "dict[str, Any] | None"]
"""Looks up, by its marks, what a create may have made; None when nothing is there."""


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: at most `max_retries` re-sends of one request, and
    none that would start more than `max_time` seconds after its first attempt. Waits grow
    exponentially from `base_delay` up to `max_delay`, with jitter so that parallel workers do
    not retry in lockstep; a Retry-After header replaces the computed wait."""

    max_retries: int = 6
    max_time: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 20.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Wait before re-send number `retry` (1-based): half fixed, half random ("equal
        jitter"), so waits still grow while spreading out."""
        cap: float = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return cap / 2 + rng.uniform(0, cap / 2)


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
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        redact: Callable[[str], str] = lambda text: text,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        """`max_connections` bounds concurrent requests: give it apply's parallelism, or
        requests beyond the pool wait for a free connection. `on_retry` is told, in a line,
        what is about to be sent again and when, or what the server is still processing (a run
        must not sit silent while it waits)."""
        if not base_url.startswith(("http://", "https://")):
            # A configuration mistake, not a network failure: said at once, never retried.
            shown = public_url(base_url)
            raise UsageError(
                f"the server URL {shown!r} has no scheme: write it as http://{shown} (or https://)",
                code="LA907",
            )
        headers = {"User-Agent": "letta-apply", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # Credentials in the URL (http://user:password@host) are secrets: they travel only in
        # the requests (httpx sends them as Basic auth); what is shown, saved in a plan and
        # compared with a saved plan's server is the URL without them.
        self.base_url = public_url(base_url).rstrip("/")
        self.url_secrets = url_secrets(base_url)
        self.timeout = timeout
        # Set when the run's lease on the stack lock could not be renewed (server.lock): no
        # request is sent any more, for another run may take the lock over.
        self.halted: str | None = None
        self.max_connections = max(1, max_connections)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
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
        self.retry = retry or RetryPolicy()
        self.retries = 0  # re-sends after transient failures
        # Whether the server ever answered: retries are for a server that was there. One that
        # cannot be reached on first contact is reported at once, not after half a minute.
        self.answered = False
        self.adopted = 0  # creates found on the server after an ambiguous failure
        self.sleep = sleep  # how the client waits (before a retry), and tells time: injectable
        self.clock = clock
        self._rng = random.Random(seed)
        # Masks secrets in the server's error messages before they are cut short: a secret cut
        # in half could no longer be recognised, and its first half would be printed.
        self.redact = redact
        self.on_retry = on_retry
        # How long apply waits for the server to process what it was sent (uploaded files).
        self.wait_timeout = 600.0
        self.project = project or None  # as given: an id, a slug or a name
        self.api_key = api_key or ""  # also keys saved plans' seals (see plan.fingerprint)
        self._scope: Project | None = None
        self._scope_lock = threading.Lock()  # looked up once, whichever thread asks first
        self._configs: dict[tuple[str, str, str], dict[str, Any]] = {}  # see create_agent

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
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
        find: Finder | None = None,
        scoped: bool = True,
        read: bool = False,
    ) -> Any:
        """Send one request and return its decoded JSON body, retrying transient failures under
        the client's RetryPolicy.

        Everything but POST is safe to repeat (Letta treats a repeated PATCH, attach or detach
        the same way, and a DELETE or detach that finds nothing after an earlier attempt that
        may have landed counts as done). A POST creates something, so it is re-sent only when
        the server surely did not act on it (no connection, 429, 409 with Retry-After). After an
        ambiguous failure (timeout, lost connection, 5xx) `find` looks the resource up by its
        marks first: what it returns is adopted; without `find` the failure is raised. `files`
        sends a multipart upload (field -> (file name, bytes, content type)), with `data` as its
        other form fields. `read` marks a POST that changes nothing (a search): counted as a
        read, and safe to send again.
        """
        if scoped and self.project is not None:
            self.scope()  # looked up before the first request it scopes
        policy = self.retry
        started = self.clock()
        retries = 0
        maybe_done = False  # an earlier attempt may have reached the server and acted
        while True:
            if self.halted:
                raise ApiError(self.halted, method=method, path=path, code="LA714")
            with self._lock:
                self.counts["GET" if read else method] += 1
            failure: ApiError
            delay: float | None = None
            retryable = True
            try:
                headers, query = self._scoped(method, path, params) if scoped else ({}, params)
                resp = self._http.request(
                    method, path, params=query, json=json, files=files, data=data,
                    headers=headers,
                )  # fmt: skip
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                # The request never left: repeating it is safe even for a create.
                failure = ServerUnreachable(
                    f"cannot reach the Letta server at {self.base_url} ({_reason(e)})",
                    method=method, path=path,
                )  # fmt: skip
                sent = False
                if not self.answered:
                    raise failure from None
            except httpx.TimeoutException:
                failure = ServerUnreachable(
                    f"no answer from the Letta server at {self.base_url} (timed out)",
                    method=method, path=path,
                )  # fmt: skip
                sent = True
            except httpx.TransportError as e:
                failure = ServerUnreachable(
                    f"lost the connection to the Letta server at {self.base_url} ({_reason(e)})",
                    method=method, path=path,
                )  # fmt: skip
                sent = True
            else:
                self.answered = True
                if resp.is_success:
                    return _decode(resp, method, path)
                if resp.status_code == 404 and maybe_done and _gone_means_done(method, path):
                    return None  # the earlier attempt did it
                failure = _error(resp, method, path, self.redact)
                delay = retry_after(resp)
                status = resp.status_code
                retryable = (status in _RETRY_STATUS and not _mcp_unreachable(resp)) or (
                    status == 409 and delay is not None
                )
                # 429 and 409-with-Retry-After: refused before acting. Other 5xx: maybe acted.
                sent = status >= 500
                if not retryable and not (sent and find is not None):
                    raise failure
            maybe_done = maybe_done or sent
            if method == "POST" and sent and not read:
                if find is None:
                    raise failure  # never blindly re-send a create
                # Give a create still being committed a moment to show up before looking.
                self.sleep(min(policy.backoff(retries + 1, self._rng), policy.max_delay))
                found = find()
                if found is not None:
                    with self._lock:
                        self.adopted += 1
                    return found
            if not retryable:
                raise failure
            wait = delay if delay is not None else policy.backoff(retries + 1, self._rng)
            elapsed = self.clock() - started
            if retries >= policy.max_retries or elapsed + wait > policy.max_time:
                raise _gave_up(failure, retries + 1, elapsed, wait, delay)
            if self.on_retry is not None:
                self.on_retry(
                    f"retrying {failure} in {wait:.1f} s (attempt {retries + 2} of "
                    f"{policy.max_retries + 1})"
                )
            self.sleep(wait)
            retries += 1
            with self._lock:
                self.retries += 1

    # -- projects (Letta Cloud) ------------------------------------------------------------

    @property
    def project_id(self) -> str | None:
        """The id of the project every request is scoped to (None without a project)."""
        scope = self.scope()
        return scope.id if scope else None

    def scope(self) -> Project | None:
        """The project the client was given, looked up once among the server's projects by id,
        slug or name (as Letta Cloud's own clients take it). A server without projects (the
        self-hosted server) cannot scope anything: that is an error, never ignored."""
        if self.project is None or self._scope is not None:
            return self._scope
        with self._scope_lock:
            if self._scope is None:
                self._scope = self._look_up(self.project)
        return self._scope

    def _look_up(self, given: str) -> Project:
        try:
            found = self._projects({"name": given})
            if not any(_matches(p, given) for p in found):
                found = self._projects({})  # by id or slug: the name filter knows neither
        except ApiError as e:
            if e.status == 404:
                raise ServerStateError(
                    f"project {given!r}: {self.base_url} has no projects (GET /v1/projects: "
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

    def _projects(self, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Every project the listing holds, page by page (Cloud pages it with `offset` and says
        `hasNextPage`)."""
        out: list[Mapping[str, Any]] = []
        for _ in range(1000):  # a server that never says the end is not followed forever
            page = self.request(
                "GET", "/v1/projects", params={**params, "offset": len(out)}, scoped=False
            )
            got = _projects(page)
            out += got
            if not got or not (isinstance(page, Mapping) and page.get("hasNextPage")):
                break
        return out

    def _scoped(
        self, method: str, path: str, params: Mapping[str, Any] | None
    ) -> tuple[dict[str, str], Mapping[str, Any] | None]:
        """The project's headers for every request, and its `project_id` on the listings that
        take it (Cloud lists the default project's resources otherwise)."""
        if self._scope is None:
            return {}, params
        headers = {"X-Project-Id": self._scope.id, "X-Project": self._scope.slug}
        if method == "GET" and path in PROJECT_LISTS:
            params = {**(params or {}), "project_id": self._scope.id}
        return headers, params

    def paginate(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield every item of a list route, oldest first, asking for PAGE_SIZE items a page.

        Only an empty page ends a listing: a server may answer with fewer items than asked
        (Letta Cloud caps pages, and the cap may differ from page to page) or ignore `limit`,
        so a short page says nothing about what follows. That costs one request more than the
        pages there are; stopping at a short page would make plans miss resources."""
        after: str | None = None
        seen: set[str] = set()
        while True:
            page_params = {**params, "limit": PAGE_SIZE, "order": "asc"}
            if after:
                page_params["after"] = after
            page = self.request("GET", path, params=page_params)
            if not isinstance(page, list):
                raise ApiError("expected a list", method="GET", path=path)
            fresh = [item for item in page if item.get("id") not in seen]
            if not fresh:
                return  # an empty page (or one that repeats: a server ignoring `after`)
            seen.update(item.get("id") for item in fresh)
            yield from fresh
            after = fresh[-1]["id"]

    # -- reads -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/v1/health/")  # type: ignore[no-any-return]

    def list_blocks(self, tag: str, *also: str, label: str | None = None) -> list[dict[str, Any]]:
        """The blocks carrying `tag` (or any of the tags `also` names)."""
        params: dict[str, Any] = {"tags": [tag, *also]}
        if label is not None:
            params["label"] = label
        return list(self.paginate("/v1/blocks/", params))

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

    def create_block(self, body: Mapping[str, Any], find: Finder | None = None) -> dict[str, Any]:
        """Create a block; `find` recovers it after an ambiguous failure (see `request`)."""
        return self.request("POST", "/v1/blocks/", json=body, find=find)  # type: ignore[no-any-return]

    def update_block(self, block_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/blocks/{block_id}", json=body)  # type: ignore[no-any-return]

    def create_agent(self, body: Mapping[str, Any], find: Finder | None = None) -> dict[str, Any]:
        """Create an agent; `find` recovers it after an ambiguous failure (see `request`).

        Letta resolves a create's model and embedding handles into configurations anew each
        time (two provider lookups: a fifth of its work on a plain create). Once it has for
        one create, the next creates with the same handles (and nothing else that shapes the
        configurations) carry what it resolved, beside the handles: the server uses it as
        given, and the agent is the same."""
        key = None
        if isinstance(body.get("model"), str) and not _SHAPING & body.keys():
            key = (str(body["model"]), str(body.get("embedding")), str(body.get("agent_type")))
        with self._lock:
            known = self._configs.get(key) if key else None
        created: dict[str, Any] = self.request(
            "POST", "/v1/agents/", json={**body, **(known or {})}, find=find
        )
        if key and known is None:
            resolved = {
                k: created[k]
                for k in ("llm_config", "embedding_config")
                if isinstance(created.get(k), dict)
            }
            if "llm_config" in resolved:
                with self._lock:
                    self._configs.setdefault(key, resolved)
        return created

    def update_agent(self, agent_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/agents/{agent_id}", json=body)  # type: ignore[no-any-return]

    def create_tool(self, body: Mapping[str, Any]) -> dict[str, Any]:
        # Letta upserts by name here: a tool with the same name is overwritten, not refused.
        return self.request("POST", "/v1/tools/", json=body)  # type: ignore[no-any-return]

    def update_tool(self, tool_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/tools/{tool_id}", json=body)  # type: ignore[no-any-return]

    def delete_tool(self, tool_id: str) -> None:
        self.request("DELETE", f"/v1/tools/{tool_id}")

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


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds the server asks us to wait (Retry-After, in seconds or as an HTTP date)."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _gone_means_done(method: str, path: str) -> bool:
    """A DELETE or detach answered 404 after an attempt that may have landed: it did land."""
    return method == "DELETE" or (method == "PATCH" and "/core-memory/blocks/detach/" in path)


@dataclass(frozen=True)
class Project:
    """A Letta Cloud project: its id, and its slug (what the X-Project header takes)."""

    id: str
    slug: str


def _projects(found: Any) -> list[Mapping[str, Any]]:
    items = found.get("projects") if isinstance(found, Mapping) else found
    return [p for p in items or () if isinstance(p, Mapping) and "id" in p and "slug" in p]


def _matches(project: Mapping[str, Any], given: str) -> bool:
    return given in (project.get("id"), project.get("slug"), project.get("name"))


def _userinfo(url: str) -> tuple[str, str, str]:
    """`url` split around its credentials: (before, credentials, after); credentials are what
    stands between `//` (or the start) and the last `@` of the authority."""
    start = url.find("//")
    start = start + 2 if start >= 0 else 0
    end = len(url)
    for stop in "/?#":
        at = url.find(stop, start)
        if at >= 0:
            end = min(end, at)
    at = url.rfind("@", start, end)
    if at < 0:
        return url, "", ""
    return url[:start], url[start:at], url[at + 1 :]


def public_url(url: str) -> str:
    """`url` without the credentials it may carry (`http://user:pw@host` -> `http://host`)."""
    before, credentials, after = _userinfo(url)
    return before + after if credentials else url


def url_secrets(url: str) -> list[str]:
    """The secrets `url` carries, as written and decoded, to be masked in any output: its
    credentials, and their password (a user name alone is no secret, and masking a common
    word everywhere would garble the output)."""
    _, credentials, _ = _userinfo(url)
    if not credentials:
        return []
    _, _, password = credentials.partition(":")
    parts = {credentials, password, unquote(password)}
    return sorted(p for p in parts if p)


def _reason(e: Exception) -> str:
    return str(e) or type(e).__name__


def _gave_up(
    failure: ApiError, attempts: int, elapsed: float, wait: float, asked: float | None
) -> ApiError:
    why = f"gave up after {attempts} attempt(s) in {elapsed:.1f}s"
    if asked is not None and asked == wait:
        why += f"; the server asked to wait {asked:.0f}s more"
    return type(failure)(
        f"{failure.detail} ({why})", status=failure.status, method=failure.method,
        path=failure.path, code=failure.code,
    )  # fmt: skip


def _decode(resp: httpx.Response, method: str, path: str) -> Any:
    """A successful response's JSON (None when empty)."""
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


def _letta_error(resp: httpx.Response) -> Mapping[str, Any]:
    """The `error` object of Letta's own error answers ({"error": {"type", "message",
    "detail"}}); empty for any other answer."""
    try:
        body = resp.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, Mapping) else {}


def _mcp_unreachable(resp: httpx.Response) -> bool:
    """A 502 that is Letta's answer, not a gateway's: Letta could not connect to an MCP server
    (a stdio command not installed, a URL that refuses). Asking again asks the same MCP server
    the same way: not retried."""
    return _letta_error(resp).get("type") == "mcp_connection_error"


def _error(resp: httpx.Response, method: str, path: str, redact: Callable[[str], str]) -> ApiError:
    """The error a failed response stands for, with the server's own message (secrets masked,
    then cut short)."""
    detail: Any
    letta = _letta_error(resp)
    try:
        detail = resp.json().get("detail", resp.text)
    except (ValueError, AttributeError):
        detail = resp.text
    if letta:
        said = [str(letta.get(k) or "").strip() for k in ("message", "detail")]
        detail = " ".join(dict.fromkeys(s for s in said if s)) or detail
    text = redact(str(detail).strip().replace("\n", " ")) or resp.reason_phrase
    if len(text) > 300:
        text = text[:297] + "..."
    if resp.status_code in (401, 403):
        text += " (check --api-key / LETTA_API_KEY)"
    return ApiError(text, status=resp.status_code, method=method, path=path)
