"""The tool kind: its model, plan, requests and schema."""
