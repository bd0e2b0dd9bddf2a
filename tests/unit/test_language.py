"""The manifest language: several files, file references, variables, interpolation and templates,
each error kind with its position."""

from __future__ import annotations

import re
from pathlib import Path
from textwrap import dedent

import pytest

from letta_apply.core.model import Desired, Sensitive
from letta_apply.errors import Diagnostic, ManifestError
from letta_apply.manifest.addresses import normalize_address
from letta_apply.manifest.variables import Options
from letta_apply.pipeline import load_manifest
from tests.helpers import Cli

HEAD = "version: 1\nstack: s\n"
AGENT = "MODEL"  # on a line of its own: the model and embedding lines, at that indentation
_MODEL = re.compile(r"^( *)MODEL$", re.M)


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _MODEL.sub(r"\1model: letta/letta-free\n\1embedding: letta/letta-free", dedent(text))
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(paths: str | list[str], **options: object) -> Desired:
    return load_manifest(paths, Options(**options))  # type: ignore[arg-type]


def errors(paths: str | list[str], **options: object) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as e:
        load(paths, **options)
    return e.value.diagnostics


def one_error(paths: str | list[str], **options: object) -> Diagnostic:
    found = errors(paths, **options)
    assert len(found) == 1, found
    return found[0]


# -- files -------------------------------------------------------------------------------------


def test_files_and_folders_make_one_manifest(tmp_path: Path) -> None:
    write(tmp_path / "m", "b.yaml", "blocks:\n  org: {value: shared}\n")
    write(tmp_path / "m", "a.yml", HEAD)
    write(tmp_path / "m", "notes.txt", "not a manifest")
    extra = write(tmp_path, "agents.yaml", f"agents:\n  w:\n    {AGENT}\n    blocks: [org]\n")
    d = load([str(tmp_path / "m"), extra])
    assert d.stack == "s"
    assert set(d.of("block")) == {"block.org"}
    assert d.of("agent")["agent.w"].blocks == ("block.org",)
    # Folders give their files sorted; -f files follow in command-line order.
    assert [Path(f).name for f in d.files] == ["a.yml", "b.yaml", "agents.yaml"]


