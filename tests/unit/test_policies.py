"""Policy rules (letta_apply.policy): each rule shape, located errors in policy files, hostile
rules in bounded time, sensitive values never shown, violations that refuse a plan before any
write, the starter pack over every example, SARIF that validates against its OASIS schema, and
the README's Rego example run on a JSON plan."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from textwrap import dedent

import jsonschema
import pytest

from letta_apply import Stack
from letta_apply.core.changes import Change, FieldDiff, Held, Plan
from letta_apply.core.model import Sensitive
from letta_apply.core.sensitive import Masker
from letta_apply.errors import ManifestError
from letta_apply.kinds import KINDS
from letta_apply.manifest.parse import load_text
from letta_apply.manifest.validate import validate
from letta_apply.pipeline import load_manifest
from letta_apply.policy import Budget, check_declared, check_plan, load_policies
from letta_apply.policy.evaluate import evaluate
from letta_apply.policy.inputs import subjects
from letta_apply.render.policy import sarif
from tests.helpers import Cli

ROOT = Path(__file__).resolve().parents[2]
STARTER = ROOT / "examples" / "policies"
SARIF_SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())

MANIFEST = """\
version: 1
stack: pol
agents:
  a:
    model: letta/letta-free
    embedding: letta/letta-free
    tags: [owner:team-a]
  b:
    model: openai/gpt-4o
    embedding: letta/letta-free
    context_window_limit: 200000
