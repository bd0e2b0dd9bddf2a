"""BYOK providers against the fake server (which keeps providers as Letta 0.16.8 does,
tests/fakes/providers.py): manifest rules with their positions, a create behind its intent, a key
rotated in place and never shown, fields changed in place or by replacing the provider, drift,
a provider the stack does not own never touched, import by name, prune, runs killed or refused
midway, and a server that keeps keys encrypted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from letta_apply.kinds.provider.kind import MARK_LABEL, LiveProvider, ProviderKind
from letta_apply.kinds.provider.model import ciphertext
from letta_apply.manifest.variables import Options
from letta_apply.pipeline import load_manifest
from tests.fakes import FakeLetta
from tests.helpers import Cli, Result, at, diagnostics, write
from tests.unit.test_drift_record import counts, kill_after
from tests.unit.test_lock_lease import dead_pid
from tests.unit.test_resilience import lose_answer

KEY = "sk-first-Zq8vWm3k"
ROTATED = "sk-second-Hs5Rt8Lp"
HEAD = "version: 1\nstack: s\nvariables:\n  key: {sensitive: true}\n"
LOCAL = (
    "providers:\n"
    "  local:\n"
    "    name: acme-local\n"
    "    provider_type: openai\n"
    "    api_key: ${var.key}\n"
    "    base_url: http://127.0.0.1:9/v1\n"
)
MANIFEST = HEAD + LOCAL


def run(cli: Cli, tmp_path: Path, *argv: str, key: str = KEY, text: str = MANIFEST) -> Result:
    path = write(tmp_path, text)
    given = ("--var", f"key={key}") if "${var.key}" in text else ()
    return cli(*argv, "-f", str(path), *given, "-v")


def apply(cli: Cli, tmp_path: Path, key: str = KEY, text: str = MANIFEST) -> Result:
    r = run(cli, tmp_path, "apply", "--auto-approve", key=key, text=text)
    assert r.code == 0, r.out + r.err
    return r


def providers(fake: FakeLetta) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in fake.providers.values()}


def marks(fake: FakeLetta) -> list[dict[str, Any]]:
    return [b for b in fake.blocks.values() if b["label"] == MARK_LABEL]


def hand_made(fake: FakeLetta, name: str, key: str = "sk-hand-Kp2Lq9Xw") -> str:
    made = fake._create_provider({"name": name, "provider_type": "openai", "api_key": key}, 99)
    return str(made["id"])


def test_manifest_rules_are_located_errors(tmp_path: Path) -> None:
    text = "version: 1\nstack: s\n" + (
        "providers:\n"
        "  a: {provider_type: openai, api_key: k1}\n"
        "  b: {name: a, provider_type: anthropic, api_key: k2}\n"
        "  c: {provider_type: openai}\n"
        "  d: {name: x/y, provider_type: openai, api_key: k3}\n"
        "  e: {provider_type: nobody, api_key: k4}\n"
    )
    diags = diagnostics(write(tmp_path, text), load_manifest)
    found = [(at(d), d.message) for d in diags]
    messages = [m for _, m in found]
    assert any(p == (5, 3) and "name 'a' is already used by providers.a" in m for p, m in found), (
        found
    )
    assert [d.code for d in diags if at(d) == (5, 3)] == ["LA481"]
    assert any(p == (6, 3) and "api_key" in m for p, m in found), found
    assert any(p[0] == 7 and "providers.d.name" in m for p, m in found), found
    assert any(p[0] == 8 and "providers.e.provider_type" in m for p, m in found), found
    assert len(messages) == 4, messages


def test_a_sensitive_variable_may_give_the_keys(tmp_path: Path) -> None:
    text = HEAD + LOCAL + "    access_key: ${var.key}\n"
    desired = load_manifest(str(write(tmp_path, text)), Options(vars=[f"key={KEY}"]))
    (dp,) = desired.of("provider").values()
    assert dp.config["api_key"] == KEY and ProviderKind().hidden(dp) == {"api_key", "access_key"}


def test_created_behind_its_intent_marked_and_converged(tmp_path: Path, cli: Cli) -> None:
    r = apply(cli, tmp_path)
    assert "+ provider.local: create" in r.out and "api_key: (sensitive)" in r.out
    (p,) = cli.fake.providers.values()
    assert (p["name"], p["base_url"], p["api_key_enc"]) == (
        "acme-local",
        "http://127.0.0.1:9/v1",
        KEY,
    )
    # The intent (its mark block) is written right before the create, the mark right after.
    (mark,) = marks(cli.fake)
    writes = [c for c in cli.fake.calls if c[0] != "GET"]
    made = writes.index(("POST", "/v1/providers/"))
    assert writes[made - 1 : made + 2] == [
        ("POST", "/v1/blocks/"), ("POST", "/v1/providers/"), ("PATCH", f"/v1/blocks/{mark['id']}"),
    ]  # fmt: skip
    got = mark["metadata"]["letta_apply"]
    assert got["provider"] == p["id"] and got["address"] == "provider.local"
    assert (got["written"], got["keys"]) == (p["updated_at"], "plain") and "intent" not in got
    assert KEY not in json.dumps(list(cli.fake.blocks.values()))
    again = run(cli, tmp_path, "plan", "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out
    assert counts(apply(cli, tmp_path))[1] == 0


def test_a_key_rotated_in_place_is_never_shown(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path)
    (before,) = cli.fake.providers.values()
    saved = tmp_path / "plan.json"
    outputs = [
        run(cli, tmp_path, "plan", key=ROTATED),
        run(cli, tmp_path, "plan", "--format", "json", key=ROTATED),
        run(cli, tmp_path, "plan", "--format", "markdown", key=ROTATED),
        run(cli, tmp_path, "plan", "--out", str(saved), key=ROTATED),
    ]
    assert "api_key: (sensitive value changed)" in outputs[0].out, outputs[0].out
    r = cli(
        "apply", str(saved), "-f", str(tmp_path / "m.yaml"), "--var", f"key={ROTATED}",
        "--auto-approve",
    )  # fmt: skip
    assert r.code == 0, r.out + r.err
    outputs += [r, run(cli, tmp_path, "show", key=ROTATED)]
    outputs += [run(cli, tmp_path, "drift", key=ROTATED)]
    texts = [o.out + o.err for o in outputs] + [saved.read_text(encoding="utf-8")]
    texts.append(json.dumps(list(cli.fake.blocks.values())))
    for text in texts:
        assert KEY not in text and ROTATED not in text, text
    (after,) = cli.fake.providers.values()
    assert after["id"] == before["id"] and after["api_key_enc"] == ROTATED
    assert cli.fake.refreshed[-1] == after["id"]  # the models listed again with the new key
    assert counts(apply(cli, tmp_path, key=ROTATED))[1] == 0


def test_plain_fields_change_in_place_and_a_hand_edit_is_drift(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path)
    (p,) = cli.fake.providers.values()
    r = apply(cli, tmp_path, text=MANIFEST + "    region: eu\n")
    assert 'region: null -> "eu"' in r.out
    assert (cli.fake.providers[p["id"]]["region"], len(cli.fake.providers)) == ("eu", 1)
    # Edited on the server: the endpoint, then the key.
    cli.fake._patch_provider(p["id"], {"api_key": KEY, "base_url": "http://10.0.0.1/v1"})
    r = run(cli, tmp_path, "drift", text=MANIFEST + "    region: eu\n")
    assert r.code == 2 and "provider.local.base_url" in r.out, r.out
    assert "api_key" not in r.out  # the key is as declared
    apply(cli, tmp_path, text=MANIFEST + "    region: eu\n")
    assert cli.fake.providers[p["id"]]["base_url"] == "http://127.0.0.1:9/v1"
    cli.fake._patch_provider(p["id"], {"api_key": "sk-by-hand-Qw7Er5"})
    r = run(cli, tmp_path, "drift", text=MANIFEST + "    region: eu\n")
    assert r.code == 2 and "provider.local.api_key" in r.out and "by-hand" not in r.out, r.out
    apply(cli, tmp_path, text=MANIFEST + "    region: eu\n")
    assert cli.fake.providers[p["id"]]["api_key_enc"] == KEY


def test_a_key_changed_in_the_manifest_is_not_drift(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path)
    r = run(cli, tmp_path, "drift", key=ROTATED)
    assert r.code == 0, r.out


RENAMED = MANIFEST.replace("acme-local", "acme-renamed")


def test_a_new_name_replaces_the_provider_made_first(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path)
    (old,) = cli.fake.providers.values()
    r = apply(cli, tmp_path, text=RENAMED.replace("openai", "anthropic"))
    assert "-/+ provider.local" in r.out and "(created first" in r.out, r.out
    (new,) = cli.fake.providers.values()
    assert (new["name"], new["provider_type"]) == ("acme-renamed", "anthropic")
    writes = [c for c in cli.fake.calls if c[0] != "GET"]
    assert writes.index(("POST", "/v1/providers/"), 1) < writes.index(
        ("DELETE", f"/v1/providers/{old['id']}")
    )
    (mark,) = marks(cli.fake)
    assert mark["metadata"]["letta_apply"]["provider"] == new["id"]
    text = RENAMED.replace("openai", "anthropic")
    assert counts(apply(cli, tmp_path, text=text))[1] == 0


def test_a_new_type_under_the_same_name_is_refused(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path)
    r = run(cli, tmp_path, "apply", "--auto-approve", text=MANIFEST.replace("openai", "anthropic"))
    assert r.code == 1, r.out + r.err
    assert "Letta can neither change that to anthropic" in r.out + r.err
    assert "beside it [LA642]\n" in r.err  # the refused resource's code, as plans give it
    assert "give it a new name" in r.out + r.err
    (p,) = cli.fake.providers.values()
    assert p["provider_type"] == "openai"


def test_a_replacement_killed_before_deleting_the_old_one_is_finished(
    tmp_path: Path, cli: Cli
) -> None:
    apply(cli, tmp_path)
    (old,) = cli.fake.providers.values()
    kill_after(cli.fake, "POST", "/v1/providers/")
    assert run(cli, tmp_path, "apply", "--auto-approve", text=RENAMED).code == 1
    cli.fake.before.clear()
    cli.fake.after.clear()
    (lock,) = [b for b in cli.fake.blocks.values() if b["label"] == "letta-apply-lock"]
    lock["metadata"]["letta_apply_lock"]["pid"] = dead_pid()
    assert len(cli.fake.providers) == 2  # the new one made, its mark not written yet
    r = apply(cli, tmp_path, text=RENAMED)
    assert "adopted, made by a run that stopped" in r.out, r.out
    (new,) = cli.fake.providers.values()
    assert new["name"] == "acme-renamed" and new["id"] != old["id"]
    (mark,) = marks(cli.fake)
    assert mark["metadata"]["letta_apply"]["provider"] == new["id"]
    assert counts(apply(cli, tmp_path, text=RENAMED))[1] == 0


def test_prevent_destroy_refuses_a_replacement(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path, text=MANIFEST + "    prevent_destroy: true\n")
    text = RENAMED + "    prevent_destroy: true\n"
    r = run(cli, tmp_path, "plan", text=text)
    assert r.code == 1 and "prevent_destroy is set, and this plan would replace it" in r.out


def test_pruned_and_destroyed_with_their_marks(tmp_path: Path, cli: Cli) -> None:
    text = MANIFEST + LOCAL.replace("local", "other").replace("providers:\n", "")
    apply(cli, tmp_path, text=text)
    assert len(cli.fake.providers) == 2 and len(marks(cli.fake)) == 2
    apply(cli, tmp_path)
    assert list(providers(cli.fake)) == ["acme-local"] and len(marks(cli.fake)) == 1
    r = run(cli, tmp_path, "destroy", "--auto-approve")
    assert r.code == 0 and not cli.fake.providers and not marks(cli.fake)


def test_a_provider_of_that_name_not_owned_is_never_touched(tmp_path: Path, cli: Cli) -> None:
    pid = hand_made(cli.fake, "acme-local")
    hand = dict(cli.fake.providers[pid])
    r = run(cli, tmp_path, "plan")
    assert r.code == 1, r.out + r.err
    assert "a provider named 'acme-local' already exists" in r.out + r.err
    assert "{to: provider.local, name: acme-local}" in r.out + r.err
    assert run(cli, tmp_path, "destroy", "--auto-approve").code == 0
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 1
    assert cli.fake.providers == {pid: hand} and not marks(cli.fake)


def test_imported_by_name_then_managed(tmp_path: Path, cli: Cli) -> None:
    pid = hand_made(cli.fake, "acme-local", key=KEY)
    text = MANIFEST + "imports:\n  - {to: provider.local, name: acme-local}\n"
    r = apply(cli, tmp_path, text=text)
    assert "provider.local" in r.out and "import" in r.out, r.out
    assert cli.fake.providers[pid]["base_url"] == "http://127.0.0.1:9/v1"  # as declared
    (mark,) = marks(cli.fake)
    assert mark["metadata"]["letta_apply"]["provider"] == pid
    assert counts(apply(cli, tmp_path, text=text))[1] == 0
    assert run(cli, tmp_path, "destroy", "--auto-approve").code == 0
    assert not cli.fake.providers


def test_a_run_killed_right_after_the_create_is_adopted_without_a_duplicate(
    tmp_path: Path, cli: Cli
) -> None:
    kill_after(cli.fake, "POST", "/v1/providers/")
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 1
    cli.fake.before.clear()
    cli.fake.after.clear()
    (lock,) = [b for b in cli.fake.blocks.values() if b["label"] == "letta-apply-lock"]
    lock["metadata"]["letta_apply_lock"]["pid"] = dead_pid()
    (p,) = cli.fake.providers.values()
    (intent,) = marks(cli.fake)
    assert "intent" in intent["metadata"]["letta_apply"]
    r = run(cli, tmp_path, "plan")
    assert "= provider.local" in r.out and "adopted, made by a run that stopped" in r.out, r.out
    apply(cli, tmp_path)
    assert list(cli.fake.providers) == [p["id"]]
    (mark,) = marks(cli.fake)
    assert mark["metadata"]["letta_apply"]["provider"] == p["id"]
    assert counts(apply(cli, tmp_path))[1] == 0


def test_a_run_killed_before_the_create_reuses_its_intent(tmp_path: Path, cli: Cli) -> None:
    dead: list[bool] = []

    def after(request: httpx.Request) -> None:
        if request.method == "POST" and MARK_LABEL.encode() in request.content:
            dead.append(True)  # the intent written: killed before the create is sent

    cli.fake.after.append(after)  # type: ignore[arg-type]
    cli.fake.before.append(
        lambda r: httpx.Response(400, json={"detail": "killed"}) if dead else None
    )
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 1
    cli.fake.before.clear()
    cli.fake.after.clear()
    (lock,) = [b for b in cli.fake.blocks.values() if b["label"] == "letta-apply-lock"]
    lock["metadata"]["letta_apply_lock"]["pid"] = dead_pid()
    (intent,) = marks(cli.fake)
    assert not cli.fake.providers
    apply(cli, tmp_path)
    (p,) = cli.fake.providers.values()
    (mark,) = marks(cli.fake)
    assert mark["id"] == intent["id"] and mark["metadata"]["letta_apply"]["provider"] == p["id"]


def test_a_create_whose_answer_is_lost_is_adopted_never_resent(tmp_path: Path, cli: Cli) -> None:
    lose_answer(cli.fake, "POST", "/v1/providers/", status=502)
    apply(cli, tmp_path)
    (p,) = cli.fake.providers.values()
    (mark,) = marks(cli.fake)
    assert mark["metadata"]["letta_apply"]["provider"] == p["id"]
    assert cli.fake.calls.count(("POST", "/v1/providers/")) == 1


def test_a_name_taken_since_the_plan_fails_masked_and_leaves_no_intent(
    tmp_path: Path, cli: Cli
) -> None:
    key = "sk-literal-Jd8Kq2Vn"  # written in the manifest: no sensitive variable masks it
    text = "version: 1\nstack: s\n" + LOCAL.replace("${var.key}", key)
    pid = hand_made(cli.fake, "acme-local")
    raced = [True]

    def take_the_name(request: httpx.Request) -> httpx.Response | None:
        # Another tool makes the name between this run's check and its create.
        if request.method == "POST" and request.url.path == "/v1/providers/" and raced[0]:
            raced[0] = False
            cli.fake.providers[pid]["name"] = "acme-local"
        return None

    cli.fake.providers[pid]["name"] = "elsewhere"
    cli.fake.before.append(take_the_name)
    r = run(cli, tmp_path, "apply", "--auto-approve", text=text)
    assert r.code == 1 and "409" in r.out + r.err, r.out + r.err
    assert key not in r.out + r.err and "unique constraint" in r.out + r.err
    assert list(cli.fake.providers) == [pid] and not marks(cli.fake)


def test_a_provider_agents_outside_the_stack_use_is_not_deleted(tmp_path: Path, cli: Cli) -> None:
    apply(cli, tmp_path)
    cli.fake._create_agent(
        {"name": "by-hand", "model": "letta/letta-free", "embedding": "letta/letta-free"}
    )
    (agent,) = cli.fake.agents.values()
    agent["llm_config"] = {"provider_name": "acme-local", "handle": "openai-proxy/gpt-4o-mini"}
    r = run(cli, tmp_path, "destroy", "--auto-approve")
    assert "agents this stack does not manage run on its models: by-hand" in r.out + r.err
    assert f"by-hand ({agent['id']}) [LA641]" in r.out
    assert len(cli.fake.providers) == 1


def test_a_server_that_keeps_keys_encrypted(tmp_path: Path, cli: Cli) -> None:
    cli.fake.provider_encryption = True
    apply(cli, tmp_path)
    (p,) = cli.fake.providers.values()
    assert p["api_key_enc"] != KEY and ciphertext(p["api_key_enc"])
    (mark,) = marks(cli.fake)
    assert mark["metadata"]["letta_apply"]["keys"] == "encrypted"
    # The stored key cannot be compared: no change, said once in the notes.
    r = run(cli, tmp_path, "plan", "--detailed-exitcode", key=ROTATED)
    assert r.code == 0 and "keeps its api_key encrypted" in r.out, r.out
    # ... and any update carries the declared key.
    r = apply(cli, tmp_path, key=ROTATED, text=MANIFEST + "    region: eu\n")
    assert cli.fake._plain(cli.fake.providers[p["id"]]["api_key_enc"]) == ROTATED
    assert ROTATED not in r.out + r.err


def test_ignored_key_keeps_the_servers_on_an_update(tmp_path: Path, cli: Cli) -> None:
    text = MANIFEST + "    ignore_changes: [api_key]\n"
    apply(cli, tmp_path, text=text)
    (p,) = cli.fake.providers.values()
    cli.fake._patch_provider(p["id"], {"api_key": "sk-by-hand-Qw7Er5"})
    assert "No changes." in run(cli, tmp_path, "plan", text=text).out
    apply(cli, tmp_path, text=text + "    region: eu\n")
    assert cli.fake.providers[p["id"]]["api_key_enc"] == "sk-by-hand-Qw7Er5"


def test_a_stack_without_providers_never_asks_their_route(tmp_path: Path, cli: Cli) -> None:
    text = "version: 1\nstack: s\nblocks:\n  org: {value: x}\n"
    apply(cli, tmp_path, text=text)
    apply(cli, tmp_path, text=text)
    assert not [c for c in cli.fake.calls if c[1].startswith("/v1/providers")]


def test_the_stack_lists_its_providers_while_its_marks_say_it_holds_some(
    tmp_path: Path, cli: Cli
) -> None:
    apply(cli, tmp_path)
    r = run(cli, tmp_path, "destroy", "--auto-approve", text="version: 1\nstack: s\n")
    assert r.code == 0 and not cli.fake.providers, r.out + r.err


# -- agents on the models of the stack's providers (kinds.serves_models) -----------------------

ENDPOINT = "http://127.0.0.1:9/v1"
ON_LOCAL = (
    "agents:\n"
    "  bot:\n"
    "    model: {provider: local, name: gpt-4o-mini}\n"
    "    embedding: {provider: local, name: text-embedding-3-small}\n"
)


def _sent(fake: FakeLetta, method: str, prefix: str) -> list[int]:
    return [i for i, (m, path) in enumerate(fake.calls) if m == method and path.startswith(prefix)]


def test_one_apply_makes_the_provider_then_an_agent_on_its_model(tmp_path: Path, cli: Cli) -> None:
    cli.fake.provider_offers[ENDPOINT] = ["gpt-4o-mini"]
    text = MANIFEST + ON_LOCAL
    r = run(cli, tmp_path, "plan", text=text)
    assert r.code == 0 and "+ provider.local" in r.out and "+ agent.bot" in r.out, r.out + r.err
    # Named by the provider's key, written as the handle Letta lists it under.
    assert 'model: "openai-proxy/gpt-4o-mini"' in r.out, r.out
    assert 'embedding: "acme-local/text-embedding-3-small"' in r.out, r.out
    apply(cli, tmp_path, text=text)
    (agent,) = cli.fake.agents.values()
    assert agent["model"] == "openai-proxy/gpt-4o-mini"
    assert agent["llm_config"]["provider_name"] == "acme-local"
    (made,) = _sent(cli.fake, "POST", "/v1/providers/")
    (created,) = _sent(cli.fake, "POST", "/v1/agents/")
    assert made < created
    r = run(cli, tmp_path, "plan", "--detailed-exitcode", text=text)
    assert r.code == 0 and "No changes." in r.out, r.out + r.err
    # Destroy: the agent first, then the provider it runs on.
    r = run(cli, tmp_path, "destroy", "--auto-approve", text=text)
    assert r.code == 0, r.out + r.err
    assert not cli.fake.agents and not cli.fake.providers
    (deleted,) = _sent(cli.fake, "DELETE", "/v1/agents/")
    (gone,) = _sent(cli.fake, "DELETE", "/v1/providers/")
    assert deleted < gone


ON_HANDLE = (
    "agents:\n  bot:\n    model: openai-proxy/gpt-4o-mini\n    embedding: letta/letta-free\n"
)


@pytest.mark.parametrize("then", ["moved", "removed"])
def test_a_provider_an_agent_of_the_stack_stays_on_is_not_deleted(
    tmp_path: Path, cli: Cli, then: str
) -> None:
    """Taken out of the manifest while a declared agent of the stack keeps one of its models:
    not deleted (the agent would fail on its next step), the agent named; deleted once the same
    plan moves that agent to another model, or deletes it too (the agent first)."""
    cli.fake.provider_offers[ENDPOINT] = ["gpt-4o-mini"]
    apply(cli, tmp_path, text=MANIFEST + ON_HANDLE)
    (agent,) = cli.fake.agents.values()
    assert agent["llm_config"]["provider_name"] == "acme-local"
    alone = "version: 1\nstack: s\n" + ON_HANDLE
    r = run(cli, tmp_path, "apply", "--auto-approve", text=alone)
    assert r.code == 1, r.out + r.err
    out = r.out + r.err
    assert (
        f"provider.local: not deleted: agents of this stack stay on its models: agent.bot "
        f"({agent['id']}) on openai-proxy/gpt-4o-mini [LA643]" in out
    ), out
    assert "declare the provider again, or move those agents" in out, out
    assert len(cli.fake.providers) == 1 and list(cli.fake.agents) == [agent["id"]]
    assert not _sent(cli.fake, "DELETE", "/v1/providers/")
    if then == "moved":
        apply(cli, tmp_path, text=alone.replace("openai-proxy/gpt-4o-mini", "letta/letta-free"))
        assert not cli.fake.providers
        assert cli.fake.agents[agent["id"]]["model"] == "letta/letta-free"
        return
    r = apply(cli, tmp_path, text="version: 1\nstack: s\n")
    assert not cli.fake.providers and not cli.fake.agents, r.out
    (deleted,) = _sent(cli.fake, "DELETE", "/v1/agents/")
    (gone,) = _sent(cli.fake, "DELETE", "/v1/providers/")
    assert deleted < gone


@pytest.mark.parametrize(
    "model", ["{provider: local, name: gpt-4o-mini}", "acme-local/gpt-4o-mini"]
)
def test_a_renamed_provider_is_replaced_once_its_agents_move_with_it(
    tmp_path: Path, cli: Cli, model: str
) -> None:
    """A new name replaces the provider: an agent naming the model by the provider's key moves
    to the new one's handle in the same plan; one keeping the old handle keeps the provider."""
    cli.fake.provider_offers["https://api.openai.com/v1"] = ["gpt-4o-mini"]
    openai = MANIFEST.replace("    base_url: http://127.0.0.1:9/v1\n", "")
    on_it = f"agents:\n  bot:\n    model: {model}\n    embedding: letta/letta-free\n"
    apply(cli, tmp_path, text=openai + on_it)
    (agent,) = cli.fake.agents.values()
    assert agent["llm_config"]["provider_name"] == "acme-local"
    renamed = openai.replace("acme-local", "acme-new") + on_it
    r = run(cli, tmp_path, "apply", "--auto-approve", text=renamed)
    if model.startswith("{"):
        assert r.code == 0, r.out + r.err
        assert list(providers(cli.fake)) == ["acme-new"]
        assert cli.fake.agents[agent["id"]]["model"] == "acme-new/gpt-4o-mini"
        return
    assert r.code == 1 and "agent.bot" in r.out and "[LA643]" in r.out, r.out + r.err
    assert list(providers(cli.fake)) == ["acme-local"]


