"""The block kind: its model, plan, requests and schema."""
