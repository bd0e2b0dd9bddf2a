"""Credentials in the server URL (`http://user:password@host`) are secrets: sent to the server,
never shown, never saved in a plan; a saved plan still binds to the server they reach."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx

from letta_apply import plan_for, render_plan
from letta_apply.pipeline import load_manifest
from letta_apply.server.client import LettaClient
from letta_apply.server.urls import public_url, url_secrets
from tests.fakes import FakeLetta
from tests.helpers import SEED, Cli, write

URL = "http://user:pw-secret@127.0.0.1:8283"


def test_the_url_is_shown_without_its_credentials() -> None:
    assert public_url(URL) == "http://127.0.0.1:8283"
    assert public_url("https://a:b%40c@h.example/x@y?q=@") == "https://h.example/x@y?q=@"
    assert public_url("http://h.example/path@x") == "http://h.example/path@x"
    assert url_secrets(URL) == ["pw-secret", "user:pw-secret"]
    assert "user" not in url_secrets(URL)  # a user name alone is no secret
    assert url_secrets("https://a:b%40c@h") == ["a:b%40c", "b%40c", "b@c"]


def test_no_output_and_no_saved_plan_holds_the_password(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, SEED)
    saved = tmp_path / "p.json"
    auth: list[str] = []
    cli.fake.before.append(lambda req: auth.append(req.headers.get("authorization", "")))
    text = cli("plan", "-f", str(path), "--base-url", URL, "--out", str(saved))
    markdown = cli("plan", "-f", str(path), "--base-url", URL, "--format", "markdown")
    plan = cli("plan", "-f", str(path), "--base-url", URL, "--format", "json")
    drift = cli("drift", "-f", str(path), "--base-url", URL)
    show = cli("show", "-f", str(path), "--base-url", URL)
    for r in (text, markdown, plan, drift, show):
        assert "pw-secret" not in r.out + r.err
    assert text.code == markdown.code == plan.code == 0, text.err
    assert 'stack "unit" on http://127.0.0.1:8283' in text.out
    assert "· http://127.0.0.1:8283</sub>" in markdown.out
    assert json.loads(plan.out)["server"]["base_url"] == "http://127.0.0.1:8283"
    assert "pw-secret" not in saved.read_text()
    # The credentials still reach the server, as Basic auth.
    assert auth and set(auth) == {"Basic " + base64.b64encode(b"user:pw-secret").decode()}


def test_a_saved_plan_binds_to_the_server_not_to_its_credentials(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, SEED)
    saved = tmp_path / "p.json"
    assert cli("plan", "-f", str(path), "--base-url", URL, "--out", str(saved)).code == 0
    other = cli("apply", str(saved), "--base-url", "http://user:pw-secret@10.0.0.1:8283")
    assert other.code == 1
    assert "made against http://127.0.0.1:8283" in other.err and "pw-secret" not in other.err
    rotated = "http://user:pw-rotated@127.0.0.1:8283"
    done = cli("apply", str(saved), "--base-url", rotated, "--auto-approve")
    assert done.code == 0, done.err
    assert "pw-rotated" not in done.out + done.err


def test_an_error_echoing_the_url_does_not_show_the_password(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, SEED)
    r = cli("plan", "-f", str(path), "--base-url", "user:pw-secret@127.0.0.1:8283")
    assert r.code == 1
    assert "has no scheme: write it as http://127.0.0.1:8283" in r.err
    assert "pw-secret" not in r.out + r.err


def test_the_python_api_renders_the_url_without_its_credentials(tmp_path: Path) -> None:
    desired = load_manifest([str(write(tmp_path, SEED))])
    with LettaClient(URL, transport=httpx.MockTransport(FakeLetta().handle)) as client:
        plan = plan_for(client, desired)
        assert client.base_url == "http://127.0.0.1:8283"
    for shown in (
        render_plan(plan, "text", base_url=URL),
        render_plan(plan, "markdown", base_url=URL),
        render_plan(plan, "json", base_url=URL),
    ):
        assert "pw-secret" not in shown and "127.0.0.1:8283" in shown
