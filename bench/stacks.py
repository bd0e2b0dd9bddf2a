"""Benchmark many tenant stacks from one letta-apply process against a local real Letta server.

N stacks, each of one agent and one shared block (the agent's persona block is its own), in a
folder with a manifest per stack, run as `letta-apply ... --stacks DIR` processes: a cold apply,
a converged plan of all, an apply with nothing to change, a change to every tenant (its block's
description), and a destroy. For
each step: wall time, the read and write requests letta-apply counted, the reads of listing the
server once (each kind's listing read page by page, what one read of the server for all stacks
costs; one stack planned alone costs about 3 reads, so N stacks planned one by one cost about
3N), peak RSS, and the CPU of the Letta server and of Postgres. The server's CPU floor is
max(server CPU, (server + Postgres CPU) / 2): the server is one uvicorn process (one core at
most) and the machine has 2 cores for both. JSON in bench/results/stacks-<N>.json.

    .venv/bin/python bench/stacks.py --stacks 100
    .venv/bin/python bench/stacks.py --stacks 1000,10000 --port 8288 --data ~/.cache/...

It talks only to 127.0.0.1, to its own server (port 8290, data ~/.cache/letta-apply/data-bench
by default), which it starts with scripts/letta-server when it is not running. Every stack it
creates has a unique name and is destroyed at the end. Memory stays bounded in N: manifests are
written one at a time, and letta-apply is measured as its own process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import (
    DEFAULT_DATA,
    DEFAULT_PORT,
    PAGE_SIZE,
    ROOT,
    ServerCpu,
    ensure_server,
    letta_apply,
)
from letta_apply import __version__

STEPS = ("cold_apply", "converged_plan", "noop_apply", "change_apply", "destroy")
CONCURRENCY = 8  # stacks at once (letta-apply's default)


@dataclass
class Step:
    name: str
    wall_s: float
    exit_code: int
    reads: int
    writes: int
    listing_once_reads: int  # reads of listing the server once, page by page
    min_writes: int  # one write per resource created, changed or deleted
    peak_rss_mb: float
    client_cpu_s: float
    server_cpu_s: float
    postgres_cpu_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def floor_s(self) -> float:
        """The server's CPU floor: one uvicorn process uses one core at most; with Postgres
        they share the machine's two."""
        return max(self.server_cpu_s, (self.server_cpu_s + self.postgres_cpu_s) / 2)


@dataclass
class Run:
    stacks: int
    prefix: str
    steps: list[Step] = field(default_factory=list)


def manifest(stack: str, i: int, *, changed: bool = False) -> str:
    """One tenant: a shared block and an agent attached to it."""
    edit = " (changed)" if changed else ""
    return (
        f"version: 1\nstack: {stack}\nblocks:\n  org:\n"
        f"    description: Facts of tenant {i}{edit}.\n"
        f"    value: Tenant {i} sells things.\n"
        "agents:\n  helper:\n    model: letta/letta-free\n    embedding: letta/letta-free\n"
        f"    description: Helper of tenant {i}.\n"
        "    memory_blocks:\n      - label: persona\n"
        f'        value: "I help tenant {i}."\n'
        "    blocks: [org]\n"
    )


def write_stacks(folder: Path, prefix: str, n: int, *, changed: bool = False) -> None:
    for i in range(n):
        (folder / f"t{i:05d}.yaml").write_text(
            manifest(f"{prefix}-t{i:05d}", i, changed=changed), encoding="utf-8"
        )


def _count(base_url: str, route: str) -> int:
    """How many items a list route holds (read by this script, not counted)."""
    total, after = 0, ""
    while True:
        url = f"{base_url}{route}?limit=1000&order=asc" + (f"&after={after}" if after else "")
        req = urllib.request.Request(url, headers={"User-Agent": "letta-apply-bench"})
        with urllib.request.urlopen(req, timeout=300) as r:
            page = json.load(r)
        if not page:
            return total
        total += len(page)
        after = page[-1]["id"]


def listing_once(base_url: str) -> int:
    """The reads of listing the server once: agents, blocks and tools, each page by page
    until an empty page (what letta-apply's one read of the server for all stacks lists)."""

    def pages(n: int) -> int:
        return math.ceil(n / PAGE_SIZE) + 1

    return sum(pages(_count(base_url, r)) for r in ("/v1/agents/", "/v1/blocks/", "/v1/tools/"))


