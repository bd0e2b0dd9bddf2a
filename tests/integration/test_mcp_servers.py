"""MCP servers against the real server: a real MCP server (tests/integration/mcpserver.py, run
by Letta over stdio) registered through the manifest, `all` its tools attached to one agent and
one named tool to another, checked through Letta's own API; a tool added on the MCP server picked
up by the next plan, one removed shown detached; an HTTP server's token rotated in place and
never shown in any output; a same-named server the stack does not own never touched; prune.

Letta 0.16.8 refuses to connect to MCP servers on loopback addresses, so the HTTP server is one
Letta stores without reaching (`http://127.1:<port>`: 127.0.0.1 written so that its registration
check lets it through); an agent using its tools gets a plan problem saying why.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from letta_apply.kinds.mcp_server.kind import MARK_LABEL
from tests.integration.conftest import RECORDER, SESSION, Run

SCRIPT = Path(__file__).resolve().parent / "mcpserver.py"
TOKEN = "tok-Qx7Lm2first"
ROTATED = "tok-Vb9Kp4second"
ENV_SECRET = "env-Hs5Rt8secret"

MANIFEST = """\
version: 1
stack: {stack}
variables:
  token: {sensitive: true}
  env_secret: {sensitive: true}
mcp_servers:
  web:
    server_name: {stack}-web
    mcp_server_type: streamable_http
    server_url: http://127.1:9/mcp
    auth_token: ${var.token}
  local:
    server_name: {stack}-local
    mcp_server_type: stdio
    command: PYTHON
    args: [SCRIPT, TOOLS]
    env: {MCP_TEST_SECRET: "${var.env_secret}"}
agents:
  every:
    name: {stack}-every
    model: letta/letta-free
    embedding: letta/letta-free
    mcp_tools: [{server: local, tools: all}]
  one:
    name: {stack}-one
    model: letta/letta-free
    embedding: letta/letta-free
    mcp_tools: [{server: local, tools: [beta]}]
