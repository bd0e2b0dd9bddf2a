"""`export --format af -f MANIFEST`: the agents the manifest's stack owns, exported by Letta one
by one (the fake server's export route is shaped as Letta's: tests/fakes/agentfile.py) and merged
into one Agent File that Letta's import takes: each shared block and tool once, every reference
renumbered, no mark of the stack left, sensitive values masked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from letta_apply.memory.af_format import check_agent_file
from letta_apply.memory.af_merge import PREFIXES
from tests.fakes.agentfile import serve_exports
from tests.helpers import SEED, Cli, write


def _applied(cli: Cli, tmp_path: Path, text: str = SEED, *args: str, name: str = "m.yaml") -> Path:
    path = write(tmp_path, text, name)
    r = cli("apply", "-f", str(path), "--auto-approve", *args)
    assert r.code == 0, r.err
    return path


def _valid_ids(doc: dict[str, Any]) -> None:
    """As Letta's import checks a file: every id `<prefix>-<n>`, unique across the file."""
    seen: set[str] = set()
    for kind, prefix in PREFIXES.items():
        for e in doc[kind]:
            assert e["id"].startswith(f"{prefix}-") and e["id"][len(prefix) + 1 :].isdigit()
            assert e["id"] not in seen
            seen.add(e["id"])
    for a in doc["agents"]:
        for m in a["messages"]:
            assert m["id"].startswith("message-") and m["id"] not in seen
            seen.add(m["id"])
    check_agent_file(doc, "merged")  # and every reference names one of its own


def test_the_stacks_agents_come_out_as_one_agent_file(cli: Cli, tmp_path: Path) -> None:
    path = _applied(cli, tmp_path)
    # Neither another stack's agent nor one made by hand with the stack's tag is the stack's.
    _applied(cli, tmp_path, SEED.replace("stack: unit", "stack: other"), name="other.yaml")
    cli.fake._create_agent({"name": "worker", "tags": ["letta-apply:unit"]})
    exported = serve_exports(cli.fake)
    out = tmp_path / "unit.af"
    r = cli("export", "--format", "af", "-f", str(path), "-o", str(out), "-v")
    assert r.code == 0, r.err
    assert f'Wrote {out}: 2 agent(s), 3 block(s) of stack "unit".' in r.err
    # The listing (a page, and the empty one that ends it), then one export per agent.
    assert "requests: 4 reads, 0 writes" in r.err
    assert len(exported) == 2
    doc = json.loads(out.read_text())
    _valid_ids(doc)
    assert [a["name"] for a in doc["agents"]] == ["supervisor", "worker"]  # by address
    blocks = {b["id"]: b for b in doc["blocks"]}
    assert sorted(b["label"] for b in blocks.values()) == ["organization", "persona", "persona"]
    (org,) = [b["id"] for b in blocks.values() if b["label"] == "organization"]
    assert all(org in a["block_ids"] for a in doc["agents"])  # the shared block, once
    assert len(doc["tools"]) == len({t["name"] for t in doc["tools"]})
    text = out.read_text()
    assert "letta_apply" not in text and "letta-apply:" not in text  # no mark of the stack
    messages = doc["agents"][1]["messages"]
    assert messages and {m["agent_id"] for m in messages} == {doc["agents"][1]["id"]}


