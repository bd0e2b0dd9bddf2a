"""Real-server fixtures: a pinned Letta 0.16.8 on 127.0.0.1, started by scripts/letta-server.

letta-apply reaches it through a proxy that records every request for the contract test
(test_cloud_contract.py): with LETTA_TEST_PROXY unset (or `direct`), a tap that changes nothing;
with LETTA_TEST_PROXY=cloud, a proxy that behaves like Letta Cloud (cloudproxy.py), letta-apply
then given its API key and a project through LETTA_API_KEY and LETTA_PROJECT. The `api` fixture,
the tests' own look behind letta-apply's back, talks to the server itself.

If the server cannot be started the tests fail loudly; they never skip.
"""

from __future__ import annotations

import io
import math
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from letta_apply.cli import main
from letta_apply.memory.backup import ROOT_VARIABLE
from letta_apply.server.client import PAGE_SIZE

from .cloudproxy import (
    API_KEY,
    DEPRECATED,
    PROJECT_PAGE,
    PROJECTS,
    TEAM_A,
    CloudProxy,
    Recorder,
    TapProxy,
    every_third_short,
)
from .embedding import endpoint  # noqa: F401 (the knowledge tests' embedding endpoint)

ROOT = Path(__file__).resolve().parents[2]
# The suite's own server: its own port and database, never a user's quickstart server on 8283
# (the fault suite restarts the server it tests). scripts/letta-server reads both variables, and
# every subprocess the tests start inherits them.
os.environ.setdefault("LETTA_SERVER_PORT", "8284")
os.environ.setdefault(
    "LETTA_SERVER_DATA",
    str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "letta-apply"
        / "test-server"
    ),
)
PORT = os.environ["LETTA_SERVER_PORT"]
BASE_URL = f"http://127.0.0.1:{PORT}"
MODE = os.environ.get("LETTA_TEST_PROXY") or "direct"
MODES = ("direct", "cloud")
HERE = Path(__file__).resolve().parent
RECORDER = Recorder()  # every request letta-apply sent in this session


@dataclass
class Session:
    """What the contract test needs to know about the session it ends."""

    named_suite: bool = False  # the command line names the whole integration folder
    deselected: bool = False  # ... but some of its tests were left out (-k, -m, --lf)
    summary: list[str] = field(default_factory=list)  # printed after the tests

    @property
    def whole_suite(self) -> bool:
        """Every integration test was selected."""
        return self.named_suite and not self.deselected


SESSION = Session()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
    # The contract test checks what the tests before it sent: it runs last.
    items.sort(key=lambda item: item.get_closest_marker("contract") is not None)
    SESSION.named_suite = _covers_suite(config)


