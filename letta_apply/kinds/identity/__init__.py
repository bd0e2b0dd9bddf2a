"""The identity kind: its model, plan, requests and schema."""
