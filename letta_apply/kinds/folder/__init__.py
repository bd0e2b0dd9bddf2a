"""The folder kind: its model, plan, requests and schema."""
