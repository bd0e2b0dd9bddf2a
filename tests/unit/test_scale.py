"""Costs that must not grow with the fleet (requests per page, not per resource; in plans,
destroys and exports), a connection pool as wide as --parallelism, and the progress display of
long applies."""

from __future__ import annotations

import io
import itertools
import json
import math
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from letta_apply import LettaClient, apply_plan, plan_for
from letta_apply.apply.runner import Done, _as_completed
from letta_apply.cli.commands import main
from letta_apply.cli.progress import Progress
from letta_apply.core.changes import natural_key
from letta_apply.memory.held import MAX_COUNTED
from letta_apply.read.export import Selection, export_manifest
from letta_apply.server.client import PAGE_SIZE
from letta_apply.server.retry import RetryPolicy
from tests.fakes import FakeLetta
from tests.helpers import Cli, Clock, Result, Tty, desired


def fleet(agents: int, shared: int, *, stack: str = "fleet") -> str:
    """A manifest: `shared` shared blocks, `agents` agents with a persona each, attached to two
    shared blocks."""
    lines = ["version: 1", f"stack: {stack}", "blocks:"]
    for j in range(shared):
        lines += [f"  s{j}:", f"    value: shared {j}"]
    lines.append("agents:")
    for i in range(agents):
        attached = ", ".join(f"s{(i + k) % shared}" for k in range(min(2, shared)))
        lines += [
            f"  a{i}:",
            "    model: letta/letta-free",
            f"    memory_blocks: [{{label: persona, value: agent {i}}}]",
            f"    blocks: [{attached}]",
        ]
    return "\n".join(lines) + "\n"


def converged(fake: FakeLetta, text: str) -> LettaClient:
    client = fake.client()
    apply_plan(client, plan_for(client, desired(text)), parallelism=8)
    fake.counts.clear()
    fake.calls.clear()
    return client


def listing(n: int) -> int:
    """Requests a listing of n items costs: its pages, and the empty page that ends it."""
    return math.ceil(n / PAGE_SIZE) + 1


def memory_counts(deleted: int) -> int:
    """What a plan reads to say what deleted agents hold: a page of passages per agent, for
    MAX_COUNTED agents at most (memory.held)."""
    return min(deleted, MAX_COUNTED)


def per_block_lookups(fake: FakeLetta) -> list[str]:
    return [p for m, p in fake.calls if m == "GET" and p.endswith("/agents")]


# -- reads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("agents", [PAGE_SIZE, 2 * PAGE_SIZE, 2 * PAGE_SIZE + 1])
def test_a_listing_of_k_pages_costs_k_requests_and_the_empty_one(agents: int) -> None:
    fake = FakeLetta()
    text = fleet(agents, 1).replace("    memory_blocks: [{label: persona, value: agent", "    #")
    client = converged(fake, text)
    fake.calls.clear()
    fake.counts.clear()
    assert plan_for(client, desired(text)).changes == ()
    agent_pages = [p for m, p in fake.calls if m == "GET" and p == "/v1/agents/"]
    assert len(agent_pages) == math.ceil(agents / PAGE_SIZE) + 1
    # + the blocks and tools (Letta cannot filter tools by stack: all are listed). Identities,
    # folders and the other kinds Letta cannot filter are not listed: the stack holds none.
    others = listing(len(fake.blocks)) + listing(len(fake.tools))
    assert fake.counts["GET"] == listing(agents) + others


@pytest.mark.parametrize("caps", [[7], [7, 7, 5], [3, 100, 1]])
def test_a_listing_is_complete_whatever_the_server_caps_its_pages_at(caps: list[int]) -> None:
    """Letta Cloud answers with fewer items than asked, not always the same number, whatever
    `limit` says: a short page is no end (a plan would miss resources and duplicate them)."""
    fake = FakeLetta()
    text = fleet(40, 3)
    client = converged(fake, text)
    served = itertools.cycle(caps)
    fake.page_cap = lambda: next(served)
    before = len(fake.agents), len(fake.blocks)
    plan = plan_for(client, desired(text))
    assert plan.changes == (), [c.address for c in plan.changes]
    assert (len(fake.agents), len(fake.blocks)) == before


