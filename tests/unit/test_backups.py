"""Backups before deletes (memory.backup), through the fake server: apply and destroy save an
agent as Letta exports it (with its passages, its blocks' ids and tags), a block, an archive,
before the delete is sent; a backup that fails keeps the resource and fails the run; nothing
saved holds a sensitive value; the plan says what each delete holds and where it is saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from letta_apply import LettaApplyError, Stack, restore_backup
from letta_apply.memory.af_format import read_agent_file
from letta_apply.memory.backup import write_file
from tests.fakes import FakeLetta
from tests.helpers import Cli

SECRET = "s3cr3t-value-123"
MANIFEST = """\
version: 1
stack: s
variables:
  key: {sensitive: true}
blocks:
  org: {value: shared v1}
agents:
  worker:
    model: letta/letta-free
    embedding: letta/letta-free
    system: "You are a worker. Key: ${var.key}"
    secrets: {API_KEY: "${var.key}"}
    initial_message_sequence: [{role: user, content: hello}]
    memory_blocks:
      - {label: persona, value: I am a worker}
      - {label: notes, value: nothing yet}
    blocks: [org]
  boss:
    model: letta/letta-free
    embedding: letta/letta-free
    blocks: [org]
"""
WITHOUT_WORKER = MANIFEST[: MANIFEST.index("  worker:")] + MANIFEST[MANIFEST.index("  boss:") :]
VARS = ("--var", f"key={SECRET}")
SCHEMA = json.loads(
    (Path(__file__).parents[2] / "letta_apply/plan/schemas/plan.schema.json").read_text()
)


def write(root: Path, text: str, name: str = "m.yaml") -> str:
    path = root / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def agent_named(cli: Cli, name: str) -> dict[str, Any]:
    (found,) = [a for a in cli.fake.agents.values() if a["name"] == name]
    return found


def block_of(cli: Cli, agent: dict[str, Any], label: str) -> dict[str, Any]:
    (found,) = [
        cli.fake.blocks[i] for i in agent["block_ids"] if cli.fake.blocks[i]["label"] == label
    ]
    return found


def worked(cli: Cli, tmp_path: Path) -> dict[str, Any]:
    """The stack applied, then the worker at work: it wrote to its persona and remembered a
    passage (with the secret in it, as an agent might)."""
    r = cli("apply", "-f", write(tmp_path, MANIFEST), "--auto-approve", *VARS)
    assert r.code == 0, r.err
    worker = agent_named(cli, "worker")
    block_of(cli, worker, "persona")["value"] = "I am a worker. The user likes tea."
    cli.fake._remember(worker["id"], {"text": f"tea, and the key {SECRET}", "tags": ["pref"]},
                       lambda: 10_000)  # fmt: skip
    return worker


def records(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))]


def test_a_pruned_agent_is_saved_whole_before_its_first_delete_is_sent(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worker = worked(cli, tmp_path)
    persona, notes = block_of_id(cli, worker, "persona"), block_of_id(cli, worker, "notes")
    seen_at_delete: list[tuple[str, int]] = []

    def on_delete(request: httpx.Request) -> None:
        if request.method == "DELETE":
            seen_at_delete.append((request.url.path, len(records(backups_apart))))

    cli.fake.before.append(on_delete)  # type: ignore[arg-type]
    r = cli("apply", "-f", write(tmp_path, WITHOUT_WORKER), "--auto-approve", *VARS)
    assert r.code == 0, r.err
    # Own blocks go in the stage before their agent: the agent was saved before the first.
    deletes = [p for p, _ in seen_at_delete]
    assert sorted(deletes[:2]) == sorted([f"/v1/blocks/{persona}", f"/v1/blocks/{notes}"])
    assert deletes[2] == f"/v1/agents/{worker['id']}"
    assert all(n == 1 for _, n in seen_at_delete), seen_at_delete
    export = cli.fake.calls.index(("GET", f"/v1/agents/{worker['id']}/export"))
    assert export < cli.fake.calls.index(("DELETE", deletes[0]))
    assert cli.fake.calls.count(("GET", f"/v1/agents/{worker['id']}/export")) == 1
    (record,) = records(backups_apart)
    assert record["kind"] == "agent" and record["address"] == "agent.worker"
    assert record["id"] == worker["id"] and record["why"] == ["manifest"]
    doc = read_agent_file(next(backups_apart.rglob("*.af"))).data
    values = {b["label"]: b["value"] for b in doc["blocks"]}
    assert values == {
        "org": "shared v1", "notes": "nothing yet", "persona": "I am a worker. The user likes tea."
    }  # fmt: skip
    assert all(b["tags"] == ["letta-apply:s"] for b in doc["blocks"])  # written in for import
    assert [m["content"][0]["text"] for m in doc["agents"][0]["messages"]][1:] == ["hello"]
    assert [p["text"] for p in record["passages"]] == ["tea, and the key (sensitive)"]
    shared = {b["label"]: b["shared"] for b in record["blocks"]}
    assert shared == {"org": "block.org", "notes": None, "persona": None}
    assert "Backups: 1 resource(s) saved in" in r.out


def block_of_id(cli: Cli, agent: dict[str, Any], label: str) -> str:
    return str(block_of(cli, agent, label)["id"])


def test_nothing_saved_holds_a_sensitive_value(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worked(cli, tmp_path)
    assert cli("destroy", "-f", write(tmp_path, MANIFEST), "--auto-approve", *VARS).code == 0
    files = [p for p in backups_apart.rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".af"]) == 2  # worker and boss
    assert not [p for p in files if SECRET in p.read_text()]
    (record,) = [r for r in records(backups_apart) if r["address"] == "agent.worker"]
    assert "secrets['API_KEY']" in record["masked"] and "system" in record["masked"]
    doc = read_agent_file(next(backups_apart.rglob(record["agent_file"]))).data
    assert doc["agents"][0]["secrets"] == {"API_KEY": ""}
    assert doc["agents"][0]["system"] == "(sensitive)"
    readme = next(backups_apart.rglob("README.md")).read_text()
    assert "Sensitive values are not in these files" in readme and "letta-apply restore" in readme
    # Private: agents' memory is as sensitive as the server that holds it.
    assert all(p.stat().st_mode & 0o077 == 0 for p in files if p.name != ".gitignore")
    assert (backups_apart / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_failed_export_keeps_the_agent_and_fails_the_apply(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worker = worked(cli, tmp_path)
    owned = list(worker["block_ids"])

    def fail_export(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/export"):
            return httpx.Response(500, json={"detail": "export exploded"})
        return None

    cli.fake.before.append(fail_export)
    cli.fake.calls.clear()
    r = cli("apply", "-f", write(tmp_path, WITHOUT_WORKER), "--auto-approve", *VARS)
    assert r.code == 1
    assert "the backup of agent.worker" in r.err and "so it was not deleted" in r.err
    assert "HTTP 500: export exploded" in r.err
    assert not [c for c in cli.fake.calls if c[0] == "DELETE" and "lock" not in c[1]
                and c[1].split("/")[-1] in {worker["id"], *owned}]  # fmt: skip
    assert worker["id"] in cli.fake.agents and all(b in cli.fake.blocks for b in owned)
    assert records(backups_apart) == []


def test_no_backup_deletes_without_saving_and_says_so(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worked(cli, tmp_path)
    path = write(tmp_path, WITHOUT_WORKER)
    plan = cli("plan", "-f", path, "--no-backup", *VARS)
    assert "Backups are off (--no-backup)" in plan.out
    r = cli("apply", "-f", path, "--auto-approve", "--no-backup", *VARS)
    assert r.code == 0 and "Backups are off (--no-backup)" in r.out
    assert not [c for c in cli.fake.calls if c[1].endswith("/export")]
    assert not list(backups_apart.rglob("*.json"))


def test_backup_dir_puts_them_where_asked(cli: Cli, tmp_path: Path) -> None:
    worked(cli, tmp_path)
    there = tmp_path / "kept"
    r = cli("apply", "-f", write(tmp_path, WITHOUT_WORKER), "--auto-approve", *VARS,
            "--backup-dir", str(there))  # fmt: skip
    assert r.code == 0, r.err
    (record,) = list(there.glob("s/*/agent.worker--agent-*.json"))
    assert str(record.parent) in r.out
    with pytest.raises(SystemExit) as usage:  # one or the other, a usage error (exit 1)
        cli("plan", "-f", write(tmp_path, MANIFEST), "--backup-dir", "x", "--no-backup")
    assert usage.value.code == 1


def test_the_plan_says_what_each_delete_holds(cli: Cli, tmp_path: Path) -> None:
    worker = worked(cli, tmp_path)
    for n in range(120):  # more than a page: counted as "100+"
        cli.fake._remember(worker["id"], {"text": f"fact {n}"}, lambda n=n: 20_000 + n)
    in_context = len(cli.fake.messages_of(worker["id"]))  # the system message, then "hello"
    assert in_context == 2
    path = write(tmp_path, WITHOUT_WORKER)
    cli.fake.calls.clear()
    text = cli("plan", "-f", path, *VARS).out
    assert "Memory these deletes remove:" in text
    assert (
        f"  - agent.worker ({worker['id']}): 2 messages in its context, 100+ passages, own "
        "blocks written by agents: persona" in text
    )
    assert "Apply saves each before deleting it, in" in text
    # One read per deleted agent: a page of its passages (its messages come with the listing).
    assert [c for c in cli.fake.calls if "/archival-memory" in c[1] or "/messages" in c[1]] == [
        ("GET", f"/v1/agents/{worker['id']}/archival-memory")
    ]
    markdown = cli("plan", "-f", path, "--format", "markdown", *VARS).out
    assert (
        "> - `agent.worker`: 2 messages in its context, 100+ passages, own blocks written by "
        "agents: persona" in markdown
    )
    doc = json.loads(cli("plan", "-f", path, "--format", "json", *VARS).out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["memory"] == [{
        "address": "agent.worker", "remote_id": worker["id"], "kind": "agent", "messages": 2,
        "passages": 100, "capped": ["passages"], "written": ["persona"], "unknown": [],
        "agent_passages": None,
    }]  # fmt: skip
    # Nothing deleted, nothing said: a converged plan reads no more than before.
    cli.fake.calls.clear()
    converged = cli("plan", "-f", write(tmp_path, MANIFEST, "m1.yaml"), "--format", "json", *VARS)
    assert "memory" not in json.loads(converged.out)
    assert not [c for c in cli.fake.calls if "/archival-memory" in c[1]]


def test_a_saved_plan_keeps_what_its_deletes_hold(cli: Cli, tmp_path: Path) -> None:
    worked(cli, tmp_path)
    path, saved = write(tmp_path, WITHOUT_WORKER), str(tmp_path / "plan.json")
    assert cli("plan", "-f", path, "--out", saved, *VARS).code == 0
    r = cli("apply", saved, "-f", path, "--auto-approve", *VARS)
    assert r.code == 0, r.err
    assert "own blocks written by agents: persona" in r.out and "Backups: 1 resource(s)" in r.out


SHARED_AND_ARCHIVE = """\
version: 1
stack: s
blocks:
  org: {value: shared v1}
