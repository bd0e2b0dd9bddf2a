"""Rendering details the golden cases do not pin: colors, markdown limits, the CLI's formats."""

from __future__ import annotations

import io

import pytest

from letta_apply.cli.arguments import parser
from letta_apply.cli.output import Out
from letta_apply.core.changes import CREATE, UPDATE, Change, FieldDiff, Plan
from letta_apply.render.markdown import MD_TOTAL_MAX, MD_VALUE_MAX, plan_markdown
from letta_apply.render.text import colorize, plan_text
from tests.helpers import Tty

PLAN = Plan(
    stack="s",
    changes=(
        Change("block.a", CREATE, diffs=(FieldDiff("value", None, "x" * 5000, "new"),)),
        Change(
            "block.b", UPDATE, "block-1",
            diffs=(FieldDiff("description", "old", "new", "drift"),), why=("drift",),
        ),
    ),
)  # fmt: skip


def test_colors_follow_the_meaning_of_each_line() -> None:
    colored = colorize(plan_text(PLAN, "u"))
    assert "\x1b[32m  + block.a: create\x1b[0m" in colored
    assert "\x1b[33m  ~ block.b (block-1): update\x1b[0m" in colored
    assert "\x1b[1mPlan: 1 to create, 1 to update" in colored


def test_markdown_truncates_long_values_with_a_note() -> None:
    md = plan_markdown(PLAN, "u")
    assert "x" * MD_VALUE_MAX in md and "x" * (MD_VALUE_MAX + 1) not in md
    assert f"({5000 - MD_VALUE_MAX} more characters not shown)" in md
    assert '- description: "old"  (changed on the server)' in md


def test_markdown_stays_under_githubs_comment_limit() -> None:
    many = tuple(
        Change(f"block.b{i}", CREATE, diffs=(FieldDiff("value", None, "y" * 900, "new"),))
        for i in range(200)
    )
    md = plan_markdown(Plan(stack="s", changes=many), "u")
    assert len(md) <= MD_TOTAL_MAX + 200
    assert "plan truncated" in md
    assert md.startswith("### letta-apply plan: `s`\n\n**Plan: 200 to create")


@pytest.mark.parametrize(
    ("flags", "env", "tty", "colored"),
    [
        ([], {}, True, True),
        ([], {}, False, False),
        (["--no-color"], {}, True, False),
        ([], {"NO_COLOR": "1"}, True, False),
        (["--format", "markdown"], {}, True, False),
    ],
)
def test_color_only_on_a_terminal_and_never_when_asked_not_to(
    flags: list[str], env: dict[str, str], tty: bool, colored: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = parser().parse_args(["plan", "-f", "m.yaml", *flags])
    out = Tty() if tty else io.StringIO()
    o = Out(args, out, io.StringIO())
    o.text(plan_text(PLAN, "u"))
    assert ("\x1b[32m" in out.getvalue()) is colored


# What agents write and manifests declare reaches the reader's terminal and the pull request:
# a terminal escape, a carriage return or a bidirectional override in a value must show as an
# escape, never act.
HOSTILE = "ok\n\x1b[2J\x1b]0;pwned\x07\rfake line\u202eevil\u200bhidden\ttab"


def _hostile_plan() -> Plan:
    from letta_apply.core.changes import MEMORY, Drift

    return Plan(
        stack="s",
        changes=(
            Change(address="block.a", kind="block", action=CREATE,
                   diffs=(FieldDiff("value", None, HOSTILE), FieldDiff("tags", None, ["x\x1bq"]))),
            Change(address="block.b", kind="block", action=UPDATE, remote_id="block-1",
                   diffs=(FieldDiff("value", "old\nline", HOSTILE),)),
            Change(address="block.c", kind="block", action=UPDATE, remote_id="block-2",
                   diffs=(FieldDiff("description", "short", "a\x1b[31mb"),)),
        ),
        drift=(Drift("block.d", "value", "declared", HOSTILE, MEMORY, restored=False),),
    )  # fmt: skip


@pytest.mark.parametrize("render", ["text", "markdown", "drift"])
def test_control_characters_in_values_are_shown_escaped(render: str) -> None:
    from letta_apply.render.text import drift_text

    plan = _hostile_plan()
    out = {
        "text": lambda: plan_text(plan, "http://127.0.0.1:8283"),
        "markdown": lambda: plan_markdown(plan, "http://127.0.0.1:8283"),
        "drift": lambda: drift_text(plan, "http://127.0.0.1:8283"),
    }[render]()
    for raw in ("\x1b", "\x07", "\r", "\u202e"):
        assert raw not in out
    assert "\\x1b[2J" in out and "\\u202eevil" in out
    assert "\ttab" in out  # a tab drives nothing: kept
    # A zero-width space from a value is shown; only the fence breaker is left as it is.
    assert "\\u200bhidden" in out


def test_a_value_cannot_close_the_markdown_fence() -> None:
    plan = Plan(
        stack="s",
        changes=(Change(address="block.a", kind="block", action=CREATE,
                        diffs=(FieldDiff("value", None, "x\n```\n# Approved\u200b"),)),),
    )  # fmt: skip
    out = plan_markdown(plan, "http://127.0.0.1:8283")
    fences = [line for line in out.splitlines() if line.startswith("```")]
    assert fences == ["```diff", "```"]
    assert "\\u200b" in out  # the value's own zero-width space, escaped