def test_converged_plan_reads_pages_not_resources() -> None:
    fake = FakeLetta()
    text = fleet(250, 3)
    client = converged(fake, text)
    plan = plan_for(client, desired(text))
    assert plan.changes == ()
    # Agents: 3 pages. Blocks carrying the stack's tag (250 personas + 3 shared): 3 pages.
    # Letta's view of an agent's blocks omits their tags, hence the block pages for personas.
    # Plus tools (no identities: the stack holds none); each listing ends with an empty page.
    assert fake.counts["GET"] == listing(250) + listing(253) + listing(len(fake.tools))
    assert fake.writes == 0


def test_destroy_reads_do_not_grow_with_the_fleet() -> None:
    fake = FakeLetta()
    text = fleet(150, 3)
    client = converged(fake, text)
    plan = plan_for(client, desired(text), destroy=True)
    assert plan.problems == ()
    assert len(plan.changes) == 150 + 150 + 3  # agents, their personas, shared blocks
    assert per_block_lookups(fake) == []
    listings = listing(153) + listing(150) + listing(len(fake.tools))
    # One listing by attachment count per distinct count (personas: 1, shared blocks: 150):
    # the blocks attached to more than one agent (the 3 shared), none to more than 150.
    assert fake.counts["GET"] == listings + listing(3) + listing(0) + memory_counts(150)
    apply_plan(client, plan, parallelism=8)
    assert fake.agents == {} and fake.blocks == {}


def test_blocks_used_outside_the_stack_are_found_and_kept() -> None:
    fake = FakeLetta()
    text = fleet(30, 2)
    client = converged(fake, text)
    by_label = {b["label"]: b for b in fake.blocks.values() if b["label"] != "persona"}
    shared = by_label["s1"]["id"]
    persona = next(
        b["id"] for b in fake.blocks.values() if b["label"] == "persona" and b["value"] == "agent 7"
    )
    unused = fake._create_block({"label": "spare", "value": "x", "tags": ["letta-apply:fleet"]})
    hand = fake._create_agent({"name": "by-hand", "block_ids": [shared, persona]})
    fake.calls.clear()
    fake.counts.clear()

    plan = plan_for(client, desired(text), destroy=True)

    refused = {p.address: p.message for p in plan.problems}
    assert set(refused) == {"block.s1", "agent.a7.memory_blocks.persona"}
    assert f"by-hand ({hand['id']})" in refused["block.s1"]
    # Only the two blocks with an outside user were looked up one by one (a listing each).
    assert sorted(per_block_lookups(fake)) == sorted(
        2 * [f"/v1/blocks/{shared}/agents", f"/v1/blocks/{persona}/agents"]
    )
    deleted = {c.address for c in plan.changes if c.action == "delete"}
    assert "block.s0" in deleted and "agent.a7" in deleted
    assert unused["id"] not in {c.remote_id for c in plan.changes}  # not the stack's: no mark


def test_removing_agents_from_the_manifest_reads_no_block_one_by_one() -> None:
    fake = FakeLetta()
    client = converged(fake, fleet(120, 2))
    plan = plan_for(client, desired(fleet(100, 2)))
    assert sorted({c.action for c in plan.changes}) == ["delete"]
    assert len([c for c in plan.changes if c.kind == "agent"]) == 20
    assert per_block_lookups(fake) == []
    # Blocks and agents: 2 pages each; tools; one listing by attachment count.
    listings = listing(122) + listing(120) + listing(len(fake.tools)) + 2
    assert fake.counts["GET"] == listings + memory_counts(20)


# -- connection pool --------------------------------------------------------------------------