"""


def _policy(tmp_path: Path, text: str, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(dedent(text), encoding="utf-8")
    return str(path)


def _desired(text: str = MANIFEST, secret: str | None = None):  # type: ignore[no-untyped-def]
    desired = validate(load_text(text, "m.yaml"), KINDS)
    if secret is None:
        return desired
    from dataclasses import replace

    entries = dict(desired.entries)
    a = entries["agent.a"]
    data = {**a.data, "metadata": {"key": Sensitive(secret)}}
    entries["agent.a"] = replace(a, data=data)
    return replace(desired, entries=entries, secrets=(secret,))


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ManifestError) as e:
        load_policies([_policy(tmp_path, text)])
    return [f"{d.line}:{d.col}: {d.message} [{d.code}]" for d in e.value.diagnostics]


# -- rule shapes -------------------------------------------------------------------------------


def test_a_false_condition_is_a_violation_with_its_message_and_place(tmp_path: Path) -> None:
    p = load_policies([_policy(tmp_path, """\
        rules:
          - id: models
            applies_to: {kinds: [agent]}
            condition: resource.model == "letta/letta-free"
            severity: error
            message: "{{address}} uses {{resource.model}}"
    """)])  # fmt: skip
    (v,) = check_declared(_desired(), p)
    assert (v.rule, v.severity, v.address, v.code) == ("models", "error", "agent.b", "LA655")
    assert v.message == "agent.b uses openai/gpt-4o"
    assert (v.file, v.line, v.col) == ("m.yaml", 8, 3)  # where the manifest declares agent.b


@pytest.mark.parametrize(
    ("applies", "hit"),
    [
        ("{kinds: [block]}", []),
        ("{addresses: ['agent.a*']}", ["agent.a"]),
        ("{tags: ['owner:*']}", ["agent.a"]),
        ("{except: [agent.b]}", ["agent.a"]),
        ("{actions: [create]}", []),  # validate has no plan: every action is "none"
        ("{actions: [none]}", ["agent.a", "agent.b"]),
    ],
)
def test_applies_to_narrows_the_resources_a_rule_reads(
    tmp_path: Path, applies: str, hit: list[str]
) -> None:
    p = load_policies([_policy(tmp_path, f"""\
        rules:
          - id: all
            applies_to: {applies}
            condition: "false"
            severity: warning
            message: m
    """)])  # fmt: skip
    assert [v.address for v in check_declared(_desired(), p)] == hit


def test_the_stack_summary_and_templates_are_given(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST + "  w:\n    count: 3\n    model: letta/letta-free\n")
    p = load_policies([_policy(tmp_path, """\
        rules:
          - id: max
            condition: template == "" || stack.templates[template] <= 2
            severity: error
            message: "{{template}}: {{stack.templates[template]}} of {{stack.counts.agent}}"
    """)])  # fmt: skip
    found = check_declared(load_manifest(str(m)), p)
    assert [v.address for v in found] == ["agent.w[0]", "agent.w[1]", "agent.w[2]"]
    assert found[0].message == "agent.w: 3 of 5"


def test_rules_that_read_the_change_wait_for_a_plan(tmp_path: Path) -> None:
    p = load_policies([_policy(tmp_path, """\
        rules:
          - id: no-deletes
            condition: change.action != "delete"
            severity: error
            message: denied
    """)])  # fmt: skip
    assert check_declared(_desired(), p) == ()
    plan = Plan("pol", changes=(Change("agent.gone", "delete", remote_id="agent-1"),))
    checked = check_plan(plan, _desired(), p)
    assert [v.address for v in checked.violations] == ["agent.gone"]
    assert checked.blocked and checked.refused_by_policy


def test_a_warning_reports_and_lets_the_plan_through(tmp_path: Path) -> None:
    p = load_policies([_policy(tmp_path, """\
        rules:
          - {id: w, condition: "false", severity: warning, message: m}
    """)])  # fmt: skip
    checked = check_plan(Plan("pol"), _desired(), p)
    assert len(checked.violations) == 2 and not checked.blocked


def test_field_changes_are_given_before_and_after(tmp_path: Path) -> None:
    p = load_policies([_policy(tmp_path, """\
        rules:
          - id: no-model-switch
            condition: "!('model' in change.fields)"
            severity: error
            message: "{{change.fields.model.before}} -> {{change.fields.model.after}}"
    """)])  # fmt: skip
    plan = Plan("pol", changes=(
        Change("agent.a", "update", "agent-1", (FieldDiff("model", "x/old", "letta/letta-free"),)),
    ))  # fmt: skip
    (v,) = check_plan(plan, _desired(), p).violations
    assert (v.address, v.message) == ("agent.a", "x/old -> letta/letta-free")


# -- the starter pack --------------------------------------------------------------------------


def _memory_plan(written: tuple[str, ...]) -> Plan:
    return Plan(
        "pol",
        changes=(Change("agent.old", "delete", "agent-9"),),
        memory=(Held("agent.old", "agent-9", "agent", messages=3, passages=0, written=written),),
    )


def test_memory_loss_needs_approval_or_an_exception(tmp_path: Path) -> None:
    pack = load_policies([str(STARTER / "memory.yaml")])
    (v,) = check_plan(_memory_plan(("persona",)), _desired(), pack).violations
    assert (v.rule, v.address, v.severity) == ("memory-loss-needs-approval", "agent.old", "error")
    assert "['persona']" in v.message or '["persona"]' in v.message
    assert not check_plan(_memory_plan(()), _desired(), pack).violations  # nothing written
    approved = _desired(MANIFEST + "policy:\n  allow_memory_loss: [agent.old]\n")
    assert approved.allow_memory_loss == ("agent.old",)
    assert not check_plan(_memory_plan(("persona",)), approved, pack).violations
    text = (STARTER / "memory.yaml").read_text().replace("except: []", "except: [agent.o*]")
    excepted = load_policies([_policy(tmp_path, text)])
    assert not check_plan(_memory_plan(("persona",)), _desired(), excepted).violations


def test_secrets_only_from_variables(tmp_path: Path) -> None:
    pack = load_policies([str(STARTER / "secrets.yaml")])
    m = tmp_path / "m.yaml"
    base = "version: 1\nstack: s\nvariables:\n  tok: {sensitive: true, default: abcdefgh1234}\n"
    server = "mcp_servers:\n  m:\n    mcp_server_type: streamable_http\n"
    m.write_text(
        base + server + "    server_url: https://x.example/mcp\n    auth_token: plain-12\n"
    )
    (v,) = check_declared(load_manifest(str(m)), pack)
    assert (v.rule, v.address) == ("secrets-from-variables", "mcp_server.m")
    m.write_text(
        base + server + "    server_url: https://x.example/mcp\n    auth_token: ${var.tok}\n"
    )
    assert check_declared(load_manifest(str(m)), pack) == ()


EXPECTED = {  # example -> the rules that warn on it (none errs: the examples are compliant)
    "shared-memory.yaml": {"owner-tag"},
    "knowledge.yaml": {"owner-tag"},
    "supervisor-group.yaml": {"owner-tag"},
    "mcp-tools.yaml": {"owner-tag"},
    "environments": {"owner-tag"},
}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_the_starter_pack_over_every_example(
    example: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LETTA_APPLY_VAR_search_token", "not-a-real-secret")
    monkeypatch.setenv("LETTA_APPLY_VAR_ticket_api_key", "not-a-real-secret")
    path = ROOT / "examples" / example
    extra = ["--var-file", str(path / "env" / "prod.yaml")] if path.is_dir() else []
    code, out, err = cli(
        "validate", "-f", str(path), *extra, "--policy", str(STARTER), "--format", "json"
    )
    doc = json.loads(out)
    assert (code, err, doc["valid"]) == (0, "", True)
    found = doc.get("violations", [])
    assert {v["rule"] for v in found} == EXPECTED[example]
    assert {v["severity"] for v in found} <= {"warning"}


def test_every_example_manifest_is_covered() -> None:
    tops = {p.name for p in (ROOT / "examples").glob("*.yaml")}
    tops |= {p.name for p in (ROOT / "examples").iterdir() if (p / "base.yaml").exists()}
    assert tops == set(EXPECTED)


# -- located errors ----------------------------------------------------------------------------


def test_every_problem_of_a_policy_file_is_located_at_once(tmp_path: Path) -> None:
    found = _errors(tmp_path, """\
        rules:
          - id: a
            condition: resource.model in ["x"
            severity: error
            message: m
          - id: a
            condition: |
              has(resource.model) &&
                foo(1)
            severity: fatal
            message: "x {{ resource.( }}"
            extra: 1
          - id: c
            condition: resrouce.model == "x"
            message: m
    """)  # fmt: skip
    assert found == [
        "3:38: not valid CEL: Syntax error: mismatched input '<EOF>' expecting {']', ','} [LA652]",
        "6:9: id 'a' is already the id of a rule (" + str(tmp_path / "p.yaml") + ":2) [LA651]",
        "9:9: unknown function 'foo' (CEL here has: " + found[2].split("has: ")[1],
        "10:15: severity: error or warning, not 'fatal' [LA651]",
        "11:29: not valid CEL: Syntax error: no viable alternative at input '.(' [LA652]",
        "12:5: unknown key 'extra' (a rule has: id, description, applies_to, condition, "
        "severity, message) [LA651]",
        "13:5: the rule has no `severity` [LA651]",
        "14:16: unknown name 'resrouce' (rules are given: resource, change, stack, address, "
        "kind, template, sensitive) [LA654]",
    ]
    assert found[2].endswith("[LA654]")


def test_a_policy_file_that_is_not_one(tmp_path: Path) -> None:
    assert _errors(tmp_path, "- a\n") == [
        "1:1: a policy file is a mapping with `rules:`, a list of rules [LA650]"
    ]
    with pytest.raises(ManifestError) as e:
        load_policies([str(tmp_path / "missing.yaml")])
    assert "no such policy file [LA650]" in f"{e.value} [{e.value.code}]"


def test_cli_reports_policy_errors_located_and_sends_nothing(tmp_path: Path, cli: Cli) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST)
    bad = _policy(tmp_path, "rules:\n  - {id: x, condition: '1 +', severity: error, message: m}\n")
    for command in ("validate", "plan", "apply", "drift"):
        extra = ["--auto-approve"] if command == "apply" else []
        code, out, err = cli(command, "-f", str(m), "--policy", bad, *extra)
        assert code == 1
        assert f"{bad}:2:28: not valid CEL" in err and "[LA652]" in err
        assert "Traceback" not in err + out
    assert sum(cli.fake.counts.values()) == 0


# -- hostile rules -----------------------------------------------------------------------------

HOSTILE = {
    "huge": ("1 == 1 && " * 500 + "true", "LA653", "over the limit of 4096"),
    "deep": ("(" * 200 + "true" + ")" * 200, "LA653", "nested over 24 levels"),
    "nested comprehension": (
        "resource.tags.all(a, resource.tags.exists(b, a == b))", "LA653", "may not nest",
    ),
    "unknown field": ("nosuch.field == 1", "LA654", "unknown name 'nosuch'"),
    "python extension": ("'A'.lowerAscii() == 'a'", "LA654", "unknown function 'lowerAscii'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_expressions_are_refused_located(tmp_path: Path, case: str) -> None:
    expression, code, words = HOSTILE[case]
    start = time.monotonic()
    (found,) = _errors(tmp_path, f"""\
        rules:
          - id: h
            condition: {json.dumps(expression)}
            severity: error
            message: m
    """)  # fmt: skip
    assert time.monotonic() - start < 2
    assert found.startswith("3:") and found.endswith(f"[{code}]") and words in found


RUNTIME = {
    "no such key": ("resource.context_window_limit < 10", "no such key"),
    "wrong type": ("resource.model + 1 == 2", "Unsupported operation: string + int"),
    "not a boolean": ("resource.model", "gave letta/letta-free, not true or false"),
}


@pytest.mark.parametrize("case", sorted(RUNTIME))
def test_a_rule_failing_at_run_time_is_one_located_violation(tmp_path: Path, case: str) -> None:
    expression, words = RUNTIME[case]
    p = load_policies([_policy(tmp_path, f"""\
        rules:
          - id: r
            applies_to: {{addresses: [agent.a]}}
            condition: {json.dumps(expression)}
            severity: error
            message: m
    """)])  # fmt: skip
    (v,) = check_declared(_desired(), p)
    assert (v.code, v.address, v.severity, v.line) == ("LA657", "agent.a", "error", 4)
    assert words in v.message, v.message
    assert check_plan(Plan("pol"), _desired(), p).blocked  # a failing error rule refuses


def test_slow_rules_stop_at_their_budget(tmp_path: Path) -> None:
    # One comprehension over 1,500 literal items, a third of a second per agent: a minute for
    # 100 agents and 3 rules, unbounded.
    items = ",".join(["1"] * 1500)
    slow = f'[{items}].map(x, string(x) + "abcdefgh").exists(y, y == "z")'
    rules = "rules:\n" + "".join(
        f"  - {{id: slow{i}, condition: '!{slow}', severity: error, message: m}}\n"
        for i in range(3)
    )
    p = load_policies([_policy(tmp_path, rules)])
    many = tmp_path / "many.yaml"
    many.write_text("version: 1\nstack: pol\nagents:\n  w:\n    count: 100\n    model: x/y\n")
    desired = load_manifest(str(many))
    start = time.monotonic()
    found = check_declared(desired, p, Budget(rule=0.2, run=0.5))
    took = time.monotonic() - start
    assert took < 6, took  # unbounded, a minute
    assert [v.code for v in found][-1] == "LA657", found
    assert any("stopped after 0.2 s" in v.message for v in found)


def test_the_rules_together_stop_at_the_run_budget(tmp_path: Path) -> None:
    p = load_policies([_policy(tmp_path, "rules:\n" + "".join(
        f"  - {{id: r{i}, condition: 'true', severity: warning, message: m}}\n" for i in range(4)
    ))])  # fmt: skip
    ticks = iter(range(1000))
    found = evaluate(
        p.rules, subjects(_desired()), Masker(), Budget(rule=100, run=5), lambda: next(ticks)
    )
    assert [(v.rule, v.code) for v in found] == [("r2", "LA657"), ("r3", "LA657")]
    assert "not evaluated: the rules used up 5 s" in found[0].message


# -- sensitive values --------------------------------------------------------------------------


def test_a_rule_tests_a_sensitive_value_but_never_reads_it(tmp_path: Path) -> None:
    secret = "s3cr3t-v4lue-xyz"
    p = load_policies([_policy(tmp_path, """\
        rules:
          - id: leak
            applies_to: {addresses: [agent.a]}
            condition: "!has(resource.metadata.key)"
            severity: warning
            message: "key is {{resource.metadata.key}} ({{sensitive}}) {{string(resource)}}"
          - id: guess
            applies_to: {addresses: [agent.a]}
            condition: "!resource.metadata.key.startsWith('s3cr')"
            severity: warning
            message: guessed
    """)])  # fmt: skip
    found = check_declared(_desired(secret=secret), p)
    assert [v.rule for v in found] == ["leak"]  # the value a rule sees is the mask
    assert 'key is (sensitive) (["metadata.key"])' in found[0].message
    assert secret not in json.dumps([v.message for v in found])


# -- SARIF -------------------------------------------------------------------------------------


def test_sarif_validates_against_the_oasis_schema(tmp_path: Path, cli: Cli) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST)
    code, out, err = cli("validate", "-f", str(m), "--policy", str(STARTER), "--format", "sarif")
    assert code == 1, err  # agent.b breaks approved-models and context-window-cap
    doc = json.loads(out)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(doc)
    results = doc["runs"][0]["results"]
    broken = {(r["ruleId"], r["level"]) for r in results}
    assert {("approved-models", "error"), ("context-window-cap", "error")} <= broken
    # Placed where the manifest declares agent.b (line 8, column 3), for the PR's annotations.
    (model,) = [r for r in results if r["ruleId"] == "approved-models"]
    region = model["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (8, 3)
    rules = [r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]]
    assert all(rules[r["ruleIndex"]] == r["ruleId"] for r in results)


def test_sarif_of_nothing_found_validates() -> None:
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(sarif([], []))


# -- plan and apply on the fake server ---------------------------------------------------------

DENY = """\
rules:
  - id: approved
    applies_to: {kinds: [agent]}
    condition: resource.model == "letta/letta-free"
    severity: error
    message: "model {{resource.model}} is not approved"
  - id: owner
    applies_to: {kinds: [agent]}
    condition: has(resource.tags)
    severity: warning
    message: no tags
"""


def test_apply_refused_by_policy_writes_nothing(tmp_path: Path, cli: Cli) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST)
    policy = _policy(tmp_path, DENY)
    code, out, err = cli("apply", "-f", str(m), "--policy", policy, "--auto-approve")
    assert code == 1
    assert "model openai/gpt-4o is not approved [LA655] (rule approved)" in out
    assert "error: policy: 1 violation(s) at error; nothing was applied [LA655]" in err
    assert cli.fake.writes == 0
    code, out, _ = cli(
        "apply", "-f", str(m), "--policy", policy, "--auto-approve", "--format", "json"
    )
    doc = json.loads(out)
    assert code == 1 and doc["applied"] == [] and cli.fake.writes == 0
    assert [(v["rule"], v["severity"], v["address"]) for v in doc["plan"]["violations"]] == [
        ("approved", "error", "agent.b"), ("owner", "warning", "agent.b"),
    ]  # fmt: skip


def test_plan_shows_violations_first(tmp_path: Path, cli: Cli) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST)
    policy = _policy(tmp_path, DENY)
    code, out, _ = cli("plan", "-f", str(m), "--policy", policy, "--format", "markdown")
    assert code == 1
    body = out.split("\n", 4)[4]
    assert body.startswith("> [!CAUTION]\n> **Refused by policy: apply will write nothing.**")
    code, out, _ = cli("plan", "-f", str(m), "--policy", policy)
    assert out.splitlines()[2].startswith("Policy: rules broken at error")
    assert cli.fake.writes == 0


def test_a_warning_applies_and_reports(tmp_path: Path, cli: Cli) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST.replace("openai/gpt-4o", "letta/letta-free"))
    code, out, err = cli(
        "apply", "-f", str(m), "--policy", _policy(tmp_path, DENY), "--auto-approve"
    )
    assert code == 0, err
    assert "warning: m.yaml" not in out  # the file as given
    assert re.search(r"warning: \S*m\.yaml:8:3: agent\.b: no tags \[LA656\] \(rule owner\)", out)
    assert "Apply complete" in out and cli.fake.writes > 0


def test_policy_files_named_in_the_manifest(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "rules").mkdir()
    _policy(tmp_path, DENY, "rules/deny.yaml")
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST + "policy:\n  files: [rules]\n")
    code, out, _ = cli("validate", "-f", str(m))
    assert code == 1 and "rule approved" in out


# -- OPA/Rego on the JSON plan (README, Policies) ----------------------------------------------


def test_the_readme_rego_example_runs_on_a_json_plan(tmp_path: Path, cli: Cli) -> None:
    regopy = pytest.importorskip("regopy")
    readme = (ROOT / "README.md").read_text()
    (rego,) = re.findall(r"```rego\n(.*?)```", readme, re.S)
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST)
    code, out, _ = cli("plan", "-f", str(m), "--format", "json")
    assert code == 0
    interpreter = regopy.Interpreter()
    interpreter.add_module("letta", rego)
    interpreter.set_input(regopy.Input(json.loads(out)))
    denied = interpreter.query("x = data.letta.deny")
    assert denied.ok()
    assert json.loads(denied.binding("x").json()) == [
        "agent.b: model openai/gpt-4o is not approved"
    ]


def test_a_saved_plan_keeps_its_violations_and_is_refused(tmp_path: Path, cli: Cli) -> None:
    m, saved = tmp_path / "m.yaml", str(tmp_path / "plan.json")
    m.write_text(MANIFEST)
    policy = _policy(tmp_path, DENY)
    assert cli("plan", "-f", str(m), "--policy", policy, "--out", saved).code == 1
    code, _, err = cli("apply", saved, "--auto-approve")
    assert code == 1 and "[LA655]" in err and cli.fake.writes == 0
    code, _, err = cli("apply", saved, "--policy", policy, "--auto-approve")
    assert code == 1 and "--policy on a saved plan needs its manifest (-f FILE) [LA902]" in err
    code, _, err = cli("apply", saved, "-f", str(m), "--policy", policy, "--auto-approve")
    assert code == 1 and "[LA655]" in err and cli.fake.writes == 0


def test_fields_of_the_wrong_type_are_located(tmp_path: Path) -> None:
    assert _errors(tmp_path, """\
        rules:
          - id: t
            applies_to: {kinds: agent, colour: [red]}
            condition: 42
            severity: [error]
            message: {text: m}
          - just a string
    """) == [
        "3:25: applies_to.kinds: a list of strings [LA651]",
        "3:32: unknown key 'colour' (applies_to has: kinds, addresses, tags, except, actions) "
        "[LA651]",
        "4:16: condition: a non-empty string [LA651]",
        "5:15: severity: a non-empty string [LA651]",
        "6:14: message: a non-empty string [LA651]",
        "7:5: a rule is a mapping (id, condition, severity, message...) [LA651]",
    ]


def test_a_hostile_rule_through_the_command_line_is_one_line(tmp_path: Path, cli: Cli) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST)
    hostile = _policy(tmp_path, """\
        rules:
          - {id: h, condition: "resource.model * 2 > resource.nosuch", severity: error, message: m}
    """)  # fmt: skip
    code, out, err = cli("plan", "-f", str(m), "--policy", hostile)
    assert code == 1 and "Traceback" not in out + err
    (line,) = [x for x in out.splitlines() if "LA657" in x]
    assert "agent.a: rule h could not be evaluated:" in line
    assert cli.fake.writes == 0


def test_what_rules_find_is_placed_however_the_rules_are_named(tmp_path: Path, cli: Cli) -> None:
    """A manifest the quick reader would read without positions is read with them when rules
    will look at it: given with --policy, named by the manifest's `policy:`, or by a program."""
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST)
    rule = _policy(tmp_path, """\
        rules:
          - {id: cap, condition: "!has(resource.context_window_limit)", severity: warning,
             message: m}
    """, name="rules.yaml")  # fmt: skip
    placed = f"{m}:8:3: agent.b: m [LA656] (rule cap)"
    assert placed in cli("validate", "-f", str(m), "--policy", rule).out
    own = tmp_path / "own.yaml"
    own.write_text(MANIFEST + "policy: {files: [rules.yaml]}\n")
    assert placed.replace(str(m), str(own)) in cli("validate", "-f", str(own)).out
    stack = Stack.from_files(str(m), policies=rule)
    (v,) = check_declared(stack.desired, stack.policies)
    assert (v.file, v.line, v.col) == (str(m), 8, 3)


