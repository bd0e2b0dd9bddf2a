"""Every kind against the real server through the same acceptance steps (acceptance.py): apply
from empty, an empty plan, a re-apply that writes nothing, an import round trip where the kind
can be imported, and a destroy that leaves nothing of the stack.

The kinds are the registry's: a kind without a case here fails, and so does a case whose import
step disagrees with what the kind supports. A case is data: a small manifest (the kind and what
it depends on), the files it reads, and how the import step makes one by hand.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from letta_apply.kinds import KINDS, kind

from .acceptance import Adopt, Case, Steps, importable, steps
from .conftest import Run
from .llmstub import LlmStub

HERE = Path(__file__).resolve().parent
KEY = "sk-accept-Wq4Zp8Ld1"  # the providers' key: a sensitive variable
FREE = "model: letta/letta-free, embedding: letta/letta-free"
EMBEDDING = """\
    embedding:
      embedding_endpoint_type: openai
      embedding_endpoint: {endpoint}
      embedding_model: hashed-words
      embedding_dim: 384
"""
STDIO = "mcp_server_type: stdio, command: {python}, args: [{script}, {dir}/tools.txt]"
PROVIDER = "provider_type: openai, api_key: '${var.key}', base_url: '{llm}'"
TOOL = '''def {stack_}_NAME(ticket_id: str) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id.

    Returns:
        str: the ticket's status
    """
    return ticket_id + ": open"