archives:
  kb: {embedding: letta/letta-free, passages: {files: [kb.md]}}
agents:
  boss: {model: letta/letta-free, embedding: letta/letta-free, blocks: [org], archives: [kb]}
"""


def test_a_shared_block_and_an_archive_are_saved_before_they_go(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    (tmp_path / "kb.md").write_text("Seeded fact.\n")
    assert cli("apply", "-f", write(tmp_path, SHARED_AND_ARCHIVE), "--auto-approve").code == 0
    (org,) = [b for b in cli.fake.blocks.values() if b["label"] == "org"]
    org["value"] = "Acme: written by an agent"
    (archive_id,) = cli.fake.archives
    cli.fake._store_passage(archive_id, {"text": "an agent's own note"}, 10_000)
    boss_only = SHARED_AND_ARCHIVE.split("blocks:")[0] + "agents:\n  boss: {model: x/y}\n"
    path = write(tmp_path, boss_only, "m2.yaml")
    plan = cli("plan", "-f", path).out
    assert f"  - block.org ({org['id']}): its value was written by agents" in plan
    assert f"  - archive.kb ({archive_id}): 2 passages, 1 written by agents" in plan
    r = cli("apply", "-f", path, "--auto-approve")
    assert r.code == 0, r.err
    found = {r["address"]: r for r in records(backups_apart)}
    assert found["block.org"]["block"]["value"] == "Acme: written by an agent"
    assert found["block.org"]["block"]["tags"] == ["letta-apply:s"]
    kb = found["archive.kb"]
    assert sorted(p["text"] for p in kb["passages"]) == ["Seeded fact.", "an agent's own note"]
    assert kb["mark"]["address"] == "archive.kb" and kb["archive"]["name"] == "kb"
    assert archive_id not in cli.fake.archives and org["id"] not in cli.fake.blocks


def test_an_own_block_dropped_from_a_kept_agent_is_saved_alone(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worker = worked(cli, tmp_path)
    notes = block_of_id(cli, worker, "notes")
    text = MANIFEST.replace("      - {label: notes, value: nothing yet}\n", "")
    assert cli("apply", "-f", write(tmp_path, text), "--auto-approve", *VARS).code == 0
    (record,) = records(backups_apart)
    assert record["kind"] == "block" and record["address"] == "agent.worker.memory_blocks.notes"
    assert record["agents"] == [worker["id"]] and record["id"] == notes
    assert not [c for c in cli.fake.calls if c[1].endswith("/export")]


def test_a_replaced_agent_is_saved_before_its_replacement(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worker = worked(cli, tmp_path)
    text = MANIFEST.replace("  worker:\n", "  worker:\n    agent_type: memgpt_v2_agent\n")
    r = cli("apply", "-f", write(tmp_path, text), "--auto-approve", *VARS)
    assert r.code == 0, r.err
    (record,) = records(backups_apart)
    assert record["before"] == "replace" and record["id"] == worker["id"]
    assert worker["id"] not in cli.fake.agents


def test_a_file_is_whole_on_disk_or_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.json"
    write_file(target, b"first")

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", broken)
    with pytest.raises(OSError):
        write_file(target, b"second, never whole")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left


def test_the_python_api_saves_before_deleting_unless_told(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    values = {"key": SECRET}
    Stack.from_dict(yaml.safe_load(MANIFEST), values).apply(client)
    (worker,) = [a for a in fake.agents.values() if a["name"] == "worker"]
    fewer = Stack.from_dict(yaml.safe_load(WITHOUT_WORKER), values)
    result = fewer.apply(client, backups=tmp_path / "b")
    assert result.backup_folder is not None
    (record,) = Path(result.backup_folder).glob("agent.worker--*.json")
    assert json.loads(record.read_text())["id"] == worker["id"]
    assert not [p for p in (tmp_path / "b").rglob("*") if p.is_file() and SECRET in p.read_text()]
    restored = restore_backup(client, result.backup_folder)
    assert [r.address for r in restored] == ["agent.worker"]
    assert (
        Stack.from_dict(yaml.safe_load(WITHOUT_WORKER), values)
        .destroy(client, backups=False)
        .backup_folder
        is None
    )
    assert not [c for c in fake.calls if c[1].endswith("/export")][1:]  # the first apply's only
    with pytest.raises(LettaApplyError, match="backups: expected true, false or a folder"):
        fewer.apply(client, backups=3)  # type: ignore[arg-type]


def test_passages_are_counted_whole_on_a_server_that_caps_its_pages(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    worker = worked(cli, tmp_path)
    for n in range(29):
        cli.fake._remember(worker["id"], {"text": f"fact {n}"}, lambda n=n: 30_000 + n)
    cli.fake.page_cap = lambda: 7  # as Letta Cloud: 7 a page, whatever `limit` asks
    text = cli("plan", "-f", write(tmp_path, WITHOUT_WORKER), *VARS).out
    assert "2 messages in its context, 30 passages," in text
    assert cli("apply", "-f", write(tmp_path, WITHOUT_WORKER), "--auto-approve", *VARS).code == 0
    (record,) = records(backups_apart)
    assert len(record["passages"]) == 30


def test_a_kinds_flag_is_neither_memory_nor_saved(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    text = MANIFEST.replace("agents:\n", "identities:\n  acme: {identity_type: org}\nagents:\n")
    path = write(tmp_path, text)
    assert cli("apply", "-f", path, "--auto-approve", *VARS).code == 0
    plan = cli("plan", "-f", path, "--destroy", "--format", "json", *VARS)
    doc = json.loads(plan.out)
    deleted = {c["address"] for c in doc["changes"]}
    assert "block.letta-apply-identities" in deleted  # the flag goes with the stack
    assert {h["address"] for h in doc["memory"]} == {"agent.worker", "agent.boss", "block.org"}
    assert cli("destroy", "-f", path, "--auto-approve", *VARS).code == 0
    saved = {r["address"] for r in records(backups_apart)}
    assert saved == {"agent.worker", "agent.boss", "block.org"}
