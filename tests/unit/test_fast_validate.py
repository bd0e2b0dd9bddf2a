"""The compiled validator only tells a valid manifest fast: whatever it says, the diagnostics
are jsonschema's, and the two never disagree on what is valid (a string it would take by its own
regexes, Python's reject)."""

from __future__ import annotations

from pathlib import Path

import pytest

from letta_apply.errors import Diagnostic, ManifestError
from letta_apply.kinds import KINDS
from letta_apply.manifest import validate as validate_module
from letta_apply.manifest.parse import load_file
from letta_apply.manifest.validate import validate
from tests.helpers import write

HEAD = "version: 1\nstack: s\n"
MANIFESTS = [
    HEAD + "agents:\n  a:\n    model: letta/letta-free\n    embedding: letta/letta-free\n",
    # \x1c is whitespace to Python's \s, not to the compiled validator's: a handle with it is
    # invalid, as jsonschema with Python's regexes says.
    HEAD + 'agents:\n  a:\n    model: "letta/letta\\x1cfree"\n    embedding: letta/letta-free\n',
    HEAD + "agents:\n  a:\n    model: letta/letta-free\n    embedding: letta/letta-free\n"
    "    tool_rules: [{type: nope}]\n    blocks: [x, x]\n",
    HEAD + "blocks:\n  b: {value: v, limit: 0}\n  c: {value: v, labl: c}\n",
    "version: true\nstack: 'prod\n'\n",
    HEAD + "blocks:\n  b: {value: v, limit: 1.0}\n",
]


def _diagnostics(tmp_path: Path, text: str) -> list[Diagnostic] | str:
    path = write(tmp_path, text)
    try:
        validate(load_file(path), KINDS)
    except ManifestError as e:
        return e.diagnostics
    return "valid"


@pytest.mark.parametrize("text", MANIFESTS)
def test_same_diagnostics_with_and_without_the_compiled_validator(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _diagnostics(tmp_path, text)
    monkeypatch.setattr(validate_module, "_surely_valid", lambda data, kinds: False)
    assert _diagnostics(tmp_path, text) == fast


def test_the_compiled_validator_is_used_and_agrees_on_python_regexes() -> None:
    kinds = tuple(KINDS)
    ok = {"version": 1, "stack": "s"}
    assert validate_module._surely_valid(ok, kinds)
    bad = {**ok, "agents": {"a": {"model": "letta/letta\x1cfree", "embedding": "letta/x"}}}
    assert not validate_module._surely_valid(bad, kinds)
    assert not validate_module._surely_valid({**ok, "stack": "prod\n"}, kinds)
