"""Fixtures shared by the unit tests (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

import pytest

from tests.helpers import Cli


@pytest.fixture
def cli() -> Cli:
    """`letta-apply` in-process against a fresh fake server, its waits on a fake clock."""
    return Cli()
