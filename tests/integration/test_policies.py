"""Policy rules against the real server: a plan that breaks a rule at `error` writes nothing (not
the stack lock, not a serial: counted at the proxy), first on an empty stack, then on one that
exists; a rule at `warning` applies and reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from letta_apply import LettaClient, PolicyViolated, Stack, Stacks
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


def test_programs_and_many_stacks_are_held_by_policies_too(
    server: str, api: httpx.Client, stack: str, tmp_path: Path
) -> None:
    """The Python API and many stacks check the rules given and the manifest's own `policy:`:
    a refused stack writes nothing (counted at the proxy), the others apply."""
    deny = _policy(tmp_path, "error")
    one = tmp_path / "one.yaml"
    one.write_text(MANIFEST.replace("{stack}", stack), encoding="utf-8")
    folder = tmp_path / "tenants"
    folder.mkdir()
    names = [f"{stack}-{i}" for i in range(3)]
    for i, name in enumerate(names):
        text = MANIFEST.replace("{stack}", name)
        text = text.replace("  helper:", f"  helper:\n    name: {name}")
        if i == 1:  # this tenant's manifest names the rule itself
            text += f"policy: {{files: [{deny}]}}\n"
        (folder / f"{i}.yaml").write_text(text, encoding="utf-8")
    with LettaClient(server) as client:
        before = len(RECORDER.sent)
        with pytest.raises(PolicyViolated):
            Stack.from_files(str(one), policies=deny).apply(client)
        assert RECORDER.sent[before:], "the plan read the server through the proxy"
        assert _writes(before) == []
        result = Stacks.from_folder(folder).apply(client)
        (refused,) = result.failed
        assert refused.stack == names[1]
        assert stack_resources(api, names[1]) == ([], [])
        for name in (names[0], names[2]):
            assert [a["name"] for a in stack_resources(api, name)[1]] == [name]
        assert Stacks.from_folder(folder).destroy(client).runs
    for name in names:
        assert stack_resources(api, name)[1] == []