def test_a_handle_a_provider_of_the_plan_will_serve_is_accepted_and_targeted(
    tmp_path: Path, cli: Cli
) -> None:
    cli.fake.provider_offers[ENDPOINT] = ["gpt-4o-mini"]
    text = MANIFEST + ON_LOCAL.replace(
        "{provider: local, name: gpt-4o-mini}", "openai-proxy/gpt-4o-mini"
    )
    r = run(cli, tmp_path, "plan", "--target", "agent.bot", text=text)
    assert r.code == 0, r.out + r.err
    assert "+ provider.local" in r.out and "+ agent.bot" in r.out, r.out
    r = run(cli, tmp_path, "apply", "--auto-approve", "--target", "agent.bot", text=text)
    assert r.code == 0, r.out + r.err
    assert providers(cli.fake) and len(cli.fake.agents) == 1
    assert run(cli, tmp_path, "plan", "--detailed-exitcode", text=text).code == 0


def test_a_handle_nothing_will_serve_is_still_refused(tmp_path: Path, cli: Cli) -> None:
    cli.fake.provider_offers[ENDPOINT] = ["gpt-4o-mini"]
    # No declared provider names its models so: refused, whatever the plan makes.
    other = MANIFEST + ON_LOCAL.replace("{provider: local, name: gpt-4o-mini}", "elsewhere/x")
    r = run(cli, tmp_path, "plan", text=other)
    assert r.code == 1 and "model 'elsewhere/x' is not served by this server" in r.out, r.out
    assert "[LA633]" in r.out
    # Once the provider is made, its models are the server's to list: a model it lacks is not
    # served, even named by its key.
    apply(cli, tmp_path)
    typo = MANIFEST + ON_LOCAL.replace("gpt-4o-mini", "gpt-4o-mimi")
    r = run(cli, tmp_path, "plan", text=typo)
    assert r.code == 1 and "model 'openai-proxy/gpt-4o-mimi' is not served" in r.out, r.out
    assert "did you mean 'openai-proxy/gpt-4o-mini'" in r.out
    assert not cli.fake.agents


