"""Agent secrets: set from sensitive variables, rotated, removed, and never in any output (every
format of every command, and every plan file saved, is searched for the values). A secret
rewritten on the server is drift, told by the row ids the server gives secrets (recorded in the
marks: never the value nor a hash of it); secrets set by hand are left alone and reported."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent
from typing import Any

import httpx
import pytest

from tests.helpers import Cli

KEY = "sk-live-north-7731"
ROTATED = "sk-live-south-1945"
BY_HAND = "hand-set-value-0042"
SERVER_EDIT = "edited-on-server-5150"

MANIFEST = dedent(
    """\
    version: 1
    stack: vault
    variables:
      key: {sensitive: true}
      pin: {sensitive: true}
    agents:
      clerk:
        model: letta/letta-free
        embedding: letta/letta-free
        secrets:
          API_KEY: "${var.key}"
          PIN: "${var.pin}"
    """
)


class Run:
    def __init__(self, cli: Cli, tmp_path: Path) -> None:
        self.cli = cli
        self.tmp = tmp_path
        self.manifest = tmp_path / "m.yaml"
        self.manifest.write_text(MANIFEST, encoding="utf-8")
        self.outputs: list[str] = []

    def __call__(self, *args: str, key: str = KEY) -> tuple[int, str]:
        argv = [*args, "-f", str(self.manifest), "--var", f"key={key}", "--var", "pin=pin-00991"]
        r = self.cli(*argv)
        self.outputs.append(r.out + r.err)
        return r.code, r.out + r.err

    def every_format(self, key: str = KEY) -> None:
        for fmt in ("text", "json", "markdown"):
            self("plan", "--format", fmt, key=key)
            self("drift", "--format", fmt, key=key)
        self("plan", "--out", str(self.tmp / f"plan-{len(self.outputs)}.json"), key=key)
        self("show", key=key)

    def assert_clean(self) -> None:
        saved = [p.read_text(encoding="utf-8") for p in self.tmp.glob("*.json")]
        for text in [*self.outputs, *saved]:
            for secret in (KEY, ROTATED, BY_HAND, SERVER_EDIT, "pin-00991"):
                assert secret not in text, text


@pytest.fixture
def run(cli: Cli, tmp_path: Path) -> Run:
    return Run(cli, tmp_path)


def _agent(run: Run) -> dict[str, Any]:
    return next(iter(run.cli.fake.agents.values()))


def _secrets(run: Run) -> dict[str, str]:
    return {s["key"]: s["value"] for s in _agent(run).get("secrets") or ()}


def _mark(run: Run) -> dict[str, Any]:
    applied: dict[str, Any] = _agent(run)["metadata"]["letta_apply"]["applied"]
    return applied


def test_set_rotated_and_converged_without_any_value_shown(run: Run) -> None:
    run.every_format()
    code, text = run("apply", "--auto-approve")
    assert code == 0, text
    assert _secrets(run) == {"API_KEY": KEY, "PIN": "pin-00991"}
    ids = {s["key"]: s["id"] for s in _agent(run)["secrets"]}
    assert _mark(run)["secrets"] == ids  # names and the server's row ids, nothing of the values
    writes = run.cli.fake.writes
    assert "No changes." in run("apply", "--auto-approve")[1]
    assert run.cli.fake.writes == writes
    run.every_format(key=ROTATED)
    code, text = run("plan", key=ROTATED)
    assert "secrets['API_KEY']: (sensitive value changed)" in text and "PIN" not in text
    assert "(changed on the server)" not in text
    saved = run.tmp / "rotate.json"
    assert run("plan", "--out", str(saved), key=ROTATED)[0] == 0
    code, text = run("apply", str(saved), "--auto-approve", key=ROTATED)
    assert code == 0, text
    assert _secrets(run)["API_KEY"] == ROTATED
    assert "No changes." in run("plan", key=ROTATED)[1]
    run.every_format(key=ROTATED)
    run.assert_clean()


def test_a_secret_rewritten_on_the_server_is_drift_and_hand_set_ones_are_left_alone(
    run: Run,
) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    agent = _agent(run)
    # Someone rewrites the agent's secrets by hand: every row gets a new id, as in Letta.
    agent["secrets"] = [
        {"id": "agent-env-by-hand-1", "key": "API_KEY", "value": SERVER_EDIT},
        {"id": "agent-env-by-hand-2", "key": "PIN", "value": "pin-00991"},
        {"id": "agent-env-by-hand-3", "key": "DEBUG_TOKEN", "value": BY_HAND},
    ]
    code, text = run("drift")
    assert code == 2, text
    assert "agent.clerk.secrets['API_KEY'] was changed on the server" in text
    code, text = run("plan")
    assert "secrets['API_KEY']: (sensitive value changed)  (changed on the server)" in text
    assert "secret 'DEBUG_TOKEN' was set on the server, not by this stack; left alone" in text
    run.every_format()
    code, text = run("apply", "--auto-approve")
    assert code == 0, text
    assert _secrets(run) == {"API_KEY": KEY, "PIN": "pin-00991", "DEBUG_TOKEN": BY_HAND}
    assert "DEBUG_TOKEN" not in _mark(run)["secrets"]
    assert run("plan", "--detailed-exitcode")[0] == 0
    run.every_format()
    run.assert_clean()


def test_a_secret_no_longer_declared_is_removed(run: Run) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    _agent(run)["secrets"].append({"id": "agent-env-x", "key": "HAND", "value": BY_HAND})
    run.manifest.write_text(MANIFEST.replace('      PIN: "${var.pin}"\n', ""), encoding="utf-8")
    code, text = run("plan")
    assert code == 0 and "secrets['PIN']: (sensitive value removed)" in text, text
    run.every_format()
    assert run("apply", "--auto-approve")[0] == 0
    assert _secrets(run) == {"API_KEY": KEY, "HAND": BY_HAND}
    assert run("plan", "--detailed-exitcode")[0] == 0
    run.assert_clean()


def test_a_plain_value_is_refused(run: Run) -> None:
    run.manifest.write_text(MANIFEST.replace('"${var.pin}"', "written-here"), encoding="utf-8")
    code, text = run("validate")
    assert code == 1 and "a secret's value must come from a sensitive variable" in text
    code, text = run("validate", "--format", "json")
    assert code == 1 and json.loads(text)


def test_both_names_are_refused(run: Run) -> None:
    run.manifest.write_text(
        MANIFEST + '    tool_exec_environment_variables: {X: "${var.key}"}\n', encoding="utf-8"
    )
    code, text = run("validate")
    assert code == 1 and "not both" in text


def test_a_server_error_quoting_the_secrets_shows_none(run: Run) -> None:
    assert run("apply", "--auto-approve")[0] == 0
    _agent(run)["secrets"].append({"id": "agent-env-x", "key": "HAND", "value": BY_HAND})

    def refuse(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PATCH":
            return httpx.Response(422, json={"detail": f"bad body: {request.content.decode()}"})
        return None

    run.cli.fake.before.append(refuse)
    code, text = run("apply", "--auto-approve", key=ROTATED)
    assert code == 1 and "bad body" in text, text
    code, text = run("apply", "--auto-approve", "--format", "json", key=ROTATED)
    assert code == 1
    run.assert_clean()
