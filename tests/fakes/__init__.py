"""The fake Letta server of the unit tests: one module per resource kind (its routes and its
rules, as Letta 0.16.8 keeps them), mixed into FakeLetta (server.py), the shared core that
routes requests, lists, pages and counts them. Integration tests use the real server instead."""

from tests.fakes.server import FakeLetta

__all__ = ["FakeLetta"]
