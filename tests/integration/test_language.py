"""The manifest language against a real server: the two-environment example on two stacks, a
for_each fleet of twenty workers, and a sensitive variable that never shows in any output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from .conftest import ROOT, Run, stack_resources

EXAMPLE = ROOT / "examples" / "environments"
SECRET = "tk-live-5f3a9c"
ROTATED = "tk-live-77e0b1"


def example(env: str, *extra: str) -> list[str]:
    """Arguments that apply the example for one environment, on a stack of this test's own."""
    name = env.rsplit("-", 1)[1]
    return [
        "-f", str(EXAMPLE),
        "--var-file", str(EXAMPLE / "env" / f"{name}.yaml"),
        "--var", f"env={env}",
        *extra,
    ]  # fmt: skip


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LETTA_APPLY_VAR_ticket_api_key", SECRET)
    return SECRET


def test_two_environments_on_one_server_converge(
    run: Run, api: httpx.Client, stack: str, secret: str
) -> None:
    envs = {f"{stack}-staging": 1, f"{stack}-prod": 3}  # environment -> regions
    for env in envs:
        result = run("apply", *example(env), "--auto-approve")
        assert result.code == 0, result.err
    for env, regions in envs.items():
        blocks, agents = stack_resources(api, f"support-{env}")
        assert sorted(a["name"] for a in agents) == sorted(
            [f"{env}-supervisor"] + [f"{env}-worker-{r}" for r in ("eu", "us", "apac")[:regions]]
        )
        shared = {b["label"] for b in blocks if b["metadata"].get("letta_apply")}
        assert shared == {"organization", "region"}
        org = next(b for b in blocks if b["label"] == "organization")
        assert org["value"] == (EXAMPLE / "personas" / "organization.md").read_text()
        worker = next(a for a in agents if a["name"] == f"{env}-worker-eu")
        labels = {b["label"]: b["value"] for b in worker["blocks"]}
        assert labels["persona"] == (EXAMPLE / "personas" / "worker.md").read_text()
        assert labels["region"].startswith("Region eu: timezone Europe/Paris")
        assert org["id"] in {b["id"] for b in worker["blocks"]}
    # The two stacks share nothing: staging's organization block is not prod's.
    staging_org = stack_resources(api, f"support-{stack}-staging")[0]
    prod_org = stack_resources(api, f"support-{stack}-prod")[0]
    assert not {b["id"] for b in staging_org} & {b["id"] for b in prod_org}
    for env in envs:
        again = run("apply", *example(env), "--auto-approve")
        assert again.code == 0 and again.writes == 0, again.out
        assert "No changes." in again.out
    for env in envs:
        assert run("destroy", *example(env), "--auto-approve").code == 0


FLEET = """\
version: 1
stack: {stack}
variables:
  workers: {{type: map}}
blocks:
  organization:
    value: Shared by every worker.
  region:
    for_each: [eu, us]
    value: "Facts about ${{each.key}}."
agents:
  worker:
    for_each: ${{var.workers}}
    name: {stack}-${{each.key}}
    model: letta/letta-free
    embedding: letta/letta-free
    tags: ["region:${{each.value.region}}"]
    memory_blocks:
      - {{label: persona, value: "I am worker ${{each.key}} of ${{each.value.region}}."}}
    blocks: [organization, "region[${{each.value.region}}]"]
"""


def test_a_fleet_of_twenty_workers(
    run: Run, api: httpx.Client, stack: str, manifest: Callable[[str], str], tmp_path: Path
) -> None:
    workers = {f"w{i:02}": {"region": "eu" if i % 2 else "us"} for i in range(20)}
    var_file = tmp_path / "fleet.yaml"
    var_file.write_text(json.dumps({"workers": workers}), encoding="utf-8")
    path = manifest(FLEET.format(stack=stack))
    args = ["-f", path, "--var-file", str(var_file)]
    first = run("apply", *args, "--auto-approve")
    assert first.code == 0, first.err
    assert 'agent.worker["w07"]: created' in first.out
    # Three shared blocks and twenty agents, each created in one request with its blocks.
    assert first.writes == 23
    blocks, agents = stack_resources(api, stack)
    assert len(agents) == 20
    org = next(b for b in blocks if b["label"] == "organization")
    for a in agents:
        region = workers[a["name"].rsplit("-", 1)[1]]["region"]
        attached = {b["id"] for b in a["blocks"]}
        assert org["id"] in attached
        region_block = next(b for b in a["blocks"] if b["label"] == "region")
        assert region_block["value"] == f"Facts about {region}."
        assert f"region:{region}" in a["tags"]
    assert len([b for b in blocks if b["label"] == "region"]) == 2
    again = run("apply", *args, "--auto-approve")
    assert again.code == 0 and again.writes == 0 and "No changes." in again.out
    # A change to the template changes every instance; --target takes one of them by address.
    Path(path).write_text(
        FLEET.format(stack=stack).replace("    tags:", "    description: A worker.\n    tags:"),
        encoding="utf-8",
    )
    one = run("apply", *args, "--target", "agent.worker[w03]", "--auto-approve")
    assert one.code == 0 and one.writes == 1, one.out
    assert 'agent.worker["w03"]: updated' in one.out
    rest = run("apply", *args, "--auto-approve")
    assert rest.code == 0 and rest.writes == 19
    assert run("destroy", *args, "--auto-approve").code == 0
    assert stack_resources(api, stack) == ([], [])


