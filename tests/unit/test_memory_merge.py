"""Memory values decided three ways against the base in the marks (the digest of the value
letta-apply last wrote): a manifest edit is applied, an agent's write is kept, both at once is a
conflict; through whole plan/apply cycles on the fake server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from letta_apply import StalePlanError
from letta_apply.core.marks import digest
from letta_apply.core.model import MARK_KEY
from letta_apply.plan.saved import read_saved_plan, verify_saved_plan
from tests.helpers import Cli, write

ORG, PERSONA = "Acme sells anvils.", "I am a worker."


def manifest(org: str = ORG, persona: str = PERSONA, extra: str = "") -> str:
    return (
        "version: 1\nstack: s\n"
        f"blocks:\n  org: {{value: {json.dumps(org)}{extra}}}\n"
        "agents:\n  worker:\n    model: letta/letta-free\n    blocks: [org]\n"
        f"    memory_blocks:\n      - {{label: persona, value: {json.dumps(persona)}}}\n"
    )


def block(cli: Cli, label: str) -> dict[str, Any]:
    (found,) = [b for b in cli.fake.blocks.values() if b["label"] == label]
    return found


def agent_writes(cli: Cli, label: str, value: str) -> None:
    block(cli, label)["value"] = value


def apply(cli: Cli, path: Path, *extra: str) -> str:
    result = cli("apply", "-f", str(path), "--auto-approve", *extra)
    assert result.code == 0, result.err
    return result.out


def plan(cli: Cli, path: Path, *extra: str) -> str:
    result = cli("plan", "-f", str(path), *extra)
    assert result.code == 0, result.err
    return result.out


def test_a_manifest_edit_of_a_value_is_applied_not_reported_as_memory(
    tmp_path: Path, cli: Cli
) -> None:
    apply(cli, write(tmp_path, manifest()))
    assert block(cli, "org")["metadata"][MARK_KEY]["applied"]["value"] == digest(ORG)
    edited = write(tmp_path, manifest("Acme sells rockets.", "I am the night worker."))
    out = plan(cli, edited)
    assert "written on the server" not in out and "Drift" not in out
    assert 'value: "Acme sells anvils." -> "Acme sells rockets."' in out
    assert 'value: "I am a worker." -> "I am the night worker."' in out
    drift = cli("drift", "-f", str(edited))
    assert drift.code == 0 and "No drift" in drift.out
    apply(cli, edited)
    assert block(cli, "org")["value"] == "Acme sells rockets."
    assert block(cli, "persona")["value"] == "I am the night worker."
    assert "The server matches the manifest" in plan(cli, edited)


def test_an_agents_write_is_kept_and_reported(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, manifest())
    apply(cli, path)
    agent_writes(cli, "org", "Acme sells anvils and rockets.")
    agent_writes(cli, "persona", "I am a worker who likes rockets.")
    out = plan(cli, path)
    assert "block.org.value was written on the server (by an agent or by hand); kept" in out
    assert "agent.worker.memory_blocks.persona.value was written on the server" in out
    assert "No changes. 2 agent-written values kept." in out
    drift = cli("drift", "-f", str(path))
    assert drift.code == 2 and "Memory written by agents" in drift.out
    apply(cli, path)
    assert block(cli, "org")["value"] == "Acme sells anvils and rockets."


def test_both_changed_is_a_conflict_that_outlives_other_writes(tmp_path: Path, cli: Cli) -> None:
    apply(cli, write(tmp_path, manifest()))
    agent_writes(cli, "org", "Acme sells anvils and rockets.")
    agent_writes(cli, "persona", "I am a worker who likes rockets.")
    # The manifest changes the values too, and the block's description and the agent's
    # description: both get their marks rewritten by this apply.
    text = manifest("Acme sells rockets.", "I am the night worker.", ", description: Company")
    text = text.replace("model: letta/letta-free", "model: letta/letta-free\n    description: W")
    both = write(tmp_path, text)
    out = plan(cli, both)
    assert (
        "! block.org.value changed both in the manifest and on the server (by an agent or by "
        "hand): a conflict; the server's is kept"
    ) in out
    assert 'declared: "Acme sells rockets."' in out
    assert 'live:     "Acme sells anvils and rockets."' in out
    assert "2 memory conflicts." in out
    document = json.loads(plan(cli, both, "--format", "json"))
    assert {(d["address"], d.get("conflict")) for d in document["drift"]} == {
        ("block.org", True),
        ("agent.worker.memory_blocks.persona", True),
    }
    apply(cli, both)
    assert block(cli, "org")["value"] == "Acme sells anvils and rockets."  # the server's kept
    # The rewritten marks carry the old base: still a conflict, not an agent's write.
    assert block(cli, "org")["metadata"][MARK_KEY]["applied"]["value"] == digest(ORG)
    again = plan(cli, both)
    assert "2 memory conflicts." in again and "No changes." in again
    # enforce_value settles it: the manifest's value is written, and becomes the base.
    enforced = write(tmp_path, text.replace(", description: Company", ", enforce_value: true"))
    out = plan(cli, enforced)
    assert "a conflict; enforce_value writes the manifest's" in out
    apply(cli, enforced)
    assert block(cli, "org")["value"] == "Acme sells rockets."
    assert block(cli, "org")["metadata"][MARK_KEY]["applied"]["value"] == digest(
        "Acme sells rockets."
    )


def test_marks_without_a_base_keep_the_old_rule_until_the_value_is_in_step(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, manifest())
    apply(cli, path)
    marks = block(cli, "org")["metadata"][MARK_KEY]["applied"]
    del marks["value"]  # marks written before the base was kept
    out = plan(cli, write(tmp_path, manifest("Acme sells rockets.")))
    assert "block.org.value was written on the server (by an agent or by hand); kept" in out
    # A write of the marks while the value is as declared records the base from then on.
    apply(cli, write(tmp_path, manifest(extra=", description: Company")))
    assert block(cli, "org")["metadata"][MARK_KEY]["applied"]["value"] == digest(ORG)
    out = plan(
        cli, write(tmp_path, manifest("Acme sells rockets.", extra=", description: Company"))
    )
    assert 'value: "Acme sells anvils." -> "Acme sells rockets."' in out
    assert "Drift" not in out


def test_a_sensitive_value_keeps_no_base_and_a_difference_counts_as_the_servers(
    tmp_path: Path, cli: Cli
) -> None:
    text = (
        "version: 1\nstack: s\nvariables:\n  pin: {type: string, sensitive: true}\n"
        'blocks:\n  vault: {value: "pin ${var.pin}"}\n'
    )
    path = write(tmp_path, text)
    apply(cli, path, "--var", "pin=1234567")
    applied = block(cli, "vault")["metadata"][MARK_KEY]["applied"]
    assert "value" not in applied and applied["sensitive"] == ["value"]
    out = plan(cli, path, "--var", "pin=7654321")
    assert "block.vault.value was written on the server" in out
    assert "1234567" not in out and "7654321" not in out


def test_a_saved_plan_that_writes_a_value_refuses_after_an_agent_wrote_it(
    tmp_path: Path, cli: Cli
) -> None:
    apply(cli, write(tmp_path, manifest()))
    edited = write(tmp_path, manifest("Acme sells rockets."))
    saved = tmp_path / "plan.json"
    assert cli("plan", "-f", str(edited), "--out", str(saved)).code == 0
    agent_writes(cli, "org", "Acme sells anvils; Bob prefers email.")
    result = cli("apply", str(saved), "-f", str(edited), "--auto-approve")
    assert result.code == 1 and "stale plan" in result.err and "block.org" in result.err
    assert block(cli, "org")["value"] == "Acme sells anvils; Bob prefers email."
    # The command line's check is the Python API's: the same error class.
    with pytest.raises(StalePlanError, match=r"block\.org"):
        verify_saved_plan(cli.client("http://localhost:8283"), read_saved_plan(str(saved)))
    # A plan that leaves the value alone is not made stale by an agent's write.
    apply(cli, write(tmp_path, manifest()))
    described = write(tmp_path, manifest(extra=", description: Company"))
    assert cli("plan", "-f", str(described), "--out", str(saved)).code == 0
    agent_writes(cli, "org", "Acme sells anvils; Bob prefers phone.")
    result = cli("apply", str(saved), "-f", str(described), "--auto-approve")
    assert result.code == 0, result.err
    assert block(cli, "org")["value"] == "Acme sells anvils; Bob prefers phone."
