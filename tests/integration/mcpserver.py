"""A small real MCP server for the integration tests, run as its own process on 127.0.0.1:
streamable HTTP (the `mcp` package's FastMCP), a few tools named on the command line, and a
bearer token it requires (read from a file, never from the command line, which `ps` shows).

    python tests/integration/mcpserver.py PORT TOKEN_FILE TOOL [TOOL...]
    python tests/integration/mcpserver.py --stdio TOOLS_FILE

Each TOOL is a name; the tool echoes its argument with that name in front. With `--stdio` it
speaks over its standard streams and reads its tool names from TOOLS_FILE (one a line) each time
it starts: Letta starts it anew for every connection, so a test adds a tool by adding a line.

Why both: Letta 0.16.8 refuses to connect to an MCP server on a loopback or private address
(`validate_mcp_server_url`, at registration and again before every connection, resolving the
host), and these tests use 127.0.0.1 only. So the HTTP server is registered (a URL naming
127.0.0.1 as `127.1`, which the registration check does not parse as an IP) and its fields
updated, rotated and masked, while the tools an agent attaches come from the stdio server,
which the test server allows (LETTA_MCP_DISABLE_STDIO=false).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send


def _tool(name: str) -> Any:
    def tool(text: str) -> str:
        return f"{name}: {text}"

    tool.__name__ = name
    tool.__doc__ = f"Echo `text` prefixed with {name}."
    return tool


class _Auth:
    """Refuses every request without `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            got = Request(scope).headers.get("authorization", "")
            if got != f"Bearer {self.token}":
                resp: Response = JSONResponse({"error": "unauthorized"}, status_code=401)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def main(argv: list[str]) -> None:
    if argv[0] == "--stdio":
        names = Path(argv[1]).read_text(encoding="utf-8").split()
        stdio = FastMCP("letta-apply-test")
        for name in names:
            stdio.add_tool(_tool(name), name=name, description=f"Echo text prefixed with {name}.")
        stdio.run("stdio")
        return
    port, token_file, *tools = argv
    token = Path(token_file).read_text(encoding="utf-8").strip()
    server = FastMCP("letta-apply-test", host="127.0.0.1", port=int(port))
    for name in tools:
        server.add_tool(_tool(name), name=name, description=f"Echo text prefixed with {name}.")
    app = _Auth(server.streamable_http_app(), token)
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
