"""Fixtures shared by the unit tests (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from letta_apply.memory.backup import ROOT_VARIABLE
from tests.helpers import Cli


@pytest.fixture(autouse=True)
def backups_apart(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Backups made by applies and destroys go to a folder of the test's, never into the
    working tree (the default is `.letta-apply/backups` in the working directory)."""
    root = tmp_path_factory.mktemp("backups")
    monkeypatch.setenv(ROOT_VARIABLE, str(root))
    return root


@pytest.fixture
def cli() -> Cli:
    """`letta-apply` in-process against a fresh fake server, its waits on a fake clock."""
    return Cli()