"""


def servers(api: httpx.Client, stack: str) -> dict[str, dict[str, Any]]:
    return {
        s["server_name"]: s for s in api.get("/v1/mcp-servers/").json() if stack in s["server_name"]
    }


def agent_mcp_tools(api: httpx.Client, name: str) -> list[str]:
    (agent,) = api.get("/v1/agents/", params={"name": name, "include": ["agent.tools"]}).json()
    return sorted(t["name"] for t in agent["tools"] if t["tool_type"] == "external_mcp")


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "tools.txt"
    path.write_text("alpha\nbeta\n", encoding="utf-8")
    return path


@pytest.fixture
def write(manifest: Callable[[str], str], tools_file: Path) -> Callable[..., str]:
    def _write(text: str = MANIFEST) -> str:
        text = text.replace("PYTHON", sys.executable).replace("SCRIPT", str(SCRIPT))
        return manifest(text.replace("TOOLS", str(tools_file)))

    return _write


@pytest.fixture
def cleanup(api: httpx.Client, stack: str) -> Iterator[None]:
    """Delete every MCP server named after the stack, whoever made it."""
    yield
    for s in servers(api, stack).values():
        api.delete(f"/v1/mcp-servers/{s['id']}")


def cli(run: Run, *args: str, token: str = TOKEN) -> Any:
    return run(*args, "--var", f"token={token}", "--var", f"env_secret={ENV_SECRET}")


def test_registered_attached_followed_rotated_and_pruned(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, tools_file: Path,
    tmp_path: Path, cleanup: None,
) -> None:  # fmt: skip
    path = write()
    r = cli(run, "apply", "-f", path, "--auto-approve")
    assert r.code == 0, r.out + r.err
    found = servers(api, stack)
    web, local = found[f"{stack}-web"], found[f"{stack}-local"]
    assert web["auth_token"] == f"Bearer {TOKEN}"
    assert local["env"] == {"MCP_TEST_SECRET": ENV_SECRET}
    # Letta lists the MCP server's tools, and the agents have them.
    listed = api.get(f"/v1/mcp-servers/{local['id']}/tools").json()
    assert sorted(t["name"] for t in listed) == ["alpha", "beta"]
    assert agent_mcp_tools(api, f"{stack}-every") == ["alpha", "beta"]
    assert agent_mcp_tools(api, f"{stack}-one") == ["beta"]
    marks = api.get("/v1/blocks/", params={"tags": [f"letta-apply:{stack}"]}).json()
    marks = [b for b in marks if b["label"] == MARK_LABEL]
    assert (
        len(marks) == 2 and TOKEN not in json.dumps(marks) and ENV_SECRET not in json.dumps(marks)
    )

    r = cli(run, "plan", "-f", path, "--detailed-exitcode")
    assert r.code == 0 and r.writes == 0, r.out + r.err

    # A tool added on the MCP server: `all` follows it; the named one stays as it is.
    tools_file.write_text("alpha\nbeta\ngamma\n", encoding="utf-8")
    r = cli(run, "plan", "-f", path)
    assert r.code == 0 and "gamma" in r.out, r.out + r.err
    assert cli(run, "apply", "-f", path, "--auto-approve").code == 0
    assert agent_mcp_tools(api, f"{stack}-every") == ["alpha", "beta", "gamma"]
    assert agent_mcp_tools(api, f"{stack}-one") == ["beta"]

    # The token rotated: updated in place, shown in no output format.
    saved = tmp_path / "rotate.json"
    outputs = [
        cli(run, "plan", "-f", path, token=ROTATED),
        cli(run, "plan", "-f", path, "--format", "json", token=ROTATED),
        cli(run, "plan", "-f", path, "--format", "markdown", token=ROTATED),
        cli(run, "plan", "-f", path, "--out", str(saved), token=ROTATED),
    ]
    assert all(o.code == 0 for o in outputs), [o.err for o in outputs]
    assert "auth_token: (sensitive value changed)" in outputs[0].out, outputs[0].out
    r = cli(run, "apply", str(saved), "-f", path, "--auto-approve", token=ROTATED)
    assert r.code == 0, r.out + r.err
    outputs += [r, cli(run, "show", "-f", path, token=ROTATED)]
    outputs.append(run("export", "--stack", "x", "--name", f"{stack}-every"))
    texts = [o.out + o.err for o in outputs] + [saved.read_text(encoding="utf-8")]
    for text in texts:
        for value in (TOKEN, ROTATED, ENV_SECRET):
            assert value not in text, text
    after = servers(api, stack)[f"{stack}-web"]
    assert after["id"] == web["id"] and after["auth_token"] == f"Bearer {ROTATED}"
    assert agent_mcp_tools(api, f"{stack}-every") == ["alpha", "beta", "gamma"]

    # A tool gone from the MCP server is detached.
    tools_file.write_text("beta\ngamma\n", encoding="utf-8")
    r = cli(run, "apply", "-f", path, "--auto-approve", token=ROTATED)
    assert r.code == 0 and "MCP tool 'alpha' is gone from mcp_server.local" in r.out, r.out
    assert agent_mcp_tools(api, f"{stack}-every") == ["beta", "gamma"]
    assert cli(run, "plan", "-f", path, "--detailed-exitcode", token=ROTATED).code == 0

    # Prune: the servers, their marks and their tools go; the agents stay.
    kept = MANIFEST.split("mcp_servers:")[0] + "agents:" + MANIFEST.split("agents:")[1]
    kept = kept.replace("    mcp_tools: [{server: local, tools: all}]\n", "")
    kept = kept.replace("    mcp_tools: [{server: local, tools: [beta]}]\n", "")
    r = cli(run, "apply", "-f", write(kept), "--auto-approve", token=ROTATED)
    assert r.code == 0, r.out + r.err
    assert not servers(api, stack)
    assert agent_mcp_tools(api, f"{stack}-every") == []


def test_a_server_of_that_name_not_owned_is_never_touched(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    made = api.post(
        "/v1/mcp-servers/",
        json={"server_name": f"{stack}-web", "config": {
            "mcp_server_type": "sse", "server_url": "http://127.1:7/sse"}},
    )  # fmt: skip
    assert made.status_code == 200, made.text
    hand = made.json()
    path = write()
    r = cli(run, "plan", "-f", path)
    assert r.code == 1
    assert f"an MCP server named '{stack}-web' already exists" in r.out + r.err
    assert "imports:" in r.out + r.err
    r = cli(run, "destroy", "-f", path, "--auto-approve")
    assert r.code == 0, r.out + r.err
    assert servers(api, stack)[f"{stack}-web"] == hand


def test_an_agent_using_an_unreachable_server_is_a_plan_problem(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, cleanup: None
) -> None:
    path = write()
    assert cli(run, "apply", "-f", path, "--auto-approve").code == 0
    text = MANIFEST.replace("[{server: local, tools: [beta]}]", "[{server: web, tools: all}]")
    r = cli(run, "plan", "-f", write(text))
    assert r.code == 1
    assert "cannot list the tools of mcp_server.web" in r.out + r.err, r.out + r.err
    assert "Traceback" not in r.out + r.err and TOKEN not in r.out + r.err


def test_a_converged_plan_of_3_servers_and_20_agents_lists_each_server_once(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, tmp_path: Path,
    cleanup: None,
) -> None:  # fmt: skip
    servers_yaml, agents_yaml = [], []
    for n in range(3):
        tools = tmp_path / f"tools-{n}.txt"
        tools.write_text("".join(f"s{n}_tool{t}\n" for t in range(3)), encoding="utf-8")
        servers_yaml.append(
            f"  s{n}:\n    server_name: {stack}-s{n}\n    mcp_server_type: stdio\n"
            f"    command: {sys.executable}\n    args: [{SCRIPT}, {tools}]\n"
        )
    for i in range(20):
        a, b = i % 3, (i + 1) % 3
        agents_yaml.append(
            f"  a{i}:\n    name: {stack}-a{i}\n    model: letta/letta-free\n"
            "    embedding: letta/letta-free\n"
            f"    mcp_tools: [{{server: s{a}, tools: all}},"
            f" {{server: s{b}, tools: [s{b}_tool1]}}]\n"
        )
    text = "version: 1\nstack: {stack}\nmcp_servers:\n" + "".join(servers_yaml)
    path = manifest(text + "agents:\n" + "".join(agents_yaml))
    r = run("apply", "-f", path, "--auto-approve")
    assert r.code == 0, r.out + r.err
    first = f"first apply {r.reads} reads + {r.writes} writes"
    assert agent_mcp_tools(api, f"{stack}-a4") == ["s1_tool0", "s1_tool1", "s1_tool2", "s2_tool1"]
    before = len(RECORDER.sent)
    r = run("plan", "-f", path, "--detailed-exitcode")
    assert r.code == 0 and r.writes == 0, r.out + r.err
    sent = [f"{s.method} {s.path.split('?')[0]}" for s in RECORDER.sent[before:]]
    listed = [s for s in sent if s.startswith("GET /v1/tools/mcp/servers/")]
    assert len(listed) == 3 and sent.count("GET /v1/mcp-servers/") == 1, sent
    # Nothing per agent: the agents come in one listing, their tools with them.
    assert not [s for s in sent if "/agent-" in s], sent
    SESSION.summary.append(
        f"MCP, 3 servers and 20 agents: {first}; converged plan {r.reads} reads ({len(sent)} "
        "requests through the proxy): "
        + ", ".join(f"{k} x{n}" for k, n in sorted(Counter(sent).items()))
    )


def test_export_declares_an_agents_mcp_server_and_the_manifest_adopts_it(
    run: Run, write: Callable[..., str], api: httpx.Client, stack: str, tools_file: Path,
    tmp_path: Path, cleanup: None,
) -> None:  # fmt: skip
    config = {
        "mcp_server_type": "stdio", "command": sys.executable,
        "args": [str(SCRIPT), str(tools_file)], "env": {"MCP_TEST_SECRET": ENV_SECRET},
    }  # fmt: skip
    made = api.post("/v1/mcp-servers/", json={"server_name": f"{stack}-hand", "config": config})
    assert made.status_code == 200, made.text
    sid = made.json()["id"]
    beta = next(
        t["id"] for t in api.get(f"/v1/mcp-servers/{sid}/tools").json() if t["name"] == "beta"
    )
    body = {"name": f"{stack}-hand-agent", "model": "letta/letta-free",
            "embedding": "letta/letta-free", "tool_ids": [beta]}  # fmt: skip
    agent = api.post("/v1/agents/", json=body)
    assert agent.status_code == 200, agent.text
    try:
        out = tmp_path / "exported.yaml"
        r = run("export", "--stack", stack, "--name", f"{stack}-hand-agent", "-o", str(out))
        assert r.code == 0, r.out + r.err
        text = out.read_text(encoding="utf-8")
        assert ENV_SECRET not in text and f"mcp_server.{stack}-hand" in text, text
        assert "mcp_tools:" in text and "- beta" in text, text
        r = run("apply", "-f", str(out), "--auto-approve")
        assert r.code == 0, r.out + r.err
        r = run("plan", "-f", str(out), "--detailed-exitcode")
        assert r.code == 0 and r.writes == 0, r.out + r.err
        assert servers(api, stack)[f"{stack}-hand"]["env"] == {"MCP_TEST_SECRET": ENV_SECRET}
        assert agent_mcp_tools(api, f"{stack}-hand-agent") == ["beta"]
    finally:
        api.delete(f"/v1/agents/{agent.json()['id']}")
