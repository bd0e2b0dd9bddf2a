"""The checker the Cloud contract test relies on (openapi.py), and the list of requests only a
self-hosted server serves: each entry says why and what letta-apply does on Cloud, names a route
the self-hosted API has, and one Letta Cloud does not have."""

from __future__ import annotations

import json

import pytest

from .openapi import (
    CLOUD_SPEC,
    SELF_HOSTED_SPEC,
    Api,
    SelfHostedOnly,
    Sent,
    self_hosted_only,
    shape,
    unexplained,
)

CLOUD = Api.load(CLOUD_SPEC)
SELF_HOSTED = Api.load(SELF_HOSTED_SPEC)


def _json(method: str, target: str, body: object) -> Sent:
    return Sent(method, target, json.dumps(body).encode(), "application/json")


@pytest.mark.parametrize(
    "sent",
    [
        Sent(
            "GET",
            "/v1/agents/?tags=letta-apply%3As&include=agent.blocks&include=agent.tags"
            "&limit=101&order=asc&after=agent-1&project_id=proj-1",
        ),
        Sent("GET", "/v1/blocks/?connected_to_agents_count_gt=1&match_all_tags=true"),
        Sent("GET", "/v1/blocks/count"),  # a literal segment, not block "count"
        Sent("PATCH", "/v1/agents/agent-1/core-memory/blocks/attach/block-2"),
        _json("POST", "/v1/blocks/", {"label": "persona", "value": "I am", "limit": 5000}),
        _json("PATCH", "/v1/agents/agent-1", {"tags": ["a"], "metadata": {"k": {"n": 1}}}),
        Sent(
            "POST",
            "/v1/folders/source-1/upload?name=policies%2Frefunds.md&duplicate_handling=replace",
            b"--b\r\n...\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
    ],
    ids=lambda s: f"{s.method} {s.path}",
)
def test_what_cloud_declares_passes(sent: Sent) -> None:
    assert CLOUD.violations(sent) == []


@pytest.mark.parametrize(
    ("sent", "problem"),
    [
        (_json("POST", "/v1/tools/generate-schema", {"code": "def f(): ..."}), "no such route"),
        (Sent("DELETE", "/v1/health/"), "no such route"),
        (Sent("GET", "/v1/agents/?bogus=1"), "query parameter 'bogus' is not declared"),
        (Sent("GET", "/v1/agents/?include=agent.everything"), "'include'="),
        (Sent("GET", "/v1/agents/?limit=many"), "'limit'="),
        (Sent("GET", "/v1/agents/agent-1?order=asc&order=desc"), "'order' is not declared"),
        (Sent("GET", "/v1/blocks/?order=asc&order=desc"), "'order'="),  # not an array
        (
            _json("POST", "/v1/blocks/", {"label": "l", "value": "v", "limit": "big"}),
            "body['limit']: does not satisfy type 'integer'",
        ),
        (_json("PATCH", "/v1/agents/agent-1/core-memory/blocks/attach/block-2", {}), "no JSON"),
        (Sent("POST", "/v1/blocks/"), "requires a JSON body"),
        (Sent("POST", "/v1/blocks/", b"label=x", "application/x-www-form-urlencoded"), "not JSON"),
        (_json("POST", "/v1/folders/source-1/upload", {"file": "x"}), "not multipart"),
    ],
)
def test_what_cloud_would_refuse_is_found(sent: Sent, problem: str) -> None:
    found = CLOUD.violations(sent)
    assert len(found) == 1 and problem in found[0], found


def test_what_a_body_breaks_is_said_without_its_values() -> None:
    secret = "sk-let-0123456789"
    found = CLOUD.violations(_json("PATCH", "/v1/blocks/block-1", {"limit": secret}))
    assert found and all(secret not in f for f in found), found


def test_distinct_requests_are_method_template_and_parameter_names() -> None:
    a = shape(CLOUD, Sent("GET", "/v1/agents/agent-1?include=agent.blocks"))
    b = shape(CLOUD, Sent("GET", "/v1/agents/agent-2?include=agent.tags&include=agent.blocks"))
    c = shape(CLOUD, Sent("GET", "/v1/agents/agent-2"))
    assert a == b == ("GET", "/v1/agents/{agent_id}", ("include",))
    assert c == ("GET", "/v1/agents/{agent_id}", ())


def test_every_listed_request_is_self_hosted_only_and_says_what_replaces_it() -> None:
    listed = self_hosted_only()
    assert len({(e.method, e.path) for e in listed}) == len(listed), "listed twice"
    assert [p for e in listed for p in unexplained(e, CLOUD, SELF_HOSTED)] == []


@pytest.mark.parametrize(
    ("entry", "problems"),
    [
        (SelfHostedOnly("POST", "/v1/tools/generate-schema", "why", "instead"), []),
        (
            SelfHostedOnly(
                "GET",
                "/v1/sandbox-config/{sandbox_config_id}/environment-variable",
                "why",
                "instead",
            ),
            [],
        ),
        (
            SelfHostedOnly("POST", "/v1/tools/generate-schema", " ", ""),
            ["no why", "no cloud_fallback"],
        ),
        (SelfHostedOnly("GET", "/v1/blocks/{block_id}", "why", "instead"), ["Cloud serves it"]),
        (SelfHostedOnly("GET", "/v1/nowhere", "why", "instead"), ["not a route"]),
        (
            # Its path is one of Cloud's templates filled in: GET /v1/tools/{tool_id}.
            SelfHostedOnly("GET", "/v1/tools/generate-schema", "why", "instead"),
            ["not a route", "Cloud serves it"],
        ),
    ],
)
def test_a_wrong_entry_is_found(entry: SelfHostedOnly, problems: list[str]) -> None:
    found = unexplained(entry, CLOUD, SELF_HOSTED)
    assert len(found) == len(problems)
    assert all(p in f for p, f in zip(problems, found, strict=True)), found
