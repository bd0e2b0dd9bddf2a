"""What every module of the fake server shares: the error a handler raises for an HTTP error
answer, a route's shape, and a stored record's public view (its `_` fields are the fake's own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Route = tuple[str, str, Callable[..., Any]]
"""A route: method, path pattern (matched whole) and the handler, given the pattern's groups."""


class Http(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail


def _public(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if not k.startswith("_")}
