"""The agent kind: its model, plan, requests and schema."""
