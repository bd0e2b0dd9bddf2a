"""What plan and apply say is the whole truth: an apply that refused resources is not
"complete", every reason a resource is refused is shown, instances are listed in one natural
order (w[2] before w[10]) everywhere, the saved-plan hint is a command that works, and a
--timeout that could never succeed is a usage error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import Cli, write

HEAD = "version: 1\nstack: unit\n"
AGENT = "    model: letta/letta-free\n    embedding: letta/letta-free\n"


def test_an_apply_that_refused_resources_says_so_and_lists_every_reason(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(
        tmp_path,
        HEAD + "agents:\n"
        "  good:\n" + AGENT + "  bad:\n" + AGENT + "    tools: [no_such_tool, web_serch]\n"
        "    tool_rules: [{type: exit_loop, tool_name: nor_this_one}]\n",
    )
    plan = cli("plan", "-f", str(path))
    assert plan.code == 1
    refused = [line for line in plan.out.splitlines() if line.startswith("  x ")]
    assert refused == [
        "  x agent.bad: unknown tools 'no_such_tool', 'web_serch' [LA631]",
        "  x agent.bad: tool_rules name unknown tool 'nor_this_one' [LA632]",
    ]
    assert "hint: did you mean 'web_search'?" in plan.out
    assert plan.out.rstrip().endswith("1 refused.")  # one resource, two reasons
    doc = json.loads(cli("plan", "-f", str(path), "--format", "json").out)
    assert doc["summary"]["refused"] == 1 and len(doc["problems"]) == 2

    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == 1
    assert "Apply complete" not in r.out
    assert r.out.rstrip().endswith(
        "Apply incomplete: 1 change(s) made; 1 resource(s) refused (see the errors): fix them, "
        "then apply again."
    )
    assert r.err.count("error: agent.bad: ") == 2
    assert [a["name"] for a in cli.fake.agents.values()] == ["good"]


def test_a_group_names_every_refused_member_it_needs(tmp_path: Path, cli: Cli) -> None:
    path = write(
        tmp_path,
        HEAD + "agents:\n"
        "  a:\n" + AGENT + "    tools: [nope_a]\n"
        "  b:\n" + AGENT + "    tools: [nope_b]\n"
        "groups:\n  team: {manager_type: round_robin, agents: [a, b]}\n",
    )
    r = cli("plan", "-f", str(path))
    assert r.code == 1
    assert "  x group.team: uses agent.a, which apply refuses to make" in r.out
    assert "  x group.team: uses agent.b, which apply refuses to make" in r.out


def _addresses(text: str) -> list[str]:
    return re.findall(r"agent\.w\[(\d+)\]", text)


def test_instances_are_listed_in_natural_order_everywhere(tmp_path: Path, cli: Cli) -> None:
    path = write(
        tmp_path,
        HEAD + "agents:\n  w:\n    count: 12\n" + AGENT + "    tools: [web_search]\n",
    )
    natural = [str(i) for i in range(12)]
    plan = cli("plan", "-f", str(path), "--format", "json")
    assert [c["address"] for c in json.loads(plan.out)["changes"]] == [
        f"agent.w[{i}]" for i in natural
    ]
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0, r.err
    # The plan shows the first instance in full and the rest as one run, first to last.
    assert "  + agent.w[1] ... agent.w[11]: create, 11 more like agent.w[0]" in r.out
    done = [line for line in r.out.splitlines() if re.match(r"agent\.w\[\d+\]: created", line)]
    assert _addresses("\n".join(done)) == natural, r.out

    for a in cli.fake.agents.values():
        a["tool_ids"] = []  # every instance loses its tool on the server: refused nowhere
    refused = write(
        tmp_path, HEAD + "agents:\n  w:\n    count: 12\n" + AGENT + "    tools: [nope]\n"
    )
    r = cli("plan", "-f", str(refused))
    xs = [line for line in r.out.splitlines() if line.startswith("  x ")]
    assert _addresses("\n".join(xs)) == natural


def test_the_saved_plan_hint_is_a_command_that_applies_it(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, HEAD + "blocks:\n  b: {value: '${var.v}'}\nvariables:\n  v: {}\n")
    varfile = write(tmp_path, "v: one\n", "my vars.yaml")
    saved = tmp_path / "p.json"
    r = cli("plan", "-f", str(path), "--var-file", str(varfile), "--out", str(saved))
    assert r.code == 0, r.err
    assert f"apply it with `letta-apply apply {saved} -f {path} --var-file '{varfile}'`." in r.err
    r = cli("plan", "-f", str(path), "--var", "v=two", "--out", str(saved))
    assert f"`letta-apply apply {saved} -f {path}` and the same --var values." in r.err
    assert "two" not in r.err  # a --var value may be a secret: never repeated


def test_a_timeout_of_zero_is_a_usage_error(
    tmp_path: Path, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, HEAD + "blocks:\n  b: {value: v}\n")
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(SystemExit) as e:
            cli("plan", "-f", str(path), "--timeout", bad)
        assert e.value.code == 1, bad  # a usage error, never 2 (changes present)
        err = capsys.readouterr().err
        assert f"argument --timeout: must be more than 0 seconds: {bad}" in err
        assert "cannot reach" not in err
    assert not cli.fake.counts  # nothing was sent
    assert cli("plan", "-f", str(path), "--timeout", "0.5").code == 0
