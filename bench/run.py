"""Benchmark letta-apply against a local real Letta server: fleets of N agents and M shared blocks.

For each fleet size and each parallelism it runs, as separate `letta-apply` processes (what a
pipeline runs): a cold apply, a plan of the converged fleet, a no-op apply, an apply that changes
10% of the agents, a check that the fleet converged, and a destroy. It records wall time, the
read and write requests letta-apply counted (`-v`), the fewest requests each step could make and
our ratio to that, the peak RSS of the letta-apply process, and the CPU the Letta server and its
Postgres spent meanwhile. Results: a table on stdout and JSON in bench/results/.

    .venv/bin/python bench/run.py                    # 20x2, 200x10, 300x10, 1000x50 at -p 1, 8
    .venv/bin/python bench/run.py --sizes 20x2 --parallelism 8    # a quick run
    .venv/bin/python bench/run.py --sizes 10000x100 --parallelism 8 --keep   # leaves the fleet
    .venv/bin/python bench/run.py --sizes 10000x100 --parallelism 8 --stack bench-10000x100-...
                                         # the other steps on it, without a second cold apply

It talks only to 127.0.0.1, to its own server (port 8290, data in
~/.cache/letta-apply/data-bench), which it starts with scripts/letta-server when it is not running.
Every stack it creates has a unique name and is destroyed at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from letta_apply import __version__  # noqa: E402
from letta_apply.server.client import PAGE_SIZE  # noqa: E402

DEFAULT_SIZES = "20x2,200x10,300x10,1000x50"
DEFAULT_PORT = 8290
DEFAULT_DATA = Path.home() / ".cache" / "letta-apply" / "data-bench"
CHANGED_SHARE = 10  # every 10th agent changes in the "change 10%" step
ATTACHED = 3  # shared blocks per agent (fewer when the fleet has fewer)
STEPS = ("cold_apply", "converged_plan", "noop_apply", "change_apply", "verify_plan", "destroy")


@dataclass
class Step:
    """One letta-apply run and what it cost."""

    name: str
    wall_s: float
    exit_code: int
    reads: int
    writes: int
    min_reads: int
    min_writes: int
    peak_rss_mb: float
    client_cpu_s: float
    server_cpu_s: float
    postgres_cpu_s: float
    lock_reads: int = 0  # the stack lock's own requests, which letta-apply counts apart
    lock_writes: int = 0

    @property
    def ratio(self) -> float:
        least = self.min_reads + self.min_writes
        return (self.reads + self.writes) / least if least else float("inf")

    @property
    def floor_s(self) -> float:
        """The shortest the step could take on this machine: the server's CPU for it (Letta
        and Postgres) spread over every core."""
        return (self.server_cpu_s + self.postgres_cpu_s) / (os.cpu_count() or 1)


@dataclass(frozen=True)
class Kept:
    """A fleet an earlier run left on the server (--keep): its stack, and whether it holds the
    10% change (a run with --keep ends with it applied)."""

    stack: str
    changed: bool


@dataclass
class Run:
    agents: int
    shared_blocks: int
    parallelism: int
    stack: str
    steps: list[Step] = field(default_factory=list)


# -- the fleet ----------------------------------------------------------------------------------


def manifest(stack: str, agents: int, shared: int, *, changed: bool = False) -> str:
    """A fleet: `shared` shared blocks; `agents` agents, each with its own persona block and
    attached to up to ATTACHED shared blocks. `changed` rewrites the description of every 10th
    agent and of its persona block (two writes each; a changed `value` would be kept as memory)."""
    lines = ["version: 1", f"stack: {stack}", "blocks:"]
    for j in range(shared):
        lines += [
            f"  shared{j:03d}:",
            f"    description: Shared block {j} of the benchmark fleet.",
            f"    value: Shared knowledge number {j}, written by the benchmark.",
        ]
    lines.append("agents:")
    per_agent = min(ATTACHED, shared)
    for i in range(agents):
        edit = " (changed)" if changed and i % CHANGED_SHARE == 0 else ""
        attached = ", ".join(f"shared{(i + k) % shared:03d}" for k in range(per_agent))
        lines += [
            f"  agent{i:04d}:",
            "    model: letta/letta-free",
            "    embedding: letta/letta-free",
            f"    description: Benchmark agent {i}{edit}.",
            "    memory_blocks:",
            "      - label: persona",
            f'        value: "I am benchmark agent {i}."',
            f'        description: "Persona of benchmark agent {i}{edit}."',
            f"    blocks: [{attached}]",
        ]
    return "\n".join(lines) + "\n"


def minimum(step: str, agents: int, shared: int, tools: int = 0) -> tuple[int, int]:
    """The fewest (reads, writes) the step can make: each kind of resource listed once, page by
    page until an empty page (only that proves the end: a server may cap its pages), and one
    write per resource created, changed or deleted (Letta has no bulk writes). Letta cannot
    filter tools by tag, so finding the stack's takes one listing of the server's `tools`: the
    constant of the read cost. (Identities, folders and the other kinds Letta cannot filter by
    tag are listed only by a stack that declares or holds some: the fleets have none.)"""

    def pages(n: int) -> int:
        return math.ceil(n / PAGE_SIZE) + 1

    listing = pages(agents) + pages(shared) + pages(tools)
    changed = math.ceil(agents / CHANGED_SHARE)
    return {
        # empty lists; one create each
        "cold_apply": (2 * pages(0) + pages(tools), shared + agents),
        "converged_plan": (listing, 0),
        "noop_apply": (listing, 0),
        "change_apply": (listing, 2 * changed),  # agent and persona descriptions
        "verify_plan": (listing, 0),
        "destroy": (listing, 2 * agents + shared),  # agents, their personas, shared blocks
    }[step]


# -- the server ---------------------------------------------------------------------------------


def healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/v1/health/", timeout=3) as r:
            return bool(json.load(r).get("status") == "ok")
    except (OSError, ValueError):
        return False


def ensure_server(port: int, data: Path, workers: int, db_pool: bool) -> dict[str, Any]:
    """Start the benchmark's own server unless it answers with the wanted configuration (it is
    restarted otherwise: it holds nothing but benchmark stacks). Returns its configuration."""
    base_url = f"http://127.0.0.1:{port}"
    wanted = {"workers": workers, "db_pool": db_pool}
    script = str(ROOT / "scripts" / "letta-server")
    env = {
        **os.environ,
        "LETTA_SERVER_PORT": str(port),
        "LETTA_SERVER_DATA": str(data),
        "LETTA_SERVER_WORKERS": str(workers),
        "LETTA_SERVER_DB_POOL": "1" if db_pool else "0",
    }
    if healthy(base_url):
        if server_config(data) == wanted:
            return wanted
        print(f"bench: restarting the server on {base_url} with {wanted}", file=sys.stderr)
        subprocess.run([script, "down"], env=env, check=True)
    print(f"bench: starting a Letta server on {base_url} (data in {data})", file=sys.stderr)
    subprocess.run([script, "up"], env=env, check=True)
    return server_config(data)


def server_tools(base_url: str) -> int:
    """How many tools the server has (all of them are listed by every plan)."""
    req = urllib.request.Request(
        f"{base_url}/v1/tools/?limit=100000", headers={"User-Agent": "letta-apply-bench"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return len(json.load(r))


def _proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) of one process, with its reaped children's when asked."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class ServerCpu:
    """CPU used by the Letta server process and by Postgres (postmaster and backends)."""

    def __init__(self, data: Path) -> None:
        self.letta = _read_pid(data / "run" / "letta.pid")
        self.postmaster = _read_pid(data / "pgdata" / "postmaster.pid")

    def sample(self) -> tuple[float, float]:
        letta = 0.0
        if self.letta:
            letta = _proc_cpu(self.letta) + sum(_proc_cpu(c) for c in _children(self.letta))
        pg = 0.0
        if self.postmaster:
            pg = _proc_cpu(self.postmaster, children=True)
            pg += sum(_proc_cpu(c) for c in _children(self.postmaster))
        return letta, pg


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def server_config(data: Path) -> dict[str, Any]:
    """The running server's uvicorn workers and whether it pools its database connections,
    from its environment."""
    pid = _read_pid(data / "run" / "letta.pid")
    try:
        items = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if pid else []
    except OSError:
        items = []
    env = dict(i.decode(errors="replace").split("=", 1) for i in items if b"=" in i)
    return {
        "workers": int(env.get("LETTA_UVICORN_WORKERS") or 1),
        "db_pool": env.get("LETTA_DISABLE_SQLALCHEMY_POOLING", "true").lower() == "false",
    }


# -- running letta-apply ------------------------------------------------------------------------

_COUNTS = re.compile(r"requests: (\d+) reads, (\d+) writes")
_LOCK = re.compile(r"stack lock: (\d+) reads, (\d+) writes")


def letta_apply(
    args: list[str], base_url: str, workdir: Path, cpu: ServerCpu, name: str
) -> tuple[int, float, int, int, float, float, float, float, str]:
    """Run one letta-apply process; return its exit code, wall time, request counts, peak RSS
    (MB), its CPU, the server's and Postgres's CPU meanwhile, and its stderr."""
    # The letta-apply next to this file, whichever is installed: a copy of the tree can be
    # benchmarked while the working tree changes.
    cmd = [sys.executable, "-m", "letta_apply.cli", *args, "--base-url", base_url, "-v"]
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    env = {k: v for k, v in os.environ.items() if k not in ("LETTA_API_KEY", "LETTA_PROJECT")}
    env["PYTHONPATH"] = str(ROOT)
    letta0, pg0 = cpu.sample()
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            # Stop it before the stack is destroyed, or it would go on creating behind the destroy.
            proc.terminate()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    letta1, pg1 = cpu.sample()
    stderr = err_path.read_text(errors="replace")
    m = _COUNTS.search(stderr)
    reads, writes = (int(m.group(1)), int(m.group(2))) if m else (-1, -1)
    return (
        proc.returncode,
        wall,
        reads,
        writes,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        letta1 - letta0,
        pg1 - pg0,
        stderr,
    )


def run_fleet(
    agents: int,
    shared: int,
    parallelism: int,
    base_url: str,
    cpu: ServerCpu,
    keep: bool,
    tools: int,
    runs: list[Run],
    kept: Kept | None = None,
) -> None:
    """Run every step on a new fleet (or, `kept`, on one an earlier run left with --keep: its
    cold apply is not run again); the Run joins `runs` at once, so that a run stopped half-way
    still reports the steps it made."""
    stack = kept.stack if kept else f"bench-{agents}x{shared}-p{parallelism}-{uuid.uuid4().hex[:8]}"
    # A kept fleet may hold the 10% change: the change step then takes it back (as many writes).
    base = bool(kept and kept.changed)
    run = Run(agents, shared, parallelism, stack)
    runs.append(run)
    par = ["--parallelism", str(parallelism)]
    with tempfile.TemporaryDirectory(prefix="letta-apply-bench-") as tmp:
        work = Path(tmp)
        path = work / "fleet.yaml"
        path.write_text(manifest(stack, agents, shared, changed=base))
        commands = {
            "cold_apply": ["apply", "-f", str(path), "--auto-approve", *par],
            "converged_plan": ["plan", "-f", str(path), "--detailed-exitcode"],
            "noop_apply": ["apply", "-f", str(path), "--auto-approve", *par],
            "change_apply": ["apply", "-f", str(path), "--auto-approve", *par],
            "verify_plan": ["plan", "-f", str(path), "--detailed-exitcode"],
            "destroy": ["destroy", "-f", str(path), "--auto-approve", *par],
        }
        destroyed = False
        try:
            for name in STEPS:
                if (name == "destroy" and keep) or (name == "cold_apply" and kept):
                    continue
                if name == "change_apply":
                    path.write_text(manifest(stack, agents, shared, changed=not base))
                code, wall, reads, writes, rss, ccpu, lcpu, pcpu, err = letta_apply(
                    commands[name], base_url, work, cpu, name
                )
                destroyed = destroyed or (name == "destroy" and code == 0)
                least_r, least_w = minimum(name, agents, shared, tools)
                lock = _LOCK.search(err)
                step = Step(
                    name, round(wall, 3), code, reads, writes, least_r, least_w,
                    round(rss, 1), round(ccpu, 2), round(lcpu, 2), round(pcpu, 2),
                    int(lock.group(1)) if lock else 0, int(lock.group(2)) if lock else 0,
                )  # fmt: skip
                run.steps.append(step)
                _progress(run, step)
                if code != 0:
                    tail = "\n".join(err.strip().splitlines()[-5:])
                    raise RuntimeError(f"{stack}: {name} exited {code}:\n{tail}")
        finally:
            if not destroyed and not keep:
                # A letta-apply stopped half-way may still hold the stack lock; the stack is
                # the benchmark's alone.
                cleanup = [*commands["destroy"], "--lock=false"]
                letta_apply(cleanup, base_url, work, cpu, "cleanup")
                for lock_id in _lock_records(base_url, stack):
                    letta_apply(["force-unlock", lock_id], base_url, work, cpu, "unlock")


def _lock_records(base_url: str, stack: str) -> list[str]:
    """Ids of the lock records a stopped letta-apply left on the stack."""
    query = urllib.parse.urlencode({"tags": f"letta-apply-lock:{stack}", "limit": 1000})
    req = urllib.request.Request(
        f"{base_url}/v1/blocks/?{query}", headers={"User-Agent": "letta-apply-bench"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return [b["id"] for b in json.load(r)]


def _progress(run: Run, s: Step) -> None:
    print(
        f"bench: {run.agents}x{run.shared_blocks} -p {run.parallelism} {s.name}: "
        f"{s.wall_s:.1f}s, {s.reads} reads, {s.writes} writes",
        file=sys.stderr,
        flush=True,
    )


# -- output -------------------------------------------------------------------------------------


def table(runs: list[Run]) -> str:
    head = (
        f"{'fleet':>8} {'-p':>3} {'step':<15} {'wall s':>8} {'reads':>6} {'writes':>6} "
        f"{'min r':>6} {'min w':>6} {'ratio':>6} {'rss MB':>7} {'srv cpu':>8} {'pg cpu':>7}"
    )
    head += f" {'ms/write':>9} {'floor s':>7}"
    lines = [head, "-" * len(head)]
    for r in runs:
        for s in r.steps:
            lines.append(
                f"{f'{r.agents}x{r.shared_blocks}':>8} {r.parallelism:>3} {s.name:<15} "
                f"{s.wall_s:>8.2f} {s.reads:>6} {s.writes:>6} {s.min_reads:>6} "
                f"{s.min_writes:>6} {s.ratio:>6.2f} {s.peak_rss_mb:>7.1f} "
                f"{s.server_cpu_s:>8.2f} {s.postgres_cpu_s:>7.2f} "
                f"{_per_write(s):>9} {s.floor_s:>7.2f}"
            )
    return "\n".join(lines)


def _per_write(s: Step) -> str:
    """The server's CPU (Letta + Postgres) per write, in ms: what a created resource costs."""
    if not s.writes:
        return "-"
    return f"{1000 * s.server_cpu_s / s.writes:.0f}+{1000 * s.postgres_cpu_s / s.writes:.0f}"


