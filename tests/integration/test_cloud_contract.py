"""The contract with Letta Cloud: every request the integration tests before this one made
letta-apply send (recorded by the session's proxy, see conftest.py) is one Letta Cloud serves,
checked against Cloud's API description (tests/contract/cloud-openapi.json): its method and path,
its query parameters and their values, its JSON body.

A request that only a self-hosted server serves is allowed in a direct run when
tests/contract/self_hosted_only.json lists it with what letta-apply does on Cloud instead; sent
through the Cloud-like proxy it is a violation like any other. After a run of the whole
integration suite, a listed request that was not sent is an error too: the list says what
letta-apply does, not what it once did.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from tests.contract.openapi import CLOUD_SPEC, SELF_HOSTED_SPEC, Api, Sent, self_hosted_only, shape

from .conftest import MODE, RECORDER, SESSION

pytestmark = pytest.mark.contract


def test_every_request_sent_is_one_letta_cloud_serves(server: str) -> None:
    recorded = RECORDER.sent
    # Tests' own requests (such as the proxy's tests asking for what Cloud refuses) are theirs.
    sent = [s for s in recorded if s.by_letta_apply]
    assert sent, (
        "no request was recorded: this test checks those of the integration tests run before "
        "it in the same session (pytest tests/integration)"
    )
    cloud, self_hosted = Api.load(CLOUD_SPEC), Api.load(SELF_HOSTED_SPEC)
    listed = {(e.method, e.path): e for e in self_hosted_only()}

    shapes: Counter[tuple[str, str, tuple[str, ...]]] = Counter()
    excused: Counter[tuple[str, str]] = Counter()
    violations: dict[str, list[Sent]] = defaultdict(list)
    for request in sent:
        found = self_hosted.match(request.method, request.path)
        route = (request.method, found.operation.template if found else request.path)
        self_hosted_only_route = cloud.match(request.method, request.path) is None
        if self_hosted_only_route and not request.cloud and route in listed:
            excused[route] += 1
            shapes[(*route, shape(cloud, request)[2])] += 1
            continue
        shapes[shape(cloud, request)] += 1
        for problem in cloud.violations(request):
            violations[problem].append(request)

    report = [
        f"{problem}\n    {len(requests)}x, e.g. {requests[0].method} {requests[0].target}"
        for problem, requests in sorted(violations.items())
    ]
    stale_checked = SESSION.whole_suite and MODE == "direct"
    SESSION.summary.append(
        f"Cloud contract ({MODE}): {len(sent)} requests by letta-apply "
        f"({len(recorded) - len(sent)} by the tests' own clients, not checked), "
        f"{len(shapes)} distinct (method, path template, query parameter names) checked "
        f"against {CLOUD_SPEC.name}; {len(violations)} violation(s); self-hosted-only routes "
        "sent: "
        + (", ".join(f"{m} {p} ({n}x)" for (m, p), n in sorted(excused.items())) or "none")
        + (
            "; every listed one sent"
            if stale_checked
            else "; the list not checked for routes no longer sent (only after a direct run "
            "of the whole suite)"
        )
    )
    assert not violations, "requests Letta Cloud would not serve:\n" + "\n".join(report)

    if stale_checked:
        stale = sorted(set(listed) - set(excused))
        assert not stale, (
            "requests listed in tests/contract/self_hosted_only.json that the whole suite "
            f"never sent (take them off the list): {stale}"
        )
