"""The benchmark's fleets are valid manifests and its minimum request counts hold on the fake."""

from __future__ import annotations

from pathlib import Path

from bench.run import manifest, minimum
from bench.stacks import write_stacks
from letta_apply import apply_plan, plan_for
from letta_apply.kinds import KINDS
from letta_apply.manifest.parse import load_text
from letta_apply.manifest.validate import validate
from letta_apply.many.run import apply_stacks, plan_stacks, stack_sources
from tests.fakes import FakeLetta


def test_fleet_and_its_minimums() -> None:
    agents, shared = 30, 4
    fake = FakeLetta()
    client = fake.client()
    cold = plan_for(
        client, validate(load_text(manifest("bench-t", agents, shared), "f.yaml"), KINDS)
    )
    assert len(cold.changes) == minimum("cold_apply", agents, shared)[1] == agents + shared
    apply_plan(client, cold)
    text = manifest("bench-t", agents, shared, changed=True)
    changed = validate(load_text(text, "f.yaml"), KINDS)
    fake.counts.clear()
    plan = plan_for(client, changed)
    tools = len(fake.tools)
    assert fake.counts["GET"] == minimum("change_apply", agents, shared, tools)[0]  # a page each
    assert len(plan.changes) == minimum("change_apply", agents, shared)[1] == 6
    assert {c.action for c in plan.changes} == {"update"}


def test_the_stacks_bench_tenants_and_their_change(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    write_stacks(tmp_path, "bench-t", 20)
    assert all(r.ok for r in apply_stacks(client, stack_sources(tmp_path)))
    assert len(fake.agents) == 20
    write_stacks(tmp_path, "bench-t", 20, changed=True)
    runs = plan_stacks(client, stack_sources(tmp_path))
    assert [[c.action for c in r.plan.changes] for r in runs if r.plan] == [["update"]] * 20