def speedups(runs: list[Run], workers: int) -> list[dict[str, Any]]:
    """Cold apply at the highest parallelism against parallelism 1, per fleet size, with the
    bound the machine puts on it: the CPU one write costs (letta-apply, the Letta server and
    Postgres together) spread over every core, and the server's own share over its worker
    processes (one Python process uses one core at most)."""
    out = []
    by_size: dict[tuple[int, int], dict[int, Run]] = {}
    for r in runs:
        by_size.setdefault((r.agents, r.shared_blocks), {})[r.parallelism] = r
    cores = os.cpu_count() or 1
    for (agents, shared), by_p in sorted(by_size.items()):
        one = next((s for s in by_p.get(1, Run(0, 0, 0, "")).steps if s.name == "cold_apply"), None)
        top = max(by_p)
        best = next((s for s in by_p[top].steps if s.name == "cold_apply"), None)
        if one is None or best is None or top == 1:
            continue
        cpu = one.client_cpu_s + one.server_cpu_s + one.postgres_cpu_s
        floor = max(cpu / cores, one.server_cpu_s / max(1, workers))
        out.append(
            {
                "agents": agents,
                "shared_blocks": shared,
                "parallelism": top,
                "cold_apply_speedup": round(one.wall_s / best.wall_s, 2),
                "wall_ms_per_write_p1": round(1000 * one.wall_s / one.writes, 1),
                "cpu_ms_per_write_p1": {
                    "letta_apply": round(1000 * one.client_cpu_s / one.writes, 1),
                    "letta_server": round(1000 * one.server_cpu_s / one.writes, 1),
                    "postgres": round(1000 * one.postgres_cpu_s / one.writes, 1),
                },
                "cpu_cores_busy": {
                    "p1": round(cpu / one.wall_s, 2),
                    f"p{top}": round(
                        (best.client_cpu_s + best.server_cpu_s + best.postgres_cpu_s) / best.wall_s,
                        2,
                    ),
                },
                "speedup_ceiling": round(one.wall_s / floor, 2),
            }
        )
    return out