class _Barrier(BaseHTTPRequestHandler):
    """Answers only once `barrier.parties` requests are in flight at the same time; `peak` is
    the most requests it has seen in flight at once."""

    barrier: threading.Barrier
    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
        try:
            self.barrier.wait()
            status = 200
        except threading.BrokenBarrierError:
            status = 503
        finally:
            with cls.lock:
                cls.in_flight -= 1
        body = json.dumps({"status": "ok"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # The default backlog (5) drops connection attempts beyond it: the client sends them again
    # only a second later.
    request_queue_size = 64


@pytest.fixture
def barrier_server() -> Iterator[tuple[str, type[_Barrier]]]:
    handler = type("Handler", (_Barrier,), {})
    server = _Server(("127.0.0.1", 0), handler)
    # A short poll: shutdown() waits up to one poll interval for the serving loop to notice.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _concurrent_gets(client: LettaClient, n: int) -> list[int]:
    statuses: list[int] = []

    def get() -> None:
        try:
            client.request("GET", "/v1/health/")
            statuses.append(200)
        except Exception:
            statuses.append(0)

    threads = [threading.Thread(target=get) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_the_pool_lets_parallelism_requests_run_at_once(
    barrier_server: tuple[str, type[_Barrier]],
) -> None:
    url, handler = barrier_server
    handler.barrier = threading.Barrier(40, timeout=10)
    with LettaClient(url, max_connections=40, timeout=20) as client:
        assert _concurrent_gets(client, 40) == [200] * 40


def test_a_narrower_pool_queues_requests(barrier_server: tuple[str, type[_Barrier]]) -> None:
    url, handler = barrier_server
    # The barrier's timeout is the one real wait: how long the third request has to show up.
    handler.barrier = threading.Barrier(3, timeout=0.3)
    # No retries: a 503 from the broken barrier would be retried after real backoff sleeps.
    with LettaClient(url, max_connections=2, timeout=5, retry=RetryPolicy(max_retries=0)) as client:
        # Two connections: the third request waits for one, the barrier never fills.
        assert 0 in _concurrent_gets(client, 3)
    assert handler.peak == 2


def test_the_cli_sizes_the_pool_from_parallelism(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(fleet(3, 1))
    assert cli("apply", "-f", str(path), "--auto-approve", "--parallelism", "48").code == 0
    assert cli.clients[0].max_connections == 48


def test_parallelism_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["apply", "-f", str(tmp_path / "m.yaml"), "--parallelism", "0"])
    assert e.value.code == 1
    assert "--parallelism: expected a whole number of at least 1" in capsys.readouterr().err


# -- progress ---------------------------------------------------------------------------------


def test_progress_off_a_terminal_prints_plain_lines_at_intervals() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, 5, tty=False, interval=10, clock=clock)
    p.completed()  # too soon after the start
    clock.now = 10
    p.completed()
    p.failure()  # off a terminal, failures wait for the next line too
    clock.now = 25
    p.completed()
    clock.now = 26
    p.completed()  # the last one: the summary follows, no line
    p.close()
    assert out.getvalue() == "apply: 2/5 done, 0 failed\napply: 3/5 done, 1 failed\n"
    assert "\r" not in out.getvalue()


def test_progress_on_a_terminal_redraws_one_line_and_erases_it() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, 120, tty=True, interval=0.1, clock=clock)
    for i in range(119):
        clock.now = i * 0.01  # 100 completions a second: redrawn about every tenth of a second
        p.completed()
    draws = out.getvalue().count("\r")
    assert 10 <= draws <= 13
    p.failure()  # shown at once
    assert out.getvalue().endswith("\rapply: 119/120 done, 1 failed")
    assert "\n" not in out.getvalue()
    p.close()
    assert out.getvalue().endswith("\r" + " " * len("apply: 119/120 done, 1 failed") + "\r")


def _cli_apply(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: io.StringIO, text: str
) -> Result:
    monkeypatch.delenv("TERM", raising=False)
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return cli("apply", "-f", str(path), "--auto-approve", "--parallelism", "8", err=err)


def _record(stdout: str) -> list[str]:
    """The lines of completed changes, without their ids."""
    tail = stdout.split("\nPlan: ", 1)[1]
    return [
        ln.split(" (", 1)[0] for ln in tail.splitlines()[2:] if ln.startswith(("block.", "agent."))
    ]


def test_apply_off_a_terminal_prints_the_record_in_plan_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    err = io.StringIO()
    code, out, _ = _cli_apply(cli, tmp_path, monkeypatch, err, fleet(12, 2))
    assert code == 0
    agents = [f"agent.a{i}" for i in range(12)]  # natural order: a2 before a10
    expected = ["block.s0: created", "block.s1: created", *(f"{a}: created" for a in agents)]
    assert _record(out) == expected
    assert out.endswith("\nApply complete: 14 change(s) made.\n")
    assert "\r" not in err.getvalue() and "apply:" not in err.getvalue()  # a short apply


def test_apply_on_a_terminal_shows_progress_on_stderr_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    err = Tty()
    code, out, _ = _cli_apply(cli, tmp_path, monkeypatch, err, fleet(12, 2))
    assert code == 0
    assert "\rapply: 14/14 done, 0 failed" in err.getvalue()  # the last count is always drawn
    assert err.getvalue().endswith("\r")  # and erased before the summary
    assert "\r" not in out
    assert len(_record(out)) == 14


def test_a_failed_apply_counts_failures_and_keeps_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    err = Tty()

    def fail_a3(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and json.loads(request.content).get("name") == "a3":
            return httpx.Response(500, json={"detail": "no capacity"})
        return None

    cli.fake.before.append(fail_a3)
    code, out, _ = _cli_apply(cli, tmp_path, monkeypatch, err, fleet(12, 2))
    assert code == 1
    assert "1 failed" in err.getvalue()
    assert "error: agent.a3: create: POST /v1/agents/: HTTP 500: no capacity" in err.getvalue()
    record = _record(out)
    assert record[:2] == ["block.s0: created", "block.s1: created"]
    addresses = [line.split(":")[0] for line in record[2:]]
    # In plan order, natural (a2 before a10): how many were made before the failure stopped
    # new ones depends on timing.
    assert addresses == sorted(addresses, key=natural_key) and len(addresses) >= 1
    assert "agent.a3: created" not in record


# -- export -----------------------------------------------------------------------------------


def test_export_of_many_agents_finds_outside_users_in_one_listing() -> None:
    fake = FakeLetta()
    org = fake._create_block({"label": "organization", "value": "v"})
    outside = fake._create_block({"label": "handoff", "value": "h"})
    for i in range(30):
        fake._create_agent(
            {
                "name": f"w{i}",
                "tags": ["team"],
                "memory_blocks": [{"label": "persona", "value": f"worker {i}"}],
                "block_ids": [org["id"], *([outside["id"]] if i == 0 else [])],
            }
        )
    fake._create_agent({"name": "boss", "block_ids": [outside["id"]]})  # not exported
    fake.calls.clear()
    result = export_manifest(fake.client(), "team", Selection(tags=["team"]))
    doc = yaml.safe_load(result.manifest)
    assert sorted(doc["blocks"]) == ["handoff", "organization"]
    assert all(len(a["memory_blocks"]) == 1 for a in doc["agents"].values())
    # The agents (one page), then the server's multi-attached blocks: not 31 block lookups;
    # then the groups: one empty page (the groups of exported agents are exported too).
    assert fake.calls == (
        2 * [("GET", "/v1/agents/")] + 2 * [("GET", "/v1/blocks/")] + [("GET", "/v1/groups/")]
    )


class _Watched(Future[Done | None]):
    """A future counting how often its state is looked at."""

    looks = 0

    @property
    def _state(self) -> str:
        _Watched.looks += 1
        return str(self.__dict__["_state"])

    @_state.setter
    def _state(self, value: str) -> None:
        self.__dict__["_state"] = value


def test_waiting_on_a_level_of_changes_looks_at_each_once_not_at_all_after_each() -> None:
    """A level of 10,000 creates completes one by one: waiting on all those still pending after
    each one (`concurrent.futures.wait`) looked at 5 * 10^7 futures, over a minute of CPU."""
    n = 2000
    futures = [_Watched() for _ in range(n)]
    _Watched.looks = 0
    futures[0].set_result(None)
    seen = []
    for f in _as_completed(futures):  # each completes only once the one before was yielded
        seen.append(f)
        if len(seen) < n:
            futures[len(seen)].set_result(None)
    assert seen == futures
    assert _Watched.looks < 10 * n, _Watched.looks