def test_a_key_in_two_files_names_both_places(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", HEAD + "blocks:\n  org: {value: one}\n")
    b = write(tmp_path, "b.yaml", "blocks:\n  x: {value: x}\n  org: {value: two}\n")
    d = one_error([a, b])
    assert (d.file, d.line, d.col) == (b, 3, 3)
    assert d.message == f"blocks.org is declared twice: here and at {a}:4:3"


def test_files_must_agree_on_the_stack(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", HEAD)
    b = write(tmp_path, "b.yaml", "stack: other\n")
    d = one_error([a, b])
    assert (d.file, d.line) == (b, 1)
    assert "'other' here, but 's' at " + a + ":2:1" in d.message


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    d = one_error(str(tmp_path / "empty"))
    assert d.message == "no *.yaml or *.yml file in this directory"


def test_errors_in_several_files_are_all_reported(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "version: 1\nstack: [\n")
    b = write(tmp_path, "b.yaml", "blocks: {x: {value: 'open\n")
    assert {d.file for d in errors([a, b])} == {a, b}


def test_value_and_system_files_are_read_relative_to_their_manifest(tmp_path: Path) -> None:
    write(tmp_path, "texts/org.md", "Shared facts.\n")
    write(tmp_path, "sub/texts/system.md", "You are a worker.\n")
    write(tmp_path, "sub/texts/persona.md", "I am a worker.\n")
    write(tmp_path, "main.yaml", HEAD + "blocks:\n  org: {value_file: texts/org.md}\n")
    write(
        tmp_path,
        "sub/agents.yaml",
        f"""\
        agents:
          w:
            {AGENT}
            system_file: texts/system.md
            description_file: texts/persona.md
            memory_blocks: [{{label: persona, value_file: texts/persona.md}}]
        """,
    )
    d = load([str(tmp_path / "main.yaml"), str(tmp_path / "sub/agents.yaml")])
    assert d.of("block")["block.org"].value == "Shared facts.\n"
    w = d.of("agent")["agent.w"]
    assert w.config["system"] == "You are a worker.\n"
    assert w.config["description"] == "I am a worker.\n"
    assert w.memory_blocks[0].value == "I am a worker.\n"


def test_a_missing_file_is_reported_where_the_manifest_names_it(tmp_path: Path) -> None:
    m = write(tmp_path, "m.yaml", HEAD + "blocks:\n  org:\n    value_file: gone.md\n")
    d = one_error(m)
    assert (d.file, d.line, d.col) == (m, 5, 17)
    assert d.message.startswith("blocks.org.value_file: file 'gone.md' not found")


def test_files_outside_the_folder_need_a_flag(tmp_path: Path) -> None:
    write(tmp_path, "secret.txt", "outside")
    m = write(tmp_path, "m/m.yaml", HEAD + "blocks:\n  org: {value_file: ../secret.txt}\n")
    d = one_error(m)
    assert (d.line, d.col) == (4, 21)
    assert "is outside" in d.message and "--allow-outside-files" in d.message
    assert load(m, allow_outside_files=True).of("block")["block.org"].value == "outside"


def test_a_folder_given_to_f_is_the_root_for_its_files(tmp_path: Path) -> None:
    write(tmp_path, "m/personas/p.md", "persona")
    write(tmp_path, "m/sub/x.md", "x")
    write(tmp_path, "m/m.yaml", HEAD + "blocks:\n  org: {value_file: personas/p.md}\n")
    assert load(str(tmp_path / "m")).of("block")["block.org"].value == "persona"


def test_value_and_value_file_together_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, "p.md", "x")
    m = write(tmp_path, "m.yaml", HEAD + "blocks:\n  org: {value: a, value_file: p.md}\n")
    assert one_error(m).message == "blocks.org: set value or value_file, not both"


def test_referenced_files_change_the_digest(tmp_path: Path) -> None:
    p = write(tmp_path, "p.md", "one")
    m = write(tmp_path, "m.yaml", HEAD + "blocks:\n  org: {value_file: p.md}\n")
    first = load(m).digest
    assert load(m).digest == first
    Path(p).write_text("two", encoding="utf-8")
    assert load(m).digest != first


# -- variables ---------------------------------------------------------------------------------

VARS = HEAD.replace("stack: s", "stack: s-${var.env}") + dedent(
    """\
    variables:
      env: {default: dev}
      limit: {type: number, default: 5000}
      strict: {type: bool, default: false}
      tags: {type: list, default: [a]}
    blocks:
      org:
        value: "env ${var.env}, literal $${var.env}"
        limit: ${var.limit}
        enforce_value: ${var.strict}
        tags: ${var.tags}
    """
)


def test_variables_interpolate_and_keep_their_type(tmp_path: Path) -> None:
    d = load(write(tmp_path, "m.yaml", VARS))
    assert d.stack == "s-dev"
    org = d.of("block")["block.org"]
    assert org.value == "env dev, literal ${var.env}"
    assert org.config["limit"] == 5000
    assert org.enforce_value is False
    assert org.config["tags"] == ["a"]


def test_precedence_default_env_var_files_then_vars(tmp_path: Path) -> None:
    m = write(tmp_path, "m.yaml", VARS)
    f1 = write(tmp_path, "one.yaml", "env: file1\nlimit: 700\n")
    f2 = write(tmp_path, "two.yaml", "env: file2\n")
    env = {"LETTA_APPLY_VAR_env": "fromenv", "LETTA_APPLY_VAR_strict": "true"}
    assert load(m, env=env).stack == "s-fromenv"
    d = load(m, env=env, var_files=[f1, f2])
    assert (d.stack, d.of("block")["block.org"].config["limit"]) == ("s-file2", 700)
    assert d.of("block")["block.org"].enforce_value is True
    d = load(m, env=env, var_files=[f1, f2], vars=["env=cli1", "env=cli2", "limit=900.0"])
    assert (d.stack, d.of("block")["block.org"].config["limit"]) == ("s-cli2", 900)


def test_text_values_are_converted_to_the_declared_type(tmp_path: Path) -> None:
    m = write(tmp_path, "m.yaml", VARS)
    d = load(m, vars=["tags=[x, y]", "strict=TRUE"])
    assert d.of("block")["block.org"].config["tags"] == ["x", "y"]
    assert d.of("block")["block.org"].enforce_value is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"vars": ["limit=lots"]}, "--var: variable 'limit': expected a number, got a string"),
        ({"vars": ["strict=yes"]}, "--var: variable 'strict': expected true or false, got 'yes'"),
        ({"vars": ["nope=1"]}, "--var: no variable 'nope' is declared (declared: env, limit, "),
        (
            {"vars": ["novalue"]},
            "--var: value 1 is not name=value (not shown: it may hold a secret)",
        ),
        (
            {"env": {"LETTA_APPLY_VAR_limit": "x"}},
            "LETTA_APPLY_VAR_limit: variable 'limit': expected a number",
        ),
    ],
)
def test_bad_values_from_the_command_line(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    d = one_error(write(tmp_path, "m.yaml", VARS), **options)
    assert str(d).startswith(message)


def test_a_wrong_type_in_a_var_file_is_reported_there(tmp_path: Path) -> None:
    m = write(tmp_path, "m.yaml", VARS)
    vf = write(tmp_path, "prod.yaml", "env: prod\nlimit: many\n")
    d = one_error(m, var_files=[vf])
    assert (d.file, d.line, d.col) == (vf, 2, 8)
    assert d.message == "variable 'limit': expected a number, got a string"


def test_a_missing_var_file_is_an_error(tmp_path: Path) -> None:
    d = one_error(write(tmp_path, "m.yaml", VARS), var_files=[str(tmp_path / "no.yaml")])
    assert d.message.startswith("cannot read")


def test_a_variable_without_value_is_an_error_at_its_declaration(tmp_path: Path) -> None:
    m = write(tmp_path, "m.yaml", HEAD + "variables:\n  region: {type: string}\n")
    d = one_error(m)
    assert (d.line, d.col) == (4, 3)
    assert d.message.startswith("variable 'region' has no value")
    assert "LETTA_APPLY_VAR_region" in d.message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${var.nam}", "${var.nam}: undefined variable 'nam'; did you mean 'name'?"),
        ("${env.LETTA_TEST_UNSET}", "${env.LETTA_TEST_UNSET}: environment variable "),
        ("${each.key}", "${each.key}: each.key is only defined in a block or agent with for_each"),
        ("${count.index}", "${count.index}: count.index is only defined in a block or agent"),
        ("${var}", "${var}: unknown reference; use ${var.NAME}"),
        ("a ${var.name", "unclosed '${': no matching '}'"),
        ("a ${var.list} b", "${var.list} is a list: it can be a whole value, not part of"),
    ],
)
def test_interpolation_errors_have_a_position(tmp_path: Path, value: str, message: str) -> None:
    text = HEAD + dedent(
        f"""\
        variables:
          name: {{default: x}}
          list: {{type: list, default: []}}
        blocks:
          org:
            value: "{value}"
        """
    )
    d = one_error(write(tmp_path, "m.yaml", text))
    assert (d.line, d.col) == (8, 12)
    assert d.message.startswith(message), d.message


