"""What a new user tripped on at the command line: a reader that closes the pipe early, a
manifest passed where a saved plan goes, a lock id that cannot be one."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from letta_apply.kinds import KINDS
from tests.helpers import Cli, write


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError

    def flush(self) -> None:
        raise BrokenPipeError


def test_a_reader_that_went_away_keeps_the_exit_code(tmp_path: Path, cli: Cli) -> None:
    from letta_apply.cli.commands import main

    path = write(tmp_path, "version: 1\nstack: s\nblocks:\n  b: {value: v, limit: 0}\n")
    err = io.StringIO()
    assert main(["validate", "-f", str(path), "--format", "json"], _ClosedPipe(), err) == 1
    assert err.getvalue() == ""  # nothing about the pipe, no traceback


def test_head_on_a_long_output_is_quiet(tmp_path: Path) -> None:
    # Over a pipe's buffer of output, read one line: the writer gets EPIPE mid-output.
    blocks = "".join(f"  b{i}: {{value: v, limit: 0}}\n" for i in range(3000))
    path = write(tmp_path, "version: 1\nstack: s\nblocks:\n" + blocks)
    writer = subprocess.Popen(
        [sys.executable, "-m", "letta_apply.cli", "validate", "-f", str(path), "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert writer.stdout is not None and writer.stderr is not None
    writer.stdout.readline()
    writer.stdout.close()
    stderr = writer.stderr.read().decode()
    writer.stderr.close()
    assert writer.wait(timeout=60) == 1  # the manifest's errors: exit 1, as without the pipe
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_a_manifest_given_as_a_saved_plan_gets_a_hint(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, "version: 1\nstack: s\n", "sm.yaml")
    r = cli("apply", str(path), "--auto-approve")
    assert r.code == 1
    assert r.err.strip() == f"error: {path} is a manifest, not a saved plan: pass it with -f " \
        f"(apply -f {path}) [LA604]"  # fmt: skip
    assert cli.fake.calls == []


def test_force_unlock_checks_the_id_before_asking_the_server(cli: Cli) -> None:
    r = cli("force-unlock", "block-123")
    assert r.code == 1 and cli.fake.calls == []
    assert "'block-123' is not a lock id: lock ids look like block-<uuid>" in r.err
    assert "string_pattern_mismatch" not in r.err


AGENTS = """version: 1
stack: s
blocks:
  zeta: {value: z}
  alpha: {value: a}
agents:
  worker:
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: p}]
    blocks: [zeta, alpha]
