"""Identities against the fake server: manifest rules with their positions, sensitive properties
(masked, never digested, a rotation still seen), and a refused identity taking the agent that
needs it along."""

from __future__ import annotations

import json
from pathlib import Path

from letta_apply.pipeline import load_manifest
from tests.helpers import Cli, at, diagnostics, write

HEAD = "version: 1\nstack: s\n"
IDENTITIES = HEAD + "identities:\n  acme: {identity_type: org}\n  alice: {identity_type: user}\n"


def errors(tmp_path: Path, text: str) -> list[tuple[tuple[int, int], str]]:
    found = diagnostics(write(tmp_path, text), lambda p: load_manifest(str(p)))
    return [(at(d), d.message) for d in found]


def test_references_name_declared_identities_with_a_hint(tmp_path: Path) -> None:
    text = IDENTITIES + (
        "blocks:\n  org: {value: v, identities: [acme]}\n"
        "agents:\n  bot:\n    model: letta/letta-free\n    identities: [alcie, acme]\n"
    )
    assert errors(tmp_path, text) == [
        ((11, 18), "agents.bot.identities[0]: no identity 'alcie' is declared; did you mean "
         "'alice'?"),
    ]  # fmt: skip


def test_identifier_keys_are_unique_and_the_mark_key_is_reserved(tmp_path: Path) -> None:
    text = HEAD + (
        "identities:\n"
        "  a: {identity_type: user, identifier_key: same}\n"
        "  b: {identity_type: user, identifier_key: same, properties: {letta_apply: 1}}\n"
    )
    found = errors(tmp_path, text)
    assert ((5, 44), "identities.b: identifier_key 'same' is already used by identities.a; "
            "identifier keys are unique on a Letta server") in found  # fmt: skip
    assert any("'letta_apply' is reserved" in m for _, m in found), found


def test_an_agents_own_block_cannot_name_identities(tmp_path: Path) -> None:
    text = IDENTITIES + (
        "agents:\n  bot:\n    memory_blocks:\n      - {label: p, value: v, identities: [acme]}\n"
    )
    ((where, message),) = errors(tmp_path, text)
    assert where[0] == 9
    assert "identities belong to shared blocks" in message


def test_a_sensitive_property_is_masked_not_digested_and_its_rotation_seen(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(
        tmp_path,
        HEAD + "variables:\n  token: {type: string, sensitive: true}\n"
        "identities:\n  acme:\n    identity_type: org\n"
        '    properties: {api_token: "${var.token}", plan: pro}\n',
    )
    secret, rotated = "supersecret-123", "rotated-456789"
    first = cli("apply", "-f", str(path), "--var", f"token={secret}", "--auto-approve")
    assert first.code == 0, first.err
    assert '"api_token": "(sensitive)"' in first.out and secret not in first.out + first.err
    (stored,) = cli.fake.identities.values()
    props = {p["key"]: p["value"] for p in stored["properties"]}
    assert props["api_token"] == secret  # the server got the real value
    applied = props["letta_apply"]["applied"]
    assert "properties" not in applied and applied["sensitive"] == ["properties.api_token"]
    assert secret not in json.dumps(props["letta_apply"])
    same = cli("plan", "-f", str(path), "--var", f"token={secret}")
    assert "No changes." in same.out
    changed = cli("plan", "-f", str(path), "--var", f"token={rotated}")
    assert "properties['api_token']: (sensitive value changed)" in changed.out
    assert rotated not in changed.out + changed.err


def test_a_refused_identity_refuses_the_agent_that_acts_for_it(tmp_path: Path, cli: Cli) -> None:
    cli.fake.identities["identity-0"] = {
        "id": "identity-0", "_seq": -1, "identifier_key": "alice", "name": "Alice",
        "identity_type": "user", "properties": [], "agent_ids": [], "block_ids": [],
    }  # fmt: skip
    path = write(
        tmp_path,
        IDENTITIES + "agents:\n  bot:\n    model: letta/letta-free\n    identities: [alice]\n",
    )
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == 1
    assert "identity.alice: an identity with identifier_key 'alice' already exists" in r.out
    assert "agent.bot: uses identity.alice, which apply refuses to make" in r.out
    assert cli.fake.agents == {}  # nothing half-made for the agent
    assert cli.fake.identities["identity-0"]["name"] == "Alice"  # never taken over
    assert sorted(i["identifier_key"] for i in cli.fake.identities.values()) == ["acme", "alice"]


def test_a_target_keeps_the_identities_a_shared_block_names(tmp_path: Path, cli: Cli) -> None:
    text = (
        "version: 1\nstack: s\n"
        "identities:\n  u: {identifier_key: u1, name: U, identity_type: user}\n"
        "blocks:\n  x: {value: v, identities: [u]}\n  y: {value: w}\n"
    )
    r = cli("apply", "-f", str(write(tmp_path, text)), "--target", "block.x", "--auto-approve")
    assert r.code == 0, r.out + r.err
    (identity,) = cli.fake.identities.values()
    (block,) = [b for b in cli.fake.blocks.values() if b["label"] == "x"]
    assert identity["block_ids"] == [block["id"]]
    # block.y is not targeted; the identities flag was written before the identity
    assert [b["label"] for b in cli.fake.memory.values()] == ["letta-apply-identities", "x"]


def test_a_rotated_sensitive_number_shows_on_neither_side(tmp_path: Path, cli: Cli) -> None:
    path = write(
        tmp_path,
        HEAD + "variables:\n  pin: {type: number, sensitive: true}\n"
        "identities:\n  acme:\n    identity_type: org\n"
        '    properties: {pin: "${var.pin}", plan: pro}\n',
    )
    first = cli("apply", "-f", str(path), "--var", "pin=731946", "--auto-approve")
    assert first.code == 0, first.err
    saved = tmp_path / "plan.json"
    changed = cli(
        "plan", "-f", str(path), "--var", "pin=582064", "--format", "json", "--out", str(saved)
    )
    assert changed.code == 0, changed.err
    [change] = json.loads(changed.out)["changes"]
    assert change["before"]["properties['pin']"] == "(sensitive)"
    assert change["after"]["properties['pin']"] == "(sensitive)"
    for text in (changed.out, changed.err, saved.read_text(encoding="utf-8")):
        assert "731946" not in text and "582064" not in text
