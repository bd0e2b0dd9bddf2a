"""Golden cases for the planner and its text rendering, one per folder of `tests/plans/`.

`UPDATE_GOLDEN=1 pytest tests/unit/test_plans.py` rewrites each case's expected.txt from the
current output instead of comparing; review the diff before keeping it.
"""

from __future__ import annotations

import os

import pytest

from letta_apply.render import plan_text
from tests.plan_cases import BASE_URL, CASES, PLANS, plan_case

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def test_there_are_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES)
def test_plan_text(case: str) -> None:
    text = plan_text(plan_case(case), BASE_URL) + "\n"
    expected_file = PLANS / case / "expected.txt"
    if UPDATE:
        expected_file.write_text(text, encoding="utf-8")
        return
    assert expected_file.is_file(), f"no {expected_file}; run with UPDATE_GOLDEN=1 to write it"
    assert text == expected_file.read_text(encoding="utf-8")
