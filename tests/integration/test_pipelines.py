"""Pipelines against a real Letta: saved plans that cannot lie, drift checks, output formats, and
the example GitHub Actions workflow's own commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml

from .conftest import ROOT, SEED, Run, stack_resources

PLAN_SCHEMA = json.loads(
    (ROOT / "letta_apply" / "plan" / "schemas" / "plan.schema.json").read_text()
)


def _ids(api: httpx.Client, stack: str) -> dict[str, str]:
    blocks, agents = stack_resources(api, stack)
    out = {a["metadata"]["letta_apply"]["address"]: a["id"] for a in agents}
    for b in blocks:
        mark = b["metadata"].get("letta_apply")
        if mark:
            out[mark["address"]] = b["id"]
    return out


def test_saved_plan_applies_exactly_what_it_showed(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, tmp_path: Path
) -> None:
    path = manifest(SEED)
    saved = tmp_path / "plan.json"
    plan = run("plan", "-f", path, "--out", str(saved), "--detailed-exitcode")
    assert plan.code == 2, plan.err
    doc = json.loads(saved.read_text())
    jsonschema.validate(doc, PLAN_SCHEMA)
    assert [c["address"] for c in doc["changes"]] == [
        "block.organization", "agent.supervisor", "agent.worker",
    ]  # fmt: skip

    # The manifest grows after the plan was saved: the saved plan does not.
    Path(path).write_text(SEED.replace("{stack}", stack) + "  extra:\n    name: extra-x\n")
    applied = run("apply", str(saved), "--auto-approve")
    assert applied.code == 0, applied.err
    assert applied.writes == 3
    _, agents = stack_resources(api, stack)
    assert sorted(a["metadata"]["letta_apply"]["address"] for a in agents) == [
        "agent.supervisor", "agent.worker",
    ]  # fmt: skip
    # Applying the same saved plan again: everything it would create now exists.
    again = run("apply", str(saved), "--auto-approve")
    assert again.code == 1
    assert "stale plan" in again.err
    assert again.writes == 0


def test_stale_plan_is_refused_before_any_write(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, tmp_path: Path
) -> None:
    assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
    ids = _ids(api, stack)
    changed = manifest(SEED.replace("within the organization.", "within the company."))
    saved = tmp_path / "plan.json"
    assert run("plan", "-f", changed, "--out", str(saved)).code == 0
    # Between plan and apply someone edits the block the plan touches.
    api.patch(f"/v1/blocks/{ids['block.organization']}", json={"description": "hand edit"})
    r = run("apply", str(saved), "-f", changed, "--auto-approve")
    assert r.code == 1
    assert "stale plan: changed on the server since the plan was made: block.organization" in r.err
    assert r.writes == 0
    assert api.get(f"/v1/blocks/{ids['block.organization']}").json()["description"] == "hand edit"

    # An agent writing memory does not make a plan stale: it is not what the plan changes.
    fresh = run("plan", "-f", changed, "--out", str(saved))
    assert fresh.code == 0
    api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/organization",
        json={"value": "Organization: Letta"},
    )
    ok = run("apply", str(saved), "-f", changed, "--auto-approve")
    assert ok.code == 0, ok.err
    assert ok.writes == 1
    org = api.get(f"/v1/blocks/{ids['block.organization']}").json()
    assert (org["description"], org["value"]) == (
        "Shared information between all agents within the company.",
        "Organization: Letta",
    )


def test_saved_plan_is_bound_to_its_manifest_server_and_stack(
    run: Run, manifest: Callable[[str], str], tmp_path: Path, server: str
) -> None:
    path = manifest(SEED)
    saved = tmp_path / "plan.json"
    assert run("plan", "-f", path, "--out", str(saved)).code == 0

    edited = manifest(SEED.replace("I am a worker", "I am a busy worker"))
    Path(path).write_text(Path(edited).read_text())
    r = run("apply", str(saved), "-f", path, "--auto-approve")
    assert r.code == 1 and f"stale plan: {path} changed since" in r.err
    assert r.writes == 0

    other = manifest(SEED.replace("stack: {stack}", "stack: another-stack"))
    r = run("apply", str(saved), "-f", other, "--auto-approve")
    assert r.code == 1 and "the plan is for stack" in r.err

    r = run("apply", str(saved), "--auto-approve", base_url="http://127.0.0.1:9")
    assert r.code == 1 and "the plan was made against" in r.err
    assert r.reads + r.writes == 0


def test_drift_exit_codes(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(SEED)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    clean = run("drift", "-f", path)
    assert clean.code == 0, clean.out
    assert "No drift" in clean.out
    assert clean.writes == 0

    ids = _ids(api, stack)
    api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/organization",
        json={"value": "Organization: Letta"},
    )
    memory = run("drift", "-f", path, "--detailed-exitcode")
    assert memory.code == 2
    assert "Memory written by agents" in memory.out
    assert "Configuration changed" not in memory.out

    api.patch(f"/v1/agents/{ids['agent.worker']}", json={"name": f"{stack}-renamed"})
    both = run("drift", "-f", path, "--format", "json")
    assert both.code == 2
    doc = json.loads(both.out)
    assert doc["has_drift"] is True
    assert {(d["address"], d["field"], d["kind"]) for d in doc["drift"]} == {
        ("block.organization", "value", "memory"),
        ("agent.worker", "name", "configuration"),
    }
    # plan says why: the name was changed on the server, not in the manifest.
    plan = run("plan", "-f", path, "--format", "json")
    (change,) = json.loads(plan.out)["changes"]
    assert (change["address"], change["why"], change["drift_paths"]) == (
        "agent.worker", ["drift"], ["name"],
    )  # fmt: skip


def test_output_formats(run: Run, manifest: Callable[[str], str]) -> None:
    path = manifest(SEED)
    md = run("plan", "-f", path, "--format", "markdown")
    assert md.code == 0
    assert md.out.startswith("### letta-apply plan: ")
    assert "**Plan: 3 to create, 0 to update, 0 to attach, 0 to detach, 0 to delete.**" in md.out
    assert "<details>" in md.out

    first = run("plan", "-f", path, "--format", "json").out
    assert run("plan", "-f", path, "--format", "json").out == first
    jsonschema.validate(json.loads(first), PLAN_SCHEMA)

    text = run("plan", "-f", path)
    assert "\x1b[" not in text.out  # not a terminal: no colors

    applied = run("apply", "-f", path, "--auto-approve", "--format", "json")
    assert applied.code == 0
    doc = json.loads(applied.out)
    assert [a["address"] for a in doc["applied"]] == [
        "block.organization", "agent.supervisor", "agent.worker",
    ]  # fmt: skip
    assert all(a["remote_id"] for a in doc["applied"]) and doc["errors"] == []

    bad = manifest("version: 1\nstack: {stack}\nagents:\n  a:\n    blocks: [nope]\n")
    v = run("validate", "-f", bad, "--format", "json")
    assert v.code == 1
    (diag,) = json.loads(v.out)["diagnostics"]
    assert (diag["file"], diag["line"], diag["column"]) == (bad, 5, 14)
    assert "no shared block 'nope'" in diag["message"]

    needs_approval = run("apply", "-f", path, "--format", "json")
    assert needs_approval.code == 1 and "--auto-approve" in needs_approval.err


def test_target_limits_the_run(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(SEED)
    r = run("apply", "-f", path, "--auto-approve", "--target", "agent.worker")
    assert r.code == 0, r.err
    assert "Warning: --target" in r.err
    assert r.writes == 2  # the worker and the shared block it needs; not the supervisor
    assert set(_ids(api, stack)) == {"block.organization", "agent.worker"}
    bad = run("plan", "-f", path, "--target", "agent.nobody")
    assert bad.code == 1 and "no such resource" in bad.err


# -- the example workflow, step by step ---------------------------------------------------------

WORKFLOW = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
# Steps that talk to GitHub itself; the test stands in for them.
GITHUB_ONLY = {
    "install",
    "comment",
    "fetch the reviewed plan",
    "keep the reviewed plan for the merge",
}


def _steps(job: str) -> list[tuple[str, str]]:
    return [
        (s["name"], s["run"])
        for s in WORKFLOW["jobs"][job]["steps"]
        if "run" in s and s.get("name") not in GITHUB_ONLY
    ]


def _run_job(
    job: str, workdir: Path, env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    out = []
    for _name, script in _steps(job):
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        out.append(proc)
        if proc.returncode != 0:
            break
    return out


@pytest.fixture
def ci_env(server: str, tmp_path: Path, stack: str) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    (repo / "letta").mkdir(parents=True)
    (repo / "letta" / "agents.yaml").write_text(SEED.replace("{stack}", stack))
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "MANIFEST": WORKFLOW["env"]["MANIFEST"],
        "LETTA_BASE_URL": server,
        "LETTA_API_KEY": "",
    }
    assert shutil.which("letta-apply", path=env["PATH"])
    return repo, env


def test_example_workflow_plan_apply_drift(
    ci_env: tuple[Path, dict[str, str]], api: httpx.Client, stack: str
) -> None:
    repo, env = ci_env
    assert [n for n, _ in _steps("plan")] == ["validate", "plan"]
    plan = _run_job("plan", repo, env)
    assert all(p.returncode == 0 for p in plan), [(p.stdout, p.stderr) for p in plan]
    assert "letta-apply plan exited 2" in plan[-1].stdout
    comment = (repo / "plan.md").read_text()
    assert "**Plan: 3 to create, 0 to update, 0 to attach, 0 to detach, 0 to delete.**" in comment
    jsonschema.validate(json.loads((repo / "plan.json").read_text()), PLAN_SCHEMA)

    applied = _run_job("apply", repo, env)
    assert [p.returncode for p in applied] == [0], applied[-1].stderr
    assert len(_ids(api, stack)) == 3

    drift = _run_job("drift", repo, env)
    assert drift[-1].returncode == 0 and "No drift" in drift[-1].stdout
    ids = _ids(api, stack)
    api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/organization",
        json={"value": "Organization: Letta"},
    )
    drift = _run_job("drift", repo, env)
    assert drift[-1].returncode == 0
    assert "::warning::drift found" in drift[-1].stdout
    assert "Memory written by agents" in drift[-1].stdout


def test_example_workflow_refuses_a_stale_plan(
    ci_env: tuple[Path, dict[str, str]], api: httpx.Client, stack: str
) -> None:
    repo, env = ci_env
    assert all(p.returncode == 0 for p in _run_job("plan", repo, env))
    # A block with the planned label and marks appears before the merge is applied.
    api.post(
        "/v1/blocks/",
        json={
            "label": "organization", "value": "x", "tags": [f"letta-apply:{stack}"],
            "metadata": {"letta_apply": {"stack": stack, "address": "block.organization"}},
        },
    )  # fmt: skip
    (applied,) = _run_job("apply", repo, env)
    assert applied.returncode == 1
    assert "stale plan" in applied.stderr
    _, agents = stack_resources(api, stack)
    assert agents == []
