"""A small real MCP server for the integration tests (the `mcp` package's FastMCP), which the
Letta server starts itself as a stdio MCP server:

    python tests/integration/mcpserver.py TOOLS_FILE

It offers one tool per name in TOOLS_FILE (one a line), each echoing its argument with its name
in front, and reads the file each time it starts: Letta starts it anew for every connection, so
a test adds or removes a tool by editing a line.

Why stdio and not streamable HTTP: Letta 0.16.8 refuses to connect to an MCP server on a loopback
or private address (`validate_mcp_server_url`, before every connection, resolving the host), and
these tests use 127.0.0.1 only. So HTTP servers are registered, updated, rotated and masked
(Letta stores them without connecting), and the tools agents attach come from this one, which
the test server allows (scripts/letta-server starts it with MCP_DISABLE_STDIO=false).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mcp.server.fastmcp import FastMCP


def _tool(name: str) -> Any:
    def tool(text: str) -> str:
        return f"{name}: {text}"

    tool.__name__ = name
    return tool


def main(argv: list[str]) -> None:
    names = Path(argv[0]).read_text(encoding="utf-8").split()
    server = FastMCP("letta-apply-test")
    for name in names:
        server.add_tool(_tool(name), name=name, description=f"Echo text prefixed with {name}.")
    server.run("stdio")


if __name__ == "__main__":
    main(sys.argv[1:])
