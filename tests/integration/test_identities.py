"""Identities against the real server: created and wired to agents and shared blocks, converged,
drift restored, properties changed in place, imports, moves, export, prune and destroy. And the
ownership rule for a kind with no tags and no metadata: an identity letta-apply did not make,
even one with the same identifier_key, name or address, is never changed or deleted.

Identifier keys are unique on a server: every test derives its keys from its own stack, and
deletes what it made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.cloudproxy import API_KEY, TEAM_A, CloudProxy
from tests.integration.conftest import BASE_URL, RECORDER, Run, stack_resources

# Identities are a kind Letta Cloud marks deprecated: the Cloud-like proxy serves them here
# only (but to the test of a server without them).
pytestmark = pytest.mark.deprecated_routes

MANIFEST = """\
version: 1
stack: {stack}
identities:
  acme:
    identifier_key: {stack}-acme
    identity_type: org
    name: Acme Corp
    properties: {plan: pro, seats: 12}
  alice:
    identifier_key: {stack}-alice
    identity_type: user
blocks:
  org:
    value: Acme facts
    identities: [acme]
agents:
  helper:
    name: {stack}-helper
    model: letta/letta-free
    embedding: letta/letta-free
    identities: [acme, alice]
    blocks: [org]
"""


def identities(api: httpx.Client, key_prefix: str) -> dict[str, dict[str, Any]]:
    """Identities on the server whose identifier_key starts with the prefix, by key."""
    found = api.get("/v1/identities/", params={"limit": 1000}).json()
    return {i["identifier_key"]: i for i in found if i["identifier_key"].startswith(key_prefix)}


def props(identity: dict[str, Any]) -> dict[str, Any]:
    return {p["key"]: p["value"] for p in identity["properties"]}


def agent_identities(api: httpx.Client, name: str) -> list[str]:
    (agent,) = api.get("/v1/agents/", params={"name": name, "include": ["agent.identities"]}).json()
    return sorted(agent["identity_ids"])


def block_identities(api: httpx.Client, identity_id: str) -> list[str]:
    return [b["id"] for b in api.get(f"/v1/identities/{identity_id}/blocks").json()]


@pytest.fixture
def cleanup(api: httpx.Client, stack: str) -> Iterator[None]:
    """Delete every identity whose key starts with the stack's name, whoever made it."""
    yield
    for identity in identities(api, stack).values():
        api.delete(f"/v1/identities/{identity['id']}")