def test_a_broken_policy_file_is_counted_as_such(tmp_path: Path, cli: Cli) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST)
    broken = _policy(tmp_path, """\
        rules:
          - {id: b, condition: "resource.model ===", severity: error, message: m}
    """)  # fmt: skip
    code, out, err = cli("validate", "-f", str(m), "--policy", broken)
    assert code == 1 and out == ""
    first, last = err.splitlines()
    assert first.startswith(f"{broken}:2:") and first.endswith("[LA652]")
    assert last == "1 error in the policy files; nothing was sent to the server."


def test_100_rules_over_a_1000_agent_plan_stay_cheap(tmp_path: Path) -> None:
    """A guard against a cost gone quadratic, with room for a loaded machine: the number itself
    (under a second) is bench/policies.py's to show, not a timed test's."""
    from bench.policies import manifest, rules

    m, p = tmp_path / "m.yaml", tmp_path / "rules.yaml"
    m.write_text(manifest(1000))
    p.write_text(rules(100))
    desired = load_manifest(str(m))
    plan = Plan(desired.stack, changes=tuple(Change(a, "create") for a in desired.addresses))
    policies = load_policies([str(p)])
    start = time.process_time()
    checked = check_plan(plan, desired, policies)
    assert time.process_time() - start < 5.0  # CPU, not wall: the machine's load counts less
    assert checked.violations == ()


