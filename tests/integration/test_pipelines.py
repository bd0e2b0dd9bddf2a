"""Pipelines against a real Letta: saved plans that cannot lie, drift checks, output formats, and
the GitHub Action, run step by step as the example workflow uses it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests import actionrun

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


def test_drift_sees_an_agent_deleted_and_a_block_attached_by_hand(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(SEED)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    assert run("drift", "-f", path).code == 0
    worker = _ids(api, stack)["agent.worker"]
    assert api.delete(f"/v1/agents/{worker}").status_code == 200

    lost = run("drift", "-f", path)
    assert lost.code == 2, lost.out
    assert (
        "  + agent.worker was deleted on the server (letta-apply had made it); apply makes it "
        "again" in lost.out
    )
    assert lost.writes == 0
    doc = json.loads(run("drift", "-f", path, "--format", "json").out)
    assert [(d["address"], d["kind"], d["action"]) for d in doc["drift"]] == [
        ("agent.worker", "deleted", "restored"),
    ]  # fmt: skip
    # An agent only just added to the manifest is new, not drift.
    grown = manifest(SEED + "  helper:\n    name: {stack}-helper\n    model: letta/letta-free\n"
                     "    embedding: letta/letta-free\n")  # fmt: skip
    doc = json.loads(run("drift", "-f", grown, "--format", "json").out)
    assert [d["address"] for d in doc["drift"]] == ["agent.worker"]

    again = run("apply", "-f", path, "--auto-approve")
    assert again.code == 0, again.err
    assert "agent.worker: created" in again.out
    clean = run("drift", "-f", path)
    assert clean.code == 0 and "No drift" in clean.out, clean.out
    assert run("apply", "-f", path, "--auto-approve").writes == 0

    worker = _ids(api, stack)["agent.worker"]
    hand = api.post("/v1/blocks/", json={"label": "notes", "value": "by hand"}).json()
    try:
        api.patch(f"/v1/agents/{worker}/core-memory/blocks/attach/{hand['id']}")
        alone = run("drift", "-f", path)
        assert alone.code == 2
        assert (
            f"  ! agent.worker: block 'notes' ({hand['id']}, not managed by this stack) was "
            "attached on the server; left alone (apply --detach-unmanaged-blocks detaches it)"
        ) in alone.out
        asked = run("drift", "-f", path, "--detach-unmanaged-blocks")
        assert asked.code == 2 and "; apply detaches it (--detach-unmanaged-blocks)" in asked.out
        assert run("apply", "-f", path, "--auto-approve", "--detach-unmanaged-blocks").code == 0
        assert run("drift", "-f", path).code == 0
    finally:
        api.delete(f"/v1/blocks/{hand['id']}")


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


# -- the example workflow and the action it uses, step by step ----------------------------------

WORKFLOW = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
SECRET_KEY = "sk-letta-apply-ci-test-8f2c"  # the server ignores it; no log may show it
REPO = "acme/agents"


def _action_inputs(job: str) -> dict[str, str]:
    """The `with:` of the job's letta-apply step, as the workflow gives it."""
    (step,) = [s for s in WORKFLOW["jobs"][job]["steps"] if "letta-apply/" in s.get("uses", "")]
    return dict(step["with"])


@dataclass
class Ci:
    """A checkout of a repository with the manifest, and what the action needs around it: the
    server (its secrets), letta-apply on PATH, and a stand-in `gh` with its recorded state."""

    repo: Path
    env: dict[str, str]
    secrets: dict[str, str]
    gh_state: Path

    def job(self, job: str, github: dict[str, Any]) -> actionrun.Run:
        github = {"repository": REPO, "workflow": WORKFLOW["name"], "token": "ghs-test", **github}
        run = actionrun.run_action(
            _action_inputs(job), github=github, secrets=self.secrets, cwd=self.repo, env=self.env
        )
        assert SECRET_KEY not in run.log + run.summary
        return run

    @property
    def gh(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.gh_state.read_text())
        return state

    def set_gh(self, **changes: Any) -> None:
        self.gh_state.write_text(json.dumps({**self.gh, **changes}))


PULL_REQUEST = {
    "event_name": "pull_request",
    "event": {"action": "synchronize", "pull_request": {"number": 7, "head": {"sha": "c0ffee"}}},
}
MERGED = {
    "event_name": "pull_request",
    "event": {
        "action": "closed",
        "pull_request": {"number": 7, "merged": True, "head": {"sha": "c0ffee"}},
    },
}
NIGHTLY = {"event_name": "schedule", "event": {}}