def test_a_sensitive_variable_never_shows(
    run: Run, api: httpx.Client, stack: str, secret: str, tmp_path: Path
) -> None:
    env = f"{stack}-staging"
    outputs = []
    for fmt in ("text", "json"):
        result = run("apply", *example(env), "--auto-approve", "--format", fmt)
        assert result.code == 0, result.err
        outputs.append(result.out + result.err)
    supervisor = next(
        a for a in stack_resources(api, f"support-{env}")[1] if a["name"].endswith("supervisor")
    )
    assert supervisor["metadata"]["ticket_api_key"] == SECRET
    saved = tmp_path / "rotate.json"
    rotate = ["--var", f"ticket_api_key={ROTATED}"]
    for fmt in ("text", "json", "markdown"):
        result = run("plan", *example(env, *rotate), "--format", fmt, "--out", str(saved))
        assert result.code == 0, result.err
        outputs.append(result.out + result.err)
    assert "ticket_api_key']: (sensitive value changed)" in outputs[2]
    plan_file = saved.read_text(encoding="utf-8")
    outputs.append(plan_file)
    # A hand rotation between the plan and its apply is noticed (through the plan's seal), not
    # overwritten; once the value is back to what was planned from, the plan holds again.
    url = f"/v1/agents/{supervisor['id']}"
    for key in ("rotated-by-hand", SECRET):
        md = {**supervisor["metadata"], "ticket_api_key": key}
        assert api.patch(url, json={"metadata": md}).status_code == 200
        if key != SECRET:
            refused = run("apply", str(saved), *example(env, *rotate), "--auto-approve")
            assert refused.code == 1 and "stale plan" in refused.err, refused.err
            assert api.get(url).json()["metadata"]["ticket_api_key"] == key
            outputs.append(refused.out + refused.err)
    applied = run("apply", str(saved), *example(env, *rotate), "--auto-approve")
    assert applied.code == 0, applied.err
    outputs.append(applied.out + applied.err)
    supervisor = api.get(f"/v1/agents/{supervisor['id']}").json()
    assert supervisor["metadata"]["ticket_api_key"] == ROTATED
    for fmt in ("text", "json", "markdown"):
        drift = run("drift", *example(env, *rotate), "--format", fmt)
        outputs.append(drift.out + drift.err)
    bad = run("validate", *example(env, *rotate), "--var", "model=not a handle")
    assert bad.code == 1
    outputs.append(bad.out + bad.err)
    for text in outputs:
        assert SECRET not in text and ROTATED not in text, text
    assert run("destroy", *example(env), "--auto-approve").code == 0


def test_an_agent_becomes_a_template_instance_without_being_recreated(
    run: Run, api: httpx.Client, stack: str, manifest: Callable[[str], str]
) -> None:
    single = f"""\
version: 1
stack: {stack}
agents:
  worker:
    name: {stack}-worker-eu
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{{label: persona, value: I am a worker}}]
"""
    assert run("apply", "-f", manifest(single), "--auto-approve").code == 0
    before = stack_resources(api, stack)[1][0]["id"]
    templated = (
        single.replace("  worker:\n", "  worker:\n    for_each: [eu, us]\n").replace(
            f"name: {stack}-worker-eu", f"name: {stack}-worker-${{each.key}}"
        )
        + "moved:\n  - {from: agent.worker, to: 'agent.worker[eu]'}\n"
    )
    path = manifest(templated)
    plan = run("plan", "-f", path)
    assert 'address: agent.worker -> agent.worker["eu"]' in plan.out, plan.out
    assert "Plan: 1 to create, 1 to update, 0 to attach, 0 to detach, 0 to delete." in plan.out
    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0, applied.err
    agents = {a["name"]: a["id"] for a in stack_resources(api, stack)[1]}
    assert agents[f"{stack}-worker-eu"] == before  # the same agent, re-marked
    assert f"{stack}-worker-us" in agents
    assert run("apply", "-f", path, "--auto-approve").writes == 0
    assert run("destroy", "-f", path, "--auto-approve").code == 0