def test_env_references_read_the_environment(tmp_path: Path) -> None:
    m = write(tmp_path, "m.yaml", HEAD + "blocks:\n  org: {value: 'team ${env.TEAM}'}\n")
    assert load(m, env={"TEAM": "blue"}).of("block")["block.org"].value == "team blue"


def test_an_interpolated_value_of_the_wrong_type_is_a_schema_error(tmp_path: Path) -> None:
    text = HEAD + "variables:\n  n: {default: '5'}\nblocks:\n  org: {value: x, limit: '${var.n}'}\n"
    d = one_error(write(tmp_path, "m.yaml", text))
    assert (d.line, d.message) == (6, "blocks.org.limit: expected an integer, got a string")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{type: text}", "variables.v.type: must be one of string, number, bool, list, map"),
        ("{type: number, default: x}", "variables.v.default: expected a number, got a string"),
        ("{typo: 1, default: x}", "variables.v: unknown key 'typo'"),
        ("{default: x, sensitive: 1}", "variables.v.sensitive: true or false"),
    ],
)
def test_bad_declarations(tmp_path: Path, spec: str, message: str) -> None:
    d = one_error(write(tmp_path, "m.yaml", HEAD + f"variables:\n  v: {spec}\n"))
    assert d.message.startswith(message), d.message


