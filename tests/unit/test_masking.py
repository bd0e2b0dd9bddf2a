"""A sensitive variable's value never appears in any output: text, JSON and markdown plans, saved
plan files, apply and drift output, validation errors and server errors. Each test greps
everything the command wrote (and every file it saved) for the secret's text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from textwrap import dedent
from typing import Any

import httpx
import pytest

from tests.fakes import FakeLetta
from tests.helpers import Cli

SECRET = "hunter2-north"
ROTATED = "hunter3-south"
SHORT = "7319"  # low-entropy: a plain hash of it in a plan file would be found in no time

MANIFEST = dedent(
    """\
    version: 1
    stack: masked
    variables:
      key: {sensitive: true}
      pin: {sensitive: true}
    blocks:
      vault:
        value: "the key is ${var.key}"
        enforce_value: true
        description: "pin ${var.pin}"
    agents:
      clerk:
        model: letta/letta-free
        embedding: letta/letta-free
        system: "Use ${var.key} when asked."
        metadata: {key: "${var.key}", team: support}
        memory_blocks:
          - {label: persona, value: "I keep ${var.key} safe"}
        blocks: [vault]
    """
)


class Run:
    """The CLI against one fake server, with the secret variables; collects every output."""

    def __init__(self, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cli = cli
        self.fake = cli.fake
        self.tmp = tmp_path
        self.manifest = tmp_path / "m.yaml"
        self.manifest.write_text(MANIFEST, encoding="utf-8")
        self.outputs: list[str] = []
        monkeypatch.setenv("LETTA_APPLY_VAR_pin", SHORT)

    def __call__(self, *args: str, key: str = SECRET, manifest: bool = True) -> tuple[int, str]:
        argv = [*args, "--var", f"key={key}"]
        if manifest and "-f" not in args:
            argv += ["-f", str(self.manifest)]
        code, out, err = self.cli(*argv)
        self.outputs.append(out + err)
        return code, out + err

    def assert_clean(self) -> None:
        saved = [p.read_text(encoding="utf-8") for p in self.tmp.glob("*.json")]
        assert saved or self.outputs
        for text in [*self.outputs, *saved]:
            for secret in (SECRET, ROTATED):
                assert secret not in text, text
            # The PIN's digits may be in a digest or an id by chance, and only there.
            assert SHORT not in _MACHINE.sub("", text), text


# A digest or a server id: 16 or more hex digits, dashes between them allowed.
_MACHINE = re.compile(r"[0-9a-f](?:-?[0-9a-f]){15,}")


@pytest.fixture
def run(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    return Run(cli, tmp_path, monkeypatch)


def _agent(fake: FakeLetta) -> dict[str, Any]:
    return next(iter(fake.agents.values()))


def test_every_format_of_every_command_masks_the_secret(run: Run) -> None:
    assert run("validate")[0] == 0
    assert run("validate", "--format", "json")[0] == 0
    code, text = run("plan")
    assert code == 0
    assert "system: (sensitive)" in text
    assert '"key": "(sensitive)"' in text and '"team": "support"' in text
    for fmt in ("json", "markdown"):
        assert run("plan", "--format", fmt)[0] == 0
    assert run("plan", "--out", str(run.tmp / "create.json"))[0] == 0
    assert run("apply", "--auto-approve", "--format", "json")[0] == 0
    # The server got the real values.
    agent = _agent(run.fake)
    assert agent["system"] == f"Use {SECRET} when asked."
    assert agent["metadata"]["key"] == SECRET
    assert SECRET not in json.dumps(agent["metadata"]["letta_apply"])  # no digest either
    assert run("apply", "--auto-approve")[0] == 0
    assert "No changes." in run.outputs[-1]
    assert run("show")[0] == 0
    run.assert_clean()


def test_a_changed_secret_shows_as_changed_without_either_value(run: Run) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    code, text = run("plan", key=ROTATED)
    assert code == 0
    assert "system: (sensitive value changed)" in text
    assert "metadata['key']: (sensitive value changed)" in text
    assert "value: (sensitive value changed)" in text  # enforce_value on the vault block
    _, md = run("plan", "--format", "markdown", key=ROTATED)
    assert "(sensitive value changed)" in md
    _, doc = run("plan", "--format", "json", key=ROTATED)
    plan = json.loads(doc)
    change = next(c for c in plan["changes"] if c["address"] == "agent.clerk")
    assert change["before"]["system"] == change["after"]["system"] == "(sensitive)"
    assert change["sensitive_fields"] == ["system", "metadata['key']"]
    run.assert_clean()


def test_a_saved_plan_holds_no_secret_and_takes_it_from_the_manifest(run: Run) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    saved = run.tmp / "rotate.json"
    assert run("plan", "--out", str(saved), key=ROTATED)[0] == 0
    doc = json.loads(saved.read_text(encoding="utf-8"))
    assert any(c.get("sensitive_paths") for c in doc["changes"])
    # Without the manifest there is nothing to write the secret from.
    code, text = run("apply", str(saved), "--auto-approve", manifest=False)
    assert code == 1 and "pass the manifest with -f" in text
    # With other variables than the plan's, the plan does not hold.
    code, text = run("apply", str(saved), "-f", str(run.manifest), "--auto-approve")
    assert code == 1 and "stale plan" in text
    assert _agent(run.fake)["system"] == f"Use {SECRET} when asked."
    code, text = run("apply", str(saved), "-f", str(run.manifest), "--auto-approve", key=ROTATED)
    assert code == 0, text
    assert _agent(run.fake)["system"] == f"Use {ROTATED} when asked."
    run.assert_clean()


def test_a_saved_plan_notices_a_hand_edit_of_a_sensitive_field_it_overwrites(run: Run) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    saved = run.tmp / "rotate.json"
    assert run("plan", "--out", str(saved), key=ROTATED)[0] == 0
    seal = json.loads(saved.read_text(encoding="utf-8"))["seal"]
    assert seal["digest"].startswith("scrypt:") and ["system", "metadata.key"] in [
        sorted(names, reverse=True) for _, names in seal["resources"]
    ]
    # Someone rotates the key by hand between the review and the apply: not overwritten.
    _agent(run.fake)["system"] = "Use the hand-rotated key when asked."
    code, text = run("apply", str(saved), "-f", str(run.manifest), "--auto-approve", key=ROTATED)
    assert code == 1 and "stale plan" in text and "agent.clerk" in text, text
    assert _agent(run.fake)["system"] == "Use the hand-rotated key when asked."
    # Planned again, it applies.
    assert run("plan", "--out", str(saved), key=ROTATED)[0] == 0
    code, text = run("apply", str(saved), "-f", str(run.manifest), "--auto-approve", key=ROTATED)
    assert code == 0, text
    assert _agent(run.fake)["system"] == f"Use {ROTATED} when asked."
    run.assert_clean()


def test_a_saved_plan_whose_digest_holds_a_short_secret_by_chance_still_applies(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4-digit PIN is in one sha256 in a thousand: found there, it is not masked, for the
    plan file would no longer match its manifest (or name its resources)."""
    saved = run.tmp / "plan.json"
    assert run("plan", "--out", str(saved))[0] == 0
    digest = json.loads(saved.read_text(encoding="utf-8"))["manifest"]["digest"]
    pin = digest.removeprefix("sha256:")[20:24]  # sensitive: not part of the digest
    monkeypatch.setenv("LETTA_APPLY_VAR_pin", pin)
    assert run("plan", "--out", str(saved))[0] == 0
    assert digest in saved.read_text(encoding="utf-8")
    code, text = run("apply", str(saved), "-f", str(run.manifest), "--auto-approve")
    assert code == 0, text
    assert f"pin {pin}" in [b.get("description") for b in run.fake.blocks.values()]
    assert pin not in _MACHINE.sub("", text)


