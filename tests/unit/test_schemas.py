"""The JSON Schemas live inside the package (the code reads them from there); `schemas/` at the
top of the repository publishes the same files for editors and other tools."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("published", "source"),
    [
        ("schemas/manifest.schema.json", "letta_apply/manifest/schemas/manifest.schema.json"),
        ("schemas/plan.schema.json", "letta_apply/plan/schemas/plan.schema.json"),
    ],
)
def test_published_schema_is_the_packages(published: str, source: str) -> None:
    assert not (ROOT / source).is_symlink()
    assert (ROOT / published).read_text() == (ROOT / source).read_text(), (
        f"{published} differs from {source}: run scripts/schemas"
    )