# -- templates ---------------------------------------------------------------------------------

FLEET = HEAD + dedent(
    f"""\
    variables:
      regions: {{type: list, default: [eu, us]}}
    blocks:
      organization: {{value: shared by all}}
      region:
        for_each: ${{var.regions}}
        label: region-${{each.key}}
        value: "facts about ${{each.key}}"
    agents:
      worker:
        for_each:
          w1: {{region: eu}}
          w2: {{region: us}}
          w3: {{region: eu}}
        {AGENT}
        tags: ["${{each.value.region}}"]
        memory_blocks: [{{label: persona, value: "I am ${{each.key}}"}}]
        blocks: [organization, "region[${{each.value.region}}]"]
      pool:
        count: 2
        name: pool-${{count.index}}
        {AGENT}
        blocks: ["region[*]"]
        memory_blocks: [{{label: region-us, value: x}}]
    """
)


def test_for_each_and_count_make_instances(tmp_path: Path) -> None:
    d = load(write(tmp_path, "m.yaml", FLEET.replace("[{label: region-us, value: x}]", "[]")))
    assert list(d.of("block")) == ["block.organization", 'block.region["eu"]', 'block.region["us"]']
    assert d.of("block")['block.region["us"]'].value == "facts about us"
    assert d.of("block")['block.region["us"]'].label == "region-us"
    w1 = d.of("agent")['agent.worker["w1"]']
    assert w1.name == "worker-w1"
    assert w1.config["tags"] == ["eu"]
    assert w1.memory_blocks[0].value == "I am w1"
    assert w1.blocks == ("block.organization", 'block.region["eu"]')
    assert d.of("agent")['agent.worker["w2"]'].blocks[1] == 'block.region["us"]'
    assert [d.of("agent")[f"agent.pool[{i}]"].name for i in (0, 1)] == ["pool-0", "pool-1"]
    assert d.of("agent")["agent.pool[1]"].blocks == ('block.region["eu"]', 'block.region["us"]')


def test_every_instance_of_a_template_can_be_attached(tmp_path: Path) -> None:
    # pool attaches region[*], and also has a block of its own labelled like one of them.
    d = one_error(write(tmp_path, "m.yaml", FLEET))
    assert "two blocks labelled 'region-us' on one agent" in d.message
    assert d.message.startswith("agents.pool[0]")  # once for the template, not per instance


def test_twenty_workers_share_two_blocks(tmp_path: Path) -> None:
    text = HEAD + dedent(
        f"""\
        blocks:
          organization: {{value: shared}}
          region: {{for_each: [eu, us], value: "${{each.key}}"}}
        agents:
          worker:
            count: 20
            {AGENT}
            blocks: [organization, "region[${{var.region}}]"]
        variables:
          region: {{default: eu}}
        """
    )
    d = load(write(tmp_path, "m.yaml", text))
    assert len(d.of("agent")) == 20
    wanted = {("block.organization", 'block.region["eu"]')}
    assert {a.blocks for a in d.of("agent").values()} == wanted
    # An instance's label defaults to the template's key: each worker sees a block "region".
    assert d.of("block")['block.region["eu"]'].label == "region"
    assert d.of("agent")["agent.worker[19]"].name == "worker-19"


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ("for_each: [a, a]", "agents.w.for_each: 'a' is listed twice"),
        ("for_each: [1]", "agents.w.for_each: a list must hold strings"),
        ("for_each: 3", "agents.w.for_each: expected a list or a map"),
        ("count: -1", "agents.w.count: expected a whole number, 0 or more"),
        ("{count: 1, for_each: [a]}", "agents.w: use for_each or count, not both"),
    ],
)
def test_bad_templates(tmp_path: Path, agent: str, message: str) -> None:
    spec = agent if agent.startswith("{") else "{" + agent + "}"
    d = one_error(write(tmp_path, "m.yaml", HEAD + f"agents:\n  w: {spec}\n"))
    assert d.message.startswith(message), d.message


