"""The mcp_server kind: its model, plan, requests and schema."""
