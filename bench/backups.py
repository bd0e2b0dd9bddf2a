"""What backups cost: `destroy` of an N-agent stack with backups (the default) and with
`--no-backup`, each run as a separate `letta-apply` process against a real Letta server, and what
a plan that deletes N agents reads to say what they hold.

Each agent has a persona it wrote to (as Letta's memory tools do), the two messages of its
initial message sequence and the system message, and a shared block. Per trial and mode the
stack is made, worked on, then destroyed; the destroy's wall time and the requests it counted
(`-v`) are recorded, and the backup folder's size. The plan's extra cost is measured in-process:
the same destroy plan with and without its memory counts.

    .venv/bin/python bench/backups.py --base-url http://127.0.0.1:8285 --agents 50 --trials 3

It talks only to the server it is given (127.0.0.1) and starts none; every stack it makes has a
unique name and is destroyed. Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from letta_apply import LettaClient, Stack, __version__  # noqa: E402
from letta_apply.pipeline import plan_for  # noqa: E402


def fleet(stack: str, n: int) -> str:
    lines = [f"version: 1\nstack: {stack}\nblocks:\n  org: {{value: shared}}\nagents:"]
    for i in range(n):
        lines.append(
            f"  a{i}:\n    name: {stack}-a{i}\n    model: letta/letta-free\n"
            "    embedding: letta/letta-free\n"
            "    initial_message_sequence: [{role: user, content: hello}, "
            "{role: assistant, content: hi}]\n"
            f"    memory_blocks: [{{label: persona, value: agent {i}}}]\n    blocks: [org]"
        )
    return "\n".join(lines) + "\n"


def letta_apply(*argv: str, cwd: Path, env: dict[str, str]) -> tuple[float, int, int, str]:
    """Run one letta-apply process: its wall time, reads and writes (-v), and stderr."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "letta_apply.cli", *argv, "-v"], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"letta-apply {' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    m = re.search(r"requests: (\d+) reads, (\d+) writes", proc.stderr)
    assert m, proc.stderr
    return wall, int(m.group(1)), int(m.group(2)), proc.stderr


def made_and_worked(base_url: str, path: Path, stack: str, env: dict[str, str]) -> None:
    letta_apply("apply", "-f", str(path), "--auto-approve", "--base-url", base_url,
                cwd=path.parent, env=env)  # fmt: skip
    with httpx.Client(base_url=base_url, timeout=60) as api:
        agents = api.get("/v1/agents/", params={"tags": [f"letta-apply:{stack}"],
                                                 "limit": 1000}).json()  # fmt: skip
        for a in agents:
            written = {"value": f"{a['name']}: the user likes tea"}
            route = f"/v1/agents/{a['id']}/core-memory/blocks/persona"
            api.patch(route, json=written).raise_for_status()


def plan_cost(base_url: str, text: str) -> dict[str, float]:
    """A destroy plan's wall time and reads, with and without what its deletes hold."""
    stack = Stack.from_dict(yaml.safe_load(text))
    out: dict[str, float] = {}
    for memory in (False, True):
        with LettaClient(base_url) as client:
            started = time.perf_counter()
            plan_for(client, stack.desired, destroy=True, memory=memory)
            key = "with_memory" if memory else "without_memory"
            out[f"{key}_s"] = round(time.perf_counter() - started, 3)
            out[f"{key}_reads"] = client.reads
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("LETTA_BASE_URL", "http://127.0.0.1:8285"))
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "backups.json"))
    args = ap.parse_args()
    n = args.agents
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs: list[dict[str, Any]] = []
    plans: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for trial in range(args.trials):
            for mode in ("backup", "no-backup"):
                stack = f"bench-bk-{uuid.uuid4().hex[:8]}"
                path = work / f"{stack}.yaml"
                text = fleet(stack, n)
                path.write_text(text)
                made_and_worked(args.base_url, path, stack, env)
                if mode == "backup":
                    plans.append(plan_cost(args.base_url, text))
                backups = work / "backups" / stack
                flags = ["--no-backup"] if mode == "no-backup" else ["--backup-dir", str(backups)]
                wall, reads, writes, _ = letta_apply(
                    "destroy", "-f", str(path), "--auto-approve", "--base-url", args.base_url,
                    *flags, cwd=work, env=env,
                )  # fmt: skip
                files = [p for p in backups.rglob("*") if p.is_file()]
                runs.append({
                    "trial": trial, "mode": mode, "wall_s": round(wall, 3), "reads": reads,
                    "writes": writes, "backup_files": len(files),
                    "backup_bytes": sum(p.stat().st_size for p in files),
                })  # fmt: skip
                print(json.dumps(runs[-1]), flush=True)
    with_ = [r for r in runs if r["mode"] == "backup"]
    without = [r for r in runs if r["mode"] == "no-backup"]
    modes = (("backup", with_), ("no-backup", without))
    med = {m: statistics.median(r["wall_s"] for r in rs) for m, rs in modes}
    summary = {
        "agents": n,
        "destroy_wall_s_median": med,
        "added_s_per_agent": round((med["backup"] - med["no-backup"]) / n, 4),
        "added_reads_per_agent": round(
            (
                statistics.median(r["reads"] for r in with_)
                - statistics.median(r["reads"] for r in without)
            )
            / n,
            2,
        ),
        "backup_kib_per_agent": round(
            statistics.median(r["backup_bytes"] for r in with_) / n / 1024, 1
        ),
        "plan": {k: statistics.median(p[k] for p in plans) for k in plans[0]},
    }
    doc = {
        "letta_apply_version": __version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "runs": runs, "summary": summary,
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
