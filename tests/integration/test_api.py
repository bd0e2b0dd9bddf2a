"""The README's "Use from Python" example, run as written against the real server (with a stack
of its own), then checked and cleaned up."""

from __future__ import annotations

import contextlib
import io
import re
import uuid
from pathlib import Path
from typing import Any, cast

import httpx

from letta_apply import LettaClient, Stack
from tests.integration.conftest import ROOT, stack_resources


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section has one python example"
    return str(blocks[0])


def test_the_readme_example_runs_against_the_server(server: str, api: httpx.Client) -> None:
    code = readme_example()
    assert '"acme"' in code and "http://127.0.0.1:8283" in code
    tenant = f"t{uuid.uuid4().hex[:10]}"  # a stack no other test uses
    code = code.replace('"acme"', f'"{tenant}"').replace("http://127.0.0.1:8283", server)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    finally:
        # Whatever the example did before a failure is removed: it owns nothing afterwards.
        namespace: dict[str, object] = {}
        exec(compile(code.split("with LettaClient", 1)[0], "README.md", "exec"), namespace)
        with LettaClient(server) as client:
            data = cast(dict[str, Any], namespace["manifest"])
            Stack.from_dict(data, variables={"tenant": tenant}).destroy(client, lock=False)
    printed = out.getvalue()
    assert f'letta-apply plan: stack "tenant-{tenant}" on {server}' in printed
    assert "Plan: 2 to create" in printed
    assert re.search(r"^agent\.assistant create agent-", printed, re.M)
    assert "'block.company': 'block-" in printed
    blocks, agents = stack_resources(api, f"tenant-{tenant}")
    assert blocks == [] and agents == []


def test_from_files_and_from_dict_give_the_same_plan(server: str, tmp_path: Path) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nstack: tenant-${var.tenant}\nvariables:\n  tenant: {}\n"
        "blocks:\n  company: {value: Facts}\n",
        encoding="utf-8",
    )
    data = {
        "version": 1,
        "stack": "tenant-${var.tenant}",
        "variables": {"tenant": {}},
        "blocks": {"company": {"value": "Facts"}},
    }
    with LettaClient(server) as client:
        a = Stack.from_files([str(path)], {"tenant": tenant})
        b = Stack.from_dict(data, {"tenant": tenant})
        assert a.plan(client).changes == b.plan(client).changes
        try:
            assert len(b.apply(client).done) == 1
            assert a.plan(client).changes == ()
        finally:
            b.destroy(client)
        assert a.plan(client).changes == b.plan(client).changes
