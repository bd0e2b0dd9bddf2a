"""Fault injection against the real server: a proxy between letta-apply and Letta injects 5xx,
429 with Retry-After, answers held past the client timeout, connections reset after the server
acted, and a server restart mid-apply. Whatever happens: no duplicate resources, no lost
agent-written memory, and a re-run converges (then a further apply writes nothing).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from letta_apply import LettaClient
from letta_apply.core.model import MARK_KEY
from letta_apply.server.lock import StackLock
from letta_apply.server.lock_records import lock_tag

from .conftest import ROOT, Run, agent_by_name, stack_resources
from .faultproxy import FaultProxy

SEEDED_RUNS = int(os.environ.get("LETTA_FAULT_RUNS", "10"))
FIRST_SEED = int(os.environ.get("LETTA_FAULT_FIRST_SEED", "0"))
RATES = {
    "429": 0.04,
    "503": 0.04,
    "502 after": 0.04,
    "500 after": 0.02,
    "reset after": 0.05,
    "delay": 0.02,
}
CLIENT_TIMEOUT = 3.0
# Generous budgets: faults come in bursts, and the proxy makes every request a new connection.
RETRY_FLAGS = ["--timeout", str(CLIENT_TIMEOUT), "--max-retries", "8", "--retry-max-time", "60",
               "--lock-timeout", "20"]  # fmt: skip


@pytest.fixture
def proxy(server: str) -> Iterator[FaultProxy]:
    # Behind the session's own proxy, so that the contract test sees these requests too.
    p = FaultProxy(httpx.URL(server).port or 80, delay=CLIENT_TIMEOUT + 0.5).start()
    yield p
    p.stop()


def fleet(seed: int, stack: str, version: int) -> str:
    """A manifest drawn from `seed`: shared blocks, agents with an own block each, attached to
    some shared blocks. Version 2 edits descriptions, moves attachments and adds an agent."""
    rng = random.Random(seed)
    shared = [f"s{i}" for i in range(rng.randint(2, 3))]
    agents = {f"a{i}": sorted(rng.sample(shared, rng.randint(1, len(shared)))) for i in range(3)}
    if version == 2:
        agents["a0"] = [s for s in shared if s not in agents["a0"]] or shared[:1]
        agents["a3"] = shared[-1:]
    lines = [f"version: 1\nstack: {stack}\nblocks:"]
    for s in shared:
        lines.append(f"  {s}:\n    description: shared {s} v{version}\n    value: start {s}")
    lines.append("agents:")
    for a, blocks in agents.items():
        lines.append(
            f"  {a}:\n    name: {stack}-{a}\n    model: letta/letta-free\n"
            f"    embedding: letta/letta-free\n"
            f"    memory_blocks:\n      - {{label: persona, value: I am {a}}}\n"
            f"    blocks: [{', '.join(blocks)}]"
        )
    return "\n".join(lines) + "\n"


def expected(text: str) -> tuple[set[str], set[str]]:
    """Addresses of the shared blocks and agents a manifest declares."""
    doc = yaml.safe_load(text)
    return {f"block.{k}" for k in doc["blocks"]}, {f"agent.{k}" for k in doc["agents"]}


def duplicates(api: httpx.Client, stack: str, blocks: set[str], agents: set[str]) -> int:
    """Assert the stack holds exactly one of each declared resource (and nothing else, and no
    lock record); return how many extra resources were found (0)."""
    live_blocks, live_agents = stack_resources(api, stack)
    by_address: Counter[str] = Counter()
    for r in [*live_blocks, *live_agents]:
        mark = (r.get("metadata") or {}).get(MARK_KEY) or {}
        if mark.get("address", "").count(".") == 1:
            by_address[mark["address"]] += 1
    extra = sum(n - 1 for n in by_address.values() if n > 1)
    extra += len(live_blocks) - len(blocks) - len(agents)  # one own block per agent
    for a in live_agents:
        extra += len(agent_by_name(api, a["name"])) - 1  # none made without our marks
    assert extra == 0, (by_address, len(live_blocks))
    assert set(by_address) == blocks | agents, by_address
    locks = api.get("/v1/blocks/", params={"tags": [lock_tag(stack)]}).json()
    assert locks == [], locks
    return extra


def apply_until_done(run: Run, path: str, url: str, attempts: int = 8) -> list[int]:
    codes, errors = [], []
    for _ in range(attempts):
        r = run("apply", "-f", path, "--auto-approve", "--parallelism", "4", *RETRY_FLAGS,
                base_url=url)  # fmt: skip
        codes.append(r.code)
        if r.code == 0:
            return codes
        # A hard error: the output says what failed, and what was done or not attempted.
        assert "error: " in r.err, r.err
        errors += [line for line in r.err.splitlines() if line.startswith("error: ")]
    raise AssertionError(f"no successful apply in {attempts} attempts: {codes}: {errors}")


def memory(api: httpx.Client, block_id: str) -> str:
    r = api.get(f"/v1/blocks/{block_id}")
    r.raise_for_status()
    return str(r.json()["value"])


def write_memory(api: httpx.Client, stack: str, seed: int) -> dict[str, str]:
    """Write every agent's memory as agents do (the core-memory route); return what each block
    now holds, by id (a shared block keeps the last value written through any agent)."""
    _, agents = stack_resources(api, stack)
    ids = set()
    for a in agents:
        for b in a["blocks"]:
            value = f"written by {a['name']} (seed {seed}) into {b['label']}"
            api.patch(
                f"/v1/agents/{a['id']}/core-memory/blocks/{b['label']}", json={"value": value}
            ).raise_for_status()
            ids.add(b["id"])
    assert ids
    return {i: memory(api, i) for i in ids}


def converged(run: Run, path: str) -> None:
    r = run("apply", "-f", path, "--auto-approve")
    assert r.code == 0, r.err
    assert r.writes == 0 and "No changes." in r.out, r.out


def destroy(run: Run, path: str) -> None:
    r = run("destroy", "-f", path, "--auto-approve")
    assert r.code == 0, r.err


def test_seeded_fault_runs_never_duplicate_or_lose_memory(
    run: Run, api: httpx.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    started = time.monotonic()
    proxy.rates = RATES
    hard_errors = 0
    for seed in range(FIRST_SEED, FIRST_SEED + SEEDED_RUNS):
        proxy.rng.seed(seed)
        stack = f"t-faults-{seed}-{uuid.uuid4().hex[:6]}"
        v1, v2 = fleet(seed, stack, 1), fleet(seed, stack, 2)
        p1, p2 = tmp_path / f"{stack}-1.yaml", tmp_path / f"{stack}-2.yaml"
        p1.write_text(v1)
        p2.write_text(v2)

        proxy.enabled = True
        codes = apply_until_done(run, str(p1), proxy.url)
        hard_errors += codes.count(1)
        proxy.enabled = False
        assert duplicates(api, stack, *expected(v1)) == 0
        converged(run, str(p1))
        kept = write_memory(api, stack, seed)

        proxy.enabled = True
        codes = apply_until_done(run, str(p2), proxy.url)
        hard_errors += codes.count(1)
        proxy.enabled = False
        assert duplicates(api, stack, *expected(v2)) == 0
        converged(run, str(p2))
        for block_id, value in kept.items():
            assert memory(api, block_id) == value, (seed, block_id)
        destroy(run, str(p2))

    summary = {
        "seeded_runs": SEEDED_RUNS,
        "faults": dict(sorted(proxy.injected.items())),
        "requests_through_proxy": proxy.requests,
        "applies_stopped_by_a_hard_error": hard_errors,
        "duplicates": 0,
        "seconds": round(time.monotonic() - started, 1),
    }
    print("\nfault runs:", json.dumps(summary))
    # Every kind of fault was really exercised.
    assert set(proxy.injected) == set(RATES), proxy.injected


def test_hard_error_stops_new_work_and_says_what_was_not_attempted(
    run: Run, api: httpx.Client, proxy: FaultProxy, manifest: Callable[[str], str], stack: str
) -> None:
    text = fleet(99, stack, 1)
    path = manifest(text)
    posts = [0]

    def second_agent_fails(method: str, path: str) -> str | None:
        if method == "POST" and path == "/v1/agents/":
            posts[0] += 1
            return "503" if posts[0] > 1 else None
        return None

    proxy.choose = second_agent_fails
    r = run("apply", "-f", path, "--auto-approve", "--parallelism", "1", "--max-retries", "1",
            base_url=proxy.url)  # fmt: skip
    assert r.code == 1
    assert "agent.a0: created (agent-" in r.out
    assert "error: agent.a1: create: POST /v1/agents/: HTTP 503: injected 503" in r.err
    assert "gave up after 2 attempt(s)" in r.err
    assert "not attempted: agent.a2: create" in r.err
    shared = len(expected(text)[0])
    assert f"Apply stopped: {shared + 1} change(s) done, 1 failed, 1 not attempted." in r.err
    assert posts[0] == 3  # a0, then a1 twice (503 is "not made": re-sent once); a2 never

    proxy.choose = None
    again = run("apply", "-f", path, "--auto-approve")
    assert again.code == 0 and again.writes == 2, again.err  # a1 and a2
    assert duplicates(api, stack, *expected(text)) == 0
    converged(run, path)
    destroy(run, path)


def _restart_server(down: threading.Event | None = None) -> None:
    script = str(ROOT / "scripts" / "letta-server")
    for step in ("down", "up"):
        subprocess.run([script, step], check=True, capture_output=True, timeout=600)
        if step == "down" and down is not None:
            down.set()


def test_server_restart_mid_apply(
    run: Run, api: httpx.Client, proxy: FaultProxy, manifest: Callable[[str], str], stack: str
) -> None:
    small = manifest(fleet(7, stack, 1))
    assert run("apply", "-f", small, "--auto-approve").code == 0
    kept = write_memory(api, stack, 7)

    big_text = fleet(7, stack, 2).replace("agents:\n", "agents:\n" + "".join(
        f"  x{i}:\n    name: {stack}-x{i}\n    model: letta/letta-free\n"
        f"    embedding: letta/letta-free\n    memory_blocks: [{{label: persona, value: x}}]\n"
        for i in range(6)
    ))  # fmt: skip
    big = manifest(big_text)
    down = threading.Event()
    restart = threading.Thread(target=_restart_server, args=(down,))
    agent_posts = [0]

    def restart_at_third_agent(method: str, path: str) -> threading.Event | None:
        """The third agent create waits until the server is down: the apply meets the restart
        however fast it would otherwise finish (the other requests are served meanwhile)."""
        if method == "POST" and path == "/v1/agents/":
            agent_posts[0] += 1
            if agent_posts[0] == 3:
                restart.start()
                return down
        return None

    proxy.hold = restart_at_third_agent
    r = run("apply", "-f", big, "--auto-approve", "--parallelism", "2", "--timeout", "10",
            "--max-retries", "40", "--retry-max-time", "300", base_url=proxy.url)  # fmt: skip
    restart.join(timeout=600)
    proxy.hold = None
    assert agent_posts[0] >= 3 and not restart.is_alive()
    assert r.code == 0, r.err
    assert "retried" in r.err  # the restart was felt, and ridden out

    assert duplicates(api, stack, *expected(big_text)) == 0
    converged(run, big)
    for block_id, value in kept.items():
        assert memory(api, block_id) == value
    destroy(run, big)


def _cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "letta_apply.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("lock", ["true", "false"])
def test_two_applies_at_once_make_one_of_each(
    run: Run, api: httpx.Client, server: str, tmp_path: Path, lock: str
) -> None:
    for round_ in range(3 if lock == "false" else 1):
        stack = f"t-race-{lock}-{round_}-{uuid.uuid4().hex[:6]}"
        text = fleet(round_, stack, 1)
        path = tmp_path / f"{stack}.yaml"
        path.write_text(text)
        args = ["apply", "-f", str(path), "--auto-approve", "--base-url", server,
                "--lock", lock, "--lock-timeout", "120"]  # fmt: skip
        procs = [_cli(*args), _cli(*args)]
        results = [p.communicate(timeout=300) for p in procs]
        for p, (_, err) in zip(procs, results, strict=True):
            assert p.returncode == 0, err
        assert duplicates(api, stack, *expected(text)) == 0
        converged(run, str(path))
        destroy(run, str(path))


def test_a_held_lock_blocks_apply_until_force_unlocked(
    run: Run, api: httpx.Client, server: str, manifest: Callable[[str], str], stack: str
) -> None:
    path = manifest(fleet(3, stack, 1))
    # A live holder: it renews its lease (every 10 s) for as long as the test holds it.
    client = LettaClient(server)
    holder = StackLock(client, stack, "apply")
    held = holder.acquire()
    # Plans, drift and show neither take the lock nor see it.
    plan = run("plan", "-f", path, "--format", "json")
    assert plan.code == 0 and held.id not in plan.out and "letta-apply-lock" not in plan.out
    assert run("drift", "-f", path).code == 0
    assert held.id not in run("show", "-f", path).out

    r = run("apply", "-f", path, "--auto-approve", "--lock-timeout", "2")
    assert r.code == 1
    assert f'stack "{stack}" is locked by' in r.err and held.id in r.err
    assert f"letta-apply force-unlock {held.id}" in r.err
    assert stack_resources(api, stack) == ([], [])  # nothing written while locked

    assert run("apply", "-f", path, "--auto-approve", "--lock=false").code == 0
    hand = api.post("/v1/agents/", json={
        "name": f"{stack}-by-hand", "model": "letta/letta-free", "embedding": "letta/letta-free",
        "tags": [f"hand-{stack}"],
    }).json()  # fmt: skip
    exported = run("export", "--stack", "copy", "--tag", f"hand-{stack}")
    api.delete(f"/v1/agents/{hand['id']}").raise_for_status()
    for b in hand["blocks"]:
        api.delete(f"/v1/blocks/{b['id']}")
    assert exported.code == 0 and f"{stack}-by-hand" in exported.out, exported.err
    assert held.id not in exported.out and "letta-apply-lock" not in exported.out
    unlocked = run("force-unlock", held.id)
    assert unlocked.code == 0 and held.id in unlocked.out
    assert run("force-unlock", held.id).code == 1  # already gone
    holder.release()  # its renewals stop; its record is gone already
    client.close()
    destroyed = run("destroy", "-f", path, "--auto-approve")
    assert destroyed.code == 0, destroyed.err
    assert "stack lock: " in destroyed.err  # destroy takes the lock
    assert api.get("/v1/blocks/", params={"tags": [lock_tag(stack)]}).json() == []