def test_the_seal_is_keyed_with_the_api_key_too(run: Run) -> None:
    """With an API key (Letta Cloud always has one) the seal cannot be guessed without it; a
    plan applied with another key is refused, and says why it may be."""
    assert run("apply", "--auto-approve")[0] == 0
    saved = run.tmp / "rotate.json"
    assert run("plan", "--out", str(saved), "--api-key", "sk-let-plan", key=ROTATED)[0] == 0
    digest = json.loads(saved.read_text(encoding="utf-8"))["seal"]["digest"]
    assert run("plan", "--out", str(saved), key=ROTATED)[0] == 0  # the same plan, no key
    assert json.loads(saved.read_text(encoding="utf-8"))["seal"]["digest"] != digest
    assert run("plan", "--out", str(saved), "--api-key", "sk-let-plan", key=ROTATED)[0] == 0
    other = ("apply", str(saved), "-f", str(run.manifest), "--auto-approve", "--api-key")
    code, text = run(*other, "sk-let-other", key=ROTATED)
    assert code == 1 and "or the plan was made with another API key" in text, text
    code, text = run(*other, "sk-let-plan", key=ROTATED)
    assert code == 0, text
    run.assert_clean()


def test_fingerprints_do_not_depend_on_sensitive_values(run: Run) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    prints = []
    for live in (SECRET, "something else entirely"):
        agent = _agent(run.fake)
        agent["system"] = f"Use {live} when asked."
        agent["metadata"]["key"] = live
        _, doc = run("plan", "--format", "json", key=ROTATED)
        prints.append([c["fingerprint"] for c in json.loads(doc)["changes"]])
    assert prints[0] == prints[1]
    assert all("|" in p for p in prints[0] if p)  # the blanked fields are named
    run.assert_clean()


