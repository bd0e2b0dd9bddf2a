"""`export` on the command line: a manifest in YAML or JSON that `validate` accepts, and a clear
error, with nothing written, when there is nothing to export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from letta_apply.kinds.agent.model import DesiredAgent
from letta_apply.manifest.published import manifest_schema_id
from letta_apply.pipeline import load_manifest
from tests.helpers import SEED, Cli, write


def _hand_built(cli: Cli) -> None:
    """Two agents made by hand that share a block, one with a multi-line persona."""
    org = cli.fake._create_block({"label": "organization", "value": "Facts.\nMore facts.\n"})
    for name in ("supervisor", "worker"):
        cli.fake._create_agent(
            {
                "name": name, "model": "letta/letta-free", "embedding": "letta/letta-free",
                "tags": ["team"], "block_ids": [org["id"]],
                "memory_blocks": [{"label": "persona", "value": f"I am the {name}.\nBe kind."}],
            }
        )  # fmt: skip


def test_export_yaml_names_the_schema_for_editors_and_validates(cli: Cli, tmp_path: Path) -> None:
    _hand_built(cli)
    r = cli("export", "--stack", "team", "--tag", "team")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == f"# yaml-language-server: $schema={manifest_schema_id()}"
    doc = yaml.safe_load(r.out)
    assert sorted(doc["agents"]) == ["supervisor", "worker"]
    assert sorted(doc["blocks"]) == ["organization"]
    v = cli("validate", "-f", str(write(tmp_path, r.out, "team.yaml")))
    assert v.code == 0, v.err


def test_export_keeps_text_that_looks_like_a_reference_as_text(cli: Cli, tmp_path: Path) -> None:
    """A prompt saying `${env.HOME}` or `${each.key}` is written as `$${...}`: the manifest loads
    (an `${each.key}` outside a template would not) and never pulls the environment in."""
    cli.fake._create_agent(
        {
            "name": "echo", "model": "letta/letta-free", "embedding": "letta/letta-free",
            "system": "Say ${env.HOME}.",
            "memory_blocks": [{"label": "persona", "value": "I am ${each.key}"}],
        }
    )  # fmt: skip
    r = cli("export", "--stack", "team", "--all", "--include-system")
    assert r.code == 0, r.err
    agent = yaml.safe_load(r.out)["agents"]["echo"]
    assert agent["system"] == "Say $${env.HOME}."
    assert agent["memory_blocks"] == [{"label": "persona", "value": "I am $${each.key}"}]
    path = write(tmp_path, r.out, "team.yaml")
    v = cli("validate", "-f", str(path))
    assert v.code == 0, v.err
    desired = load_manifest(str(path))
    (declared,) = desired.of("agent").values()
    assert isinstance(declared, DesiredAgent)
    assert declared.config["system"] == "Say ${env.HOME}."  # as the server has it
    assert declared.memory_blocks[0].value == "I am ${each.key}"


def test_export_format_json_prints_json_that_validate_accepts(cli: Cli, tmp_path: Path) -> None:
    _hand_built(cli)
    as_yaml = cli("export", "--stack", "team", "--tag", "team")
    r = cli("export", "--stack", "team", "--tag", "team", "--format", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc == yaml.safe_load(as_yaml.out)  # the same manifest
    assert doc["blocks"]["organization"]["value"] == "Facts.\nMore facts.\n"
    v = cli("validate", "-f", str(write(tmp_path, r.out, "team.json")))
    assert v.code == 0, v.err
    assert 'valid: stack "team", 1 shared block(s), 2 agent(s)' in v.out


def test_export_to_a_json_file_writes_json_unless_told_otherwise(cli: Cli, tmp_path: Path) -> None:
    _hand_built(cli)
    out = tmp_path / "team.json"
    r = cli("export", "--stack", "team", "--all", "-o", str(out))
    assert r.code == 0, r.err
    assert f"Wrote {out}: 2 agent(s), 1 shared block(s)." in r.err
    assert json.loads(out.read_text())["stack"] == "team"
    r = cli("export", "--stack", "team", "--all", "-o", str(out), "--format", "yaml")
    assert r.code == 0, r.err
    assert out.read_text().startswith("# yaml-language-server:")


def test_export_format_refuses_plan_formats(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli("export", "--stack", "team", "--all", "--format", "markdown")
    assert info.value.code == 1
    assert "invalid choice: 'markdown'" in capsys.readouterr().err


def test_export_with_nothing_to_export_says_so_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "agents.yaml"
    out.write_text("kept\n")
    r = cli("export", "--stack", "team", "--all", "-o", str(out))
    assert r.code == 1
    assert r.out == ""
    assert (
        r.err == "error: nothing to export: no agent matches the selection; nothing was written "
        "[LA830]\n"
    )
    assert out.read_text() == "kept\n"
    r = cli("export", "--stack", "team", "--tag", "nobody", "--format", "json")
    assert (r.code, r.out) == (1, "")
    assert "nothing to export" in r.err


def test_export_of_agents_all_managed_says_why_nothing_was_exported(
    cli: Cli, tmp_path: Path
) -> None:
    applied = cli("apply", "-f", str(write(tmp_path, SEED)), "--auto-approve")
    assert applied.code == 0, applied.err
    r = cli("export", "--stack", "copy", "--all")
    assert r.code == 1
    assert r.out == ""
    lines = r.err.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("skipped ") for line in lines[:2])
    assert "already managed by stack 'unit'" in lines[0]
    assert lines[2] == (
        "error: nothing to export: every selected agent is already managed by a stack; "
        "nothing was written [LA830]"
    )


def test_export_names_the_servers_tools_an_agent_asked_for(cli: Cli, tmp_path: Path) -> None:
    web = next(t["id"] for t in cli.fake.tools.values() if t["name"] == "web_search")
    cli.fake._create_agent(
        {"name": "searcher", "model": "letta/letta-free", "tags": ["team"], "tool_ids": [web]}
    )
    r = cli("export", "--stack", "team", "--tag", "team")
    assert r.code == 0, r.err
    # web_search is named; the base tools every agent gets are not.
    assert yaml.safe_load(r.out)["agents"]["searcher"]["tools"] == ["web_search"]
    # A copy applied from the export has it.
    doc = yaml.safe_load(r.out)
    del doc["imports"]
    doc["stack"] = "copy"
    doc["agents"] = {"copy": {**doc["agents"]["searcher"], "name": "copy"}}
    path = write(tmp_path, yaml.safe_dump(doc), "copy.yaml")
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    [made] = [a for a in cli.fake.agents.values() if a["name"] == "copy"]
    assert web in made["tool_ids"]
