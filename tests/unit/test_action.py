"""The GitHub Action (action.yml): a composite action whose inputs reach its scripts only through
environment variables (no `${{ }}` inside a script: no injection, no secret in a command line),
every input used, every output written, and the example workflow using it at this version.
tests/integration/test_pipelines.py runs its steps against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from letta_apply import Stack
from letta_apply.version import __version__
from tests import actionrun
from tests.actionrun import ACTION, EXPRESSION
from tests.fakes import FakeLetta
from tests.helpers import SEED

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
STEPS: list[dict[str, Any]] = ACTION["runs"]["steps"]
SCRIPTS = [s for s in STEPS if "run" in s]


def _repository() -> str:
    m = re.search(
        r'^Repository = "https://github.com/(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M
    )
    assert m
    return m.group(1)


USES = f"{_repository()}@v{__version__}"


def _expressions(node: Any) -> list[str]:
    """Every `${{ }}` expression (and bare `if:` condition) below `node`."""
    if isinstance(node, dict):
        found = [e for k, v in node.items() for e in _expressions(v) if k != "if"]
        if isinstance(node.get("if"), str):
            found.append(node["if"])
        return found
    if isinstance(node, list):
        return [e for v in node for e in _expressions(v)]
    return EXPRESSION.findall(node) if isinstance(node, str) else []


def test_action_is_composite_and_every_script_runs_in_bash() -> None:
    assert ACTION["runs"]["using"] == "composite"
    assert SCRIPTS
    for step in SCRIPTS:
        assert step["shell"] == "bash", step["name"]


@pytest.mark.parametrize("step", SCRIPTS, ids=lambda s: s["name"])
def test_no_expression_is_interpolated_into_a_script(step: dict[str, Any]) -> None:
    """`${{ inputs.x }}` in a script is pasted into the shell code before it runs: a value
    could become a command, and a secret would show in the step's command line."""
    assert "${{" not in step["run"], step["name"]


def test_the_api_key_goes_only_to_the_step_that_needs_it_through_its_environment() -> None:
    users = [s["name"] for s in STEPS if "inputs.api-key" in yaml.safe_dump(s)]
    assert users == ["run"]
    (run,) = [s for s in STEPS if s["name"] == "run"]
    assert run["env"]["INPUT_API_KEY"] == "${{ inputs.api-key }}"
    assert "unset INPUT_API_KEY" in run["run"]
    # Printed nowhere: the scripts only hand it to the variable letta-apply reads.
    allowed = {
        'if [ -n "$INPUT_API_KEY" ]; then export LETTA_API_KEY="$INPUT_API_KEY"; fi',
        "unset INPUT_API_KEY",
    }
    for step in SCRIPTS:
        for line in step["run"].splitlines():
            assert "API_KEY" not in line or line.strip() in allowed, line


def test_every_input_is_used_and_every_reference_is_declared() -> None:
    used = {e for e in _expressions(ACTION["runs"]) if "inputs." in e}
    names = {n for e in used for n in re.findall(r"inputs\.([A-Za-z0-9_-]+)", e)}
    assert names == set(ACTION["inputs"])


def test_outputs_come_from_steps_that_write_them() -> None:
    ids = {s["id"]: s for s in STEPS if "id" in s}
    for name, output in ACTION["outputs"].items():
        (ref,) = EXPRESSION.findall(output["value"])
        m = re.fullmatch(r"steps\.([a-z-]+)\.outputs\.([a-z-]+)", ref)
        assert m, ref
        step, key = m.groups()
        assert f'echo "{key}=' in ids[step]["run"], name
    for e in _expressions(ACTION["runs"]):
        for step, key in re.findall(r"steps\.([a-z-]+)\.outputs\.([a-z-]+)", e):
            assert f'echo "{key}=' in ids[step]["run"], e


