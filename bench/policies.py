"""What policy rules add to a plan: N rules over a plan of A agents (README, Policies).

It builds a manifest of A agents (two memory blocks each, tags, a model) and its plan (every
agent created, as a first apply plans it: no server needed), then times `check_plan` with N rules
of the shapes the starter pack has (membership in a list, a cap, a comprehension over tags, the
stack's template counts, the planned change), `--trials` times. Loading and compiling the rules is
timed apart.

    .venv/bin/python bench/policies.py                              # 100 rules, 1000 agents
    .venv/bin/python bench/policies.py --rules 100 --agents 1000 --out bench/results/policies.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from letta_apply import __version__  # noqa: E402
from letta_apply.core.changes import Change, FieldDiff, Plan  # noqa: E402
from letta_apply.pipeline import load_manifest  # noqa: E402
from letta_apply.policy import check_plan, load_policies  # noqa: E402

SHAPES = [
    ("error", 'resource.model in ["letta/letta-free", "openai/gpt-4o-mini", "x/{i}"]'),
    ("error", "!has(resource.context_window_limit) || resource.context_window_limit <= {i}000"),
    ("warning", 'has(resource.tags) && resource.tags.exists(t, t.startsWith("owner:") || {i} < 0)'),
    ("error", 'template == "" || stack.templates[template] <= {i}00'),
    ("error", 'change.action != "delete" || change.allow_memory_loss || {i} > 0'),
]


def manifest(agents: int) -> str:
    lines = ["version: 1", "stack: bench-policies", "agents:"]
    for i in range(agents):
        lines += [
            f"  agent{i:05d}:",
            "    model: letta/letta-free",
            "    embedding: letta/letta-free",
            f"    tags: [owner:team{i % 7}, tier:{i % 3}]",
            "    memory_blocks:",
            f"      - {{label: persona, value: I am agent {i}}}",
            "      - {label: human, value: Nothing known yet}",
        ]
    return "\n".join(lines) + "\n"


def rules(n: int, *, violating: bool = False) -> str:
    out = ["version: 1", "rules:"]
    for i in range(n):
        severity, condition = SHAPES[i % len(SHAPES)]
        if violating and i % len(SHAPES) == 2:
            condition = condition.replace('"owner:"', '"owner:{i}"')
        out += [
            f"  - id: rule-{i:03d}",
            "    applies_to: {kinds: [agent]}",
            f"    condition: {json.dumps(condition.format(i=i + 1))}",
            f"    severity: {severity}",
            '    message: "{{address}} breaks rule ' + str(i) + '"',
        ]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument(
        "--violating", action="store_true",
        help="rules a fifth of which every agent breaks (the cost of 20,000 messages)",
    )  # fmt: skip
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "policies.json"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        m, p = Path(tmp, "m.yaml"), Path(tmp, "rules.yaml")
        m.write_text(manifest(args.agents))
        p.write_text(rules(args.rules, violating=args.violating))
        desired = load_manifest(str(m))
        plan = Plan(
            desired.stack,
            changes=tuple(
                Change(a, "create", diffs=(FieldDiff("model", None, "letta/letta-free"),))
                for a in desired.addresses
            ),
        )
        start = time.perf_counter()
        policies = load_policies([str(p)])
        compile_s = time.perf_counter() - start
    runs = []
    for trial in range(args.trials):
        start, cpu = time.perf_counter(), time.process_time()
        checked = check_plan(plan, desired, policies)
        runs.append(
            {
                "trial": trial,
                "wall_s": round(time.perf_counter() - start, 4),
                "cpu_s": round(time.process_time() - cpu, 4),
                "violations": len(checked.violations),
            }
        )
    wall = [r["wall_s"] for r in runs]
    doc = {
        "letta_apply_version": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "rules": args.rules,
        "agents": args.agents,
        "violating": args.violating,
        "compile_s": round(compile_s, 4),
        "median_wall_s": statistics.median(wall),
        "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "max_wall_s": max(wall),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(
        f"{args.rules} rules x {args.agents} agents: check_plan median {doc['median_wall_s']} s "
        f"wall, {doc['median_cpu_s']} s CPU (max {doc['max_wall_s']} s wall), rules loaded and "
        f"compiled in {doc['compile_s']} s; "
        f"{runs[0]['violations']} violations; load {doc['load_before']} -> {doc['load_after']}"
    )


if __name__ == "__main__":
    main()