def test_drift_of_a_sensitive_value_is_masked(run: Run) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    vault = next(b for b in run.fake.blocks.values() if b["label"] == "vault")
    vault["value"] = f"an agent wrote {SECRET} again"
    for fmt in ("text", "json", "markdown"):
        code, _text = run("drift", "--format", fmt)
        assert code == 2
    assert "(sensitive value changed)" in run.outputs[-3]
    run.assert_clean()


def test_errors_from_the_server_are_masked(run: Run) -> None:
    def refuse(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(400, json={"detail": f"bad body: {request.content.decode()}"})
        return None

    run.fake.before.append(refuse)
    code, text = run("apply", "--auto-approve")
    assert code == 1 and "bad body" in text
    code, text = run("apply", "--auto-approve", "--format", "json")
    assert code == 1
    run.assert_clean()


def test_manifest_errors_are_masked(run: Run) -> None:
    run.manifest.write_text(
        MANIFEST.replace("enforce_value: true", "enforce_value: true\n    limit: 5"),
        encoding="utf-8",
    )
    code, text = run("validate")
    assert code == 1 and "over the block's limit of 5" in text
    assert run("validate", "--format", "json")[0] == 1
    run.manifest.write_text(MANIFEST + "    tags: ['${var.key}']\n", encoding="utf-8")
    code, text = run("plan")
    assert code == 1 and "a sensitive value cannot be used here" in text
    run.assert_clean()


def test_an_internal_error_is_masked_too(run: Run) -> None:
    def boom(*args: Any, **kw: Any) -> Any:
        raise RuntimeError(f"unexpected: {SECRET}")

    run.cli.factory = boom
    code, text = run("plan")
    assert code == 1 and "RuntimeError: unexpected: (sensitive)" in text
    run.assert_clean()


def test_a_secret_cut_short_in_an_error_is_masked(tmp_path: Path, cli: Cli) -> None:
    # An MCP server's literal token, echoed by the server cut one character short.
    token = "tok-ABCDEFGHIJKLMNOPQRSTUV"
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nstack: cut\nmcp_servers:\n  search:\n    mcp_server_type: streamable_http\n"
        f"    server_url: https://mcp.example.com/mcp\n    auth_token: {token}\n",
        encoding="utf-8",
    )

    def refuse(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and "mcp" in request.url.path:
            return httpx.Response(400, json={"detail": f"bad token {token[:-1]}... (cut)"})
        return None

    cli.fake.before.append(refuse)
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == 1 and "bad token" in r.out + r.err
    assert token[:8] not in r.out + r.err and token[-9:-1] not in r.out + r.err


def test_the_masker_masks_either_end_of_a_secret_and_leaves_other_text() -> None:
    from letta_apply.core.sensitive import Masker

    m = Masker(["abcdefghijklmnopqrstuvwxyz"])
    assert m.text("x abcdefghijklmnopqrstuvwxy] y") == "x (sensitive)] y"
    assert m.text("[cdefghijklmnopqrstuvwxyz") == "[(sensitive)"
    assert m.text("abcdefg and tuvwxyz stay") == "abcdefg and tuvwxyz stay"


def test_a_short_secret_is_masked_but_where_a_digest_or_an_id_holds_it_by_chance() -> None:
    from letta_apply.core.sensitive import Masker

    m = Masker(["7319", "9e0c1d2b7319"])
    sha = "sha256:0a1b2c3d7319" + "e" * 52
    uuid = "agent-5f2a7319-bc12-4d3e-9f00-aabbccddeeff"
    assert m.text(f"{sha} {uuid}") == f"{sha} {uuid}"
    assert not m.contains(uuid) and m.contains("pin=7319")
    # Alone, in a word, in a short number or a short hex run, it is the secret.
    assert m.text("7319 x7319y 173190 ab7319cd") == (
        "(sensitive) x(sensitive)y 1(sensitive)0 ab(sensitive)cd"
    )
    # A whole uuid or digest that is the secret is masked; so is a longer secret anywhere.
    assert Masker(["5f2a7319-bc12-4d3e-9f00-aabbccddeeff"]).text(uuid) == "agent-(sensitive)"
    assert m.text("ff9e0c1d2b7319ff" + "0" * 8) == "ff(sensitive)ff" + "0" * 8