STEP_NAMES = {
    "cold_apply": "cold apply",
    "converged_plan": "plan, converged",
    "noop_apply": "apply, no change",
    "change_apply": "apply, 10% changed",
    "destroy": "destroy",
}


def _md_per_write(st: Mapping[str, Any]) -> str:
    if not st["writes"]:
        return "-"
    letta, pg = (1000 * st[k] / st["writes"] for k in ("server_cpu_s", "postgres_cpu_s"))
    return f"{letta:.0f} + {pg:.0f}"


def _md_floor(st: Mapping[str, Any]) -> str:
    return f"{st.get('floor_s', 0.0):.1f}"


def markdown(doc: dict[str, Any]) -> str:
    """The results as a markdown table (for the README): one row per fleet and step, wall time
    at each parallelism, the request counts and their ratio to the minimum."""
    by_step: dict[tuple[int, int, str], dict[int, dict[str, Any]]] = {}
    pars: set[int] = set()
    for r in doc["runs"]:
        pars.add(r["parallelism"])
        for st in r["steps"]:
            key = (r["agents"], r["shared_blocks"], st["name"])
            by_step.setdefault(key, {})[r["parallelism"]] = st
    cols = sorted(pars)
    head = (
        "| fleet (agents x shared blocks) | step | "
        + " | ".join(f"wall s, -p {p}" for p in cols)
        + " | reads | writes | minimum r + w | ratio | stack lock r + w | peak RSS MB |"
        + " server CPU ms per write, Letta + Postgres | CPU floor s |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    order = list(STEP_NAMES)
    for (agents, shared, name), per_p in sorted(
        by_step.items(),
        key=lambda kv: (kv[0][0], order.index(kv[0][2]) if kv[0][2] in order else 9),
    ):
        if name not in STEP_NAMES:
            continue
        any_st = per_p[max(per_p)]
        walls = " | ".join(f"{per_p[p]['wall_s']:.1f}" if p in per_p else "" for p in cols)
        rss = max(st["peak_rss_mb"] for st in per_p.values())
        lines.append(
            f"| {agents} x {shared} | {STEP_NAMES[name]} | {walls} | {any_st['reads']} | "
            f"{any_st['writes']} | {any_st['min_reads']} + {any_st['min_writes']} | "
            f"{any_st['ratio']:.2f} | {any_st.get('lock_reads', 0)} + "
            f"{any_st.get('lock_writes', 0)} | {rss:.0f} | {_md_per_write(any_st)} | "
            f"{_md_floor(any_st)} |"
        )
    return "\n".join(lines)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _run_json(r: Run) -> dict[str, Any]:
    doc = {k: v for k, v in asdict(r).items() if k != "steps"}
    doc["steps"] = [
        {**asdict(s), "ratio": round(s.ratio, 3), "floor_s": round(s.floor_s, 2)} for s in r.steps
    ]
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="AGENTSxSHARED,... (%(default)s)")
    p.add_argument("--parallelism", default="1,8", help="comma-separated (%(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="server port on 127.0.0.1")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="server data directory")
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    p.add_argument(
        "--db-pool",
        action="store_true",
        help="server keeps a pool of Postgres connections (Letta's default opens one per session)",
    )
    p.add_argument("--out", type=Path, help="JSON results (default bench/results/<time>.json)")
    p.add_argument("--keep", action="store_true", help="leave the stacks on the server")
    p.add_argument(
        "--stack",
        help="run the steps after the cold apply on this fleet, left by a run with --keep "
        "(one size and one parallelism; the fleet holds the 10%% change unless --unchanged)",
    )
    p.add_argument("--unchanged", action="store_true", help="the --stack fleet lacks the change")
    p.add_argument("--note", default="", help="free text stored with the results")
    p.add_argument("--markdown", type=Path, metavar="JSON", help="print results as markdown")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    # Stopped by a signal, the benchmark still destroys the stack it was working on (SIGINT is
    # ignored in a background job unless a handler is set).
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    sizes = [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",") if s]
    if any(len(s) != 2 or s[0] < 1 or s[1] < 1 for s in sizes):
        p.error("--sizes: AGENTSxSHARED, both at least 1, e.g. 20x2,200x10")
    pars = [int(n) for n in args.parallelism.split(",")]
    kept = Kept(args.stack, not args.unchanged) if args.stack else None
    if kept and (len(sizes) != 1 or len(pars) != 1):
        p.error("--stack: give the fleet's one size and one parallelism")
    base_url = f"http://127.0.0.1:{args.port}"  # the benchmark never talks to anything else
    config = ensure_server(args.port, args.data, args.workers, args.db_pool)
    workers = int(config["workers"])
    cpu = ServerCpu(args.data)
    tools = server_tools(base_url)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()
    runs: list[Run] = []
    error = None
    try:
        for agents, shared in sizes:
            for par in pars:
                run_fleet(agents, shared, par, base_url, cpu, args.keep, tools, runs, kept)
    except (RuntimeError, KeyboardInterrupt) as e:
        error = str(e) or type(e).__name__
        print(f"bench: stopped: {error}", file=sys.stderr)
    doc = {
        "letta_apply": __version__,
        "started": started,
        "base_url": base_url,
        "page_size": PAGE_SIZE,
        "server_tools": tools,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "server": config,
        },
        "note": args.note,
        "error": error,
        "runs": [_run_json(r) for r in runs],
        "cold_apply_speedup": speedups(runs, workers),
    }
    out = args.out or ROOT / "bench" / "results" / f"{started.replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(runs))
    for s in doc["cold_apply_speedup"]:
        c = s["cpu_ms_per_write_p1"]
        print(
            f"cold apply {s['agents']}x{s['shared_blocks']}: -p {s['parallelism']} is "
            f"{s['cold_apply_speedup']}x faster than -p 1. At -p 1 a write takes "
            f"{s['wall_ms_per_write_p1']} ms and costs {c['letta_server']} ms of Letta server "
            f"CPU, {c['postgres']} ms of Postgres, {c['letta_apply']} ms of letta-apply; on "
            f"{os.cpu_count()} cores with {workers} server worker(s) that caps the speedup near "
            f"{s['speedup_ceiling']}x. Cores busy: {s['cpu_cores_busy']}."
        )
    print(f"results: {out}")
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
