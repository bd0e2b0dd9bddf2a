"""The archive kind: its model, plan, requests and schema."""
