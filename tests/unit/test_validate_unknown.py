"""`validate` needs no variable values (Terraform's validate neither): a variable given none is
unknown there, and what depends on it is checked as far as its declaration tells, everything else
as usual; plan and apply still need every value."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from letta_apply.errors import ManifestError
from letta_apply.manifest.variables import Options
from letta_apply.pipeline import Validated, load_manifest, validate_manifest
from tests.helpers import Cli, write

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ENVIRONMENTS = EXAMPLES / "environments"

HEAD = "version: 1\nstack: s\n"
AGENT = "    model: letta/letta-free\n    embedding: letta/letta-free\n"


def checked(tmp_path: Path, text: str, **options: Any) -> Validated:
    return validate_manifest(str(write(tmp_path, text)), Options(**options))


def problems(tmp_path: Path, text: str, **options: Any) -> list[str]:
    """What validate reports, as `LINE:COL: message`."""
    with pytest.raises(ManifestError) as e:
        checked(tmp_path, text, **options)
    return [f"{d.line}:{d.col}: {d.message}" for d in e.value.diagnostics]


# ---------------------------------------------------------------------------------------------
# What is not known is not an error; plan still needs it


def test_the_environments_example_validates_without_its_values(cli: Cli) -> None:
    r = cli("validate", "-f", str(ENVIRONMENTS))
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        f"{ENVIRONMENTS}: valid, without values for var.env, var.regions, var.ticket_api_key "
        "(what depends on them is checked by plan, which needs them)\n"
    )
    r = cli("validate", "-f", str(ENVIRONMENTS), "--format", "json")
    assert json.loads(r.out) == {
        "format_version": 1, "valid": True, "diagnostics": [],
        "unknown": ["var.env", "var.regions", "var.ticket_api_key"],
    }  # fmt: skip
    # With an environment's values, only the secret is missing; with it too, nothing is.
    prod = ENVIRONMENTS / "env" / "prod.yaml"
    r = cli("validate", "-f", str(ENVIRONMENTS), "--var-file", str(prod))
    assert r.code == 0, r.err
    assert f"with {prod}: valid, without values for var.ticket_api_key (" in r.out
    r = cli(
        "validate", "-f", str(ENVIRONMENTS), "--var-file", str(prod), "--var", "ticket_api_key=k"
    )
    assert r.code == 0, r.err
    assert ': valid: stack "support-prod", 4 shared block(s), 4 agent(s)' in r.out


def test_plan_still_needs_every_value(cli: Cli) -> None:
    r = cli("plan", "-f", str(ENVIRONMENTS))
    assert r.code == 1
    for name in ("env", "regions", "ticket_api_key"):
        assert f"variable '{name}' has no value" in r.err
    assert cli.fake.calls == []


def test_a_misspelled_variable_is_still_undefined(tmp_path: Path) -> None:
    text = HEAD + "variables:\n  env: {type: string}\nagents:\n  a:\n" + AGENT
    found = problems(tmp_path, text + "    description: ${var.evn}\n")
    assert found == [
        "9:18: ${var.evn}: undefined variable 'evn'; did you mean 'env'? (declared: env)"
    ]
    # Beside a variable without value, in one string: the misspelling alone is reported.
    found = problems(tmp_path, text + "    description: ${var.env}-${var.evn}\n")
    assert found == [
        "9:18: ${var.evn}: undefined variable 'evn'; did you mean 'env'? (declared: env)"
    ]
    checked(tmp_path, text + "    description: ${var.env}\n")


def test_a_var_file_is_still_checked_against_the_declarations(tmp_path: Path) -> None:
    values = tmp_path / "prod.yaml"
    values.write_text("env: prod\nregoins: {}\n")
    with pytest.raises(ManifestError) as e:
        validate_manifest(str(ENVIRONMENTS), Options(var_files=[str(values)]))
    assert [str(d) for d in e.value.diagnostics] == [
        f"{values}:2:1: no variable 'regoins' is declared (declared: env, model, regions, "
        "ticket_api_key)"
    ]


def test_a_variable_without_value_is_listed_used_or_not(tmp_path: Path) -> None:
    text = HEAD + "variables:\n  spare: {type: number}\n  set: {default: x}\n"
    assert checked(tmp_path, text) == Validated(None, ("var.spare",))
    assert checked(tmp_path, text, vars=["spare=1"]).desired is not None


def test_an_unset_environment_variable_is_unknown_to_validate_only(tmp_path: Path) -> None:
    text = HEAD + "agents:\n  a:\n" + AGENT + "    description: ${env.LETTA_TEST_UNSET_X}\n"
    assert checked(tmp_path, text).unknown == ("env.LETTA_TEST_UNSET_X",)
    with pytest.raises(ManifestError, match="environment variable LETTA_TEST_UNSET_X is not set"):
        load_manifest(str(tmp_path / "m.yaml"))


# ---------------------------------------------------------------------------------------------
# What the declaration tells is checked


DECLARED = HEAD + (
    "variables:\n  s: {type: string}\n  n: {type: number}\n  m: {type: map}\n  l: {type: list}\n"
    "  key: {type: string, sensitive: true}\n"
)


# The fields the kinds take a sensitive value in (Kind.sensitive_in), in one sorted list.
WHERE_SECRETS_GO = (
    "access_key, api_key, auth_token, custom_headers, description, env, metadata, properties, "
    "secrets, system, "
    "tool_exec_environment_variables and value"
)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("blocks:\n  b: {value: x, limit: '${var.s}'}\n",
         "10:24: blocks.b.limit: expected an integer, got a string"),
        ("blocks:\n  b: {value: '${var.m}'}\n",
         "10:14: blocks.b.value: expected a string, got a mapping"),
        ("blocks:\n  b: {value: 'a ${var.l}'}\n",
         "10:14: ${var.l} is a list: it can be a whole value, not part of a string"),
        ("agents:\n  a:\n" + AGENT + "    tags: ['${var.key}']\n",
         "13:12: agents.a.tags[0]: a sensitive value cannot be used here (it would be shown); it "
         f"can go in {WHERE_SECRETS_GO}"),
        ("agents:\n  a:\n" + AGENT + "    name: 'bot-${var.key}'\n",
         "13:11: agents.a.name: a sensitive value cannot be used here (it would be shown); it can "
         f"go in {WHERE_SECRETS_GO}"),
        ("blocks:\n  b: {count: '${var.s}', value: x}\n",
         "10:14: blocks.b.count: expected a whole number, 0 or more, got a string"),
        ("blocks:\n  b: {count: '${var.key}', value: x}\n",
         "10:14: blocks.b.count: cannot be sensitive: the number of instances is shown"),
        ("blocks:\n  b: {for_each: '${var.n}', value: x}\n",
         "10:17: blocks.b.for_each: expected a list or a map, got a number"),
        ("blocks:\n  b: {for_each: '${var.l}', value: '${each.value.x}'}\n",
         "10:36: ${each.value.x}: each.value has no field 'x'"),
        ("blocks:\n  b: {value_file: '${var.n}'}\n",
         "10:19: blocks.b.value_file: expected a file path"),
    ],
)  # fmt: skip
def test_what_a_declaration_tells_is_checked(tmp_path: Path, entry: str, message: str) -> None:
    assert problems(tmp_path, DECLARED + entry) == [message]


def test_a_sensitive_boolean_variable_is_an_error_without_its_value(tmp_path: Path) -> None:
    text = HEAD + "variables:\n  flag: {type: bool, sensitive: true}\n"
    assert problems(tmp_path, text) == [
        "4:3: variable 'flag': a sensitive value cannot be (or hold) a boolean: it has two values, "
        "so it cannot be kept secret"
    ]


def test_what_depends_on_an_unknown_value_waits_for_it(tmp_path: Path) -> None:
    text = DECLARED + (
        "blocks:\n"
        "  region:\n    for_each: ${var.m}\n    value: '${each.key}: ${each.value.tz.name}'\n"
        "    limit: ${var.n}\n"
        "  org: {value: x, label: '${var.s}', limit: '${var.n}'}\n"
        "agents:\n"
        "  a:\n    name: Bot ${var.s}\n    model: ${var.s}\n    embedding: x/${var.s}\n"
        "    blocks: [org, 'region[eu]', 'region[*]', 'region[${var.s}]']\n"
        "    tags: ['${var.s}', '${var.s}']\n    metadata: ${var.m}\n"
        "    description_file: ${var.s}\n"
        "  w:\n    count: ${var.n}\n" + AGENT + "    system: 'worker ${count.index}'\n"
        "groups:\n  g:\n    manager_type: supervisor\n    manager_agent: a\n"
        "    agents: ['w[0]', 'w[*]']\n    blocks: ['region[us]']\n"
        "imports:\n  - {to: 'agent.w[3]', id: agent-00000000-0000-0000-0000-000000000000}\n"
    )
    assert checked(tmp_path, text) == Validated(
        None, ("var.key", "var.l", "var.m", "var.n", "var.s")
    )


def test_a_template_of_unknown_instances_is_checked_once(tmp_path: Path) -> None:
    text = DECLARED + (
        "agents:\n"
        "  w:\n    for_each: ${var.m}\n" + AGENT + "    modle: x\n    blocks: [nope]\n"
        "  c:\n    count: ${var.n}\n" + AGENT + "    tags: [a, a]\n"
    )
    assert problems(tmp_path, text) == [
        "14:5: agents.w[\"*\"]: unknown key 'modle'; did you mean 'model'?",
        "15:14: agents.w[\"*\"].blocks[0]: no shared block 'nope' is declared (the manifest "
        "declares no shared blocks under 'blocks')",
        "20:15: agents.c[\"*\"].tags[1]: 'a' is listed twice (first at line 20)",
    ]


def test_a_known_duplicate_is_still_found_beside_unknown_items(tmp_path: Path) -> None:
    text = DECLARED + "agents:\n  a:\n" + AGENT + "    tags: ['${var.s}', a, '${var.s}', a]\n"
    assert problems(tmp_path, text) == ["13:39: agents.a.tags[3]: 'a' is listed twice (first at "
                                        "line 13)"]  # fmt: skip


def test_a_template_without_one_instance_named_is_still_an_error(tmp_path: Path) -> None:
    text = DECLARED + (
        "blocks:\n  region: {for_each: '${var.m}', value: x}\n"
        "agents:\n  a:\n" + AGENT + "    blocks: [region]\n"
    )
    assert problems(tmp_path, text) == [
        "15:14: agents.a.blocks[0]: block.region has for_each: name one instance, region[KEY], "
        "or every one, region[*]"
    ]


# ---------------------------------------------------------------------------------------------
# Nothing that is valid with values is refused without them


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))


def _shape(path: tuple[Any, ...]) -> tuple[Any, ...]:
    """A place in a manifest whatever its keys: (agents, *, memory_blocks, *, value)."""
    return tuple("*" if isinstance(p, int) or i == 1 else p for i, p in enumerate(path))


_TYPES = {bool: "bool", int: "number", float: "number", str: "string", list: "list", dict: "map"}
# Every manifest the tests plan, each example file alone, and the example stack of files.
_CASES = sorted((ROOT / "tests" / "plans").glob("*/manifest.yaml")) + sorted(
    p for p in EXAMPLES.glob("*.yaml")
)


def _replacements() -> Iterator[tuple[Path, Path, tuple[Any, ...], str, str]]:
    """(folder, file, path, reference, its variable's type): each place of each manifest, once
    per shape, its value replaced by a variable of its type given no value (whole, and inside
    a string)."""
    seen: set[tuple[Any, ...]] = set()
    for folder, files in [
        *((p.parent, [p]) for p in _CASES),
        (ENVIRONMENTS, [*ENVIRONMENTS.glob("*.yaml")]),
    ]:
        for f in files:
            data = yaml.safe_load(f.read_text(encoding="utf-8"))
            for path, value in _leaves(data):
                if len(path) < 2 or path[0] in ("variables", "version") or value is None:
                    continue
                if isinstance(value, str) and "${" in value:
                    continue  # what it is depends on its own references
                for reference, kind in [
                    ("${var.u_}", _TYPES[type(value)]),
                    ("x${var.u_}", "string"),
                ]:
                    if (
                        kind == "string"
                        and reference == "x${var.u_}"
                        and not isinstance(value, str)
                    ):
                        continue
                    shape = (_shape(path), reference, f.parent == ENVIRONMENTS)
                    if shape not in seen:
                        seen.add(shape)
                        yield folder, f, path, reference, kind


def test_every_value_may_be_unknown(tmp_path: Path) -> None:
    failures: list[str] = []
    count = 0
    for folder, f, path, reference, kind in _replacements():
        count += 1
        copied = tmp_path / str(count)
        shutil.copytree(folder, copied, ignore=shutil.ignore_patterns("expected.*", "live.json"))
        data = copy.deepcopy(yaml.safe_load(f.read_text(encoding="utf-8")))
        at = data
        for p in path[:-1]:
            at = at[p]
        at[path[-1]] = reference
        data["variables"] = {**(data.get("variables") or {}), "u_": {"type": kind}}
        (copied / f.name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        target = copied if folder == ENVIRONMENTS else copied / f.name
        try:
            validate_manifest(str(target))
        except ManifestError as e:
            failures.append(f"{f.relative_to(ROOT)} {path} = {reference}: {e.diagnostics[0]}")
    assert count > 200
    assert not failures, "\n".join(failures)
