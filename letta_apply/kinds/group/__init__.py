"""The group kind: its model, plan, requests and schema."""
