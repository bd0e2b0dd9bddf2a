"""Fixtures shared by the unit tests (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

import pytest

from letta_apply.cli import commands
from tests.helpers import Cli


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`letta-apply` in-process against a fresh fake server, its waits on a fake clock."""
    run = Cli()
    monkeypatch.setattr(commands, "LettaClient", run.client)
    monkeypatch.setattr(commands, "StackLock", run.stack_lock)
    return run
