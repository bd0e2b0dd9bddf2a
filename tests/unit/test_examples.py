"""Every example manifest is one an editor checks as it is typed: its first line names the
published schema (`# yaml-language-server: $schema=...`, a path that works in a checkout), that
schema accepts the file as written, and `letta-apply validate` accepts the manifest it belongs to
(a file, or a folder with each of its `env/` var files)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers import Cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCHEMA_FILE = ROOT / "schemas" / "manifest.schema.json"
PUBLISHED = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)")


def _data(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _is_manifest(path: Path) -> bool:
    """A manifest, or a file of a folder manifest: a mapping of the manifest's sections (var
    files and CI configurations are mappings of other keys)."""
    data = _data(path)
    return isinstance(data, dict) and bool(set(data) & set(PUBLISHED["properties"]))


MANIFESTS = sorted(
    p for p in [*EXAMPLES.rglob("*.yaml"), *EXAMPLES.rglob("*.yml")] if _is_manifest(p)
)
# What `letta-apply validate -f` takes: each file at the top of examples/, each folder below it.
ROOTS = sorted({p if p.parent == EXAMPLES else p.parent for p in MANIFESTS})


def _name(path: Path) -> str:
    return path.relative_to(EXAMPLES).as_posix()


def test_the_examples_are_all_found() -> None:
    assert {_name(p) for p in MANIFESTS} >= {
        "shared-memory.yaml", "environments/base.yaml", "environments/agents.yaml",
    }  # fmt: skip
    assert {_name(p) for p in ROOTS} >= {"shared-memory.yaml", "environments"}


@pytest.mark.parametrize("path", MANIFESTS, ids=_name)
def test_example_names_the_published_schema_on_its_first_line(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = MODELINE.fullmatch(first)
    assert m, f"{_name(path)}: first line is not the yaml-language-server modeline: {first!r}"
    # Relative to the file, as editors resolve it: it works in any checkout, offline.
    assert (path.parent / m.group(1)).resolve() == SCHEMA_FILE


@pytest.mark.parametrize("path", MANIFESTS, ids=_name)
def test_example_as_written_is_valid_against_the_published_schema(path: Path) -> None:
    errors = list(jsonschema.Draft202012Validator(PUBLISHED).iter_errors(_data(path)))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def _var_files(root: Path) -> list[list[str]]:
    """The --var-file sets a root is validated with: none, or each of its env/ files."""
    env = sorted((root / "env").glob("*.yaml")) if root.is_dir() else []
    return [["--var-file", str(f)] for f in env] or [[]]


def _secrets(root: Path) -> list[str]:
    """Variables declared sensitive without a default: set in the environment, never in files."""
    files = sorted(root.glob("*.yaml")) if root.is_dir() else [root]
    out = []
    for f in files:
        for name, spec in ((_data(f) or {}).get("variables") or {}).items():
            if spec.get("sensitive") and "default" not in spec:
                out.append(name)
    return out


@pytest.mark.parametrize("root", ROOTS, ids=_name)
def test_example_passes_letta_apply_validate(
    root: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _secrets(root):
        monkeypatch.setenv(f"LETTA_APPLY_VAR_{name}", "not-a-real-secret")
    for var_files in _var_files(root):
        code, out, err = cli("validate", "-f", str(root), *var_files)
        assert (code, err) == (0, ""), err
        assert ": valid: stack " in out


def test_the_published_schema_still_catches_mistakes_in_examples() -> None:
    """References are accepted where values go; a typo or a wrong value is still an error."""
    validator = jsonschema.Draft202012Validator(PUBLISHED)
    base = _data(EXAMPLES / "environments" / "base.yaml")
    assert not list(validator.iter_errors(base))
    typo = {**base, "agents": {"a": {"modle": "letta/letta-free"}}}
    wrong = {**base, "blocks": {"b": {"value": "v", "limit": "ten"}}}
    reference = {**base, "blocks": {"b": {"value": "v", "limit": "${var.limit}"}}}
    bad_stack = {**base, "stack": "Support Team"}
    variable_typo = {**base, "variables": {"env": {"tyep": "string"}}}
    for doc in (typo, wrong, bad_stack, variable_typo):
        assert list(validator.iter_errors(doc)), doc
    assert not list(validator.iter_errors(reference))