def test_identities_are_created_wired_and_converge(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    path = manifest(MANIFEST)
    r = run("apply", "-f", path, "--auto-approve")
    assert r.code == 0, r.err
    found = identities(api, stack)
    acme, alice = found[f"{stack}-acme"], found[f"{stack}-alice"]
    assert (acme["name"], acme["identity_type"]) == ("Acme Corp", "org")
    assert props(acme)["plan"] == "pro" and props(acme)["seats"] == 12
    # The mark is one more property: stack and address, never a guess from the name.
    assert props(acme)["letta_apply"]["stack"] == stack
    assert props(acme)["letta_apply"]["address"] == "identity.acme"
    assert agent_identities(api, f"{stack}-helper") == sorted([acme["id"], alice["id"]])
    (org_id,) = block_identities(api, acme["id"])
    assert block_identities(api, alice["id"]) == []

    again = run("apply", "-f", path, "--auto-approve")
    assert again.code == 0 and "No changes." in again.out
    assert again.writes == 0
    assert run("show", "-f", path).out.count(f"identifier_key='{stack}-") == 2
    assert org_id in run("show", "-f", path).out

    assert run("destroy", "-f", path, "--auto-approve").code == 0
    assert identities(api, stack) == {}


def test_hand_edits_are_drift_and_manifest_changes_update_in_place(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    path = manifest(MANIFEST)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    acme = identities(api, stack)[f"{stack}-acme"]
    (org_id,) = block_identities(api, acme["id"])
    api.patch(f"/v1/identities/{acme['id']}", json={"name": "Renamed by hand"})
    api.patch(f"/v1/blocks/{org_id}/identities/detach/{acme['id']}")

    drift = run("drift", "-f", path)
    assert drift.code == 2
    assert "identity.acme.name was changed on the server" in drift.out
    assert "block.org.identities was changed on the server" in drift.out

    changed = manifest(MANIFEST.replace("seats: 12", "seats: 20"))
    r = run("apply", "-f", changed, "--auto-approve")
    assert r.code == 0, r.err
    assert "properties['seats']: 12 -> 20" in r.out
    after = identities(api, stack)[f"{stack}-acme"]
    assert after["id"] == acme["id"]  # updated in place
    assert after["name"] == "Acme Corp" and props(after)["seats"] == 20
    assert block_identities(api, acme["id"]) == [org_id]
    assert run("plan", "-f", changed, "--detailed-exitcode").code == 0
    assert run("destroy", "-f", changed, "--auto-approve").code == 0


def test_an_identity_made_by_hand_is_never_touched_and_can_be_imported(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    # Made by hand: the same identifier_key and name a declared identity will ask for, and a
    # forged-looking address in a property that is not the mark.
    own = api.post(
        "/v1/identities/",
        json={
            "identifier_key": f"{stack}-alice",
            "name": "alice",
            "identity_type": "user",
            "properties": [{"key": "address", "value": "identity.alice", "type": "string"}],
        },
    ).json()
    path = manifest(MANIFEST)
    refused = run("apply", "-f", path, "--auto-approve")
    assert refused.code == 1
    assert f"identifier_key '{stack}-alice' already exists" in refused.out + refused.err
    assert "adopt it with an `imports:` entry" in refused.out + refused.err
    untouched = identities(api, stack)[f"{stack}-alice"]
    assert untouched == own

    # Removing it from the manifest, pruning and destroying never reach it either.
    only_acme = yaml.safe_load(MANIFEST.replace("{stack}", stack))
    del only_acme["identities"]["alice"]
    only_acme["agents"]["helper"]["identities"] = ["acme"]
    lean = manifest(yaml.safe_dump(only_acme))
    assert run("apply", "-f", lean, "--auto-approve").code == 0
    assert run("destroy", "-f", lean, "--auto-approve").code == 0
    assert identities(api, stack)[f"{stack}-alice"] == own

    # Imported by its identifier_key, it is marked and managed from then on.
    adopted = manifest(MANIFEST + f"imports:\n  - {{to: identity.alice, name: {stack}-alice}}\n")
    r = run("apply", "-f", adopted, "--auto-approve")
    assert r.code == 0, r.err
    assert f"identity.alice ({own['id']}): import" in r.out
    now = identities(api, stack)[f"{stack}-alice"]
    assert now["id"] == own["id"] and props(now)["letta_apply"]["address"] == "identity.alice"
    assert run("plan", "-f", adopted, "--detailed-exitcode").code == 0
    assert run("destroy", "-f", adopted, "--auto-approve").code == 0
    assert identities(api, stack) == {}


def test_moved_keeps_the_identity_and_export_round_trips(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    path = manifest(MANIFEST)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    before = identities(api, stack)[f"{stack}-acme"]["id"]
    renamed = MANIFEST.replace("  acme:\n", "  customer:\n").replace("[acme", "[customer")
    moved = manifest(renamed + "moved:\n  - {from: identity.acme, to: identity.customer}\n")
    r = run("apply", "-f", moved, "--auto-approve")
    assert r.code == 0, r.err
    assert "address: identity.acme -> identity.customer" in r.out
    assert identities(api, stack)[f"{stack}-acme"]["id"] == before
    assert run("plan", "-f", moved, "--detailed-exitcode").code == 0
    assert run("destroy", "-f", moved, "--auto-approve").code == 0

    # An agent made by hand, acting for an identity made by hand, exports with it and adopts.
    made = api.post(
        "/v1/identities/",
        json={"identifier_key": f"{stack}-bob", "name": "Bob", "identity_type": "user"},
    ).json()
    agent = api.post(
        "/v1/agents/",
        json={
            "name": f"{stack}-solo",
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "identity_ids": [made["id"]],
        },
    ).json()
    try:
        exported = manifest("")
        r = run("export", "--stack", stack, "--id", agent["id"], "-o", exported)
        assert r.code == 0, r.err
        doc = yaml.safe_load(Path(exported).read_text(encoding="utf-8"))
        (key,) = doc["identities"]
        assert doc["identities"][key]["identity_type"] == "user"
        assert doc["agents"][next(iter(doc["agents"]))]["identities"] == [key]
        assert {"to": f"identity.{key}", "id": made["id"]} in doc["imports"]
        adopt = run("apply", "-f", exported, "--auto-approve")
        assert adopt.code == 0, adopt.err
        assert run("plan", "-f", exported, "--detailed-exitcode").code == 0
        assert run("destroy", "-f", exported, "--auto-approve").code == 0
        assert identities(api, stack) == {}
    finally:
        api.delete(f"/v1/agents/{agent['id']}")


# -- the identities flag, and a server without identities -------------------------------------

FLAG = "letta-apply-identities"
WITHOUT = """\
version: 1
stack: {stack}
blocks:
  org: {value: Acme facts}
agents:
  helper:
    name: {stack}-helper
    model: letta/letta-free
    embedding: letta/letta-free
    blocks: [org]
"""


def flags(api: httpx.Client, stack: str) -> list[str]:
    found = api.get("/v1/blocks/", params={"tags": [f"letta-apply:{stack}"], "label": FLAG})
    return [b["id"] for b in found.json()]


def test_the_flag_comes_before_the_first_identity_and_goes_after_the_last(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    before = len(RECORDER.sent)
    assert run("apply", "-f", manifest(MANIFEST), "--auto-approve").code == 0
    writes = [s for s in RECORDER.sent[before:] if s.method != "GET"]
    # The flag before any identity: a run killed right after an identity's create leaves a
    # stack whose next plan lists its identities.
    first = next(i for i, s in enumerate(writes) if s.path == "/v1/identities/")
    made = [i for i, s in enumerate(writes) if s.path == "/v1/blocks/" and FLAG.encode() in s.body]
    assert len(made) == 1 and made[0] < first
    (flag,) = flags(api, stack)

    # Out of the manifest: the flag says the stack holds identities, so they are found and
    # deleted, then the flag, last.
    before = len(RECORDER.sent)
    r = run("apply", "-f", manifest(WITHOUT), "--auto-approve")
    assert r.code == 0, r.err
    assert f"- block.{FLAG} ({flag}): delete" in r.out
    deletes = [s.path for s in RECORDER.sent[before:] if s.method == "DELETE"]
    gone = [p for p in deletes if p.startswith("/v1/identities/") or p.endswith(flag)]
    assert len(gone) == 3 and gone[-1] == f"/v1/blocks/{flag}"  # 2 identities, then the flag
    assert identities(api, stack) == {} and flags(api, stack) == []
    # From now on the stack holds none: its plans never ask for identities.
    before = len(RECORDER.sent)
    assert run("plan", "-f", manifest(WITHOUT), "--detailed-exitcode").code == 0
    assert not any(s.path.startswith("/v1/identities") for s in RECORDER.sent[before:])

    # Destroy leaves no flag either.
    assert run("apply", "-f", manifest(MANIFEST), "--auto-approve").code == 0
    assert len(flags(api, stack)) == 1
    assert run("destroy", "-f", manifest(WITHOUT), "--auto-approve").code == 0
    assert identities(api, stack) == {} and flags(api, stack) == []
    assert stack_resources(api, stack) == ([], [])


@pytest.mark.parametrize(("status", "says"), [(410, "410 Gone"), (404, "404 Not Found")])
def test_a_server_without_identities_is_one_clear_line_and_nothing_is_written(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, status: int,
    says: str,
) -> None:  # fmt: skip
    # Letta Cloud marks /v1/identities deprecated: a Cloud that dropped it, for a stack that
    # declares identities.
    proxy = CloudProxy(BASE_URL, RECORDER, removed={"/v1/identities": status}).start()
    try:
        args = ("--api-key", API_KEY, "--project", TEAM_A.slug)
        r = run("apply", "-f", manifest(MANIFEST), "--auto-approve", *args, base_url=proxy.url)
    finally:
        proxy.stop()
    assert r.code == 1 and r.out == ""
    offers = "no longer offers" if status == 410 else "does not offer"
    (line,) = [x for x in r.err.splitlines() if not x.startswith("requests:")]
    assert line == (
        f"error: identities: Letta answered {says} for GET /v1/identities/: this server "
        f"{offers} identities, which the manifest declares [LA508]"
    ), r.err
    assert r.writes == 0
    assert [what for _, what in proxy.refused] == [f"{what_of(status)}: GET /v1/identities/"]
    assert stack_resources(api, stack) == ([], []) and identities(api, stack) == {}


def what_of(status: int) -> str:
    return "Gone: no longer offered" if status == 410 else "Not Found"
