"""Golden cases for the planner and its renderings, one per folder of `tests/plans/`: the text
plan (expected.txt), the JSON plan (expected.json), the pull-request comment with its diagram
(expected.md) and the stack's graph marked with the plan (expected.mmd, `graph --plan`).

`UPDATE_GOLDEN=1 pytest tests/unit/test_plans.py` rewrites the expected files from the current
output instead of comparing; review the diff before keeping it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from letta_apply.core.changes import Plan
from letta_apply.plan import planfile
from letta_apply.plan.graph import Graph, stack_graph
from letta_apply.render.diagram import render_graph
from letta_apply.render.markdown import plan_markdown
from letta_apply.render.text import plan_text
from tests.plan_cases import BASE_URL, CASES, PLANS, load_case, plan_case

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SCHEMA = json.loads(
    (
        Path(__file__).parents[2] / "letta_apply" / "plan" / "schemas" / "plan.schema.json"
    ).read_text()
)


def origin(case: str) -> planfile.Origin:
    manifest = PLANS / case / "manifest.yaml"
    return planfile.Origin(
        BASE_URL, None, ("manifest.yaml",), planfile.manifest_digest([str(manifest)])
    )


def graph(plan: Plan, case: str) -> Graph:
    return stack_graph(load_case(case)[0], plan)


RENDERINGS: dict[str, Callable[[Plan, str], str]] = {
    "expected.txt": lambda plan, case: plan_text(plan, BASE_URL) + "\n",
    "expected.json": lambda plan, case: planfile.dumps(plan, origin(case)),
    "expected.md": lambda plan, case: plan_markdown(plan, BASE_URL, graph(plan, case)),
    "expected.mmd": lambda plan, case: render_graph(graph(plan, case)),
}


def test_there_are_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", sorted(RENDERINGS))
@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, name: str) -> None:
    text = RENDERINGS[name](plan_case(case), case)
    expected_file = PLANS / case / name
    if UPDATE:
        expected_file.write_text(text, encoding="utf-8")
        return
    assert expected_file.is_file(), f"no {expected_file}; run with UPDATE_GOLDEN=1 to write it"
    assert text == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES)
def test_json_plan_follows_its_schema_and_is_byte_identical(case: str) -> None:
    first = planfile.dumps(plan_case(case), origin(case))
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(first))
    assert planfile.dumps(plan_case(case), origin(case)) == first


@pytest.mark.parametrize("case", CASES)
def test_json_plan_reads_back_to_the_same_plan(case: str) -> None:
    plan = plan_case(case)
    back, back_origin = planfile.from_document(json.loads(planfile.dumps(plan, origin(case))), "x")
    assert back_origin == origin(case)
    assert planfile.dumps(back, back_origin) == planfile.dumps(plan, origin(case))
    assert back.changes == plan.changes
    assert back.fingerprints == plan.fingerprints
