"""Policy rules against the real server: a plan that breaks a rule at `error` writes nothing (not
the stack lock, not a serial: counted at the proxy), first on an empty stack, then on one that
exists; a rule at `warning` applies and reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RECORDER, Run, stack_resources

pytestmark = pytest.mark.integration

MANIFEST = """\
version: 1
stack: {stack}
blocks:
  notes:
    value: Nothing yet.
agents:
  helper:
    model: letta/letta-free
    embedding: letta/letta-free
    tags: [owner:platform]
    memory_blocks:
      - {label: persona, value: I help.}
    blocks: [notes]
"""

RULES = """\
rules:
  - id: approved-models
    applies_to: {kinds: [agent]}
    condition: resource.model in ["openai/gpt-4o-mini"]
    severity: SEVERITY
    message: "model {{resource.model}} is not approved"
"""


def _policy(tmp_path: Path, severity: str) -> str:
    path = tmp_path / f"{severity}.yaml"
    path.write_text(RULES.replace("SEVERITY", severity), encoding="utf-8")
    return str(path)


def _writes(before: int) -> list[str]:
    """The requests that may change the server sent since `before` (searches are reads)."""
    return [
        f"{s.method} {s.path}"
        for s in RECORDER.sent[before:]
        if s.method != "GET" and not s.path.rstrip("/").endswith("/search")
    ]


def test_a_plan_breaking_an_error_rule_writes_nothing(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, tmp_path: Path
) -> None:
    path, deny = manifest(MANIFEST), _policy(tmp_path, "error")
    before = len(RECORDER.sent)
    r = run("apply", "-f", path, "--policy", deny, "--auto-approve")
    assert r.code == 1, r.err
    assert "error: policy: 1 violation(s) at error; nothing was applied [LA655]" in r.err
    assert "agent.helper: model letta/letta-free is not approved [LA655]" in r.out
    assert RECORDER.sent[before:], "the plan read the server through the proxy"
    assert _writes(before) == []
    assert stack_resources(api, stack) == ([], [])

    # The stack made, then a change the rule refuses: still nothing written.
    assert run("apply", "-f", path, "--auto-approve").code == 0
    changed = manifest(MANIFEST.replace("value: Nothing yet.", "value: Something."))
    before = len(RECORDER.sent)
    r = run("apply", "-f", changed, "--policy", deny, "--auto-approve", "--format", "json")
    assert r.code == 1
    assert _writes(before) == []
    (block,) = [b for b in stack_resources(api, stack)[0] if b["label"] == "notes"]
    assert block["value"] == "Nothing yet."
    assert run("destroy", "-f", path, "--auto-approve").code == 0


def test_a_warning_rule_applies_and_reports(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str, tmp_path: Path
) -> None:
    path = manifest(MANIFEST)
    r = run("apply", "-f", path, "--policy", _policy(tmp_path, "warning"), "--auto-approve")
    assert r.code == 0, r.err
    assert "Policy warnings (apply goes on):" in r.out
    assert "agent.helper: model letta/letta-free is not approved [LA656]" in r.out
    assert r.writes > 0
    _, agents = stack_resources(api, stack)
    assert [a["name"] for a in agents] == ["helper"]
    assert run("destroy", "-f", path, "--auto-approve").code == 0