def test_the_readme_policy_examples_run_as_written(tmp_path: Path, cli: Cli) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Policies\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    (rule,) = [b for b in blocks if "rules:" in b]
    (named,) = [b for b in blocks if b.startswith("policy:")]
    p = load_policies([_policy(tmp_path, rule)])
    assert [r.id for r in p.rules] == ["approved-models"]
    m = tmp_path / "m.yaml"
    m.write_text(
        MANIFEST.replace("  a:\n", "  support-a:\n").replace("owner:team-a", "team:a")
        + named.replace("../policies", "rules")
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(rule)
    code, out, _ = cli("validate", "-f", str(m))
    assert code == 0 and "1 policy rule(s) checked" in out  # support-a passes; b is not matched
    m.write_text(m.read_text().replace("letta/letta-free\n    embedding", "x/y\n    embedding", 1))
    code, out, _ = cli("validate", "-f", str(m))
    assert code == 0  # it names actions: a plan's (validate's are all "none")
    code, out, _ = cli("plan", "-f", str(m))
    assert code == 1 and "agent.support-a: uses x/y, not an approved model [LA655]" in out


def test_drift_checks_what_the_server_now_holds(tmp_path: Path, cli: Cli) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST.replace("openai/gpt-4o", "letta/letta-free"))
    assert cli("apply", "-f", str(m), "--auto-approve").code == 0
    policy = _policy(tmp_path, DENY)
    assert cli("drift", "-f", str(m), "--policy", policy).code == 0  # no drift, nothing broken
    (agent,) = [a for a in cli.fake.agents.values() if a["name"] == "b"]
    agent["model"] = "openai/gpt-4o"  # changed by hand
    writes = cli.fake.writes
    code, out, _ = cli("drift", "-f", str(m), "--policy", policy)
    assert code == 1, out
    assert "agent.b: model openai/gpt-4o is not approved [LA655]" in out
    code, out, _ = cli("drift", "-f", str(m), "--policy", policy, "--format", "json")
    assert [v["rule"] for v in json.loads(out)["violations"]] == ["approved", "owner"]
    assert cli.fake.writes == writes
