"""Bad input never reaches the server: one clear line per problem, exit 1, nothing written."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import SEED, Run, stack_resources

BAD = {
    "malformed": "version: 1\nstack: {stack}\nagents:\n  worker:\n    model: [letta/letta-free\n",
    "wrong_types": (
        "version: 1\nstack: {stack}\nblocks:\n  organization:\n    value: 42\n    limit: lots\n"
    ),
    "unknown_keys": "version: 1\nstack: {stack}\nblocks:\n  organization:\n    valeu: x\n",
    "unknown_block": "version: 1\nstack: {stack}\nagents:\n  worker:\n    blocks: [organisation]\n",
    "empty": "",
    "duplicate_keys": "version: 1\nstack: {stack}\nagents:\n  worker: {}\n  worker: {}\n",
}


@pytest.fixture
def listener() -> Iterator[tuple[str, list[bytes]]]:
    """A TCP listener on 127.0.0.1 that records every connection made to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    seen.append(conn.recv(65536))
                except OSError:
                    seen.append(b"")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", seen
    stop.set()
    t.join(2)
    sock.close()


def _assert_clean_error(code: int, err: str) -> None:
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line and not line.startswith("requests:")]
    assert lines, "expected an error message"
    for line in lines[:-1]:
        assert line.count(":") >= 3, f"not file:line:col: message: {line!r}"


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_manifest_is_refused_before_any_request(
    case: str,
    run: Run,
    manifest: Callable[[str], str],
    listener: tuple[str, list[bytes]],
    api: httpx.Client,
    stack: str,
) -> None:
    url, seen = listener
    path = manifest(BAD[case])
    for command in ("validate", "plan", "apply"):
        extra = ["--auto-approve"] if command == "apply" else []
        r = run(command, "-f", path, *extra, base_url=url)
        _assert_clean_error(r.code, r.err)
        assert "nothing was sent to the server" in r.err
    assert seen == []
    # And against the real server: nothing written for this stack.
    r = run("apply", "-f", path, "--auto-approve")
    _assert_clean_error(r.code, r.err)
    assert stack_resources(api, stack) == ([], [])


def test_ten_megabyte_value(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    big = "x" * (10 * 1024 * 1024)
    path = manifest(f"version: 1\nstack: {{stack}}\nblocks:\n  organization:\n    value: {big}\n")
    r = run("apply", "-f", path, "--auto-approve")
    _assert_clean_error(r.code, r.err)
    assert ":5:12: blocks.organization.value: value is 10485760 characters" in r.err
    assert "limit of 100000" in r.err
    assert len(r.err) < 1000  # the value itself is never echoed
    assert stack_resources(api, stack) == ([], [])


def test_non_utf8_bytes(run: Run, tmp_path: Path, api: httpx.Client, stack: str) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(
        f"version: 1\nstack: {stack}\nblocks:\n  org:\n    value: caf\xe9\n".encode("latin-1")
    )
    r = run("apply", "-f", str(path), "--auto-approve")
    _assert_clean_error(r.code, r.err)
    assert f"{path}:5:15: not valid UTF-8 (byte 0xe9)" in r.err
    assert stack_resources(api, stack) == ([], [])


def test_missing_file(run: Run, tmp_path: Path) -> None:
    r = run("plan", "-f", str(tmp_path / "nope.yaml"))
    _assert_clean_error(r.code, r.err)
    assert "cannot read" in r.err


def test_unreachable_server_is_one_line_and_exit_1(manifest: Callable[[str], str]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    path = manifest(SEED)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "letta_apply.cli",
            "plan",
            "-f",
            path,
            "--base-url",
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    # The kinds' listings are read side by side: whichever fails first is named.
    assert re.match(
        rf"error: GET /v1/\w+/: cannot reach the Letta server at http://127\.0\.0\.1:{port} ",
        lines[0],
    ), lines[0]


def test_usage_error_exits_1(run: Run) -> None:
    with pytest.raises(SystemExit) as e:
        run("plan", "--no-such-flag")
    assert e.value.code == 1


def test_refuses_to_prompt_without_a_terminal(
    manifest: Callable[[str], str], server: str, api: httpx.Client, stack: str
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "letta_apply.cli",
            "apply",
            "-f",
            manifest(SEED),
            "--base-url",
            server,
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "standard input is not a terminal" in proc.stderr
    assert "--auto-approve" in proc.stderr
    assert stack_resources(api, stack) == ([], [])


def test_api_key_is_sent_but_never_printed(
    manifest: Callable[[str], str], listener: tuple[str, list[bytes]]
) -> None:
    url, seen = listener
    secret = "sk-let-very-secret-value-123"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "letta_apply.cli",
            "plan",
            "-f",
            manifest(SEED),
            "--base-url",
            url,
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env(), "LETTA_API_KEY": secret},
    )
    assert proc.returncode == 1
    assert secret not in proc.stdout + proc.stderr
    assert seen and f"authorization: Bearer {secret}".lower().encode() in seen[0].lower()


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_a_model_the_server_does_not_serve_is_refused_by_plan(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    """The local server serves letta/letta-free only: a handle of a provider it does not have
    is caught by plan with the closest handles, and apply sends nothing for that agent."""
    path = manifest(SEED.replace("model: letta/letta-free", "model: openai/gpt-4o", 1))
    plan = run("plan", "-f", path)
    assert plan.code == 1, plan.out
    assert (
        "x agent.supervisor: model 'openai/gpt-4o' is not served by this server (GET /v1/models/)"
    ) in plan.out
    assert "letta/letta-free" in plan.out  # what it does serve
    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 1
    assert [a["name"] for a in stack_resources(api, stack)[1]] == [f"{stack}-worker"]
    assert "Run apply again" not in applied.err
