"""MCP errors said as what they are, at once: an MCP server Letta cannot connect to (a stdio
command not installed) is not asked again six times, and its hint fits its transport; a tool
name the MCP server does not offer, found on the apply that registers the server, is the
did-you-mean error plan gives later, not an HTTP 404."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import Cli, write

HEAD = "version: 1\nstack: s\n"
STDIO = "mcp_servers:\n  local: {mcp_server_type: stdio, command: uvx, args: [mcp-server-fetch]}\n"
HTTP = (
    "mcp_servers:\n  local: {mcp_server_type: streamable_http, "
    "server_url: 'https://mcp.example.com/mcp'}\n"
)
AGENT = (
    "agents:\n  a:\n    model: letta/letta-free\n    embedding: letta/letta-free\n"
    "    mcp_tools: [{server: local, tools: [%s]}]\n"
)


def _unreachable(request: httpx.Request) -> httpx.Response | None:
    """Letta 0.16.8's answer when it cannot connect to the MCP server (a 502 of its own)."""
    if request.url.path.startswith("/v1/tools/mcp/servers/"):
        return httpx.Response(
            502,
            json={
                "error": {
                    "type": "mcp_connection_error",
                    "message": "Failed to connect to MCP server.",
                    "detail": "Failed to connect to MCP command 'uvx'. Please check your "
                    "configuration and ensure the server is accessible.",
                }
            },
        )
    return None


def test_an_mcp_server_letta_cannot_connect_to_is_asked_once_and_hinted_by_transport(
    tmp_path: Path, cli: Cli
) -> None:
    cli.fake.mcp_offers["local"] = ["fetch"]
    path = write(tmp_path, HEAD + STDIO + AGENT % "fetch")
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    cli.fake.before.append(_unreachable)
    cli.clock.sleeps.clear()
    r = cli("plan", "-f", str(path))
    assert r.code == 1
    listings = [c for c in cli.fake.calls if c[1].startswith("/v1/tools/mcp/servers/")]
    assert len(listings) == 1 and not cli.clock.sleeps  # asked once, no wait
    assert "retrying" not in r.err
    assert (
        "cannot list the tools of mcp_server.local (MCP server 'local'): Failed to connect to "
        "MCP server. Failed to connect to MCP command 'uvx'." in r.out
    )
    assert "hint: check the server's command, args and env: Letta starts the command" in r.out
    assert "url, token and headers" not in r.out


def test_an_http_mcp_server_letta_cannot_connect_to_is_hinted_by_its_url(
    tmp_path: Path, cli: Cli
) -> None:
    cli.fake.mcp_offers["local"] = ["fetch"]
    path = write(tmp_path, HEAD + HTTP + AGENT % "fetch")
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    cli.fake.before.append(_unreachable)
    r = cli("plan", "-f", str(path))
    assert r.code == 1 and "retrying" not in r.err
    assert "hint: check the server's url, token and headers: Letta must reach it" in r.out


def test_a_gateway_502_is_still_retried(tmp_path: Path, cli: Cli) -> None:
    cli.fake.mcp_offers["local"] = ["fetch"]
    path = write(tmp_path, HEAD + STDIO + AGENT % "fetch")
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    failed: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.startswith("/v1/tools/mcp/servers/") and not failed:
            failed.append(request.url.path)
            return httpx.Response(502, text="<html>Bad Gateway</html>")
        return None

    cli.fake.before.append(gateway)
    r = cli("plan", "-f", str(path), "--detailed-exitcode")
    assert r.code == 0, r.out + r.err
    assert failed and "retrying" in r.err


def test_a_misspelled_mcp_tool_on_the_first_apply_is_a_did_you_mean(
    tmp_path: Path, cli: Cli
) -> None:
    cli.fake.mcp_offers["local"] = ["fetch", "search"]
    path = write(tmp_path, HEAD + STDIO + AGENT % "fecth")
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == 1
    assert (
        "error: agent.a: create: mcp_server.local offers no tool 'fecth'; did you mean "
        "'fetch'? (it offers: fetch, search)" in r.err
    ), r.err
    assert "HTTP 404" not in r.err and "reachable" not in r.err
    # Sending it again gets the same answer: the manifest is what to fix.
    assert "sending it again gets the same answer; fix what it names in the manifest" in r.err
    assert not cli.fake.agents


def test_no_tool_registered_on_the_first_apply_is_hinted_by_transport(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, HEAD + STDIO + AGENT % "fetch")  # Letta registered nothing
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == 1
    assert "mcp_server.local: Letta registered no tools of it, so not 'fetch'" in r.err, r.err
    assert "check the server's command, args and env" in r.err
    assert "HTTP 404" not in r.err
