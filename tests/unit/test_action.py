"""The GitHub Action (action.yml): a composite action whose inputs reach its scripts only through
environment variables (no `${{ }}` inside a script: no injection, no secret in a command line),
every input used, every output written, and the example workflow using it at this version.
tests/integration/test_pipelines.py runs its steps against a real server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from letta_apply.version import __version__
from tests.actionrun import ACTION, EXPRESSION

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
    for ref in (e for e in _expressions(ACTION["runs"]) if e.startswith("steps.")):
        step, _, key = ref.split(".")[1:4]
        assert f'echo "{key}=' in ids[step]["run"], ref


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
