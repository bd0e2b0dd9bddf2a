"""Fixtures shared by the unit tests (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from letta_apply import pipeline
from letta_apply.core.model import Desired
from letta_apply.errors import Diagnostic
from letta_apply.kinds import KINDS
from letta_apply.manifest import language, parse
from letta_apply.manifest.files import Document
from letta_apply.manifest.parse import Parsing
from letta_apply.manifest.quick import quick_values
from letta_apply.manifest.variables import Options
from letta_apply.memory.backup import ROOT_VARIABLE
from tests.helpers import Cli

# With LETTA_APPLY_COMPARE_QUICK=1, every desired state a test gets by the quick path
# (manifest.quick, without positions) is compared with the one read with positions.
COMPARE_QUICK = os.environ.get("LETTA_APPLY_COMPARE_QUICK") == "1"


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


@pytest.fixture(autouse=True)
def quick_reader_agrees(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every YAML text a test has read with positions, the quick reader (manifest.quick)
    declines or reads into the same values with no problem found: a differential check over
    every manifest of the suite, hostile ones included."""
    read = parse.parse_text

    def checked(
        text: str, file: str, parsing: Parsing | None = None
    ) -> tuple[Document, list[Diagnostic]]:
        doc, errors = read(text, file, parsing)
        quick = quick_values(text)
        if quick is not None:
            assert not errors and repr(quick) == repr(doc.data), f"quick reader differs: {file}"
        return doc, errors

    monkeypatch.setattr(parse, "parse_text", checked)
    if COMPARE_QUICK:
        quick_path = pipeline._quick

        def compared(paths: list[str], options: Options) -> Desired | None:
            got = quick_path(paths, options)
            if got is not None:
                slow = pipeline._validated(language.load_source(paths, KINDS, options))
                assert slow == got, f"quick path differs: {paths}"
            return got

        monkeypatch.setattr(pipeline, "_quick", compared)
    yield
