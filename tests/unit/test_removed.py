"""`removed:` lets go of a resource without deleting it: plan shows `- forget`, apply takes the
stack's marks off (tag, mark, mark block; an agent's own blocks' too) and leaves the resource on
the server; later plans no longer see it. Every kind, through the fake server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from letta_apply.core.model import MARK_KEY, stack_tag
from letta_apply.pipeline import load_manifest
from tests.helpers import Cli, at, diagnostics

TAG = stack_tag("s")
HEAD = "version: 1\nstack: s\n"
LOOKUP = '''def lookup_ticket(ticket_id: str) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id.

    Returns:
        str: the ticket
    """
    return ticket_id
'''
EVERYTHING = (
    HEAD
    + """blocks:
  org: {value: shared, metadata: {team: a}}
  kept: {value: stays managed}
tools:
  lookup: {source_file: tools/lookup.py, tags: [support]}
identities:
  acme: {identity_type: org, properties: {tier: gold}}
mcp_servers:
  search: {mcp_server_type: streamable_http, server_url: https://mcp.example.com/mcp}
agents:
  support:
    model: letta/letta-free
    embedding: letta/letta-free
    tags: [team-a]
    metadata: {owner: ops}
    memory_blocks: [{label: persona, value: I help}]
    blocks: [org]
    tools: [lookup]
    identities: [acme]
    folders: [handbook]
    archives: [kb]
    prevent_destroy: true
groups:
  team: {manager_type: round_robin, agents: [support]}
folders:
  handbook: {embedding: letta/letta-free, files: [docs/*.md]}
archives:
  kb: {embedding: letta/letta-free, passages: {files: [kb.md]}}
"""
)
ADDRESSES = [
    "block.org", "tool.lookup", "identity.acme", "mcp_server.search", "agent.support",
    "group.team", "folder.handbook", "archive.kb",
]  # fmt: skip
LET_GO = (
    HEAD
    + "blocks:\n  kept: {value: stays managed}\n"
    + "removed:\n"
    + "".join(f"  - {{from: {a}}}\n" for a in ADDRESSES)
)


def write(root: Path, text: str) -> Path:
    (root / "tools").mkdir(exist_ok=True)
    (root / "tools" / "lookup.py").write_text(LOOKUP, encoding="utf-8")
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "welcome.md").write_text("# Welcome\n", encoding="utf-8")
    (root / "kb.md").write_text("30 days.\n", encoding="utf-8")
    path = root / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(cli: Cli, *argv: str) -> str:
    r = cli(*argv)
    assert r.code == 0, r.out + r.err
    return r.out


def marked(resource: dict[str, Any], metadata: str = "metadata") -> bool:
    return TAG in (resource.get("tags") or ()) or MARK_KEY in (resource.get(metadata) or {})


def test_every_kind_is_let_go_of_and_stays_on_the_server(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, EVERYTHING)
    run(cli, "apply", "-f", str(path), "--auto-approve")
    fake = cli.fake
    counts = (len(fake.agents), len(fake.tools), len(fake.identities), len(fake.groups),
              len(fake.mcp_servers), len(fake.folders), len(fake.archives))  # fmt: skip
    (agent,) = fake.agents.values()
    own = {fake.blocks[i]["label"]: i for i in agent["block_ids"]}
    kept_id = next(i for i, b in fake.blocks.items() if b["value"] == "stays managed")

    write(tmp_path, LET_GO)
    plan = run(cli, "plan", "-f", str(path))
    for address in ADDRESSES:
        assert f"  - {address} (" in plan and f"{address} (" in plan
    assert "  - agent.support.memory_blocks.persona (" in plan
    assert ": forget (kept on the server, no longer managed)" in plan
    # prevent_destroy does not block; the two deletes are the stack's flags: it holds no folder
    # and no identity now
    assert "2 to delete, 9 to forget." in plan and "the stack keeps no folders" in plan
    assert "the stack keeps no identities" in plan
    before = len(fake.calls)
    run(cli, "apply", "-f", str(path), "--auto-approve")
    deleted = [p for m, p in fake.calls[before:] if m == "DELETE"]
    assert all(p.startswith("/v1/blocks/") for p in deleted)  # mark blocks, flags, lock record
    assert len(deleted) == 6

    # Every resource is still there, unmarked, as it was.
    assert counts == (len(fake.agents), len(fake.tools), len(fake.identities), len(fake.groups),
                      len(fake.mcp_servers), len(fake.folders), len(fake.archives))  # fmt: skip
    (agent,) = fake.agents.values()
    assert (
        not marked(agent) and agent["tags"] == ["team-a"] and agent["metadata"] == {"owner": "ops"}
    )
    assert set(agent["block_ids"]) >= {own["persona"], own["org"]}
    persona, org = fake.blocks[own["persona"]], fake.blocks[own["org"]]
    assert not marked(persona) and persona["value"] == "I help"
    assert not marked(org) and org["metadata"] == {"team": "a"}
    (tool,) = [t for t in fake.tools.values() if t["name"] == "lookup_ticket"]
    assert not marked(tool, "metadata_") and tool["tags"] == ["support"]
    (identity,) = fake.identities.values()
    assert [p["key"] for p in identity["properties"]] == ["tier"]
    assert all(MARK_KEY not in (f.get("metadata") or {}) for f in fake.folders.values())
    labels = {b["label"] for b in fake.blocks.values()}
    assert not labels & {"letta-apply-group", "letta-apply-mcp-server", "letta-apply-archive"}
    assert marked(fake.blocks[kept_id])  # what the manifest still declares stays the stack's

    # Later plans no longer see them: nothing to do, the entries may stay.
    again = run(cli, "plan", "-f", str(path), "--detailed-exitcode")
    assert "No changes." in again
    assert "removed: agent.support: this stack manages nothing there on the server" in again
    writes = fake.writes
    run(cli, "apply", "-f", str(path), "--auto-approve")
    assert fake.writes == writes


def test_destroy_lets_go_of_what_is_removed(tmp_path: Path, cli: Cli) -> None:
    text = HEAD + "blocks:\n  a: {value: x}\n  b: {value: y}\n"
    path = write(tmp_path, text)
    run(cli, "apply", "-f", str(path), "--auto-approve")
    write(tmp_path, HEAD + "blocks:\n  b: {value: y}\nremoved:\n  - from: block.a\n")
    out = run(cli, "destroy", "-f", str(path), "--auto-approve")
    assert "block.a" in out
    (left,) = cli.fake.blocks.values()
    assert left["value"] == "x" and not marked(left)


def test_removed_names_an_address_no_longer_declared(tmp_path: Path) -> None:
    text = HEAD + (
        "blocks:\n  a: {value: x}\n"
        "moved:\n  - {from: block.old, to: block.a}\n"
        "removed:\n"
        "  - from: block.a\n"
        "  - from: block.old\n"
        "  - from: agent.gone\n"
        "  - from: agent.gone\n"
        "  - {from: nothing.here}\n"
    )
    found = diagnostics(write(tmp_path, text), lambda p: load_manifest(str(p)))
    got = sorted((at(d), d.message) for d in found)
    assert ((8, 11), "removed[0].from: block.a is still declared; `removed:` lets go of a key "
            "the manifest no longer declares (delete its entry, or this one)") in got  # fmt: skip
    assert ((9, 11), "removed[1].from: block.old is also moved; a resource is either moved or "
            "removed") in got  # fmt: skip
    assert ((11, 11), "removed[3].from: agent.gone is removed twice") in got
    assert any(pos == (12, 12) and "nothing.here" in m for pos, m in got), got
    assert len(got) == 4