@pytest.mark.parametrize("step", SCRIPTS, ids=lambda s: s["name"])
def test_every_script_is_valid_bash(step: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "step.sh"
    path.write_text(step["run"])
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_example_workflow_uses_the_action_at_this_version() -> None:
    for name, job in WORKFLOW["jobs"].items():
        (step,) = [s for s in job["steps"] if "letta-apply" in s.get("uses", "")]
        assert step["uses"] == USES, name
        assert set(step["with"]) <= set(ACTION["inputs"]), name
        required = {n for n, spec in ACTION["inputs"].items() if spec.get("required")}
        assert required <= set(step["with"]), name
        assert step["with"]["mode"] == name  # the jobs are named after the modes
        assert step["with"]["api-key"] == "${{ secrets.LETTA_API_KEY }}"
        assert not any("run" in s for s in job["steps"]), "the action runs letta-apply"
    # apply fetches the plan artifact of the pull request's run, with the job's token.
    assert WORKFLOW["jobs"]["apply"]["permissions"]["actions"] == "read"
    assert WORKFLOW["jobs"]["plan"]["permissions"]["pull-requests"] == "write"


def test_readme_shows_the_action_as_the_workflow_uses_it() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"uses: {USES}" in readme
    for name in ACTION["inputs"]:
        assert f"`{name}`" in readme, name
    for name in ACTION["outputs"]:
        assert f"`{name}`" in readme, name


# -- the action run against the fake server ---------------------------------------------------


class _Serve(BaseHTTPRequestHandler):
    """The fake server (tests/fakes/server.py) over HTTP, for the letta-apply the action runs."""

    fake: FakeLetta

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = httpx.Request(
            self.command,
            f"http://127.0.0.1{self.path}",
            headers=dict(self.headers.items()),
            content=self.rfile.read(length) if length else b"",
        )
        response = self.fake.handle(request)
        body = response.read()
        self.send_response(response.status_code)
        self.send_header("Content-Type", response.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served() -> Iterator[tuple[str, FakeLetta]]:
    handler = type("Handler", (_Serve,), {"fake": FakeLetta()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.fake
    server.shutdown()
    server.server_close()


def _job(
    tmp_path: Path, base_url: str, manifest: str, mode: str = "plan", policy: str = ""
) -> tuple[actionrun.Run, list[dict[str, Any]]]:
    """A job of the example workflow (`mode`: its plan job on a pull request, or its apply
    job, which applies the plan the plan job left), its secret LETTA_BASE_URL `base_url`;
    what it ran and the comments on the pull request."""
    repo = tmp_path / "repo"
    (repo / "letta").mkdir(parents=True, exist_ok=True)
    (repo / "letta" / "agents.yaml").write_text(manifest)
    if policy:  # the platform team's rules, beside the manifests
        (repo / "policies").mkdir(exist_ok=True)
        (repo / "policies" / "rules.yaml").write_text(policy)
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    gh = bindir / "gh"
    gh.write_text(f"#!{sys.executable}\n{actionrun.FAKE_GH}")
    gh.chmod(0o755)
    state = tmp_path / "gh.json"
    state.write_text(json.dumps({"calls": [], "comments": []}))
    path = os.pathsep.join([str(bindir), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTA_")}
    env.update(PATH=path, FAKE_GH_STATE=str(state))
    (step,) = [s for s in WORKFLOW["jobs"][mode]["steps"] if "letta-apply/" in s.get("uses", "")]
    github = {
        "repository": "acme/agents", "workflow": WORKFLOW["name"], "token": "ghs-test",
        "event_name": "pull_request", "run_attempt": "1",
        "event": {"action": "synchronize", "pull_request": {"number": 7, "head": {"sha": "c0"}}},
    }  # fmt: skip
    secrets = {"LETTA_BASE_URL": base_url, "LETTA_API_KEY": "sk-let-unit"}
    given = {**step["with"], **({"policies": "policies"} if policy else {})}
    run = actionrun.run_action(given, github=github, secrets=secrets, cwd=repo, env=env)
    comments: list[dict[str, Any]] = json.loads(state.read_text())["comments"]
    return run, comments


def test_the_plan_comment_names_no_server(tmp_path: Path, served: tuple[str, FakeLetta]) -> None:
    url, _ = served
    secret = url.replace("http://", "http://ci:pw-secret@")
    run, comments = _job(tmp_path, secret, SEED)
    assert run.ok, run.log
    (comment,) = comments
    assert "**Plan: 3 to create" in comment["body"]
    assert f"<sub>letta-apply {__version__}</sub>" in comment["body"]
    for shown in (comment["body"], run.summary, run.log):
        assert url.removeprefix("http://") not in shown and "pw-secret" not in shown


def test_a_plan_that_refuses_a_resource_is_commented_then_fails_the_job(
    tmp_path: Path, served: tuple[str, FakeLetta]
) -> None:
    url, _ = served
    manifest = SEED.replace("    blocks: [organization]\n", "    tools: [no_such_tool]\n", 1)
    run, comments = _job(tmp_path, url, manifest)
    assert not run.ok
    assert {s.name: s.status for s in run.steps if s.status != "left out"} == {
        "set up Python": "uses", "validate": "ran", "fetch the reviewed plan": "skipped",
        "run": "ran", "keep the plan for the merge": "skipped", "keep the backups": "skipped",
        "comment": "ran", "fail on refused resources": "ran",
    }  # fmt: skip
    assert run.step("run").code == run.step("comment").code == 0
    assert run.step("fail on refused resources").code == 1
    assert "::error::The plan refuses resources" in run.log
    assert run.outputs["exitcode"] == "1"
    (comment,) = comments
    assert "Apply refuses these resources:" in comment["body"]
    assert "`agent.supervisor`: unknown tool 'no_such_tool'" in comment["body"]


def test_a_plan_a_policy_refuses_fails_the_job_and_writes_nothing(
    tmp_path: Path, served: tuple[str, FakeLetta]
) -> None:
    url, fake = served
    rule = (
        "rules:\n  - {id: approved, applies_to: {kinds: [agent]}, severity: error,\n"
        "     condition: 'resource.model == \"openai/gpt-4o-mini\"', message: not approved}\n"
    )
    run, _ = _job(tmp_path, url, SEED, policy=rule)
    assert not run.ok
    # Placed at the agents' own lines (the supervisor's, the worker's), not the file's start.
    placed = "letta/agents.yaml:7:3: agent.supervisor: not approved [LA655] (rule approved)"
    assert placed in run.log
    assert fake.writes == 0


def test_a_plan_that_fails_otherwise_fails_at_once_without_a_comment(tmp_path: Path) -> None:
    run, comments = _job(tmp_path, "http://127.0.0.1:9", SEED)  # nothing listens there
    assert not run.ok and run.step("run").code == 1
    assert run.step("comment").status == run.step("fail on refused resources").status == "skipped"
    assert comments == []


def test_apply_keeps_what_it_deleted_as_an_artifact_and_says_so(
    tmp_path: Path, served: tuple[str, FakeLetta]
) -> None:
    url, fake = served
    Stack.from_dict(yaml.safe_load(SEED)).apply(fake.client())
    fewer = SEED[: SEED.index("  worker:")]
    plan, _ = _job(tmp_path, url, fewer)
    assert plan.ok, plan.log
    assert "the artifact of the apply job" in plan.summary  # not the runner's own folder
    assert "letta-apply-backups" not in plan.summary
    run, _ = _job(tmp_path, url, fewer, mode="apply")
    assert run.ok, run.log
    assert run.step("keep the backups").status == "uses"  # the upload-artifact step runs
    assert "letta-apply saved 1 resource(s) before deleting them" in run.summary
    assert "kept as the artifact `letta-backups-1` of this run for 90 days" in run.summary
    records = list(Path(run.outputs["backup-dir"]).rglob("agent.worker--*.json"))
    assert len(records) == 1 and not [a for a in fake.agents.values() if a["name"] == "worker"]
