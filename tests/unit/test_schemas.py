"""The JSON Schemas live inside the package (the code reads them from there: the manifest's is
composed of a shared part and each resource kind's fragment); `schemas/` at the top of the
repository publishes them for editors and other tools, under a stable `$id` in the project's
repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema

from letta_apply.kinds import KINDS
from letta_apply.kinds.reference import pages
from letta_apply.manifest.published import manifest_schema_id, published_schema
from letta_apply.manifest.validate import schema

ROOT = Path(__file__).resolve().parents[2]


def test_published_manifest_schema_is_the_composed_one() -> None:
    published = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
    assert published == published_schema(KINDS), (
        "schemas/manifest.schema.json is out of date: run scripts/schemas"
    )
    jsonschema.Draft202012Validator.check_schema(published)


def test_schemas_have_a_stable_id_in_the_projects_repository() -> None:
    """Editors and other tools find the schemas by `$id`: the published files' raw URL on the
    main branch of the repository pyproject.toml names."""
    # (tomllib is 3.11+; the project supports 3.10)
    m = re.search(
        r'^Repository = "https://github.com/(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M
    )
    assert m, "pyproject.toml names the repository under [project.urls]"
    repo = m.group(1)
    raw = f"https://raw.githubusercontent.com/{repo}/main/schemas/"
    assert manifest_schema_id() == raw + "manifest.schema.json"
    plan = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())
    assert plan["$id"] == raw + "plan.schema.json"
    readme = (ROOT / "README.md").read_text()
    assert f"$schema={manifest_schema_id()}" in readme


def test_the_published_manifest_schema_takes_references_where_values_go() -> None:
    """Files as written hold ${...} references that letta-apply resolves before its own check
    (which still refuses a stack name that is not one once resolved)."""
    validator = jsonschema.Draft202012Validator(published_schema(KINDS))
    written = {
        "version": 1,
        "stack": "support-${var.env}",
        "variables": {"env": {"type": "string"}, "limit": {"type": "number"}},
        "blocks": {"b": {"value": "v", "limit": "${var.limit}", "tags": "${var.tags}"}},
        "agents": {"a": {"model": "${var.model}", "blocks": ["b[${each.key}]"]}},
    }
    assert not list(validator.iter_errors(written))
    assert list(jsonschema.Draft202012Validator(schema(KINDS)).iter_errors(written))
    # Not in keys, the format version, or the variables themselves: those are taken as written.
    for bad in (
        {**written, "version": "${var.v}"},
        {**written, "variables": {"env": {"type": "${var.t}"}}},
        {**written, "agents": {"${var.name}": {}}},
    ):
        assert list(validator.iter_errors(bad)), bad


def test_published_plan_schema_is_the_packages() -> None:
    source = ROOT / "letta_apply" / "plan" / "schemas" / "plan.schema.json"
    assert not source.is_symlink()
    assert (ROOT / "schemas" / "plan.schema.json").read_text() == source.read_text()


def test_every_kind_contributes_its_section() -> None:
    s = schema(KINDS)
    for k in KINDS:
        assert s["properties"][k.section] == k.schema()["section"]
        assert set(k.schema()["$defs"]) <= set(s["$defs"])
    assert not set(s["properties"]) - {k.section for k in KINDS} - {
        "version", "stack", "variables", "imports", "moved", "removed", "policy",
    }  # fmt: skip


def test_the_kind_reference_pages_are_current() -> None:
    docs = ROOT / "docs" / "kinds"
    expected = pages((ROOT / "examples").glob("*.yaml"))
    assert {p.name for p in docs.glob("*.md")} == set(expected), "run scripts/schemas"
    for name, text in expected.items():
        assert (docs / name).read_text(encoding="utf-8") == text, (
            f"docs/kinds/{name}: run scripts/schemas"
        )
    # Each field a kind manages is on its page with its policy (those the schema names).
    for k in KINDS:
        rows = {
            line.split("`")[1]: line for line in expected[f"{k.name}.md"].splitlines()
            if line.startswith("| `")
        }  # fmt: skip
        for f in k.fields:
            assert f.name not in rows or f"| {f.policy} |" in rows[f.name], (k.name, f.name)
        assert len(rows) >= len(k.fields) - 1, k.name
