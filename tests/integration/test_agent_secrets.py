"""Agent secrets against the real server: set from a sensitive variable, rotated, rewritten by
hand (drift, told by the row ids Letta gives secrets on every write of them), a secret set by hand
left alone, and one removed. Every output of every command, in every format, and every plan file
saved, is searched for the values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import Result, Run

KEY = "sk-live-north-7731"
ROTATED = "sk-live-south-1945"
BY_HAND = "hand-set-value-0042"
SERVER_EDIT = "edited-on-server-5150"
PIN = "pin-00991"

MANIFEST = """\
version: 1
stack: {stack}
variables:
  key: {sensitive: true}
  pin: {sensitive: true}
agents:
  clerk:
    name: {stack}-clerk
    model: letta/letta-free
    embedding: letta/letta-free
    secrets:
      API_KEY: "${var.key}"
      PIN: "${var.pin}"
"""


def secrets(api: httpx.Client, name: str) -> dict[str, str]:
    (a,) = api.get("/v1/agents/", params={"name": name, "include": ["agent.secrets"]}).json()
    return {s["key"]: s["value"] for s in a["secrets"]}


def agent_id(api: httpx.Client, name: str) -> str:
    (a,) = api.get("/v1/agents/", params={"name": name}).json()
    return str(a["id"])


def test_a_secret_set_rotated_edited_and_removed_is_never_shown(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, tmp_path: Path
) -> None:
    path = manifest(MANIFEST)
    outputs: list[str] = []

    def cli(*args: str, key: str = KEY, file: str = path) -> Result:
        r = run(*args, "-f", file, "--var", f"key={key}", "--var", f"pin={PIN}")
        outputs.append(r.out + r.err)
        return r

    def every_format(key: str, file: str = path) -> None:
        for fmt in ("text", "json", "markdown"):
            cli("plan", "--format", fmt, key=key, file=file)
            cli("drift", "--format", fmt, key=key, file=file)
        cli("plan", "--out", str(tmp_path / f"p{len(outputs)}.json"), key=key, file=file)
        cli("show", key=key, file=file)

    name = f"{stack}-clerk"
    every_format(KEY)
    r = cli("apply", "--auto-approve")
    assert r.code == 0, r.err
    assert secrets(api, name) == {"API_KEY": KEY, "PIN": PIN}
    again = cli("apply", "--auto-approve")
    assert "No changes." in again.out and again.writes == 0

    # Rotated in the manifest: a manifest change, through a saved plan.
    every_format(ROTATED)
    saved = tmp_path / "rotate.json"
    r = cli("plan", "--out", str(saved), key=ROTATED)
    assert "secrets['API_KEY']: (sensitive value changed)" in r.out, r.out
    assert "(changed on the server)" not in r.out
    r = cli("apply", str(saved), "--auto-approve", key=ROTATED)
    assert r.code == 0, r.err
    assert secrets(api, name)["API_KEY"] == ROTATED
    again = cli("apply", "--auto-approve", key=ROTATED)
    assert "No changes." in again.out and again.writes == 0

    # Rewritten by hand, and one more secret set by hand: drift, and left alone.
    aid = agent_id(api, name)
    hand: dict[str, Any] = {"API_KEY": SERVER_EDIT, "PIN": PIN, "DEBUG_TOKEN": BY_HAND}
    assert api.patch(f"/v1/agents/{aid}", json={"secrets": hand}).status_code == 200
    r = cli("drift", key=ROTATED)
    assert r.code == 2 and "agent.clerk.secrets['API_KEY'] was changed on the server" in r.out
    r = cli("plan", key=ROTATED)
    assert "secret 'DEBUG_TOKEN' was set on the server, not by this stack; left alone" in r.out
    every_format(ROTATED)
    r = cli("apply", "--auto-approve", key=ROTATED)
    assert r.code == 0, r.err
    assert secrets(api, name) == {"API_KEY": ROTATED, "PIN": PIN, "DEBUG_TOKEN": BY_HAND}
    again = cli("apply", "--auto-approve", key=ROTATED)
    assert "No changes." in again.out and again.writes == 0

    # Removed from the manifest: removed from the agent; the one set by hand stays.
    removed = manifest(MANIFEST.replace('      PIN: "${var.pin}"\n', ""))
    r = cli("plan", key=ROTATED, file=removed)
    assert "secrets['PIN']: (sensitive value removed)" in r.out, r.out
    every_format(ROTATED, removed)
    r = cli("apply", "--auto-approve", key=ROTATED, file=removed)
    assert r.code == 0, r.err
    assert secrets(api, name) == {"API_KEY": ROTATED, "DEBUG_TOKEN": BY_HAND}
    again = cli("apply", "--auto-approve", key=ROTATED, file=removed)
    assert "No changes." in again.out and again.writes == 0
    assert cli("destroy", "--auto-approve", key=ROTATED, file=removed).code == 0

    saved_files = [p.read_text(encoding="utf-8") for p in tmp_path.glob("*.json")]
    assert len(saved_files) >= 5
    for text in [*outputs, *saved_files]:
        for secret in (KEY, ROTATED, BY_HAND, SERVER_EDIT, PIN):
            assert secret not in text, text
