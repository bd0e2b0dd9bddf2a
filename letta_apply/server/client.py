"""The one small HTTP client letta-apply talks to Letta through.

The transport is injectable (`httpx.MockTransport` in unit tests); every request is counted so
tests and users can see what a command cost. The API key travels only in the Authorization
header and is never part of a message.

Transient failures are retried under a RetryPolicy (server.retry). A create is never blindly
re-sent: see `LettaClient.request`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from ..core.jsonish import JsonObject, objs, opt_text, strings
from ..errors import ApiError, ServerUnreachable, UsageError
from . import projects
from .answers import Failure, decode, gone_means_done, refused
from .projects import PROJECT_LISTS, Project
from .retry import RetryPolicy, gave_up
from .routes import AGENTS, BLOCKS, HEALTH, PROJECTS, TOOLS, Route
from .together import Together
from .urls import public_url, url_secrets

if TYPE_CHECKING:
    import httpx

DEFAULT_BASE_URL = "http://localhost:8283"
PAGE_SIZE = 500
DEFAULT_MAX_CONNECTIONS = 32
# Below the server's keep-alive timeout (uvicorn: 5 s), so that a pooled connection is never
# reused at the moment the server closes it: that would fail a write the server never saw.
_KEEPALIVE_EXPIRY = 3.0

# Fields of an agent create that change the configuration Letta builds from its model and
# embedding handles: a create with any of them has its handles resolved by the server.
_SHAPING = frozenset({
    "llm_config", "embedding_config", "context_window_limit", "max_tokens",
    "max_reasoning_tokens", "enable_reasoner", "reasoning", "model_settings",
    "parallel_tool_calls", "embedding_chunk_size", "enable_sleeptime",
})  # fmt: skip

Scalar = str | int | float | bool | None
Query = Scalar | Sequence[Scalar]
"""A query parameter's value: a list is sent as the parameter repeated."""

Params = Mapping[str, Query]
"""A request's query parameters."""