def _covers_suite(config: pytest.Config) -> bool:
    """Whether the command line names the whole integration folder (or a folder holding it)."""
    base = config.invocation_params.dir
    for arg in config.args:
        if "::" in arg:
            continue
        path = (base / arg).resolve()
        if path == HERE or path in HERE.parents:
            return True
    return False


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(HERE in Path(item.fspath).parents for item in items):
        SESSION.deselected = True


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in SESSION.summary:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def front() -> Iterator[TapProxy | CloudProxy]:
    """The proxy letta-apply talks to the server through (see the module's docstring), in
    front of the local Letta server brought up by the project's own script. What the tests
    made on the server is removed before and after the session (a run that was killed leaves
    its stacks behind)."""
    if MODE not in MODES:
        pytest.fail(f"LETTA_TEST_PROXY={MODE!r}: expected one of {', '.join(MODES)}")
    proc = subprocess.run(
        [str(ROOT / "scripts" / "letta-server"), "up"], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        pytest.fail(
            f"could not start the local Letta server (scripts/letta-server up exited "
            f"{proc.returncode}):\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )
    remove_test_resources(BASE_URL)
    proxy: TapProxy | CloudProxy
    if MODE == "cloud":
        proxy = CloudProxy(BASE_URL, RECORDER, removed=DEPRECATED).start()
        # In-process runs and subprocesses alike: letta-apply takes both from the environment.
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LETTA_API_KEY", API_KEY)
            env.setenv("LETTA_PROJECT", TEAM_A.slug)
            yield proxy
    else:
        proxy = TapProxy(int(PORT), RECORDER).start()
        yield proxy
    proxy.stop()
    remove_test_resources(BASE_URL)


@pytest.fixture(scope="session")
def server(front: TapProxy | CloudProxy) -> str:
    """The URL letta-apply is given: the proxy in front of the local server."""
    return front.url


@pytest.fixture(scope="session")
def cloud(front: TapProxy | CloudProxy) -> Iterator[CloudProxy]:
    """A Cloud-like proxy in front of the local server, in either mode: the session's own in
    cloud mode, else one for the tests that need it."""
    if isinstance(front, CloudProxy):
        yield front
        return
    proxy = CloudProxy(BASE_URL, RECORDER, removed=DEPRECATED).start()
    yield proxy
    proxy.stop()


@pytest.fixture(autouse=True)
def deprecated_routes(request: pytest.FixtureRequest) -> Iterator[None]:
    """The Cloud-like proxies answer the routes Cloud marks deprecated as removed (404, 410),
    so that a test proves letta-apply needs none of them, except during a test marked
    `deprecated_routes` (one that declares groups or identities): served then."""
    if request.node.get_closest_marker("deprecated_routes") is None:
        yield
        return
    used = [request.getfixturevalue(n) for n in ("front", "cloud") if n in request.fixturenames]
    proxies = {id(p): p for p in used if isinstance(p, CloudProxy)}.values()
    removed = [(p, p.removed) for p in proxies]
    for p, _ in removed:
        p.removed = {}
    yield
    for p, routes in removed:
        p.removed = routes


# The names the tests give what they make: stacks `t-<10 hex>` (the `stack` fixture) and
# `tenant-t<10 hex>` (the API example), agents and identities named after their stack.
_TEST_NAME = re.compile(r"(tenant-)?t-?[0-9a-f]{10}\b")


def remove_test_resources(base_url: str) -> None:
    """Delete the groups, agents, blocks, tools and identities the tests made, recognised by their
    stack's tag or their name; nothing else on the server is touched. Best effort: a failure
    here never fails the suite."""

    def ours(tags: Any) -> bool:
        return any(
            _TEST_NAME.fullmatch(t.split(":", 1)[1])
            for t in tags or ()
            if t.startswith(("letta-apply:", "letta-apply-lock:", "letta-apply-serial:"))
        )

    with httpx.Client(base_url=base_url, timeout=60) as c:
        try:
            listed = {
                kind: c.get(f"/v1/{kind}/", params={"limit": 100000, **extra}).json()
                for kind, extra in (
                    ("agents", {"include": ["agent.tags", "agent.blocks"]}), ("blocks", {}),
                    ("tools", {}),
                    ("identities", {}),
                )
            }  # fmt: skip
            agents = [
                a
                for a in listed["agents"]
                if ours(a.get("tags")) or _TEST_NAME.match(a.get("name") or "")
            ]
            # Letta leaves an agent's own blocks behind it: those no other agent uses go too.
            kept = {b["id"] for a in listed["agents"] if a not in agents for b in a["blocks"]}
            owned = {b["id"] for a in agents for b in a.get("blocks") or ()} - kept
            # A group's manager cannot be deleted while the group exists: groups go first.
            ids = {a["id"] for a in agents}
            doomed = [
                f"/v1/groups/{g['id']}"
                for g in c.get("/v1/groups/", params={"limit": 100000}).json()
                if g.get("manager_agent_id") in ids or set(g.get("agent_ids") or ()) & ids
            ]
            doomed += [f"/v1/agents/{a['id']}" for a in agents]
            doomed += [
                f"/v1/blocks/{b['id']}"
                for b in listed["blocks"]
                if ours(b.get("tags")) or b["id"] in owned
            ]
            doomed += [f"/v1/tools/{t['id']}" for t in listed["tools"] if ours(t.get("tags"))]
            doomed += [
                f"/v1/identities/{i['id']}"
                for i in listed["identities"]
                if _TEST_NAME.match(i.get("identifier_key") or "")
            ]
            for path in doomed:
                c.delete(path)
        except (httpx.HTTPError, ValueError, TypeError):
            pass


@pytest.fixture(autouse=True)
def backups_apart(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Backups made by applies and destroys (in-process and in subprocesses alike) go to a
    folder of the test's, never into the working tree."""
    root = tmp_path_factory.mktemp("backups")
    monkeypatch.setenv(ROOT_VARIABLE, str(root))
    return root


@pytest.fixture
def api(server: str) -> Iterator[httpx.Client]:
    """A plain client for looking at and editing the server behind letta-apply's back: it
    talks to the server itself, never through the proxy."""
    with httpx.Client(
        base_url=BASE_URL, timeout=60, headers={"User-Agent": "letta-apply-tests"}
    ) as c:
        yield c


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def reads(self) -> int:
        return int(self._counts()[0])

    @property
    def writes(self) -> int:
        return int(self._counts()[1])

    def _counts(self) -> tuple[str, str]:
        m = re.search(r"requests: (\d+) reads, (\d+) writes", self.err)
        assert m, f"no request counts in stderr:\n{self.err}"
        return m.group(1), m.group(2)


Run = Callable[..., Result]


@pytest.fixture
def run(server: str) -> Run:
    """Run the letta-apply CLI in-process against the local server, with request counts."""

    def _run(*args: str, base_url: str | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        argv = list(args)
        if argv[0] != "validate":
            argv += ["--base-url", base_url or server, "-v"]
        code = main(argv, out=out, err=err)
        result = Result(code, out.getvalue(), err.getvalue())
        assert API_KEY not in result.out + result.err, "the API key was printed"
        return result

    return _run


@pytest.fixture
def stack() -> str:
    """A stack name no other test uses, so tests share one server without meeting."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def manifest(tmp_path: Path, stack: str) -> Callable[[str], str]:
    """Write a manifest for this test's stack; `{stack}` in the text is replaced."""
    counter = iter(range(1000))

    def _write(text: str) -> str:
        path = tmp_path / f"manifest-{next(counter)}.yaml"
        path.write_text(text.replace("{stack}", stack), encoding="utf-8")
        return str(path)

    return _write


def stack_resources(
    api: httpx.Client, stack: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every block and agent on the server carrying `stack`'s tag."""
    tag = f"letta-apply:{stack}"
    blocks = api.get("/v1/blocks/", params={"tags": [tag], "limit": 1000}).json()
    agents = api.get(
        "/v1/agents/",
        params={"tags": [tag], "limit": 1000, "include": ["agent.blocks", "agent.tags"]},
    ).json()
    return blocks, agents


def agent_by_name(api: httpx.Client, name: str) -> list[dict[str, Any]]:
    return api.get(  # type: ignore[no-any-return]
        "/v1/agents/", params={"name": name, "include": ["agent.blocks", "agent.tags"]}
    ).json()


SEED = """\
version: 1
stack: {stack}
blocks:
  organization:
    description: Shared information between all agents within the organization.
    value: Nothing here yet, we should update this over time.
agents:
  supervisor:
    name: {stack}-supervisor
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks:
      - label: persona
        value: I am a supervisor
    blocks: [organization]
  worker:
    name: {stack}-worker
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks:
      - {label: persona, value: I am a worker}
    blocks: [organization]
"""


def listing(n: int) -> int:
    """Requests letta-apply spends listing n items: a page per PAGE_SIZE (through the Cloud-like
    proxy, a page per what its caps let through), and the empty page that ends the listing (only
    that proves the end on a server that caps its pages)."""
    if MODE == "cloud":
        pages = held = 0
        while held < n:
            pages += 1
            held += every_third_short(pages)
        return pages + 1
    return math.ceil(n / PAGE_SIZE) + 1


def project_lookup() -> int:
    """Requests one letta-apply run spends finding its project by slug (by name first, then
    in the whole listing): none without a project."""
    return 0 if MODE == "direct" else 1 + math.ceil(len(PROJECTS) / PROJECT_PAGE)


def server_count(api: httpx.Client, route: str) -> int:
    """How many items a list route holds (tools and identities are listed whole)."""
    return len(api.get(route, params={"limit": 100000}).json())