def test_the_file_made_converts_and_applies_to_the_same_agents(cli: Cli, tmp_path: Path) -> None:
    path = _applied(cli, tmp_path)
    serve_exports(cli.fake)
    out = tmp_path / "unit.af"
    assert cli("export", "--format", "af", "-f", str(path), "-o", str(out)).code == 0
    manifest = tmp_path / "copy" / "copy.yaml"
    r = cli("convert", str(out), "--stack", "copy", "-o", str(manifest))
    assert r.code == 0, r.err
    assert cli("apply", "-f", str(manifest), "--auto-approve").code == 0
    again = cli("plan", "-f", str(manifest), "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out

    def agents(stack: str) -> dict[str, Any]:
        out = {}
        for a in cli.fake.agents.values():
            if f"letta-apply:{stack}" in a["tags"]:
                blocks = sorted((cli.fake.blocks[b]["label"], cli.fake.blocks[b]["value"])
                                for b in a["block_ids"])  # fmt: skip
                out[a["name"]] = (a["system"], blocks, a["model"])
        return out

    assert agents("copy") == agents("unit")
    copies = [a for a in cli.fake.agents.values() if "letta-apply:copy" in a["tags"]]
    org = {
        b for a in copies for b in a["block_ids"] if cli.fake.blocks[b]["label"] == "organization"
    }
    assert len(copies) == 2 and len(org) == 1  # one block, shared


def test_sensitive_values_of_the_manifest_are_masked_in_the_file(cli: Cli, tmp_path: Path) -> None:
    text = SEED.replace("stack: unit", "variables:\n  pin: {sensitive: true}\nstack: unit")
    text = text.replace("value: Nothing here yet.", 'value: "The door code is ${var.pin}."')
    path = _applied(cli, tmp_path, text, "--var", "pin=7319-5521")
    serve_exports(cli.fake)
    out = tmp_path / "unit.af"
    r = cli("export", "--format", "af", "-f", str(path), "--var", "pin=7319-5521", "-o", str(out))
    assert r.code == 0, r.err
    assert "1 value(s) held sensitive values of the manifest: written as (sensitive)" in r.err
    assert "7319" not in out.read_text()
    (org,) = [b for b in json.loads(out.read_text())["blocks"] if b["label"] == "organization"]
    assert org["value"] == "The door code is (sensitive)."


def test_agent_secrets_are_never_in_the_file(cli: Cli, tmp_path: Path) -> None:
    text = SEED.replace("stack: unit", "variables:\n  key: {sensitive: true}\nstack: unit")
    text += "    secrets: {API_KEY: '${var.key}'}\n"
    path = _applied(cli, tmp_path, text, "--var", "key=plain-secret-value")
    serve_exports(cli.fake)
    r = cli("export", "--format", "af", "-f", str(path), "--var", "key=plain-secret-value")
    assert r.code == 0, r.err
    assert "plain-secret-value" not in r.out
    (worker,) = [a for a in json.loads(r.out)["agents"] if a["name"] == "worker"]
    assert worker["secrets"] == {"API_KEY": ""}


GROUPED = (
    SEED
    + """\
groups:
  team:
    manager_type: supervisor
    manager_agent: supervisor
    agents: [worker]
    description: The team.
"""
)


def test_a_group_and_its_members_are_held_once(cli: Cli, tmp_path: Path) -> None:
    path = _applied(cli, tmp_path, GROUPED)
    serve_exports(cli.fake)
    r = cli("export", "--format", "af", "-f", str(path))
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    _valid_ids(doc)
    # The supervisor's export brings the worker along; the worker's own export is the one kept.
    assert sorted(a["name"] for a in doc["agents"]) == ["supervisor", "worker"]
    (group,) = doc["groups"]
    ids = {a["name"]: a["id"] for a in doc["agents"]}
    assert group["agent_ids"] == [ids["worker"]]
    assert group["manager_config"]["manager_agent_id"] == ids["supervisor"]


def test_export_af_refuses_what_it_cannot_do_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    path = _applied(cli, tmp_path)
    out = tmp_path / "unit.af"
    no_file = cli("export", "--format", "af", "-o", str(out))
    assert no_file.code == 1 and "name the stack's manifest with -f FILE" in no_file.err
    selected = cli("export", "--format", "af", "-f", str(path), "--tag", "x")
    assert selected.code == 1 and "--tag selects agents to adopt" in selected.err
    other = cli("export", "--format", "af", "-f", str(path), "--stack", "other")
    assert other.code == 1 and "is not the stack of the manifest ('unit')" in other.err
    empty = write(tmp_path, SEED.replace("stack: unit", "stack: empty"), "empty.yaml")
    nothing = cli("export", "--format", "af", "-f", str(empty), "-o", str(out))
    assert nothing.code == 1 and "stack 'empty' owns no agent" in nothing.err
    # A failed export stops it all: no file half made.
    cli.fake.before.append(
        lambda req: (
            httpx.Response(500, json={"detail": "boom"})
            if req.url.path.endswith("/export")
            else None
        )
    )
    failed = cli("export", "--format", "af", "-f", str(path), "-o", str(out), "--max-retries", "0")
    assert failed.code == 1 and "500" in failed.err
    assert not out.exists()
    assert cli("export", "--stack", "s").code == 1  # the manifest export still needs a selection