Finder = Callable[[], "Mapping[str, object] | None"]
"""Looks up, by its marks, what a create may have made; None when nothing is there."""


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
        import httpx  # here: a command that sends nothing (validate) does not import it

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
        self._together: Together[Params] = Together(self._blocks_by_tags)  # see list_blocks
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
        self._configs: dict[tuple[str, str, str], JsonObject] = {}  # see create_agent
        self._handles: dict[str, frozenset[str]] = {}  # see handles
        self._handles_read = threading.Lock()  # held while they are read: one read for all

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
        params: Params | None = None,
        json: object = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
        find: Finder | None = None,
        scoped: bool = True,
        read: bool = False,
    ) -> object:
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
        started = self.clock()
        retries = 0
        maybe_done = False  # an earlier attempt may have reached the server and acted
        while True:
            if self.halted:
                raise ApiError(self.halted, method=method, path=path, code="LA714")
            with self._lock:
                self.counts["GET" if read else method] += 1
            answer = self._send(method, path, params, json, files, data, scoped)
            if isinstance(answer, Failure):
                failure = answer
            elif answer.is_success:
                return decode(answer, method, path)
            elif answer.status_code == 404 and maybe_done and gone_means_done(method, path):
                return None  # the earlier attempt did it
            else:
                failure = refused(answer, method, path, self.redact)
            maybe_done = maybe_done or failure.sent
            if method == "POST" and failure.sent and not read:
                found = self._adopt(failure, find, retries)
                if found is not None:
                    return found
            if not failure.retryable:
                raise failure.error
            self._wait(failure, retries, started)
            retries += 1

    def _send(
        self,
        method: str,
        path: str,
        params: Params | None,
        json: object,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        data: Mapping[str, str] | None,
        scoped: bool,
    ) -> httpx.Response | Failure:
        """One attempt: the server's answer, or why none came (a server never reached on first
        contact is raised at once: retries are for a server that was there)."""
        import httpx

        try:
            headers, query = self._scoped(method, path, params) if scoped else ({}, params)
            resp = self._http.request(
                method, path, params=query, json=json, files=files, data=data, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            # The request never left: repeating it is safe even for a create.
            unreachable = ServerUnreachable(
                f"cannot reach the Letta server at {self.base_url} ({_reason(e)})",
                method=method, path=path,
            )  # fmt: skip
            if not self.answered:
                raise unreachable from None
            return Failure(unreachable, sent=False)
        except httpx.TimeoutException:
            return Failure(ServerUnreachable(
                f"no answer from the Letta server at {self.base_url} (timed out)",
                method=method, path=path,
            ), sent=True)  # fmt: skip
        except httpx.TransportError as e:
            return Failure(ServerUnreachable(
                f"lost the connection to the Letta server at {self.base_url} ({_reason(e)})",
                method=method, path=path,
            ), sent=True)  # fmt: skip
        self.answered = True
        return resp

    def _adopt(self, failure: Failure, find: Finder | None, retries: int) -> object:
        """What a create that failed ambiguously made, as `find` finds it (None: nothing)."""
        if find is None:
            raise failure.error  # never blindly re-send a create
        # Give a create still being committed a moment to show up before looking.
        self.sleep(min(self.retry.backoff(retries + 1, self._rng), self.retry.max_delay))
        found = find()
        if found is not None:
            with self._lock:
                self.adopted += 1
        return found

    def _wait(self, failure: Failure, retries: int, started: float) -> None:
        """Wait before re-send number `retries + 1`, or give up when the policy allows no more
        (in count or in time)."""
        policy = self.retry
        delay = failure.delay
        wait = delay if delay is not None else policy.backoff(retries + 1, self._rng)
        elapsed = self.clock() - started
        if retries >= policy.max_retries or elapsed + wait > policy.max_time:
            raise gave_up(failure.error, retries + 1, elapsed, wait, delay)
        if self.on_retry is not None:
            self.on_retry(
                f"retrying {failure.error} in {wait:.1f} s (attempt {retries + 2} of "
                f"{policy.max_retries + 1})"
            )
        self.sleep(wait)
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
        slug or name (as Letta Cloud's own clients take it): see server.projects."""
        if self.project is None or self._scope is not None:
            return self._scope
        with self._scope_lock:
            if self._scope is None:
                self._scope = projects.look_up(self.project, self.base_url, self._projects_page)
        return self._scope

    def _projects_page(self, params: dict[str, str | int]) -> object:
        return self.request("GET", PROJECTS.path, params=params, scoped=False)

    def _scoped(
        self, method: str, path: str, params: Params | None
    ) -> tuple[dict[str, str], Params | None]:
        """The project's headers for every request, and its `project_id` on the listings that
        take it (Cloud lists the default project's resources otherwise)."""
        if self._scope is None:
            return {}, params
        headers = {"X-Project-Id": self._scope.id, "X-Project": self._scope.slug}
        if method == "GET" and path in PROJECT_LISTS:
            params = {**(params or {}), "project_id": self._scope.id}
        return headers, params

    def paginate(self, path: str, params: Params) -> Iterator[JsonObject]:
        """Yield every item of a list route, oldest first, asking for PAGE_SIZE items a page.

        Only an empty page ends a listing: a server may answer with fewer items than asked
        (Letta Cloud caps pages, and the cap may differ from page to page) or ignore `limit`,
        so a short page says nothing about what follows. That costs one request more than the
        pages there are; stopping at a short page would make plans miss resources."""
        after: str | None = None
        seen: set[object] = set()
        while True:
            page_params = {**params, "limit": PAGE_SIZE, "order": "asc"}
            if after:
                page_params["after"] = after
            page = self.request("GET", path, params=page_params)
            if not isinstance(page, list):
                raise ApiError("expected a list", method="GET", path=path)
            fresh = [item for item in _objects(page) if item.get("id") not in seen]
            if not fresh:
                return  # an empty page (or one that repeats: a server ignoring `after`)
            seen.update(item.get("id") for item in fresh)
            yield from fresh
            after = opt_text(fresh[-1]["id"])

    # -- reads -----------------------------------------------------------------------------

    def health(self) -> JsonObject:
        return _object(HEALTH.get(self))

    def list_blocks(self, tag: str, *also: str, label: str | None = None) -> list[JsonObject]:
        """The blocks carrying `tag` (or any of the tags `also` names). Asked for from several
        threads at once (many stacks of one run), such listings are sent as one
        (server.together)."""
        return self._together.listing((tag, *also), {} if label is None else {"label": label})

    def _blocks_by_tags(self, tags: list[str], params: Params) -> list[JsonObject]:
        return list(BLOCKS.list(self, {**params, "tags": tags}))

    def list_block_ids(
        self,
        tag: str | None,
        *,
        attached_more_than: int | None = None,
        attached_fewer_than: int | None = None,
    ) -> set[str]:
        """Ids of the blocks (carrying `tag`, or all) whose number of attached agents is in
        range (by tag, listed with the asks alike of other threads, as `list_blocks`)."""
        params: dict[str, Query] = {}
        if attached_more_than is not None:
            params["connected_to_agents_count_gt"] = attached_more_than
        if attached_fewer_than is not None:
            params["connected_to_agents_count_lt"] = attached_fewer_than
        listed = self._together.listing([tag], params) if tag else BLOCKS.list(self, params)
        return {str(b["id"]) for b in listed}

    def list_agents(
        self, *, tag: str | None = None, name: str | None = None, include: tuple[str, ...] = ()
    ) -> list[JsonObject]:
        params: dict[str, Query] = {"include": list(include)}
        if tag:
            params["tags"] = [tag]
        if name:
            params["name"] = name
        return list(AGENTS.list(self, params))

    def list_tools(self, names: list[str] | None = None) -> list[JsonObject]:
        """Tools with these names, or every tool (base tools included) when `names` is None."""
        return list(TOOLS.list(self, None if names is None else {"names": names}))

    def agent_block(self, agent_id: str, label: str) -> JsonObject:
        """A block as one agent sees it, by label (the core-memory route)."""
        return _object(AGENTS.at(agent_id, "core-memory/blocks", label).get(self))

    def get_agent(self, agent_id: str, include: tuple[str, ...]) -> JsonObject:
        return _object(AGENTS.at(agent_id).get(self, {"include": list(include)}))

    def get_block(self, block_id: str) -> JsonObject:
        return _object(BLOCKS.at(block_id).get(self))

    def block_agents(self, block_id: str) -> list[JsonObject]:
        """The agents a block is attached to (names, tags and marks)."""
        return list(BLOCKS.at(f"{block_id}/agents").list(self, {"include": ["agent.tags"]}))

    # -- writes ----------------------------------------------------------------------------

    def create_block(self, body: Mapping[str, object], find: Finder | None = None) -> JsonObject:
        """Create a block; `find` recovers it after an ambiguous failure (see `request`)."""
        return _object(BLOCKS.post(self, body, find=find))

    def update_block(self, block_id: str, body: Mapping[str, object]) -> JsonObject:
        return _object(BLOCKS.at(block_id).patch(self, body))

    def create_agent(self, body: Mapping[str, object], find: Finder | None = None) -> JsonObject:
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
        created = _object(AGENTS.post(self, {**body, **(known or {})}, find=find))
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

    def handles(self, route: Route, wanted: Iterable[str]) -> frozenset[str]:
        """The `handle` of each model `route` lists (the models or embeddings the server
        serves), remembered: the plans of many stacks made by one client read it once, and
        again only for a handle `wanted` that it lacked (served since, say, by a provider an
        earlier stack made). The stacks asking at once wait for the one listing it."""
        with self._handles_read:
            known = self._handles.get(route.path)
            if known is None or not known.issuperset(wanted):
                known = frozenset(strings([m.get("handle") for m in objs(route.get(self))]))
                self._handles[route.path] = known
            return known

    def update_agent(self, agent_id: str, body: Mapping[str, object]) -> JsonObject:
        return _object(AGENTS.at(agent_id).patch(self, body))

    def create_tool(self, body: Mapping[str, object]) -> JsonObject:
        # Letta upserts by name here: a tool with the same name is overwritten, not refused.
        return _object(TOOLS.post(self, body))

    def update_tool(self, tool_id: str, body: Mapping[str, object]) -> JsonObject:
        return _object(TOOLS.at(tool_id).patch(self, body))

    def delete_tool(self, tool_id: str) -> None:
        TOOLS.at(tool_id).delete(self)

    def attach_block(self, agent_id: str, block_id: str) -> None:
        AGENTS.at(agent_id, "core-memory/blocks", "attach", block_id).patch(self)

    def detach_block(self, agent_id: str, block_id: str) -> None:
        AGENTS.at(agent_id, "core-memory/blocks", "detach", block_id).patch(self)

    def delete_agent(self, agent_id: str) -> None:
        AGENTS.at(agent_id).delete(self)

    def delete_block(self, block_id: str) -> None:
        BLOCKS.at(block_id).delete(self)

    def write_memory(self, agent_id: str, label: str, value: str) -> JsonObject:
        """Write a block's value as an agent would, through the core-memory route."""
        return _object(
            AGENTS.at(agent_id, "core-memory/blocks", label).patch(self, {"value": value})
        )


def _object(answer: object) -> JsonObject:
    """An answer that is a JSON object (an empty one when it is not: read as absent)."""
    return answer if isinstance(answer, dict) else {}


def _objects(page: list[object]) -> list[JsonObject]:
    """The JSON objects on a page of a listing."""
    return [item for item in page if isinstance(item, dict)]


def _reason(e: Exception) -> str:
    return str(e) or type(e).__name__
