"""The composite action of action.yml, run the way GitHub's runner runs it, for the tests: its
steps in order, each `if:` evaluated, `${{ }}` expressions in inputs, `env:`, `with:` and
`working-directory` replaced, `shell: bash` as the runner starts it, and the GITHUB_OUTPUT,
GITHUB_PATH and GITHUB_STEP_SUMMARY files. Steps that use another action (setup-python,
upload-artifact) are not run: they are recorded as such, and the test stands in for them.

Only the expressions the action uses are understood (references, `==`, `!=`, `&&`, and
`always()`, which runs a step after a failed one, as on GitHub); anything else is an error, so
that the action stays testable."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_REFERENCE = r"[a-z_]+(?:\.[A-Za-z0-9_-]+)*"
_TERM = re.compile(rf"({_REFERENCE})\s*(==|!=)\s*'([^']*)'")
# GitHub's own command line for `shell: bash`.
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


@dataclass
class Step:
    name: str
    status: str  # "ran", "skipped" (its `if:` was false), "uses" (another action), "left out"
    code: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class Run:
    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return all(s.code == 0 for s in self.steps)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    @property
    def log(self) -> str:
        """Everything the steps printed, as a job log shows it."""
        return "".join(s.stdout + s.stderr for s in self.steps)


class Context:
    """What expressions can refer to: inputs, github, secrets, steps."""

    def __init__(self, github: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        self.data: dict[str, Any] = {
            "github": github, "secrets": secrets, "inputs": {}, "steps": {},
        }  # fmt: skip

    def value(self, reference: str) -> str:
        if not re.fullmatch(_REFERENCE, reference):
            raise ValueError(f"expression not understood by the test runner: {reference!r}")
        node: Any = self.data
        for part in reference.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, bool):
            return str(node).lower()
        return "" if node is None else str(node)

    def expand(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: self.value(m.group(1)), text)

    def condition(self, expression: str) -> bool:
        expression = EXPRESSION.sub(lambda m: m.group(1), expression)
        result = True
        for term in expression.split("&&"):
            if term.strip() == "always()":
                continue
            m = _TERM.fullmatch(term.strip())
            if not m:
                raise ValueError(f"condition not understood by the test runner: {term!r}")
            left, op, right = m.groups()
            result &= (self.value(left) == right) == (op == "==")
        return result


def run_action(
    given: Mapping[str, str],
    *,
    github: Mapping[str, Any],
    secrets: Mapping[str, str],
    cwd: Path,
    env: Mapping[str, str],
    leave_out: tuple[str, ...] = ("install",),
) -> Run:
    """Run the action with the inputs `given` (expressions in them expanded, as a workflow's
    `with:` is) in `cwd`. Steps named in `leave_out` are not run (the test installed letta-apply
    itself). Stops at the first failing step, as the runner does."""
    ctx = Context(github, secrets)
    inputs = {n: ctx.expand(str(spec.get("default", ""))) for n, spec in ACTION["inputs"].items()}
    unknown = set(given) - set(inputs)
    if unknown:
        raise ValueError(f"inputs the action does not declare: {sorted(unknown)}")
    inputs.update({n: ctx.expand(str(v)) for n, v in given.items()})
    missing = [n for n, spec in ACTION["inputs"].items() if spec.get("required") and not inputs[n]]
    if missing:
        raise ValueError(f"required inputs missing: {missing}")
    ctx.data["inputs"] = inputs

    run = Run()
    temp = Path(tempfile.mkdtemp(prefix="runner-temp-", dir=cwd.parent))  # one per job
    summary, path_file = temp / "summary.md", temp / "path"
    summary.touch()
    path_file.touch()
    failed = False
    for spec in ACTION["runs"]["steps"]:
        name = spec["name"]
        always = "always()" in str(spec.get("if", ""))
        if (failed and not always) or ("if" in spec and not ctx.condition(spec["if"])):
            run.steps.append(Step(name, "skipped"))
            continue
        if "uses" in spec:
            for value in (spec.get("with") or {}).values():
                ctx.expand(str(value))  # every expression must still be one it understands
            run.steps.append(Step(name, "uses"))
            continue
        if name in leave_out:
            run.steps.append(Step(name, "left out"))
            continue
        output = temp / f"output-{len(run.steps)}"
        output.touch()
        added = [p for p in path_file.read_text().splitlines() if p]
        step_env = {
            **env,
            "PATH": os.pathsep.join([*reversed(added), env.get("PATH", "")]),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_PATH": str(path_file),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_ACTION_PATH": str(ROOT),
            "RUNNER_TEMP": str(temp),
            **{k: ctx.expand(str(v)) for k, v in (spec.get("env") or {}).items()},
        }
        workdir = cwd / ctx.expand(str(spec.get("working-directory", ".")))
        script = temp / f"step-{len(run.steps)}.sh"
        script.write_text(spec["run"])
        assert spec["shell"] == "bash"
        proc = subprocess.run(
            [*BASH, str(script)], cwd=workdir, env=step_env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        run.steps.append(Step(name, "ran", proc.returncode, proc.stdout, proc.stderr))
        if "id" in spec:
            outputs = dict(
                line.split("=", 1) for line in output.read_text().splitlines() if "=" in line
            )
            ctx.data["steps"][spec["id"]] = {"outputs": outputs}
        failed = failed or proc.returncode != 0
    run.outputs = {n: ctx.expand(str(o["value"])) for n, o in ACTION["outputs"].items()}
    run.summary = summary.read_text()
    return run


# A stand-in for the GitHub CLI: what the action asks of GitHub (pull-request comments, the plan
# artifact of an earlier run), kept in a JSON file named by $FAKE_GH_STATE, every call recorded.
FAKE_GH = r"""
import json, os, re, shutil, sys

state_file = os.environ["FAKE_GH_STATE"]
with open(state_file) as f:
    state = json.load(f)
argv = sys.argv[1:]
state["calls"].append(argv)


def option(name):
    return argv[argv.index(name) + 1] if name in argv else None


def body():
    field = next(a for a in argv if a.startswith("body=@"))
    with open(field.removeprefix("body=@"), encoding="utf-8") as f:
        return f.read()


code = 0
if argv[:1] == ["api"] and option("--method") is None:
    marker = re.search(r'startswith\("(.*?)"\)', option("--jq")).group(1)
    for c in state["comments"]:
        if c["body"].startswith(marker):
            print(c["id"])
elif argv[:1] == ["api"] and option("--method") == "POST":
    state["comments"].append({"id": 1000 + len(state["comments"]), "body": body()})
elif argv[:1] == ["api"] and option("--method") == "PATCH":
    cid = int(argv[argv.index("PATCH") + 1].rsplit("/", 1)[1])
    next(c for c in state["comments"] if c["id"] == cid)["body"] = body()
elif argv[:2] == ["run", "list"]:
    print(state.get("run_id", ""))
elif argv[:2] == ["run", "download"]:
    shutil.copy(state["artifacts"][option("--name")], option("--dir"))
else:
    print(f"fake gh: not understood: {argv}", file=sys.stderr)
    code = 1
with open(state_file, "w") as f:
    json.dump(state, f)
sys.exit(code)
"""