def test_a_model_named_by_key_names_a_declared_provider(tmp_path: Path) -> None:
    text = (
        "version: 1\nstack: s\n"
        + LOCAL.replace("${var.key}", "sk-k1")
        + (
            "agents:\n"
            "  a: {model: {provider: lokal, name: gpt-4o-mini}}\n"
            "  b: {model: {provdier: local, name: gpt-4o-mini}}\n"
            "  c: {model: {name: gpt-4o-mini}}\n"
            "  d: {model: {provider: local}}\n"
        )
    )
    diags = diagnostics(write(tmp_path, text), load_manifest)
    found = {(at(d), d.code): d.message for d in diags}
    assert found[((10, 25), "LA492")] == (
        "agents.a.model.provider: providers declares no 'lokal'; did you mean 'local'?"
    ), found
    assert found[((11, 15), "LA491")] == (
        "agents.b.model: 'provdier' is no kind whose resources serve models (provider)"
    ), found
    assert found[((12, 14), "LA491")] == (
        "agents.c.model: name one resource beside the model's name, as "
        "{provider: <key>, name: <model>}"
    ), found
    assert found[((13, 7), "LA303")] == "agents.d.model: missing required key 'name'", found
    assert len(found) == 4, found


def test_the_kinds_serving_models_are_made_before_the_agents_using_them() -> None:
    from letta_apply.kinds import level
    from letta_apply.kinds.serves_models import servers

    assert [s.name for s in servers()] == ["provider"]
    assert all(level(s.name) < level("agent") for s in servers())


