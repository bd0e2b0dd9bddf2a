"""Unit tests for letta_apply.manifest.validate (JSON Schema, then the rules a schema cannot
say) and for `letta-apply validate`: every problem at once, each as file:line:col: message."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from letta_apply.cli.commands import main
from letta_apply.core.model import Desired
from letta_apply.errors import Diagnostic, ManifestError
from letta_apply.kinds import KINDS
from letta_apply.kinds.agent.model import DesiredAgent
from letta_apply.kinds.block.kind import DesiredBlock
from letta_apply.manifest.parse import Parsing, load_file, load_text
from letta_apply.manifest.validate import schema, validate
from tests.helpers import Cli, at, diagnostics, only, write

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shared-memory.yaml"
HEAD = "version: 1\nstack: s\n"


def check(tmp_path: Path, text: str) -> Desired:
    return validate(load_file(write(tmp_path, text)), KINDS)


def errors(tmp_path: Path, text: str) -> list[Diagnostic]:
    return diagnostics(write(tmp_path, text), lambda path: validate(load_file(path), KINDS))


def error(tmp_path: Path, text: str) -> Diagnostic:
    return only(errors(tmp_path, text))


# ---------------------------------------------------------------------------------------------
# The example


def test_example_validates_into_the_desired_state() -> None:
    desired = validate(load_file(EXAMPLE), KINDS)
    organization = DesiredBlock(
        address="block.organization",
        label="organization",  # defaults to the key
        value="Nothing here yet, we should update this over time.",
        enforce_value=False,
        config={"description": "Shared information between all agents within the organization."},
    )
    handles = {"model": "letta/letta-free", "embedding": "letta/letta-free"}
    assert desired == Desired(
        stack="shared-memory-example",
        resources={
            **{k.name: {} for k in KINDS},  # every kind, each declaring none but these
            "block": {"block.organization": organization},
            "agent": {
                "agent.supervisor": DesiredAgent(
                    address="agent.supervisor",
                    name="supervisor",  # defaults to the key
                    config=handles,
                    memory_blocks=(
                        DesiredBlock(
                            address="agent.supervisor.memory_blocks.persona",
                            label="persona",
                            value="I am a supervisor",
                            config={},
                        ),
                    ),
                    blocks=("block.organization",),
                ),
                "agent.worker": DesiredAgent(
                    address="agent.worker",
                    name="worker",
                    config=handles,
                    memory_blocks=(
                        DesiredBlock(
                            address="agent.worker.memory_blocks.persona",
                            label="persona",
                            value="I am a worker",
                        ),
                    ),
                    blocks=("block.organization",),
                ),
            },
        },
    )
    assert list(desired.of("agent")) == ["agent.supervisor", "agent.worker"]
    # Config holds only what the manifest sets: nothing the server owns sneaks in.
    assert set(desired.of("agent")["agent.worker"].config) == {"model", "embedding"}
    assert desired.of("agent")["agent.worker"].memory_blocks[0].config == {}


def test_every_field_lands_in_config(tmp_path: Path) -> None:
    desired = check(
        tmp_path,
        """\
        version: 1
        stack: prod.support-1
        blocks:
          org:
            label: organization
            value: ""
            description: shared
            limit: 5000
            read_only: true
            metadata: {team: support}
            tags: [a, b]
            enforce_value: true
        agents:
          bot:
            name: Support Bot
            description: answers
            system: You are helpful.
            model: openai/gpt-4o-mini
            embedding: openai/text-embedding-3-small
            tags: [support]
            metadata: {owner: me}
            tools: [web_search]
            include_base_tools: false
            memory_blocks:
              - {label: persona, value: hi, limit: 100.0}
            blocks: [org]
        """,
    )
    block = desired.of("block")["block.org"]
    assert block.label == "organization"
    assert block.value == ""
    assert block.enforce_value is True
    assert block.config == {
        "description": "shared",
        "limit": 5000,
        "read_only": True,
        "metadata": {"team": "support"},
        "tags": ["a", "b"],
    }
    agent = desired.of("agent")["agent.bot"]
    assert agent.name == "Support Bot"
    assert agent.created["include_base_tools"] is False
    assert agent.config == {
        "description": "answers",
        "system": "You are helpful.",
        "model": "openai/gpt-4o-mini",
        "embedding": "openai/text-embedding-3-small",
        "tags": ["support"],
        "metadata": {"owner": "me"},
        "tools": ["web_search"],
    }
    assert agent.blocks == ("block.org",)
    (own,) = agent.memory_blocks
    assert own.address == "agent.bot.memory_blocks.persona"
    assert own.config == {"limit": 100}
    assert type(own.config["limit"]) is int  # `100.0` is a JSON integer; Letta gets an int
    assert desired.tag == "letta-apply:prod.support-1"


def test_minimal_manifest(tmp_path: Path) -> None:
    empty = {k.name: {} for k in KINDS}  # every kind, each declaring none
    assert check(tmp_path, HEAD) == Desired(stack="s", resources=empty)
    assert check(tmp_path, HEAD + "blocks: {}\nagents: {}\n") == Desired("s", empty)


def test_schema_is_draft_2020_12_and_shipped_with_the_package() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema(KINDS))
    assert schema(KINDS)["properties"]["version"] == {
        "const": 1,
        "description": "Manifest format version.",
    }


# ---------------------------------------------------------------------------------------------
# Shape of the file


def test_top_level_list(tmp_path: Path) -> None:
    d = error(tmp_path, "- version: 1\n- stack: s\n")
    assert at(d) == (1, 1)
    assert d.message == "manifest: expected a mapping, got a list"


def test_top_level_string(tmp_path: Path) -> None:
    d = error(tmp_path, "just text\n")
    assert at(d) == (1, 1)
    assert "expected a mapping, got a string" in d.message


def test_missing_required_keys_reported_once_each(tmp_path: Path) -> None:
    found = errors(tmp_path, "agents: {}\n")
    assert [(at(d), d.message) for d in found] == [
        ((1, 1), "manifest: missing required key 'stack'"),
        ((1, 1), "manifest: missing required key 'version'"),
    ]


def test_missing_value_in_a_shared_block_points_at_its_key(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + "blocks:\n  org:\n    description: x\n")
    assert at(d) == (4, 3)
    assert d.message == "blocks.org: missing required key 'value'"


def test_memory_block_must_name_its_label(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + "agents:\n  a:\n    memory_blocks:\n      - value: x\n")
    assert at(d) == (6, 9)
    assert d.message == "agents.a.memory_blocks[0]: missing required key 'label'"


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        pytest.param(
            HEAD + "agent:\n  a: {}\n",
            (3, 1),
            "manifest: unknown key 'agent'; did you mean 'agents'?",
            id="top-level",
        ),
        pytest.param(
            HEAD + "agents:\n  a:\n    modle: openai/gpt-4o\n",
            (5, 5),
            "agents.a: unknown key 'modle'; did you mean 'model'?",
            id="agent",
        ),
        pytest.param(
            HEAD + "blocks:\n  b:\n    value: x\n    limt: 10\n",
            (6, 5),
            "blocks.b: unknown key 'limt'; did you mean 'limit'?",
            id="block",
        ),
        pytest.param(
            HEAD
            + "agents:\n  a:\n    memory_blocks:\n      - {label: p, value: x, readonly: true}\n",
            (6, 30),
            "agents.a.memory_blocks[0]: unknown key 'readonly'; did you mean 'read_only'?",
            id="memory-block",
        ),
        pytest.param(
            HEAD + "zzz: 1\n",
            (3, 1),
            "manifest: unknown key 'zzz' (allowed: agents, archives, blocks, folders, groups, "
            "identities, imports, mcp_servers, moved, policy, providers, removed, stack, tools, "
            "variables, version)",
            id="no-close-match",
        ),
    ],
)
def test_unknown_keys(tmp_path: Path, text: str, position: tuple[int, int], message: str) -> None:
    d = error(tmp_path, text)
    assert (at(d), d.message) == (position, message)


@pytest.mark.parametrize(
    ("field", "value", "position", "message"),
    [
        pytest.param(
            "model",
            "5",
            (5, 12),
            "agents.a.model: expected a string or a mapping, got an integer; quote it to make it "
            "a string",
            id="model-int",
        ),
        pytest.param(
            "name",
            "no",
            (5, 11),
            "agents.a.name: expected a string, got a boolean (false); quote it to make it a string",
            id="yaml11-no",
        ),
        pytest.param(
            "tags",
            "support",
            (5, 11),
            "agents.a.tags: expected a list, got a string",
            id="tags-string",
        ),
        pytest.param(
            "memory_blocks",
            "{label: p}",
            (5, 20),
            "agents.a.memory_blocks: expected a list, got a mapping",
            id="memory-blocks-mapping",
        ),
        pytest.param(
            "include_base_tools",
            "'yes'",
            (5, 25),
            "agents.a.include_base_tools: expected true or false, got a string",
            id="bool-string",
        ),
        pytest.param(
            "system",
            "",
            (5, 12),
            "agents.a.system: expected a string, got null (an empty value)",
            id="empty-value-is-null",
        ),
        pytest.param(
            "tools",
            "[1]",
            (5, 13),
            "agents.a.tools[0]: expected a string, got an integer; quote it to make it a string",
            id="list-item",
        ),
    ],
)
def test_wrong_types_in_an_agent(
    tmp_path: Path, field: str, value: str, position: tuple[int, int], message: str
) -> None:
    d = error(tmp_path, HEAD + f"agents:\n  a:\n    {field}: {value}\n")
    assert (at(d), d.message) == (position, message)


@pytest.mark.parametrize(
    ("line", "position", "message"),
    [
        pytest.param(
            "value: 42",
            (5, 12),
            "blocks.b.value: expected a string, got an integer; quote it to make it a string",
            id="value-int",
        ),
        pytest.param(
            "value: x\n    limit: true",
            (6, 12),
            "blocks.b.limit: expected an integer, got a boolean (true)",
            id="limit-bool",
        ),
        pytest.param(
            "value: x\n    limit: 1.5",
            (6, 12),
            "blocks.b.limit: expected an integer, got a number",
            id="limit-float",
        ),
        pytest.param(
            "value: x\n    limit: 0",
            (6, 12),
            "blocks.b.limit: must be at least 1, got 0",
            id="limit-zero",
        ),
        pytest.param(
            "value: x\n    metadata: [a]",
            (6, 15),
            "blocks.b.metadata: expected a mapping, got a list",
            id="metadata-list",
        ),
    ],
)
def test_wrong_types_in_a_block(
    tmp_path: Path, line: str, position: tuple[int, int], message: str
) -> None:
    d = error(tmp_path, HEAD + f"blocks:\n  b:\n    {line}\n")
    assert (at(d), d.message) == (position, message)


def test_agents_left_empty(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + "agents:\n  a:\n")
    assert at(d) == (4, 5)
    assert d.message == "agents.a: expected a mapping, got null (an empty value)"


# ---------------------------------------------------------------------------------------------
# version and stack


def test_version_2(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 2\nstack: s\n")
    assert at(d) == (1, 10)
    assert d.message == "version: unsupported manifest version 2; this letta-apply reads version 1"


def test_version_as_a_string(tmp_path: Path) -> None:
    d = error(tmp_path, "version: '1'\nstack: s\n")
    assert at(d) == (1, 10)
    assert d.message == "version: write it as a number: version: 1"


@pytest.mark.parametrize(
    "stack",
    [
        pytest.param("Prod", id="uppercase"),
        pytest.param("'my stack'", id="space"),
        pytest.param("-prod", id="leading-dash"),
        pytest.param("a" * 64, id="64-chars"),
        pytest.param("prod/eu", id="slash"),
        pytest.param('"prod\\n"', id="trailing-newline"),
        pytest.param("''", id="empty"),
    ],
)
def test_bad_stack_names(tmp_path: Path, stack: str) -> None:
    d = error(tmp_path, f"version: 1\nstack: {stack}\n")
    assert at(d) == (2, 8)
    assert d.message.startswith("stack: invalid stack name ")
    assert "lowercase letters, digits" in d.message


@pytest.mark.parametrize("stack", ["prod", "a" * 63, "'0'", "eu.prod_2-x"])
def test_good_stack_names(tmp_path: Path, stack: str) -> None:
    assert check(tmp_path, f"version: 1\nstack: {stack}\n").stack == stack.strip("'")


def test_stack_must_be_a_string(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: 12\n")
    assert at(d) == (2, 8)
    assert "stack: expected a string, got an integer" in d.message


# ---------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("'a b'", id="space"),
        pytest.param("'1st'", id="leading-digit"),
        pytest.param("'x.y'", id="dot"),
        pytest.param('"ok\\n"', id="trailing-newline"),
        pytest.param("k" * 101, id="101-chars"),
    ],
)
def test_invalid_keys_point_at_the_key(tmp_path: Path, key: str) -> None:
    d = error(tmp_path, HEAD + f"agents:\n  first: {{}}\n  {key}: {{}}\n")
    assert at(d) == (5, 3)
    assert d.message.startswith("agents: invalid key ")
    assert "letters, digits, '_' and '-'" in d.message


# ---------------------------------------------------------------------------------------------
# Shared blocks referenced by agents


def test_reference_to_an_undeclared_block_suggests_the_close_one(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        """\
        version: 1
        stack: s
        blocks:
          organization: {value: x}
          notes: {value: y}
        agents:
          a:
            blocks: [notes, organisation]
        """,
    )
    assert at(d) == (8, 21)
    assert d.message == (
        "agents.a.blocks[1]: no shared block 'organisation' is declared; "
        "did you mean 'organization'?"
    )


def test_reference_to_an_undeclared_block_lists_the_declared_ones(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        HEAD + "blocks:\n  org: {value: x}\n  notes: {value: y}\nagents:\n"
        "  a:\n    blocks: [zzz]\n",
    )
    assert at(d) == (8, 14)
    assert (
        d.message == "agents.a.blocks[0]: no shared block 'zzz' is declared (declared: notes, org)"
    )


def test_reference_when_no_block_is_declared(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + "agents:\n  a:\n    blocks:\n      - org\n")
    assert at(d) == (6, 9)
    assert "no shared block 'org' is declared" in d.message
    assert "declares no shared blocks" in d.message


def test_reference_that_is_not_a_valid_key(tmp_path: Path) -> None:
    d = error(
        tmp_path, HEAD + "blocks:\n  org: {value: x}\nagents:\n  a:\n    blocks: ['my org']\n"
    )
    assert at(d) == (7, 14)
    assert d.message.startswith("agents.a.blocks[0]: invalid key 'my org': keys use letters")


def test_same_block_attached_twice(tmp_path: Path) -> None:
    d = error(
        tmp_path, HEAD + "blocks:\n  org: {value: x}\nagents:\n  a:\n    blocks: [org, org]\n"
    )
    assert at(d) == (7, 19)
    assert d.message == "agents.a.blocks[1]: 'org' is listed twice (first at line 7)"


# ---------------------------------------------------------------------------------------------
# Labels


def test_two_memory_blocks_with_one_label(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        """\
        version: 1
        stack: s
        agents:
          a:
            memory_blocks:
              - label: persona
                value: one
              - label: persona
                value: two
        """,
    )
    assert at(d) == (8, 16)
    assert "two blocks labelled 'persona' on one agent" in d.message
    assert "agents.a.memory_blocks[1]" in d.message
    assert "agents.a.memory_blocks[0] (line 6)" in d.message


def test_memory_block_label_equal_to_an_attached_shared_label(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        """\
        version: 1
        stack: s
        blocks:
          org:
            label: persona
            value: shared
        agents:
          a:
            memory_blocks:
              - {label: persona, value: mine}
            blocks: [org]
        """,
    )
    assert at(d) == (11, 14)
    assert d.message == (
        "agents.a: two blocks labelled 'persona' on one agent: block.org and "
        "agents.a.memory_blocks[0] (line 10); labels must be unique per agent"
    )


def test_duplicate_label_is_reported_where_it_comes_second_in_the_file(tmp_path: Path) -> None:
    # `blocks:` comes before `memory_blocks:` here: the memory block is the second one.
    d = error(
        tmp_path,
        """\
        version: 1
        stack: s
        blocks:
          persona: {value: shared}
        agents:
          a:
            blocks: [persona]
            memory_blocks:
              - {label: persona, value: mine}
        """,
    )
    assert at(d) == (9, 17)
    assert "block.persona (line 7)" in d.message


def test_two_shared_blocks_with_one_label_on_one_agent(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        HEAD + "blocks:\n  a: {value: x, label: org}\n  b: {value: y, label: org}\n"
        "agents:\n  x:\n    blocks: [a, b]\n  y:\n    blocks: [a]\n",
    )
    assert at(d) == (8, 17)
    assert "two blocks labelled 'org'" in d.message and "block.b and block.a" in d.message


def test_one_label_on_different_agents_is_fine(tmp_path: Path) -> None:
    desired = check(tmp_path, EXAMPLE.read_text(encoding="utf-8"))
    labels = [b.label for a in desired.of("agent").values() for b in a.memory_blocks]
    assert labels == ["persona", "persona"]


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        pytest.param("'my persona'", "label 'my persona' is not accepted by Letta", id="space"),
        pytest.param("'persona!'", "label 'persona!' is not accepted by Letta", id="bang"),
        pytest.param('"persona\\n"', "is not accepted by Letta", id="trailing-newline"),
        pytest.param("l" * 51, "label is 51 characters; Letta accepts at most 50", id="51-chars"),
    ],
)
def test_labels_letta_rejects(tmp_path: Path, label: str, problem: str) -> None:
    d = error(
        tmp_path,
        HEAD + f"agents:\n  a:\n    memory_blocks:\n      - label: {label}\n        value: x\n",
    )
    assert at(d) == (6, 16)
    assert d.message.startswith("agents.a.memory_blocks[0].label: ")
    assert problem in d.message


@pytest.mark.parametrize("label", ["persona", "l" * 50, "system/persona", "a-b_c"])
def test_labels_letta_accepts(tmp_path: Path, label: str) -> None:
    desired = check(
        tmp_path,
        HEAD + f"agents:\n  a:\n    memory_blocks:\n      - {{label: {label}, value: x}}\n",
    )
    assert desired.of("agent")["agent.a"].memory_blocks[0].label == label


def test_label_over_the_schema_limit_is_reported_once(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + "blocks:\n  b:\n    label: " + "l" * 101 + "\n    value: x\n")
    assert at(d) == (5, 12)
    assert d.message == "blocks.b.label: must be at most 100 characters, got 101"


def test_empty_label(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + "blocks:\n  b:\n    label: ''\n    value: x\n")
    assert (at(d), d.message) == ((5, 12), "blocks.b.label: must not be empty")


def test_shared_block_label_defaulting_from_a_long_key(tmp_path: Path) -> None:
    key = "k" * 51
    d = error(tmp_path, HEAD + f"blocks:\n  {key}:\n    value: x\n")
    assert at(d) == (4, 3)  # the key: that is where the label comes from
    assert "label is 51 characters; Letta accepts at most 50" in d.message
    assert "defaults to the key" in d.message


def test_long_key_with_an_explicit_label_is_fine(tmp_path: Path) -> None:
    key = "k" * 60
    desired = check(tmp_path, HEAD + f"blocks:\n  {key}:\n    label: short\n    value: x\n")
    assert desired.of("block")[f"block.{key}"].label == "short"


# ---------------------------------------------------------------------------------------------
# Agent names


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("support/bot", id="slash"),
        pytest.param("'bot: one'", id="colon"),
        pytest.param("'bot?'", id="question-mark"),
        pytest.param('"bot\\n"', id="trailing-newline"),
        pytest.param('"a\\\\b"', id="backslash"),
    ],
)
def test_agent_names_letta_rejects(tmp_path: Path, name: str) -> None:
    d = error(tmp_path, HEAD + f"agents:\n  a:\n    name: {name}\n")
    assert at(d) == (5, 11)
    assert d.message.startswith("agents.a.name: agent name ")
    assert "is not accepted by Letta" in d.message


@pytest.mark.parametrize("name", ["Support Bot", "O'Brien", "Zoë-2", "代理_1"])
def test_agent_names_letta_accepts(tmp_path: Path, name: str) -> None:
    desired = check(tmp_path, HEAD + f'agents:\n  a:\n    name: "{name}"\n')
    assert desired.of("agent")["agent.a"].name == name


def test_two_agents_with_one_name(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + "agents:\n  a:\n    name: bot\n  b:\n    name: bot\n")
    assert at(d) == (7, 11)
    assert d.message == (
        "agents.b.name: agent name 'bot' is already used by agents.a.name (line 5); "
        "agent names must be unique"
    )


def test_agent_name_equal_to_another_agents_key(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + "agents:\n  bot: {}\n  b:\n    name: bot\n")
    assert at(d) == (6, 11)
    assert "already used by agents.bot (line 4)" in d.message


def test_agent_name_defaulting_to_a_key_that_another_agent_named(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + "agents:\n  a:\n    name: bot\n  bot: {}\n")
    assert at(d) == (6, 3)  # the key whose default name clashes
    assert "already used by agents.a.name (line 5)" in d.message


# ---------------------------------------------------------------------------------------------
# Reserved metadata, model handles


@pytest.mark.parametrize("label", [lb for k in KINDS for lb in k.reserved_labels])
def test_a_kinds_own_block_label_is_reserved(tmp_path: Path, label: str) -> None:
    # A kind's mark blocks go by their label: no block of a manifest may pass for one.
    d = error(tmp_path, HEAD + f"blocks:\n  b:\n    label: {label}\n    value: x\n")
    assert d.message.startswith(f"blocks.b.label: label '{label}' is reserved"), d.message


def test_reserved_metadata_key_on_an_agent(tmp_path: Path) -> None:
    d = error(
        tmp_path, HEAD + "agents:\n  a:\n    metadata:\n      team: x\n      letta_apply: {}\n"
    )
    assert at(d) == (7, 7)
    assert d.message == (
        "agents.a.metadata: the key 'letta_apply' is reserved for letta-apply's ownership marks"
    )


def test_reserved_metadata_key_on_a_memory_block(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        HEAD + "agents:\n  a:\n    memory_blocks:\n      - label: p\n        value: x\n"
        "        metadata: {letta_apply: 1}\n",
    )
    assert at(d) == (8, 20)
    assert "agents.a.memory_blocks[0].metadata: the key 'letta_apply' is reserved" in d.message


@pytest.mark.parametrize(
    ("field", "handle"),
    [
        pytest.param("model", "gpt-4o", id="model-no-slash"),
        pytest.param("model", "/gpt-4o", id="model-empty-provider"),
        pytest.param("model", "openai/", id="model-empty-name"),
        pytest.param("model", "'openai/gpt 4o'", id="model-space"),
        pytest.param("embedding", "text-embedding-3-small", id="embedding-no-slash"),
        pytest.param("model", '"openai/gpt-4o\\n"', id="trailing-newline"),
    ],
)
def test_model_handles_without_provider(tmp_path: Path, field: str, handle: str) -> None:
    d = error(tmp_path, HEAD + f"agents:\n  a:\n    {field}: {handle}\n")
    assert at(d) == (5, 7 + len(field))
    assert d.message.startswith(f"agents.a.{field}: invalid {field} handle ")
    assert "provider/model" in d.message


# ---------------------------------------------------------------------------------------------
# Values


def test_ten_megabyte_value_over_the_default_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(HEAD + "blocks:\n  b:\n    value: " + "x" * 10_000_000 + "\n", "utf-8")
    with pytest.raises(ManifestError) as info:
        validate(load_file(path), KINDS)
    (d,) = info.value.diagnostics
    assert (d.file, at(d)) == (str(path), (5, 12))
    assert d.message == (
        "blocks.b.value: value is 10000000 characters, over the block's limit of 100000 "
        "(the default; set 'limit' to raise it)"
    )


def test_value_over_an_explicit_limit_and_within_one(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        HEAD + "agents:\n  a:\n    memory_blocks:\n      - label: p\n"
        "        limit: 3\n        value: abcd\n",
    )
    assert at(d) == (8, 16)
    assert d.message == (
        "agents.a.memory_blocks[0].value: value is 4 characters, over the block's limit of 3"
    )
    assert check(tmp_path, HEAD + "blocks:\n  b: {value: abc, limit: 3}\n").of("block")


def test_nul_character_from_an_escape(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + 'blocks:\n  b:\n    value: "a\\0b"\n')
    assert at(d) == (5, 12)
    assert d.message == "blocks.b.value: contains a NUL character; Letta cannot store it"


def test_nul_character_in_a_metadata_key(tmp_path: Path) -> None:
    d = error(tmp_path, HEAD + 'agents:\n  a:\n    metadata:\n      "k\\x00": 1\n')
    assert at(d) == (6, 7)
    assert "key contains a NUL character" in d.message


def test_lone_surrogate() -> None:
    # Only the pure-Python parser lets "\ud800" through; libyaml refuses it as invalid YAML.
    text = HEAD + 'blocks:\n  b:\n    value: "\\ud800"\n'
    doc = load_text(text, "m.yaml", Parsing(loader=yaml.SafeLoader))
    with pytest.raises(ManifestError) as info:
        validate(doc, KINDS)
    assert str(info.value) == (
        "m.yaml:5:12: blocks.b.value: contains a lone surrogate (invalid Unicode); "
        "Letta cannot store it"
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(HEAD + "x" * 1_000_000 + "_: 1\n", id="unknown-key"),
        pytest.param("version: 1\nstack: " + "S" * 1_000_000 + "\n", id="stack"),
        pytest.param(HEAD + "agents:\n  a:\n    model: " + "m" * 1_000_000 + "\n", id="model"),
        pytest.param(HEAD + "agents:\n  a:\n    name: " + "n/" * 500_000 + "\n", id="name"),
        pytest.param(HEAD + "agents:\n  a:\n    blocks: [" + "b" * 1_000_000 + "]\n", id="ref"),
        pytest.param(
            HEAD + "agents:\n  a:\n    tags: [" + ("t" * 500_000 + ",") * 2 + "]\n",
            id="duplicate-tag",
        ),
        pytest.param("version: " + "9" * 4000 + "\nstack: s\n", id="version"),
        pytest.param(
            HEAD
            + "agents:\n  a:\n    memory_blocks:\n      - label: "
            + "l " * 50_000
            + "\n        value: x\n",
            id="label",
        ),
    ],
)
def test_huge_values_are_never_echoed(tmp_path: Path, text: str) -> None:
    # `errors` asserts that every message is under 300 characters.
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        validate(load_file(path), KINDS)
    assert all(len(d.message) < 300 for d in info.value.diagnostics), info.value.diagnostics


# ---------------------------------------------------------------------------------------------
# All errors at once


def test_all_errors_are_reported_at_once_sorted_by_position(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """\
        version: 2
        stack: Bad Stack
        blocks:
          organization:
            value: x
            limt: 10
        agents:
          supervisor:
            name: boss/1
            model: gpt-4
            memory_blocks:
              - label: persona
                value: I am a supervisor
              - label: persona
                value: again
            blocks: [organisation]
          worker:
            name: Boss
            metadata:
              letta_apply: {}
          boss:
            name: Boss
        """,
    )
    assert [(at(d), d.message.split(":")[0]) for d in found] == [
        ((1, 10), "version"),
        ((2, 8), "stack"),
        ((6, 5), "blocks.organization"),
        ((9, 11), "agents.supervisor.name"),
        ((10, 12), "agents.supervisor.model"),
        ((14, 16), "agents.supervisor"),
        ((16, 14), "agents.supervisor.blocks[0]"),
        ((20, 7), "agents.worker.metadata"),
        ((22, 11), "agents.boss.name"),
    ]
    assert "unknown key 'limt'" in found[2].message
    assert "two blocks labelled 'persona'" in found[5].message
    assert "did you mean 'organization'" in found[6].message
    assert "already used by agents.worker.name (line 18)" in found[8].message


def test_semantic_errors_are_reported_alongside_schema_errors(tmp_path: Path) -> None:
    # A schema error elsewhere does not hide the undeclared block reference.
    found = errors(tmp_path, HEAD + "agents:\n  a:\n    modle: x/y\n    blocks: [nope]\n")
    assert [at(d) for d in found] == [(5, 5), (6, 14)]
    assert "unknown key 'modle'" in found[0].message
    assert "no shared block 'nope'" in found[1].message


def test_badly_shaped_parts_do_not_crash_the_semantic_checks(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        HEAD + "blocks:\n  b: 5\n  c: {value: 1, label: [x]}\nagents:\n  a: []\n"
        "  x:\n    name: 3\n    memory_blocks: [1, {value: x}, {label: 2, value: 3}]\n"
        "    blocks: [b, 7, c]\n",
    )
    assert len(found) >= 8
    assert len({at(d) for d in found}) == len(found)


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_validate_valid_file(cli: Cli) -> None:
    code, out, err = cli("validate", "-f", str(EXAMPLE))
    assert code == 0
    assert err == ""
    assert out.startswith(f"{EXAMPLE}: valid")
    assert "1 shared block(s), 2 agent(s)" in out
    # Every kind the manifest declares is counted, not only blocks, agents and tools.
    knowledge = EXAMPLE.parent / "knowledge.yaml"
    code, out, err = cli("validate", "-f", str(knowledge))
    assert code == 0 and out.endswith('valid: stack "knowledge-example", 2 agent(s), '
                                      "1 archive(s), 1 folder(s)\n"), out  # fmt: skip


def test_cli_validate_prints_one_line_per_error(tmp_path: Path, cli: Cli) -> None:
    path = write(
        tmp_path, HEAD + "agents:\n  a:\n    modle: x/y\n    blocks: [nope]\n  b:\n    name: a/b\n"
    )
    code, out, err = cli("validate", "-f", str(path))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[:3] == [
        f"{path}:5:5: agents.a: unknown key 'modle'; did you mean 'model'? [LA302]",
        f"{path}:6:14: agents.a.blocks[0]: no shared block 'nope' is declared "
        "(the manifest declares no shared blocks under 'blocks') [LA323]",
        f"{path}:8:11: agents.b.name: agent name 'a/b' is not accepted by Letta: use letters, "
        "digits, spaces, '-', '_' and apostrophes [LA321]",
    ]
    assert lines[3:] == ["3 errors in the manifest; nothing was sent to the server."]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("a: [\n", ":1:4: invalid YAML: unclosed '['", id="syntax"),
        pytest.param("", ":1:1: the manifest is empty", id="empty"),
        pytest.param(
            "version: 1\nstack: s\nstack: s\n", ":3:1: duplicate key 'stack'", id="duplicate"
        ),
    ],
)
def test_cli_validate_load_errors(tmp_path: Path, cli: Cli, text: str, line: str) -> None:
    path = write(tmp_path, text)
    code, out, err = cli("validate", "-f", str(path))
    assert (code, out) == (1, "")
    assert err.splitlines()[0].startswith(f"{path}{line}")
    assert err.splitlines()[1] == "1 error in the manifest; nothing was sent to the server."
    assert "Traceback" not in err


def test_cli_validate_non_utf8_file(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"version: 1\nstack: \xff\n")
    code, _, err = cli("validate", "-f", str(path))
    assert code == 1
    assert err.splitlines()[0] == (
        f"{path}:2:8: not valid UTF-8 (byte 0xff); save the file as UTF-8 [LA103]"
    )


def test_cli_validate_missing_file(tmp_path: Path, cli: Cli) -> None:
    code, _, err = cli("validate", "-f", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert err.startswith(f"{tmp_path / 'nope.yaml'}:1:1: cannot read")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["validate"], id="missing-file-flag"),
        pytest.param(["validate", "-f", "x.yaml", "--bogus"], id="unknown-flag"),
        pytest.param(["validate", "-f"], id="flag-without-value"),
        pytest.param([], id="no-command"),
        pytest.param(["frobnicate"], id="unknown-command"),
    ],
)
def test_cli_usage_errors_exit_1_never_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv, out=io.StringIO(), err=io.StringIO())
    assert info.value.code == 1
    assert "error:" in capsys.readouterr().err