@pytest.fixture
def ci(server: str, tmp_path: Path, stack: str) -> Ci:
    repo = tmp_path / "repo"
    (repo / "letta").mkdir(parents=True)
    (repo / "letta" / "agents.yaml").write_text(SEED.replace("{stack}", stack))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gh = bindir / "gh"
    gh.write_text(f"#!{sys.executable}\n{actionrun.FAKE_GH}")
    gh.chmod(0o755)
    state = tmp_path / "gh.json"
    state.write_text(json.dumps({"calls": [], "comments": []}))
    path = os.pathsep.join([str(bindir), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {**os.environ, "PATH": path, "FAKE_GH_STATE": str(state)}
    env.pop("LETTA_BASE_URL", None)
    env.pop("LETTA_API_KEY", None)
    assert shutil.which("letta-apply", path=path)
    secrets = {"LETTA_BASE_URL": server, "LETTA_API_KEY": SECRET_KEY}
    return Ci(repo, env, secrets, state)


def _ran(run: actionrun.Run) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}


def test_action_plans_comments_once_applies_the_reviewed_plan_and_checks_drift(
    ci: Ci, api: httpx.Client, stack: str
) -> None:
    plan = ci.job("plan", PULL_REQUEST)
    assert plan.ok, plan.log
    assert _ran(plan) == {
        "set up Python": "uses", "install": "left out", "validate": "ran",
        "fetch the reviewed plan": "skipped", "run": "ran",
        "keep the plan for the merge": "uses", "keep the backups": "skipped", "comment": "ran",
        "fail on refused resources": "skipped",
    }  # fmt: skip
    assert plan.outputs["exitcode"] == "2" and plan.outputs["has-changes"] == "true"
    saved = Path(plan.outputs["plan-file"])
    assert saved == ci.repo / "letta-plan.json"
    jsonschema.validate(json.loads(saved.read_text()), PLAN_SCHEMA)
    totals = "**Plan: 3 to create, 0 to update, 0 to attach, 0 to detach, 0 to delete.**"
    assert totals in Path(plan.outputs["report-file"]).read_text() and totals in plan.summary
    (comment,) = ci.gh["comments"]
    assert comment["body"].startswith(f"<!-- letta-apply: {stack} -->\n### letta-apply plan: ")
    assert totals in comment["body"]

    # Another push to the pull request: the same comment is updated, not a second one posted.
    (ci.repo / "letta" / "agents.yaml").write_text(
        SEED.replace("{stack}", stack).replace("I am a worker", "I am a careful worker")
    )
    again = ci.job("plan", PULL_REQUEST)
    assert again.ok, again.log
    (updated,) = ci.gh["comments"]
    assert updated["id"] == comment["id"] and "careful worker" in updated["body"]
    methods = [c[c.index("--method") + 1] for c in ci.gh["calls"] if "--method" in c]
    assert methods == ["POST", "PATCH"]
    assert "Updated the plan comment on pull request #7." in again.step("comment").stdout

    # The merge: a fresh checkout has no plan file; the reviewed one comes from the artifact the
    # pull request's run kept (upload-artifact there, `gh run download` here).
    artifact = ci.repo.parent / "artifact" / "letta-plan.json"
    artifact.parent.mkdir()
    saved.rename(artifact)
    ci.set_gh(run_id="4242", artifacts={"letta-plan": str(artifact)})
    applied = ci.job("apply", MERGED)
    assert applied.ok, applied.log
    assert _ran(applied)["fetch the reviewed plan"] == "ran"
    assert "Applying the plan reviewed in run 4242." in applied.log
    assert applied.outputs["exitcode"] == "0" and applied.outputs["has-changes"] == "true"
    assert ci.gh["calls"][-1][:5] == ["run", "download", "4242", "--name", "letta-plan"]
    assert len(_ids(api, stack)) == 3
    assert _ran(applied)["comment"] == "skipped"

    drift = ci.job("drift", NIGHTLY)
    assert drift.ok, drift.log
    assert (drift.outputs["exitcode"], drift.outputs["has-changes"]) == ("0", "false")
    ids = _ids(api, stack)
    api.patch(
        f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/organization",
        json={"value": "Organization: Letta"},
    )
    drift = ci.job("drift", NIGHTLY)
    assert drift.ok, drift.log  # drift is reported, it does not fail the job
    assert (drift.outputs["exitcode"], drift.outputs["has-changes"]) == ("2", "true")
    assert "::warning::Drift found on the Letta server" in drift.log
    assert "`block.organization.value`: written by an agent or by hand; kept" in drift.summary


def test_action_refuses_a_stale_plan(ci: Ci, api: httpx.Client, stack: str) -> None:
    assert ci.job("plan", PULL_REQUEST).ok
    # A block with the planned label and marks appears before the merge is applied.
    api.post(
        "/v1/blocks/",
        json={
            "label": "organization", "value": "x", "tags": [f"letta-apply:{stack}"],
            "metadata": {"letta_apply": {"stack": stack, "address": "block.organization"}},
        },
    )  # fmt: skip
    applied = ci.job("apply", MERGED)
    assert not applied.ok
    assert applied.step("fetch the reviewed plan").stdout.startswith("Applying the saved plan")
    run = applied.step("run")
    assert run.code == 1 and "stale plan" in run.stderr
    _, agents = stack_resources(api, stack)
    assert agents == []


def test_action_fails_on_an_invalid_manifest_before_any_request(ci: Ci) -> None:
    (ci.repo / "letta" / "agents.yaml").write_text(
        "version: 1\nstack: x\nagents:\n  a: {modle: x}\n"
    )
    run = ci.job("plan", PULL_REQUEST)
    assert not run.ok
    assert run.step("validate").code == 1
    assert "letta/agents.yaml:4:7: agents.a: unknown key 'modle'" in run.step("validate").stderr
    assert _ran(run)["run"] == "skipped" and ci.gh["calls"] == []