def test_handles_as_letta_names_a_providers_models() -> None:
    from letta_apply.kinds.provider.handles import handle

    assert handle("acme", "openai", ENDPOINT, "m", embedding=False) == "openai-proxy/m"
    assert handle("acme", "openai", ENDPOINT, "m", embedding=True) == "acme/m"
    assert handle("acme", "openai", None, "gpt-4o", embedding=False) == "acme/gpt-4o"
    assert handle("openai", "openai", None, "gpt-4o-2024-08-06", embedding=False) == (
        "openai/gpt-4o-aug"
    )
    assert handle("claude", "anthropic", None, "claude-3-opus-20240229", embedding=False) == (
        "claude/claude-3-opus-20240229"
    )
    assert handle("b", "openai", "https://x.api.baseten.co/environments/production/sync/v1",
                  "m", embedding=False) == "baseten/m"  # fmt: skip


def test_export_writes_no_key() -> None:
    live = LiveProvider.from_api(
        {"id": "provider-1", "name": "acme", "provider_type": "openai", "api_key_enc": KEY,
         "base_url": "http://127.0.0.1:9/v1", "region": None}
    )  # fmt: skip
    assert ProviderKind().export(live) == {
        "name": "acme", "provider_type": "openai", "base_url": "http://127.0.0.1:9/v1",
    }  # fmt: skip
    assert KEY not in repr(live)