def test_a_template_is_attached_by_instance(tmp_path: Path) -> None:
    text = HEAD + dedent(
        f"""\
        blocks:
          region: {{count: 2, value: x}}
        agents:
          w:
            {AGENT}
            blocks: [region]
        """
    )
    d = one_error(write(tmp_path, "m.yaml", text))
    assert (d.line, d.col) == (9, 14)
    assert "block.region has count: name one instance, region[0], or every one" in d.message


def test_an_unknown_instance_is_an_unknown_block(tmp_path: Path) -> None:
    text = HEAD + "blocks:\n  region: {for_each: [eu], value: x}\nagents:\n  w:\n"
    text += "    blocks: ['region[us]']\n"
    d = one_error(write(tmp_path, "m.yaml", text))
    assert d.message.startswith("agents.w.blocks[0]: no shared block 'region[\"us\"]' is declared")


def test_keys_with_brackets_are_refused(tmp_path: Path) -> None:
    d = one_error(write(tmp_path, "m.yaml", HEAD + "blocks:\n  'r[0]': {value: x}\n"))
    assert "keys cannot contain '[' or ']'" in d.message


def test_instance_addresses_in_moved_and_imports(tmp_path: Path) -> None:
    text = HEAD + dedent(
        """\
        agents:
          w: {for_each: [eu], model: letta/letta-free, embedding: letta/letta-free}
        moved:
          - {from: agent.old, to: "agent.w[eu]"}
        """
    )
    d = load(write(tmp_path, "m.yaml", text))
    assert d.moved == {"agent.old": 'agent.w["eu"]'}


def test_a_mistake_in_a_template_is_reported_once(tmp_path: Path) -> None:
    text = HEAD + "agents:\n  w:\n    count: 5\n    model: nope\n"
    d = one_error(write(tmp_path, "m.yaml", text))
    assert d.line == 6 and "invalid model handle 'nope'" in d.message


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("agent.w[eu]", 'agent.w["eu"]'),
        ("agent.w['eu']", 'agent.w["eu"]'),
        ('agent.w["eu"]', 'agent.w["eu"]'),
        ("agent.w[0]", "agent.w[0]"),
        ("agent.w", "agent.w"),
    ],
)
def test_addresses_are_normalized(given: str, canonical: str) -> None:
    assert normalize_address(given) == canonical


# -- sensitive values in the manifest ----------------------------------------------------------

SECRET = "hunter2-of-the-north"


def test_sensitive_values_are_typed_and_kept_out_of_the_digest(tmp_path: Path) -> None:
    text = HEAD + dedent(
        """\
        variables:
          key: {sensitive: true}
        agents:
          a:
            system: "Use key ${var.key} for tickets."
            metadata: {key: "${var.key}"}
        """
    )
    m = write(tmp_path, "m.yaml", text)
    d = load(m, vars=[f"key={SECRET}"])
    assert isinstance(d.of("agent")["agent.a"].config["system"], Sensitive)
    assert isinstance(d.of("agent")["agent.a"].config["metadata"]["key"], Sensitive)
    assert d.secrets == (SECRET,)
    assert SECRET not in repr(d)
    # The digest does not depend on the secret (a hash of it would give it away).
    assert load(m, vars=["key=other"]).digest == d.digest


@pytest.mark.parametrize("where", ["name: ${var.key}", "tags: ['${var.key}']"])
def test_sensitive_values_are_refused_where_they_would_be_shown(tmp_path: Path, where: str) -> None:
    text = HEAD + "variables:\n  key: {sensitive: true}\nagents:\n  a:\n    " + where + "\n"
    d = one_error(write(tmp_path, "m.yaml", text), vars=[f"key={SECRET}"])
    assert "a sensitive value cannot be used here" in d.message
    assert SECRET not in str(d)