"""


def test_a_mistyped_target_or_tool_gets_a_did_you_mean(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, AGENTS)
    r = cli("plan", "-f", str(path), "--target", "agent.wroker")
    assert r.code == 1
    assert "--target agent.wroker: no such resource in the manifest; did you mean agent.worker?" \
        in r.err  # fmt: skip
    # With nothing close, the hint names the address of every kind.
    r = cli("plan", "-f", str(path), "--target", "zzzz.q")
    assert r.code == 1 and all(
        f"{k.name}.<key>" in r.err for k in KINDS
    ), r.err  # fmt: skip
    typo = write(tmp_path, AGENTS + "    tools: [web_serch]\n", "typo.yaml")
    r = cli("plan", "-f", str(typo))
    assert r.code == 1
    assert "unknown tool 'web_serch'" in r.out and "hint: did you mean 'web_search'?" in r.out


def test_destroy_says_what_it_did(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, AGENTS)
    empty = cli("destroy", "-f", str(path), "--auto-approve")
    assert empty.code == 0
    assert "Nothing to destroy: the stack owns nothing on the server." in empty.out
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    r = cli("destroy", "-f", str(path), "--auto-approve")
    assert r.code == 0 and "Destroy complete: 4 resource(s) deleted." in r.out
    assert "Apply complete" not in r.out


def test_show_lists_an_agents_blocks_in_a_stable_order(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, AGENTS)
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    (agent,) = cli.fake.agents.values()
    agent["block_ids"].reverse()  # the server's order changes from read to read
    first = cli("show", "-f", str(path)).out
    agent["block_ids"].reverse()
    assert cli("show", "-f", str(path)).out == first
    line = next(x for x in first.splitlines() if x.startswith("agent.worker "))
    assert line.index("alpha (") < line.index("persona (") < line.index("zeta (")


def test_a_model_the_server_does_not_serve_is_refused_at_plan(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, AGENTS.replace("model: letta/letta-free", "model: openai/gpt-4o-mni"))
    r = cli("plan", "-f", str(path))
    assert r.code == 1, r.out
    assert (
        "x agent.worker: model 'openai/gpt-4o-mni' is not served by this server (GET /v1/models/)"
    ) in r.out
    assert "hint: did you mean 'openai/gpt-4o-mini'" in r.out
    writes = cli.fake.writes
    assert cli("apply", "-f", str(path), "--auto-approve").code == 1
    assert not cli.fake.agents  # nothing half-made: the agent was refused, not sent
    # A converged plan does not ask for the model lists; a model change is checked.
    assert cli("apply", "-f", str(write(tmp_path, AGENTS)), "--auto-approve").code == 0
    cli.fake.calls.clear()
    assert "No changes" in cli("plan", "-f", str(write(tmp_path, AGENTS))).out
    assert not [p for _, p in cli.fake.calls if p.startswith("/v1/models")]
    cli.fake.embeddings.discard("openai/text-embedding-3-small")
    changed = AGENTS.replace(
        "embedding: letta/letta-free", "embedding: openai/text-embedding-3-small"
    )
    r = cli("plan", "-f", str(write(tmp_path, changed)))
    assert r.code == 1 and "embedding 'openai/text-embedding-3-small' is not served" in r.out
    assert writes <= cli.fake.writes


def test_a_request_the_server_refuses_as_wrong_is_not_worth_a_rerun(
    tmp_path: Path, cli: Cli
) -> None:
    def answer(status: int) -> Callable[[httpx.Request], httpx.Response | None]:
        def refuse(request: httpx.Request) -> httpx.Response | None:
            if request.method == "POST" and request.url.path == "/v1/agents/":
                return httpx.Response(status, json={"detail": "context_window too large"})
            return None

        return refuse

    cli.fake.before.append(answer(422))
    r = cli("apply", "-f", str(write(tmp_path, AGENTS)), "--auto-approve")
    assert r.code == 1
    assert "A request was refused as wrong (by the server, HTTP 4xx" in r.err
    assert "Run apply again" not in r.err
    cli.fake.before[:] = [answer(503)]
    r = cli("apply", "-f", str(write(tmp_path, AGENTS)), "--auto-approve")
    assert r.code == 1 and "Run apply again to converge." in r.err


def test_what_is_retried_is_said_while_it_is(tmp_path: Path, cli: Cli) -> None:
    busy = iter([503, 429])

    def flaky(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path == "/v1/agents/":
            status = next(busy, None)
            return httpx.Response(status) if status else None
        return None

    cli.fake.before.append(flaky)
    r = cli("plan", "-f", str(write(tmp_path, AGENTS)))
    assert r.code == 0, r.err
    lines = [line for line in r.err.splitlines() if line.startswith("retrying")]
    assert len(lines) == 2, r.err
    assert lines[0].startswith("retrying GET /v1/agents/: HTTP 503")
    assert "(attempt 2 of " in lines[0] and "(attempt 3 of " in lines[1]


def test_a_handle_the_server_normalizes_or_manages_is_no_change(tmp_path: Path, cli: Cli) -> None:
    text = AGENTS.replace("model: letta/letta-free", "model: openai/gpt-4o-mini").replace(
        "embedding: letta/letta-free", "embedding: openai/text-embedding-3-small"
    )
    path = write(tmp_path, text)
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    (agent,) = cli.fake.agents.values()
    # As Letta Cloud reports them: the provider prefix dropped, the embedding its own business.
    agent["model"], agent["embedding"] = "GPT-4o-mini", None
    agent.pop("llm_config", None), agent.pop("embedding_config", None)
    assert "The server matches the manifest" in cli("plan", "-f", str(path)).out
    agent["model"] = "openai/gpt-4o"  # another model is a change
    r = cli("plan", "-f", str(path))
    assert 'model: "openai/gpt-4o" -> "openai/gpt-4o-mini"' in r.out, r.out


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 418, 500, 501, 507, 301])
def test_any_status_on_a_create_is_a_clear_error_and_never_a_duplicate(
    tmp_path: Path, cli: Cli, status: int
) -> None:
    """The specs promise only 200 and 422: whatever else a server answers, the run says what
    failed in a line, and no agent is made twice (a re-run converges to one)."""
    answered = iter([status])

    def odd(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/v1/agents/":
            code = next(answered, None)
            if code is not None:
                return httpx.Response(code, text="<html>odd</html>")
        return None

    cli.fake.before.append(odd)
    path = write(tmp_path, AGENTS)
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == 1, r.err
    assert f"POST /v1/agents/: HTTP {status}" in r.err and "Traceback" not in r.err
    again = cli("apply", "-f", str(path), "--auto-approve")
    assert again.code == 0, again.err
    assert len(cli.fake.agents) == 1


def test_an_output_file_that_cannot_be_written_is_one_line(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, AGENTS)
    for argv in (
        ("plan", "-f", str(path), "--out", str(path / "plan.json")),  # under a file
        ("plan", "-f", str(path), "--out", str(tmp_path)),  # a directory
    ):
        r = cli(*argv)
        assert r.code == 1, r.err
        lines = [line for line in r.err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and lines[0].startswith("error: cannot write "), r.err
        assert lines[0].endswith("[LA908]") and "Traceback" not in r.err
    assert not cli.fake.writes  # a plan writes nothing, saved or not