def run_stacks(
    run: Run,
    base_url: str,
    cpu: ServerCpu,
    work: Path,
    concurrency: int,
    saved: Callable[[], None],
    steps: tuple[str, ...] = STEPS,
    keep: bool = False,
    changed: bool = False,
) -> None:
    """Run `steps` on `run.stacks` stacks; `saved` is called after each (a 10,000-stack run
    takes hours: what was measured is kept should it stop). With `keep` the stacks stay on the
    server (a later run with the same prefix goes on from there; `changed`: from the manifests
    as the change step left them; the change step then changes them back)."""
    n, prefix = run.stacks, run.prefix
    folder = work / "stacks"
    folder.mkdir()
    write_stacks(folder, prefix, n, changed=changed)
    common = ["--stacks", str(folder), "--concurrency", str(concurrency)]
    commands = {
        "cold_apply": ["apply", *common, "--auto-approve", "--no-backup"],
        "converged_plan": ["plan", *common],
        "noop_apply": ["apply", *common, "--auto-approve", "--no-backup"],
        "change_apply": ["apply", *common, "--auto-approve", "--no-backup"],
        "destroy": ["destroy", *common, "--auto-approve", "--no-backup"],
    }
    min_writes = {
        "cold_apply": 2 * n, "converged_plan": 0, "noop_apply": 0, "change_apply": n,
        "destroy": 3 * n,
    }  # fmt: skip
    try:
        for name in steps:
            if name == "change_apply":  # each block's description to the other text
                changed = not changed
                write_stacks(folder, prefix, n, changed=changed)
            once = listing_once(base_url)
            load0 = os.getloadavg()
            code, wall, reads, writes, rss, ccpu, lcpu, pcpu, err = letta_apply(
                commands[name], base_url, work, cpu, name
            )
            step = Step(
                name, round(wall, 2), code, reads, writes, once, min_writes[name], round(rss, 1),
                round(ccpu, 2), round(lcpu, 2), round(pcpu, 2), load0, os.getloadavg(),
            )  # fmt: skip
            run.steps.append(step)
            saved()
            print(_row(n, step), flush=True)
            if code != 0:
                print(err[-3000:], file=sys.stderr)
                break
    finally:
        done = run.steps and run.steps[-1].name == "destroy" and not run.steps[-1].exit_code
        if not keep and not done:
            letta_apply(commands["destroy"], base_url, work, cpu, "cleanup")


HEADER = (
    f"{'stacks':>6} {'step':<15} {'wall s':>8} {'floor s':>8} {'x floor':>7} {'reads':>6} "
    f"{'once':>5} {'writes':>7} {'min w':>6} {'rss MB':>7} {'srv cpu':>8} {'pg cpu':>7} "
    f"{'load':>5}"
)


def _row(n: int, s: Step) -> str:
    ratio = s.wall_s / s.floor_s if s.floor_s else float("inf")
    return (
        f"{n:>6} {s.name:<15} {s.wall_s:>8.1f} {s.floor_s:>8.1f} {ratio:>7.2f} {s.reads:>6} "
        f"{s.listing_once_reads:>5} {s.writes:>7} {s.min_writes:>6} {s.peak_rss_mb:>7.0f} "
        f"{s.server_cpu_s:>8.1f} {s.postgres_cpu_s:>7.1f} {s.load_before[0]:>5.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stacks", default="100", help="numbers of stacks, comma-separated")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--concurrency", type=int, default=CONCURRENCY)
    ap.add_argument("--out", type=Path, help="JSON file (default bench/results/stacks-N.json)")
    ap.add_argument("--steps", default=",".join(STEPS), help="steps to run, comma-separated")
    ap.add_argument("--keep", action="store_true", help="leave the stacks on the server")
    ap.add_argument("--prefix", help="the stacks' name prefix (to go on with kept stacks)")
    ap.add_argument("--changed", action="store_true", help="kept stacks as changed last")
    args = ap.parse_args(argv)
    steps = tuple(args.steps.split(","))
    if not set(steps) <= set(STEPS):
        ap.error(f"--steps: each one of {', '.join(STEPS)}")
    sizes = [int(x) for x in args.stacks.split(",")]
    base_url = f"http://127.0.0.1:{args.port}"
    config = ensure_server(args.port, args.data, 1, False)
    cpu = ServerCpu(args.data)
    out = args.out or ROOT / "bench" / "results" / f"stacks-{'-'.join(map(str, sizes))}.json"
    doc: dict[str, Any] = {
        "letta_apply": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_url": base_url,
        "page_size": PAGE_SIZE,
        "server": config,
        "concurrency": args.concurrency,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "floor": "max(server CPU, (server + Postgres CPU) / 2): one uvicorn process, 2 cores",
    }
    runs: list[Run] = []

    def saved() -> None:
        doc["runs"] = [
            {**asdict(r), "steps": [{**asdict(s), "floor_s": round(s.floor_s, 2)} for s in r.steps]}
            for r in runs
        ]
        out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

    print(f"bench: results go to {out}, written after each step", file=sys.stderr)
    print(HEADER, flush=True)
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix="letta-apply-stacks-"))
        runs.append(Run(n, args.prefix or f"b{uuid.uuid4().hex[:6]}"))
        if args.keep:
            print(f"bench: stacks kept, prefix {runs[-1].prefix}", file=sys.stderr)
        try:
            run_stacks(
                runs[-1], base_url, cpu, work, args.concurrency, saved, steps, args.keep,
                args.changed,
            )  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)
    failed = any(s.exit_code for r in runs for s in r.steps)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