def test_errors_never_show_a_sensitive_value(tmp_path: Path) -> None:
    text = HEAD + dedent(
        """\
        variables:
          key: {sensitive: true, type: number}
        blocks:
          org: {value: x, description: 5}
        """
    )
    m = write(tmp_path, "m.yaml", text)
    found = [str(d) for d in errors(m, vars=[f"key={SECRET}"])]
    assert found[0] == "--var: variable 'key': expected a number"
    assert found[1].endswith("blocks.org.description: expected a string, got an integer; quote "
                             "it to make it a string")  # fmt: skip
    assert all(SECRET not in d for d in found)


def test_target_takes_an_instance_or_every_instance(tmp_path: Path, cli: Cli) -> None:
    m = write(
        tmp_path,
        "m.yaml",
        HEAD + "agents:\n  w:\n    count: 3\n    MODEL\n  other:\n    MODEL\n",
    )

    def plan(*targets: str) -> str:
        code, out, err = cli("plan", "-f", m, *(a for t in targets for a in ("--target", t)))
        assert code == 0, err
        return out

    assert "Plan: 1 to create" in plan("agent.w[1]")
    every = plan("agent.w")
    assert "Plan: 3 to create" in every and "agent.other" not in every
    code, _, err = cli("plan", "-f", m, "--target", "agent.w[7]")
    assert code == 1
    assert "--target agent.w[7]: no such resource" in err


@pytest.mark.parametrize(
    "rule",
    [
        "{type: run_first, tool_name: web_search, args: {value: '${var.key}'}}",
        "{type: run_first, tool_name: web_search, args: {metadata: {k: '${var.key}'}}}",
        "{type: conditional, tool_name: web_search, child_output_mapping: {value: '${var.key}'}}",
    ],
)
def test_a_sensitive_value_is_refused_in_a_tool_rule(tmp_path: Path, rule: str) -> None:
    # A rule is shown and compared whole in plans, drift and the marks.
    text = HEAD + "variables:\n  key: {sensitive: true}\nagents:\n  a:\n    tools: [web_search]\n"
    text += f"    tool_rules:\n      - {rule}\n"
    d = one_error(write(tmp_path, "m.yaml", text), vars=[f"key={SECRET}"])
    assert "a sensitive value cannot be used here" in d.message
    assert "tool_rules[0]" in d.message
    # It says why, not that a value or metadata may hold one (these are in a rule).
    assert "tool rules are shown whole" in d.message and "it can go in" not in d.message
    assert SECRET not in str(d)


def test_a_sensitive_number_cannot_be_a_count(tmp_path: Path) -> None:
    text = HEAD + "variables:\n  pin: {type: number, sensitive: true}\n"
    text += "agents:\n  a:\n    count: ${var.pin}\n"
    d = one_error(write(tmp_path, "m.yaml", text), vars=["pin=3"])
    assert d.message == "agents.a.count: cannot be sensitive: the number of instances is shown"


# -- every problem at once ---------------------------------------------------------------------


def messages(paths: str | list[str], **options: object) -> list[str]:
    """Each error as `line:col: message` (file names left out)."""
    return [f"{d.line}:{d.col}: {d.message}" for d in errors(paths, **options)]


def test_a_file_that_cannot_be_read_hides_no_other_problem(tmp_path: Path) -> None:
    m = write(
        tmp_path,
        "m.yaml",
        HEAD
        + dedent(
            """\
            blocks:
              org:
                value_file: missing.txt
              other:
                descripton: typo
            agents:
              a:
                MODEL
                memory_blocks:
                  - label: persona
                blocks: [org, nope]
            """
        ),
    )
    found = messages(m)
    assert found[0].startswith("5:17: blocks.org.value_file: file 'missing.txt' not found")
    # The block whose file is missing is not reported as missing its value on top.
    assert found[1:] == [
        "6:3: blocks.other: missing required key 'value'",
        "7:5: blocks.other: unknown key 'descripton'; did you mean 'description'?",
        "13:9: agents.a.memory_blocks[0]: missing required key 'value'",
        "14:19: agents.a.blocks[1]: no shared block 'nope' is declared (declared: org, other)",
    ]


