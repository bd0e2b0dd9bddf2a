"""MCP servers and agents' MCP tools against the fake server (which keeps MCP servers as Letta
0.16.8 does): manifest rules with their positions, registration with a token that never shows,
`all` and named tools from empty to zero writes, a tool added and one vanished on the MCP
server, a token rotated in place with the attachments kept, a server the stack does not own
never touched, prune."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from letta_apply.kinds.mcp_server.kind import MARK_LABEL
from letta_apply.pipeline import load_manifest
from tests.helpers import Cli, at, diagnostics, write

TOKEN = "tok-Zq8v-first"
ROTATED = "tok-Wm3k-second"
HEAD = "version: 1\nstack: s\nvariables:\n  token: {sensitive: true}\n"
SERVERS = (
    "mcp_servers:\n"
    "  search:\n"
    "    mcp_server_type: streamable_http\n"
    "    server_url: https://mcp.example.com/mcp\n"
    "    auth_token: ${var.token}\n"
)
AGENTS = (
    "agents:\n"
    "  all:\n"
    "    model: letta/letta-free\n    embedding: letta/letta-free\n"
    "    mcp_tools: [{server: search, tools: all}]\n"
    "  one:\n"
    "    model: letta/letta-free\n    embedding: letta/letta-free\n"
    "    mcp_tools: [{server: search, tools: [lookup]}]\n"
)
MANIFEST = HEAD + SERVERS + AGENTS


def errors(tmp_path: Path, text: str) -> list[tuple[tuple[int, int], str]]:
    found = diagnostics(write(tmp_path, text), lambda p: load_manifest(str(p)))
    return [(at(d), d.message) for d in found]


def run(cli: Cli, tmp_path: Path, *argv: str, token: str = TOKEN, text: str = MANIFEST) -> Any:
    path = write(tmp_path, text)
    return cli(*argv, "-f", str(path), "--var", f"token={token}")


def attached(cli: Cli, agent: str) -> list[str]:
    a = next(a for a in cli.fake.agents.values() if a["name"] == agent)
    return sorted(
        cli.fake.tools[t]["name"] for t in a["tool_ids"]
        if cli.fake.tools[t].get("tool_type") == "external_mcp"
    )  # fmt: skip


@pytest.fixture
def served(cli: Cli) -> Cli:
    cli.fake.mcp_offers["search"] = ["lookup", "fetch"]
    return cli


def test_transport_fields_and_references_are_located_errors(tmp_path: Path) -> None:
    text = "version: 1\nstack: s\n" + (
        "mcp_servers:\n"
        "  a: {mcp_server_type: stdio, server_url: 'https://x'}\n"
        "  b: {mcp_server_type: sse, server_url: 'https://x', auth_header: X-Key, auth_token: t}\n"
        "  c: {mcp_server_type: streamable_http, server_url: 'https://x', auth_token: t,"
        " custom_headers: {A: b}}\n"
        "  d: {mcp_server_type: sse, server_name: a, server_url: 'https://y'}\n"
        "agents:\n"
        "  x: {model: x/m, embedding: x/e,"
        " mcp_tools: [{server: serch}, {server: a}, {server: a}]}\n"
    )
    found = errors(tmp_path, text)
    messages = [m for _, m in found]
    assert ((4, 31), "mcp_servers.a.server_url: a stdio server does not take it") in found
    assert ((4, 3), "mcp_servers.a: a stdio server needs `command`") in found
    assert any(m.startswith("mcp_servers.b.auth_header") for m in messages), messages
    assert any("Letta sends no token when custom_headers are set" in m for m in messages)
    assert any("server_name 'a' is already used by mcp_servers.a" in m for m in messages)
    assert "agents.x.mcp_tools[0].server: no MCP server 'serch' is declared" in " ".join(messages)
    assert "agents.x.mcp_tools[2].server: MCP server 'a' is listed twice" in messages


def test_registered_attached_and_converged_without_the_token_shown(
    served: Cli, tmp_path: Path
) -> None:
    cli = served
    r = run(cli, tmp_path, "plan", "--format", "json")
    assert r.code == 0, r.err
    assert TOKEN not in r.out + r.err
    r = run(cli, tmp_path, "apply", "--auto-approve")
    assert r.code == 0, r.out + r.err
    assert TOKEN not in r.out + r.err
    (server,) = cli.fake.mcp_servers.values()
    assert server["auth_token"] == f"Bearer {TOKEN}"
    assert attached(cli, "all") == ["fetch", "lookup"]
    assert attached(cli, "one") == ["lookup"]
    marks = [b for b in cli.fake.blocks.values() if b["label"] == MARK_LABEL]
    assert len(marks) == 1 and TOKEN not in json.dumps(marks)
    before = cli.fake.writes
    r = run(cli, tmp_path, "plan", "--detailed-exitcode")
    assert r.code == 0, r.out + r.err
    r = run(cli, tmp_path, "apply", "--auto-approve")
    assert r.code == 0 and cli.fake.writes == before, r.out


def test_all_follows_the_mcp_server_and_a_vanished_tool_is_detached(
    served: Cli, tmp_path: Path
) -> None:
    cli = served
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 0
    cli.fake.mcp_offers["search"] = ["lookup", "summarize"]  # fetch gone, summarize new
    r = run(cli, tmp_path, "plan")
    assert "summarize" in r.out and "fetch" in r.out, r.out
    assert "MCP tool 'fetch' is gone from mcp_server.search; detached" in r.out, r.out
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 0
    assert attached(cli, "all") == ["lookup", "summarize"]
    assert attached(cli, "one") == ["lookup"]
    assert run(cli, tmp_path, "plan", "--detailed-exitcode").code == 0


def test_unknown_tool_is_refused_with_a_hint(served: Cli, tmp_path: Path) -> None:
    cli = served
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 0
    text = MANIFEST.replace("tools: [lookup]", "tools: [lookpu]")
    r = run(cli, tmp_path, "plan", text=text)
    assert r.code == 1
    assert "offers no tool 'lookpu'" in r.out + r.err and "did you mean 'lookup'?" in r.out + r.err


def test_token_rotated_in_place_keeps_the_attachments(served: Cli, tmp_path: Path) -> None:
    cli = served
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 0
    (sid,) = cli.fake.mcp_servers
    tools = attached(cli, "all")
    saved = tmp_path / "rotate.json"
    r = run(cli, tmp_path, "plan", "--out", str(saved), token=ROTATED)
    assert r.code == 0 and "auth_token" in r.out, r.out
    for text in (r.out, r.err, saved.read_text(encoding="utf-8")):
        assert TOKEN not in text and ROTATED not in text
    r = run(cli, tmp_path, "apply", str(saved), "--auto-approve", token=ROTATED)
    assert r.code == 0, r.out + r.err
    assert list(cli.fake.mcp_servers) == [sid]
    assert cli.fake.mcp_servers[sid]["auth_token"] == f"Bearer {ROTATED}"
    assert attached(cli, "all") == tools
    r = run(cli, tmp_path, "show", token=ROTATED)
    assert r.code == 0 and "mcp_server.search" in r.out and ROTATED not in r.out, r.out
    assert run(cli, tmp_path, "plan", "--detailed-exitcode", token=ROTATED).code == 0


def test_a_server_of_that_name_not_owned_is_a_clash(served: Cli, tmp_path: Path) -> None:
    cli = served
    cli.fake.mcp_servers["mcp_server-hand"] = {
        "id": "mcp_server-hand", "server_name": "search", "mcp_server_type": "sse",
        "server_url": "https://hand.example.com", "auth_header": None, "auth_token": None,
        "custom_headers": None,
    }  # fmt: skip
    r = run(cli, tmp_path, "plan")
    assert r.code == 1
    assert "an MCP server named 'search' already exists" in r.out + r.err
    assert "imports:" in r.out + r.err
    r = run(cli, tmp_path, "destroy", "--auto-approve")
    assert r.code == 0 and "mcp_server-hand" in cli.fake.mcp_servers


def test_pruned_with_its_mark_and_tools(served: Cli, tmp_path: Path) -> None:
    cli = served
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 0
    text = HEAD + "agents:\n  all: {model: letta/letta-free, embedding: letta/letta-free}\n"
    r = run(cli, tmp_path, "apply", "--auto-approve", text=text)
    assert r.code == 0, r.out + r.err
    assert not cli.fake.mcp_servers
    assert not [b for b in cli.fake.blocks.values() if b["label"] == MARK_LABEL]
    assert not [t for t in cli.fake.tools.values() if t.get("tool_type") == "external_mcp"]


def test_stdio_refused_by_the_server_is_said_plainly(cli: Cli, tmp_path: Path) -> None:
    cli.fake.mcp_stdio = False
    text = HEAD + (
        "mcp_servers:\n  local: {mcp_server_type: stdio, command: uvx, args: [tool],"
        " env: {KEY: '${var.token}'}}\n"
    )
    r = run(cli, tmp_path, "apply", "--auto-approve", text=text)
    assert r.code == 1
    assert "does not allow stdio MCP servers" in r.out + r.err
    assert TOKEN not in r.out + r.err
    assert "Traceback" not in r.out + r.err


def test_imported_by_name_then_moved(served: Cli, tmp_path: Path) -> None:
    cli = served
    cli.fake.mcp_servers["mcp_server-hand"] = {
        "id": "mcp_server-hand", "server_name": "search", "mcp_server_type": "streamable_http",
        "server_url": "https://old.example.com/mcp", "auth_header": None, "auth_token": None,
        "custom_headers": None,
    }  # fmt: skip
    cli.fake._refresh_mcp("mcp_server-hand")
    text = MANIFEST + "imports:\n  - {to: mcp_server.search, name: search}\n"
    r = run(cli, tmp_path, "plan", text=text)
    assert r.code == 0 and "mcp_server.search (mcp_server-hand): import" in r.out, r.out
    assert TOKEN not in r.out
    assert run(cli, tmp_path, "apply", "--auto-approve", text=text).code == 0
    hand = cli.fake.mcp_servers["mcp_server-hand"]
    assert hand["server_url"] == "https://mcp.example.com/mcp"
    assert hand["auth_token"] == f"Bearer {TOKEN}"
    assert attached(cli, "all") == ["fetch", "lookup"]
    assert run(cli, tmp_path, "plan", "--detailed-exitcode", text=text).code == 0
    moved = MANIFEST.replace("  search:\n", "  web:\n").replace("server: search", "server: web")
    moved = moved.replace("    mcp_server_type: streamable_http\n", "    server_name: search\n"
                          "    mcp_server_type: streamable_http\n", 1)  # fmt: skip
    moved += "moved:\n  - {from: mcp_server.search, to: mcp_server.web}\n"
    r = run(cli, tmp_path, "plan", text=moved)
    assert r.code == 0 and "mcp_server.web" in r.out and "address" in r.out, r.out
    assert run(cli, tmp_path, "apply", "--auto-approve", text=moved).code == 0
    assert list(cli.fake.mcp_servers) == ["mcp_server-hand"]
    assert attached(cli, "all") == ["fetch", "lookup"]
    assert run(cli, tmp_path, "plan", "--detailed-exitcode", text=moved).code == 0


def test_headers_env_and_name_change_in_place(cli: Cli, tmp_path: Path) -> None:
    cli.fake.mcp_offers.update({"hdr": ["one"], "loc": ["two"], "hdr2": ["one"]})
    text = HEAD + (
        "mcp_servers:\n"
        "  h: {server_name: hdr, mcp_server_type: sse, server_url: 'https://h.example.com',"
        " custom_headers: {X-Key: '${var.token}'}}\n"
        "  l: {server_name: loc, mcp_server_type: stdio, command: uvx, args: [a],"
        " env: {KEY: '${var.token}'}}\n"
    )
    assert run(cli, tmp_path, "apply", "--auto-approve", text=text).code == 0
    ids = sorted(cli.fake.mcp_servers)
    changed = text.replace("server_name: hdr", "server_name: hdr2").replace(
        "args: [a]", "args: [b]"
    )
    r = run(cli, tmp_path, "plan", text=changed, token=ROTATED)
    assert r.code == 0, r.out + r.err
    assert "custom_headers['X-Key']: (sensitive value changed)" in r.out, r.out
    assert (
        "env['KEY']: (sensitive value changed)" in r.out and 'server_name: "hdr" -> "hdr2"' in r.out
    )
    assert TOKEN not in r.out and ROTATED not in r.out
    assert run(cli, tmp_path, "apply", "--auto-approve", text=changed, token=ROTATED).code == 0
    assert sorted(cli.fake.mcp_servers) == ids
    by_name = {s["server_name"]: s for s in cli.fake.mcp_servers.values()}
    assert by_name["hdr2"]["custom_headers"] == {"X-Key": ROTATED}
    assert by_name["loc"]["env"] == {"KEY": ROTATED} and by_name["loc"]["args"] == ["b"]
    assert run(cli, tmp_path, "plan", "--detailed-exitcode", text=changed, token=ROTATED).code == 0
    # A rename onto a name another server holds: Letta would delete that one. Refused.
    cli.fake.mcp_servers["mcp_server-hand"] = {
        "id": "mcp_server-hand", "server_name": "taken", "mcp_server_type": "sse",
        "server_url": "https://t.example.com", "auth_header": None, "auth_token": None,
        "custom_headers": None,
    }  # fmt: skip
    onto = changed.replace("server_name: hdr2", "server_name: taken")
    r = run(cli, tmp_path, "apply", "--auto-approve", text=onto, token=ROTATED)
    assert r.code == 1 and "an MCP server named 'taken' already exists" in r.out + r.err
    assert "mcp_server-hand" in cli.fake.mcp_servers


def test_not_pruned_while_an_agent_outside_the_stack_uses_its_tools(
    served: Cli, tmp_path: Path
) -> None:
    cli = served
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 0
    lookup = next(t["id"] for t in cli.fake.tools.values() if t["name"] == "lookup")
    made = cli.fake._create_agent({"name": "by-hand", "tool_ids": [lookup]})
    text = HEAD + "agents:\n  all: {model: letta/letta-free, embedding: letta/letta-free}\n"
    r = run(cli, tmp_path, "plan", text=text)
    assert "mcp_server.search: not deleted: still attached to agents this stack does not " in r.out
    assert f"by-hand ({made['id']})" in r.out, r.out
    assert run(cli, tmp_path, "apply", "--auto-approve", text=text).code == 1
    assert len(cli.fake.mcp_servers) == 1 and lookup in cli.fake.tools


def test_export_declares_the_servers_of_the_agents_tools_without_secrets(
    served: Cli, tmp_path: Path
) -> None:
    cli = served
    made = cli.fake._create_mcp({"server_name": "search", "config": {
        "mcp_server_type": "streamable_http", "server_url": "https://mcp.example.com/mcp",
        "auth_token": TOKEN}})  # fmt: skip
    tools = {t["name"]: t["id"] for t in cli.fake._mcp_registered(made["id"])}
    cli.fake._create_agent(
        {"name": "hand", "model": "letta/letta-free", "tool_ids": [tools["lookup"]]}
    )
    out = tmp_path / "exported.yaml"
    r = cli("export", "--stack", "s", "--name", "hand", "-o", str(out))
    assert r.code == 0, r.out + r.err
    text = out.read_text(encoding="utf-8")
    assert TOKEN not in text
    doc = yaml.safe_load(text)
    assert doc["mcp_servers"] == {
        "search": {"server_name": "search", "mcp_server_type": "streamable_http",
                   "server_url": "https://mcp.example.com/mcp"}
    }  # fmt: skip
    assert doc["agents"]["hand"]["mcp_tools"] == [{"server": "search", "tools": ["lookup"]}]
    assert "tools" not in doc["agents"]["hand"]
    assert {"to": "mcp_server.search", "id": made["id"]} in doc["imports"]
    r = cli("apply", "-f", str(out), "--auto-approve")
    assert r.code == 0, r.out + r.err
    assert cli.fake.mcp_servers[made["id"]]["auth_token"] == f"Bearer {TOKEN}"  # not managed
    assert cli("plan", "-f", str(out), "--detailed-exitcode").code == 0


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/mcp", "http://localhost/mcp", "https://10.1.2.3/x",
            "http://[::1]:9/mcp", "http://files.local/mcp"],
)  # fmt: skip
def test_an_address_letta_refuses_is_a_located_error(tmp_path: Path, url: str) -> None:
    text = (
        f"version: 1\nstack: s\nmcp_servers:\n  a: {{mcp_server_type: sse, server_url: '{url}'}}\n"
    )
    ((where, message),) = errors(tmp_path, text)
    assert where == (4, 41) and "Letta refuses MCP servers on loopback or private" in message


def test_an_unreachable_server_is_a_problem_that_never_quotes_its_token(
    served: Cli, tmp_path: Path
) -> None:
    cli = served
    assert run(cli, tmp_path, "apply", "--auto-approve").code == 0

    def refuse(request: httpx.Request) -> httpx.Response | None:
        # Letta quotes the MCP client's error, which may name the live (not yet rotated) token.
        if request.url.path.startswith("/v1/tools/mcp/servers/"):
            detail = f"could not connect with headers {{'Authorization': 'Bearer {TOKEN}'}}"
            return httpx.Response(400, json={"detail": detail})
        return None

    cli.fake.before.append(refuse)
    r = run(cli, tmp_path, "plan", token=ROTATED)
    assert r.code == 1 and "cannot list the tools of mcp_server.search" in r.out, r.out + r.err
    assert TOKEN not in r.out + r.err and ROTATED not in r.out + r.err


def test_a_saved_plan_registers_and_attaches(served: Cli, tmp_path: Path) -> None:
    cli = served
    saved = tmp_path / "first.json"
    assert run(cli, tmp_path, "plan", "--out", str(saved)).code == 0
    assert TOKEN not in saved.read_text(encoding="utf-8")
    r = run(cli, tmp_path, "apply", str(saved), "--auto-approve")
    assert r.code == 0, r.out + r.err
    assert attached(cli, "all") == ["fetch", "lookup"] and attached(cli, "one") == ["lookup"]
    # A server of the declared name registered by hand since: the saved create is stale.
    saved = tmp_path / "again.json"
    text = MANIFEST.replace("search:", "other:").replace("server: search", "server: other")
    assert run(cli, tmp_path, "plan", "--out", str(saved), text=text).code == 0
    cli.fake._create_mcp({"server_name": "other", "config": {
        "mcp_server_type": "sse", "server_url": "https://x.example.com"}})  # fmt: skip
    r = run(cli, tmp_path, "apply", str(saved), "--auto-approve", text=text)
    assert r.code == 1 and "stale plan" in r.out + r.err, r.out + r.err


def test_declared_tools_and_mcp_tools_share_the_agents_tool_ids(
    served: Cli, tmp_path: Path
) -> None:
    cli = served
    cli.fake.tools["tool-mine"] = {"id": "tool-mine", "name": "mine", "tool_type": "custom"}
    text = MANIFEST.replace(
        "    mcp_tools: [{server: search, tools: all}]\n",
        "    tools: [mine]\n    mcp_tools: [{server: search, tools: all}]\n",
    )
    assert run(cli, tmp_path, "apply", "--auto-approve", text=text).code == 0
    agent = next(a for a in cli.fake.agents.values() if a["name"] == "all")
    assert "tool-mine" in agent["tool_ids"] and attached(cli, "all") == ["fetch", "lookup"]
    assert run(cli, tmp_path, "plan", "--detailed-exitcode", text=text).code == 0
    cli.fake.mcp_offers["search"] = ["lookup"]
    assert run(cli, tmp_path, "apply", "--auto-approve", text=text).code == 0
    assert "tool-mine" in agent["tool_ids"] and attached(cli, "all") == ["lookup"]
    without = text.replace("    tools: [mine]\n", "    tools: []\n")
    assert run(cli, tmp_path, "apply", "--auto-approve", text=without).code == 0
    assert "tool-mine" not in agent["tool_ids"] and attached(cli, "all") == ["lookup"]
    assert run(cli, tmp_path, "plan", "--detailed-exitcode", text=without).code == 0


def test_an_unknown_tool_beside_mcp_tools_is_a_problem_not_a_crash(
    served: Cli, tmp_path: Path
) -> None:
    text = MANIFEST.replace(
        "    mcp_tools: [{server: search, tools: all}]\n",
        "    tools: [no_such_tool]\n    mcp_tools: [{server: search, tools: all}]\n",
    )
    r = run(served, tmp_path, "plan", text=text)
    assert r.code == 1, r.out + r.err
    assert "unknown tool 'no_such_tool'" in r.out + r.err
    assert "Traceback" not in r.out + r.err
