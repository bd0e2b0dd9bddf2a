"""The JSON Schemas live inside the package (the code reads them from there: the manifest's is
composed of a shared part and each resource kind's fragment); `schemas/` at the top of the
repository publishes them for editors and other tools."""

from __future__ import annotations

import json
from pathlib import Path

from letta_apply.kinds import KINDS
from letta_apply.manifest.validate import schema

ROOT = Path(__file__).resolve().parents[2]


def test_published_manifest_schema_is_the_composed_one() -> None:
    published = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
    assert published == schema(), "schemas/manifest.schema.json is out of date: run scripts/schemas"


def test_published_plan_schema_is_the_packages() -> None:
    source = ROOT / "letta_apply" / "plan" / "schemas" / "plan.schema.json"
    assert not source.is_symlink()
    assert (ROOT / "schemas" / "plan.schema.json").read_text() == source.read_text()


def test_every_kind_contributes_its_section() -> None:
    s = schema()
    for k in KINDS:
        assert s["properties"][k.section] == k.schema()["section"]
        assert set(k.schema()["$defs"]) <= set(s["$defs"])
    assert not set(s["properties"]) - {k.section for k in KINDS} - {
        "version", "stack", "variables", "imports", "moved",
    }  # fmt: skip
