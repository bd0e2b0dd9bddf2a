"""What `letta-apply validate` costs on a large one-stack fleet: no server needed.

It writes a manifest of N agents and S shared blocks (each agent attached to up to three shared
blocks and holding two memory blocks of its own, persona and human: about 2.1 MB of YAML at 10,000
agents), then runs `letta-apply validate -f` on it as a separate process, as a pipeline runs it,
`--trials` times, recording wall time, CPU time and peak RSS of each run. Each size runs twice:
valid, and with a mistake on the last agent's last line (the cost of reporting a located error;
the bench checks that error's file:line:col).

    .venv/bin/python bench/validate.py                        # 1000x100 and 10000x100, 3 trials
    .venv/bin/python bench/validate.py --sizes 10000x100 --trials 5 --out bench/results/x.json

Python compiles each module of letta-apply when it imports it, unless it finds the compiled
bytecode it saved before; an installed package has it (pip compiles it at install). The runs
inherit the environment: with PYTHONDONTWRITEBYTECODE set, every run compiles letta-apply again
(about 0.2 s). `--bytecode-cache` keeps the bytecode in a folder of the bench's own, written by a
first run that is not counted, as an installed package would have it.

Results: a table on stdout and JSON in bench/results/ (the machine's load before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from letta_apply import __version__  # noqa: E402

DEFAULT_SIZES = "1000x100,10000x100"
ATTACHED = 3  # shared blocks per agent


def manifest(agents: int, shared: int, *, error: bool = False) -> tuple[str, int, int]:
    """The fleet's YAML, and the line and column where `error` put its mistake (0, 0 without):
    the last agent's shared blocks name one that is not defined."""
    lines = ["version: 1", "stack: bench-validate", "blocks:"]
    for j in range(shared):
        lines += [
            f"  shared{j:03d}:",
            f"    description: Shared block {j} of the benchmark fleet.",
            f"    value: Shared knowledge number {j}, written by the benchmark.",
        ]
    lines.append("agents:")
    per_agent = min(ATTACHED, shared)
    where = (0, 0)
    for i in range(agents):
        attached = [f"shared{(i + k) % shared:03d}" for k in range(per_agent)]
        if error and i == agents - 1:
            attached[-1] = "no_such_block"
        lines += [
            f"  agent{i:05d}:",
            "    model: letta/letta-free",
            "    embedding: letta/letta-free",
            f"    memory_blocks: [{{label: persona, value: I am agent {i}.}},"
            f" {{label: human, value: The user of agent {i}.}}]",
            f"    blocks: [{', '.join(attached)}]",
        ]
        if error and i == agents - 1:
            where = (len(lines), lines[-1].index("no_such_block") + 1)
    return "\n".join(lines) + "\n", *where


def run_validate(path: Path, pycache: Path | None = None) -> tuple[float, float, float, int, str]:
    """One `letta-apply validate` process: wall seconds, CPU seconds (user + system: what a
    busy machine does not inflate), peak RSS MB, exit code, its output. With `pycache`, the
    compiled bytecode is kept there (and read from there)."""
    path_ = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path_, "NO_COLOR": "1"}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    argv = [sys.executable, "-m", "letta_apply.cli", "validate", "-f", str(path)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=path.parent
    )
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode, out.decode("utf-8", "replace")


def bench_size(
    agents: int, shared: int, trials: int, error: bool, tmp: Path, pycache: Path | None
) -> dict[str, Any]:
    text, line, col = manifest(agents, shared, error=error)
    path = tmp / f"fleet-{agents}x{shared}{'-error' if error else ''}.yaml"
    path.write_text(text, encoding="utf-8")
    if pycache is not None and not any(pycache.iterdir()):
        run_validate(path, pycache)  # writes the bytecode: not counted
    runs = [run_validate(path, pycache) for _ in range(trials)]
    codes = {code for _, _, _, code, _ in runs}
    output = runs[-1][4].strip()
    row: dict[str, Any] = {
        "agents": agents,
        "shared_blocks": shared,
        "error": error,
        "yaml_bytes": len(text.encode("utf-8")),
        "wall_s": [round(w, 3) for w, _, _, _, _ in runs],
        "wall_s_median": round(statistics.median(w for w, _, _, _, _ in runs), 3),
        "cpu_s": [round(c, 3) for _, c, _, _, _ in runs],
        "cpu_s_median": round(statistics.median(c for _, c, _, _, _ in runs), 3),
        "peak_rss_mb_max": round(max(r for _, _, r, _, _ in runs), 1),
        "exit_codes": sorted(codes),
        "output_first_line": output.splitlines()[0] if output else "",
    }
    if error:  # the located error must point at the mistake, wherever the file is written
        expected = f"{path.name}:{line}:{col}:"
        row["error_located"] = expected in output
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="AGENTSxSHARED,... (%(default)s)")
    p.add_argument("--trials", type=int, default=3, help="runs per size (%(default)s)")
    p.add_argument("--no-error", action="store_true", help="skip the one-error-at-the-end runs")
    p.add_argument("--out", type=Path, help="JSON results (default bench/results/<time>.json)")
    p.add_argument("--note", default="", help="free text stored with the results")
    p.add_argument(
        "--bytecode-cache",
        action="store_true",
        help="keep the compiled bytecode between runs, as an installed package has it",
    )
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        for size in args.sizes.split(","):
            agents, shared = (int(x) for x in size.split("x"))
            for error in (False,) if args.no_error else (False, True):
                pycache = Path(tmp) / "pycache" if args.bytecode_cache else None
                if pycache is not None:
                    pycache.mkdir(exist_ok=True)
                row = bench_size(agents, shared, args.trials, error, Path(tmp), pycache)
                rows.append(row)
                print(
                    f"{agents:>6} x {shared:<4} {'error' if error else 'valid':5} "
                    f"{row['yaml_bytes'] / 1e6:5.2f} MB  wall median {row['wall_s_median']:6.2f} s "
                    f"{row['wall_s']}  CPU median {row['cpu_s_median']:6.2f} s  "
                    f"peak RSS {row['peak_rss_mb_max']:6.1f} MB  "
                    f"exit {row['exit_codes']}"
                    + (f"  located {row['error_located']}" if error else ""),
                    flush=True,
                )
    doc = {
        "letta_apply": __version__,
        "started": started,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        # Whether the runs kept letta-apply's compiled bytecode (--bytecode-cache), or compiled
        # it each time (they inherited PYTHONDONTWRITEBYTECODE).
        "bytecode_cache": args.bytecode_cache or not os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "note": args.note,
        "rows": rows,
    }
    out = args.out or ROOT / "bench" / "results" / f"validate-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