'''


Fill = Callable[[str], str]


def made(api: httpx.Client, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """A resource made by hand (outside any stack): what Letta answered."""
    answer = api.post(route, json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def agent_ids(api: httpx.Client, *names: str) -> list[str]:
    return [api.get("/v1/agents/", params={"name": n}).json()[0]["id"] for n in names]


# How the import step makes one of each kind by hand, named after the stack.


def hand_block(api: httpx.Client, fill: Fill) -> dict[str, Any]:
    return made(api, "/v1/blocks/", {"label": "adopted", "value": fill("Adopted by {stack}")})


def hand_agent(api: httpx.Client, fill: Fill) -> dict[str, Any]:
    body = {"name": fill("{stack}-adopted"), "model": "letta/letta-free",
            "embedding": "letta/letta-free"}  # fmt: skip
    return made(api, "/v1/agents/", body)


def hand_tool(api: httpx.Client, fill: Fill) -> dict[str, Any]:
    return made(api, "/v1/tools/", {"source_code": fill(TOOL.replace("NAME", "adopted"))})


def hand_identity(api: httpx.Client, fill: Fill) -> dict[str, Any]:
    body = {"identifier_key": fill("{stack}-adopted"), "identity_type": "user", "name": "Adopted"}
    return made(api, "/v1/identities/", body)


def hand_group(api: httpx.Client, fill: Fill) -> dict[str, Any]:
    members = agent_ids(api, fill("{stack}-boss"), fill("{stack}-worker"))
    body = {"description": fill("{stack} adopted"), "agent_ids": members,
            "manager_config": {"manager_type": "round_robin"}}  # fmt: skip
    return made(api, "/v1/groups/", body)


def hand_mcp_server(api: httpx.Client, fill: Fill) -> dict[str, Any]:
    config = {"mcp_server_type": "stdio", "command": fill("{python}"),
              "args": [fill("{script}"), fill("{dir}/tools.txt")]}  # fmt: skip
    return made(api, "/v1/mcp-servers/", {"server_name": fill("{stack}-adopted"), "config": config})


def hand_provider(api: httpx.Client, fill: Fill) -> dict[str, Any]:
    body = {"name": fill("{stack}-adopted"), "provider_type": "openai", "api_key": KEY,
            "base_url": fill("{llm}")}  # fmt: skip
    return made(api, "/v1/providers/", body)


CASES: dict[str, Case] = {
    "block": Case(
        route="/v1/blocks/",
        manifest="blocks:\n  notes: {value: Notes of {stack}, description: Shared notes}\n",
        adopt=Adopt(entry="{value: Adopted by {stack}}", make=hand_block),
    ),
    "agent": Case(
        route="/v1/agents/",
        manifest=(
            f"agents:\n  helper: {{name: {{stack}}-helper, {FREE},"
            " memory_blocks: [{label: persona, value: I help}]}\n"
        ),
        adopt=Adopt(f"{{name: {{stack}}-adopted, {FREE}}}", hand_agent, name_field="name"),
    ),
    "tool": Case(
        route="/v1/tools/",
        manifest="tools:\n  lookup: {source_file: lookup.py}\n",
        files={
            "lookup.py": TOOL.replace("NAME", "lookup"),
            "adopted.py": TOOL.replace("NAME", "adopted"),
        },
        adopt=Adopt("{source_file: adopted.py}", hand_tool, name_field="name"),
    ),
    "identity": Case(
        route="/v1/identities/",
        manifest=(
            "identities:\n  acme: {identifier_key: {stack}-acme, identity_type: org, name: Acme}\n"
        ),
        adopt=Adopt(
            "{identifier_key: {stack}-adopted, identity_type: user, name: Adopted}",
            hand_identity,
            name_field="identifier_key",
        ),
        deprecated_routes=True,
    ),
    "group": Case(
        route="/v1/groups/",
        manifest=(
            f"agents:\n  boss: {{name: {{stack}}-boss, {FREE}}}\n"
            f"  worker: {{name: {{stack}}-worker, {FREE}}}\n"
            "groups:\n  team: {manager_type: round_robin, agents: [boss, worker],"
            " description: Team of {stack}}\n"
        ),
        adopt=Adopt(
            "{manager_type: round_robin, agents: [boss, worker], description: {stack} adopted}",
            hand_group,
        ),
        deprecated_routes=True,
    ),
    "folder": Case(
        route="/v1/folders/",
        manifest=f"folders:\n  docs:\n    name: {{stack}}-docs\n{EMBEDDING}"
        '    files: ["docs/*.md"]\n',
        files={"docs/refunds.md": "# Refunds\n\nReturns within 30 days get a full refund.\n"},
        needs=("endpoint",),
    ),
    "archive": Case(
        route="/v1/archives/",
        manifest=f"archives:\n  facts:\n    name: {{stack}}-facts\n{EMBEDDING}"
        '    passages: {files: ["kb/*.md"], separator: "\\n---\\n"}\n',
        files={"kb/facts.md": "Invoices go out monthly.\n---\nAnvils ship by freight.\n"},
        needs=("endpoint",),
    ),
    "mcp_server": Case(
        route="/v1/mcp-servers/",
        manifest=f"mcp_servers:\n  local: {{server_name: {{stack}}-local, {STDIO}}}\n",
        files={"tools.txt": "alpha\n"},
        needs=("python", "script"),
        adopt=Adopt(f"{{server_name: {{stack}}-adopted, {STDIO}}}", hand_mcp_server, "server_name"),
    ),
    "provider": Case(
        route="/v1/providers/",
        manifest=(
            "variables:\n  key: {sensitive: true}\n"
            f"providers:\n  local: {{name: {{stack}}-local, {PROVIDER}}}\n"
        ),
        variables={"key": KEY},
        needs=("llm",),
        adopt=Adopt(f"{{name: {{stack}}-adopted, {PROVIDER}}}", hand_provider, "name"),
    ),
}


def _param(name: str) -> Any:
    case = CASES.get(name)
    marks = [pytest.mark.deprecated_routes] if case and case.deprecated_routes else []
    return pytest.param(name, marks=marks, id=name)


@pytest.fixture(scope="module")
def llm() -> Iterator[str]:
    """A local OpenAI-compatible endpoint for the providers (its models named for this run:
    Letta serves every such provider's models under one prefix)."""
    stub = LlmStub(["accept-chat"]).start()
    yield stub.url
    stub.stop()


@pytest.fixture
def values(request: pytest.FixtureRequest, kind_name: str) -> dict[str, str]:
    """The placeholders the kind's case needs, from the session's helpers (started only for
    the kinds that need them)."""
    given = {"python": sys.executable, "script": str(HERE / "mcpserver.py")}
    case = CASES.get(kind_name)
    needs = case.needs if case else ()
    return {n: given[n] if n in given else str(request.getfixturevalue(n)) for n in needs}


@pytest.fixture
def accept(
    kind_name: str, run: Run, api: httpx.Client, stack: str, tmp_path: Path,
    values: dict[str, str],
) -> Iterator[Steps]:  # fmt: skip
    assert kind_name in CASES, f"kind {kind_name!r} has no acceptance case in test_acceptance.py"
    yield from steps(kind(kind_name), CASES[kind_name], run, api, stack, tmp_path, values)


@pytest.mark.parametrize("kind_name", [_param(k.name) for k in KINDS])
def test_kind_accepts(kind_name: str, accept: Steps) -> None:
    k = kind(kind_name)
    case = CASES[kind_name]
    assert (case.adopt is not None) == importable(k), (
        f"{kind_name}: the case's import step must match whether the kind can be imported"
    )
    assert not k.import_by_name or (case.adopt and case.adopt.name_field)

    path = accept.apply_from_empty()
    accept.plan_is_empty(path)
    accept.reapply_writes_nothing(path)
    if case.adopt is not None:
        path = accept.import_round_trip()
    accept.destroy_leaves_nothing(path)


def test_every_case_is_a_kind() -> None:
    assert sorted(CASES) == sorted(k.name for k in KINDS)
