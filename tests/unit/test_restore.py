"""`letta-apply restore` (memory.restore), through the fake server: a deleted agent comes back
through Letta's import with its block values, messages and passages, marked as its stack's, its
shared blocks attached rather than copied; a destroyed stack comes back whole and converges with
its manifest; a restore refuses to duplicate, can go to another address, and finishes what a
killed restore began."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from letta_apply.core.model import MARK_KEY
from tests.helpers import Cli

MANIFEST = """\
version: 1
stack: s
blocks:
  org: {value: shared v1}
archives:
  kb: {embedding: letta/letta-free, passages: {files: [kb.md]}}
agents:
  worker:
    model: letta/letta-free
    embedding: letta/letta-free
    initial_message_sequence: [{role: user, content: hello}]
    memory_blocks: [{label: persona, value: I am a worker}]
    blocks: [org]
  boss:
    model: letta/letta-free
    embedding: letta/letta-free
    blocks: [org]
    archives: [kb]
"""
WITHOUT_WORKER = MANIFEST[: MANIFEST.index("  worker:")] + MANIFEST[MANIFEST.index("  boss:") :]


def write(root: Path, text: str, name: str = "m.yaml") -> str:
    (root / "kb.md").write_text("Seeded fact.\n", encoding="utf-8")
    (root / name).write_text(text, encoding="utf-8")
    return str(root / name)


def named(cli: Cli, name: str) -> list[dict[str, Any]]:
    return [a for a in cli.fake.agents.values() if a["name"] == name]


def labelled(cli: Cli, agent: dict[str, Any], label: str) -> dict[str, Any]:
    (found,) = [
        cli.fake.blocks[i] for i in agent["block_ids"] if cli.fake.blocks[i]["label"] == label
    ]
    return found


def worked(cli: Cli, tmp_path: Path) -> dict[str, Any]:
    """Applied; then the worker wrote to its persona and remembered a passage."""
    assert cli("apply", "-f", write(tmp_path, MANIFEST), "--auto-approve").code == 0
    (worker,) = named(cli, "worker")
    labelled(cli, worker, "persona")["value"] = "I am a worker. The user likes tea."
    cli.fake._remember(worker["id"], {"text": "the user likes tea", "tags": ["pref"]}, lambda: 9000)
    return worker


def folder(root: Path) -> str:
    (found,) = {p.parent for p in root.rglob("*.json")}
    return str(found)


def said(cli: Cli, agent: dict[str, Any]) -> list[tuple[str, str]]:
    """What was said to and by the agent, past its system message (which Letta compiles)."""
    out = []
    for m in cli.fake.messages_of(agent["id"])[1:]:
        content = m["content"]
        text = content if isinstance(content, str) else " ".join(c["text"] for c in content)
        out.append((m["role"], text))
    return out


def passages_of(cli: Cli, agent: dict[str, Any]) -> list[str]:
    return [
        p["text"]
        for p in cli.fake.passages.values()
        if p["archive_id"] in agent.get("archive_ids", ())
    ]


def converges(cli: Cli, path: str) -> None:
    """`plan` has no change and `apply` writes nothing (agent-written memory is kept)."""
    plan = cli("plan", "-f", path)
    assert plan.code == 0 and "No changes." in plan.out, plan.out
    before = cli.fake.writes
    assert cli("apply", "-f", path, "--auto-approve").code == 0
    assert cli.fake.writes == before


def test_a_pruned_agent_comes_back_with_its_memory_and_converges(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worker = worked(cli, tmp_path)
    org = labelled(cli, worker, "org")["id"]
    messages = said(cli, worker)
    assert messages == [("user", "hello")]
    assert cli("apply", "-f", write(tmp_path, WITHOUT_WORKER), "--auto-approve").code == 0
    assert not named(cli, "worker")

    r = cli("restore", folder(backups_apart))
    assert r.code == 0, r.err
    (back,) = named(cli, "worker")  # its own name: not Letta's `worker_copy`
    assert f"agent.worker: restored as {back['id']}" in r.out
    assert f"block org: {org} attached (still on the server)" in r.out
    assert labelled(cli, back, "persona")["value"] == "I am a worker. The user likes tea."
    assert labelled(cli, back, "org")["id"] == org  # attached, not copied
    assert len([b for b in cli.fake.blocks.values() if b["label"] == "org"]) == 1
    assert said(cli, back) == messages
    assert cli.fake.messages_of(back["id"])[0]["role"] == "system"
    assert passages_of(cli, back) == ["the user likes tea"]  # its archive, attached again
    mark = back["metadata"][MARK_KEY]
    assert (mark["stack"], mark["address"]) == ("s", "agent.worker")
    assert "letta-apply:s" in back["tags"]
    assert labelled(cli, back, "persona")["tags"] == ["letta-apply:s"]
    converges(cli, write(tmp_path, MANIFEST, "m1.yaml"))


def test_a_destroyed_stack_comes_back_whole(cli: Cli, tmp_path: Path, backups_apart: Path) -> None:
    worked(cli, tmp_path)
    path = write(tmp_path, MANIFEST)
    assert cli("destroy", "-f", path, "--auto-approve").code == 0
    assert not cli.fake.agents and [a["name"] for a in cli.fake.archives.values()] == [
        "worker's Archive"  # an agent's default archive: Letta keeps it after the agent
    ]
    r = cli("restore", folder(backups_apart))
    assert r.code == 0, r.err
    assert "Restore complete: 4 resource(s)" in r.out
    (org,) = [b for b in cli.fake.blocks.values() if b["label"] == "org"]
    (worker,), (boss,) = named(cli, "worker"), named(cli, "boss")
    assert org["id"] in worker["block_ids"] and org["id"] in boss["block_ids"]  # one, shared
    (archive,) = [a for a in cli.fake.archives.values() if a["name"] == "kb"]
    assert boss["archive_ids"] == [archive["id"]]
    assert sorted(passages_of(cli, boss)) == ["Seeded fact."]
    # The worker's own archive outlived it (Letta keeps it): attached again.
    assert passages_of(cli, worker) == ["the user likes tea"]
    assert labelled(cli, worker, "persona")["value"] == "I am a worker. The user likes tea."
    converges(cli, path)


def test_passages_whose_archive_is_gone_go_into_a_new_one(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worker = worked(cli, tmp_path)
    assert cli("apply", "-f", write(tmp_path, WITHOUT_WORKER), "--auto-approve").code == 0
    for archive in worker["archive_ids"]:
        cli.fake._delete_archive(archive)
    r = cli("restore", folder(backups_apart))
    assert r.code == 0, r.err
    (back,) = named(cli, "worker")
    assert "1 passage(s): inserted again into a new archive" in r.out
    assert passages_of(cli, back) == ["the user likes tea"]
    assert [p["tags"] for p in cli.fake.passages.values() if p["text"] == "the user likes tea"] == [
        ["pref"]
    ]


def test_a_restore_never_duplicates_and_can_go_to_another_address(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worked(cli, tmp_path)
    text = MANIFEST.replace(
        "    blocks: [org]\n  boss:", "    blocks: [org]\n    agent_type: memgpt_v2_agent\n  boss:"
    )
    assert cli("apply", "-f", write(tmp_path, text), "--auto-approve").code == 0  # replaced
    (record,) = Path(folder(backups_apart)).glob("*.json")
    before = (dict(cli.fake.agents), dict(cli.fake.memory))  # the stack lock's blocks apart
    r = cli("restore", str(record))
    assert r.code == 1
    assert "nothing restored: in stack 's', agent.worker is held by agent-" in r.err
    assert (cli.fake.agents, cli.fake.memory) == before
    r = cli("restore", str(record), "--address", "agent.old_worker")
    assert r.code == 0, r.err
    (old,) = [a for a in named(cli, "worker") if a["agent_type"] != "memgpt_v2_agent"]
    assert old["metadata"][MARK_KEY]["address"] == "agent.old_worker"
    persona = labelled(cli, old, "persona")
    assert persona["value"] == "I am a worker. The user likes tea."
    # Into another stack: its tag and marks, not this one's.
    r = cli("restore", str(record), "--stack", "other", "--address", "agent.w")
    assert r.code == 0, r.err
    (other,) = [a for a in named(cli, "worker") if "letta-apply:other" in a["tags"]]
    assert "letta-apply:s" not in other["tags"]
    assert other["metadata"][MARK_KEY]["stack"] == "other"
    assert labelled(cli, other, "persona")["tags"] == ["letta-apply:other"]


def test_a_killed_restore_run_again_finishes_without_duplicates(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worked(cli, tmp_path)
    assert cli("apply", "-f", write(tmp_path, WITHOUT_WORKER), "--auto-approve").code == 0

    def lost(request: httpx.Request) -> httpx.Response | None:
        if "/core-memory/blocks/attach/" in request.url.path:
            raise httpx.ConnectError("server gone")  # the import was made; the rest was not
        return None

    cli.fake.before.append(lost)
    assert cli("restore", folder(backups_apart)).code == 1
    cli.fake.before.clear()
    (made,) = named(cli, "worker")
    assert len(made["block_ids"]) == 1  # its persona; the shared block not attached yet
    r = cli("restore", folder(backups_apart))
    assert r.code == 0, r.err
    assert "already restored by an earlier run, finished" in r.out
    (back,) = named(cli, "worker")
    assert back["id"] == made["id"] and len(back["block_ids"]) == 2
    converges(cli, write(tmp_path, MANIFEST, "m1.yaml"))


def test_what_is_not_a_backup_is_refused(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "x.json"
    other.write_text(json.dumps({"agents": []}))
    r = cli("restore", str(other))
    assert r.code == 1 and "not a letta-apply backup record" in r.err
    r = cli("restore", str(tmp_path))
    assert r.code == 1 and "no letta-apply backup record in it" in r.err
    r = cli("restore", str(tmp_path / "missing"))
    assert r.code == 1 and "no such file or folder" in r.err
    assert cli.fake.writes == 0


def test_agents_whose_shared_block_is_gone_share_its_one_copy(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worked(cli, tmp_path)
    assert cli("destroy", "-f", write(tmp_path, MANIFEST), "--auto-approve").code == 0
    (saved,) = Path(folder(backups_apart)).glob("block.org--*.json")
    saved.unlink()  # the shared block's own backup is not restored: the agents' files hold it
    assert cli("restore", folder(backups_apart)).code == 0
    (org,) = [b for b in cli.fake.blocks.values() if b["label"] == "org"]
    (worker,), (boss,) = named(cli, "worker"), named(cli, "boss")
    assert org["id"] in worker["block_ids"] and org["id"] in boss["block_ids"]
    assert org["metadata"][MARK_KEY]["address"] == "block.org"  # the stack's block.org again
    converges(cli, write(tmp_path, MANIFEST))


def test_identities_are_attached_again_and_one_gone_is_said(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    text = MANIFEST.replace(
        "agents:\n",
        "identities:\n  acme: {identity_type: org}\n  bob: {identity_type: user}\nagents:\n",
    ).replace(
        "    blocks: [org]\n  boss:", "    blocks: [org]\n    identities: [acme, bob]\n  boss:"
    )
    worked_text = write(tmp_path, text)
    assert cli("apply", "-f", worked_text, "--auto-approve").code == 0
    (worker,) = named(cli, "worker")
    wanted = sorted(worker["identity_ids"])
    assert len(wanted) == 2
    fewer = text[: text.index("  worker:")] + text[text.index("  boss:") :]
    assert cli("apply", "-f", write(tmp_path, fewer, "m2.yaml"), "--auto-approve").code == 0
    gone = next(i for i in wanted if cli.fake.identities[i]["identifier_key"] == "bob")
    del cli.fake.identities[gone]
    r = cli("restore", folder(backups_apart))
    assert r.code == 0, r.err
    (back,) = named(cli, "worker")
    assert back["identity_ids"] == [i for i in wanted if i != gone]
    assert f"not attached to {gone}" in r.out