def test_export_leaves_a_stacks_provider_to_it_and_lists_none_for_letta_models(
    tmp_path: Path, cli: Cli
) -> None:
    cli.fake.provider_offers[ENDPOINT] = ["gpt-4o-mini"]
    apply(cli, tmp_path)
    plain = {"name": "plain", "model": "letta/letta-free", "embedding": "letta/letta-free"}
    cli.fake._create_agent(plain)
    before = len(cli.fake.calls)
    r = cli("export", "--stack", "copy", "--all")
    assert r.code == 0 and "providers:" not in r.out, r.out + r.err
    assert not [c for c in cli.fake.calls[before:] if c[1].startswith("/v1/providers")]
    # An agent made by hand on the stack's provider: the provider stays the stack's.
    cli.fake._create_agent({**plain, "name": "on-local", "model": "openai-proxy/gpt-4o-mini"})
    r = cli("export", "--stack", "copy", "--all")
    assert r.code == 0 and "model: openai-proxy/gpt-4o-mini" in r.out, r.out + r.err
    assert "providers:" not in r.out and "provider." not in r.out and KEY not in r.out
    assert "not exported: tools, folders, archives (" in r.err, r.err


@pytest.mark.parametrize(
    ("value", "encrypted"),
    [
        ("sk-first-Zq8vWm3k", False),
        ("ollama", False),
        ("A" * 64, True),  # base64 of 48 bytes: what Letta's own test takes for its ciphertext
        ("not base64 at all, but long enough to be one if it were", False),
    ],
)
def test_ciphertext_is_told_as_letta_tells_it(value: str, encrypted: bool) -> None:
    assert ciphertext(value) is encrypted