def test_loading_problems_and_checks_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "tool.py").write_text('def t():\n    """A tool."""\n', encoding="utf-8")
    m = write(
        tmp_path,
        "m.yaml",
        HEAD
        + dedent(
            """\
            variables:
              flag: {type: bool, sensitive: true, default: true}
            blocks:
              org:
                value: x
                value: y
              w:
                count: -1
                value: z
            agents:
              a:
                MODEL
                modle: x
                include_base_tools: ${var.flag}
                blocks: [org, "w[0]", "w[*]", nope]
            tools:
              t:
                source_file: missing.py
            """
        ),
    )
    found = messages(m)
    assert [f.split(":", 3)[:2] for f in found] == [
        ["4", "3"], ["8", "5"], ["10", "12"], ["16", "5"], ["18", "35"], ["21", "18"],
    ]  # fmt: skip
    assert "sensitive value cannot be (or hold) a boolean" in found[0]
    assert "duplicate key 'value'" in found[1]
    assert "blocks.w.count: expected a whole number, 0 or more" in found[2]
    assert "unknown key 'modle'" in found[3]
    assert "no shared block 'nope'" in found[4]  # and none about w[0]: its count is the problem
    assert "tools.t.source_file: no such file" in found[5]


def test_a_value_left_empty_by_a_reported_problem_is_not_reported_again(tmp_path: Path) -> None:
    m = write(
        tmp_path,
        "m.yaml",
        HEAD
        + dedent(
            """\
            variables:
              n: {type: number}
              bad: {type: strin}
              my-var: {}
            blocks:
              w:
                count: ${var.n}
                value: z
              v:
                for_each: ${var.bad}
                value: q
              u:
                value: ${var.my-var}
                limit: ${var.n}
            agents:
              a:
                model: ${var.bad}
                embedding: letta/letta-free
                blocks: ["w[0]", "v[eu]", u]
              x:
                count: -2
                MODEL
            groups:
              g:
                manager_type: round_robin
                agents: ["x[0]", a]
            moved:
              - {from: block.old, to: "block.w[1]"}
            imports:
              - {to: "agent.x[1]", id: agent-00000000-0000-0000-0000-000000000000}
            """
        ),
    )
    found = messages(m)
    assert [f.split(": ", 2)[1] for f in found] == [
        "variable 'n' has no value", "variables.bad.type", "variables", "agents.x.count",
    ]  # fmt: skip


def test_a_variables_section_of_the_wrong_shape_leaves_its_uses_alone(tmp_path: Path) -> None:
    m = write(
        tmp_path,
        "m.yaml",
        HEAD + "variables: 5\nblocks:\n  u:\n    value: ${var.x}\n    descripton: k\n",
    )
    assert messages(m) == [
        "3:12: variables: expected a mapping of variables",
        "7:5: blocks.u: unknown key 'descripton'; did you mean 'description'?",
    ]


def test_every_file_of_a_manifest_is_checked_past_a_duplicate(tmp_path: Path) -> None:
    a = write(tmp_path, "m/a.yaml", HEAD + "blocks:\n  b: {value: x}\n  b: {value: y}\n")
    write(tmp_path, "m/b.yaml", "blocks:\n  b: {value: z}\n  c: {vale: z}\n")
    found = [str(d) for d in errors(str(Path(a).parent))]
    assert [f.split(": ", 1)[0].rsplit("/", 1)[1] for f in found] == [
        "a.yaml:5:3", "b.yaml:2:3", "b.yaml:3:3", "b.yaml:3:7",
    ]  # fmt: skip
    assert "duplicate key 'b'" in found[0]
    assert "blocks.b is declared twice" in found[1]
    assert "missing required key 'value'" in found[2]
    assert "unknown key 'vale'" in found[3]
