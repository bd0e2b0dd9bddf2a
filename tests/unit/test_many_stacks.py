"""Many stacks from one process (letta_apply.many, Stacks, `--stacks`) against the fake server:
the server is read once for all of them, each plan is the one the stack gets alone, and what
happens to one stack is its own result."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import letta_apply
from letta_apply import Stack, Stacks
from letta_apply.pipeline import plan_for
from letta_apply.server.lock import StackLock
from letta_apply.server.routes import Route
from tests.fakes import FakeLetta
from tests.helpers import Cli, agent_includes


def tenant(i: int, *, changed: bool = False, extra: str = "") -> str:
    edit = " (changed)" if changed else ""
    return (
        f"version: 1\nstack: tenant-{i}\n"
        "variables:\n  key: {sensitive: true, default: sekrit-" + str(i) + "}\n"
        f"blocks:\n  org: {{value: 'Facts of tenant {i}.', description: 'Org{edit}.'}}\n"
        "agents:\n  helper:\n"
        f"    name: tenant-{i}-helper\n"
        "    model: letta/letta-free\n    embedding: letta/letta-free\n"
        "    system: 'Use key ${var.key}.'\n"
        "    blocks: [org]\n" + extra
    )


def folder(tmp_path: Path, n: int, **kw: Any) -> Path:
    d = tmp_path / "stacks"
    d.mkdir(exist_ok=True)
    for i in range(n):
        (d / f"t{i:03d}.yaml").write_text(tenant(i, **kw), encoding="utf-8")
    return d


def gets(fake: FakeLetta) -> int:
    return fake.counts["GET"]


@pytest.mark.parametrize("n", [3, 40])
def test_n_stacks_cost_the_shared_listings_not_n_times(tmp_path: Path, n: int) -> None:
    fake = FakeLetta()
    client = fake.client()
    stacks = Stacks.from_folder(folder(tmp_path, n))
    assert stacks.apply(client).ok
    fake.counts.clear()
    plans = stacks.plan(client)
    assert plans.ok and all(not r.plan.has_changes for r in plans.runs if r.plan)
    # Agents, blocks (with the stacks' serial records) and tools: a page each and the empty
    # page that ends it, whatever the number of stacks (by tag up to 16 stacks, else listed
    # whole and split by tag).
    assert gets(fake) == 6
    fake.counts.clear()
    for s in stacks.sources:
        assert s.desired is not None
        assert not plan_for(client, s.desired).changes
    assert gets(fake) == 6 * n  # what planning them one by one costs


def test_each_plan_is_the_one_the_stack_gets_alone(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    d = folder(tmp_path, 20)
    Stacks.from_folder(d).apply(client)
    folder(tmp_path, 20, changed=True)
    owner = "identities:\n  owner: {identifier_key: t5, name: T5, identity_type: org}\n"
    (d / "t005.yaml").write_text(tenant(5, extra=owner), encoding="utf-8")

    def same_as_alone() -> list[str]:
        """Each stack's plan from the shared read is its plan alone; the identity's changes."""
        stacks = Stacks.from_folder(d)
        result = stacks.plan(client)
        for run, source in zip(result.runs, stacks.sources, strict=True):
            assert source.desired is not None and run.plan is not None
            alone = plan_for(client, source.desired)
            assert run.plan.changes == alone.changes and run.plan.serial == alone.serial
        plan = result.runs[5].plan
        assert plan is not None
        return [c.action for c in plan.changes if c.kind == "identity"]

    assert same_as_alone() == ["create"]  # named by its manifest: read with the first listings
    assert Stacks.from_folder(d).apply(client).summary()["update"] == 19  # all but tenant-5
    (d / "t005.yaml").write_text(tenant(5), encoding="utf-8")
    # Held, as its flag among its blocks says: read after the blocks, for that stack only.
    assert same_as_alone() == ["delete"]


def test_one_failing_stack_leaves_the_others_applied_and_says_why(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client(retry=letta_apply.RetryPolicy(max_retries=0))
    d = folder(tmp_path, 4)
    (d / "bad.yaml").write_text("version: 1\nstack: bad\nagents:\n  a: {modle: x}\n")
    (d / "twin.yaml").write_text(tenant(3).replace("tenant-3-helper", "twin-helper"))

    def refuse_tenant_1(request: httpx.Request) -> httpx.Response | None:
        body = json.loads(request.content or b"{}") if request.method == "POST" else {}
        if request.url.path.rstrip("/") == "/v1/agents" and body.get("name") == "tenant-1-helper":
            return httpx.Response(500, json={"detail": "disk on fire"})
        return None

    fake.before.append(refuse_tenant_1)
    holder = StackLock(fake.client(), "tenant-2", "apply")
    holder.acquire()  # another run holds tenant-2's lock
    result = Stacks.from_folder(d).apply(client, lock_timeout=0)
    by = {r.origin.rsplit("/", 1)[-1]: r for r in result.runs}
    assert by["t000.yaml"].ok and by["t000.yaml"].result is not None
    assert [x.change.address for x in by["t000.yaml"].result.done] == [
        "block.org", "agent.helper"
    ]  # fmt: skip
    assert not by["t001.yaml"].ok and "disk on fire" in "\n".join(by["t001.yaml"].why)
    assert not by["t002.yaml"].ok and "lock" in by["t002.yaml"].error
    assert "unknown key 'modle'" in by["bad.yaml"].error and by["bad.yaml"].plan is None
    for twin in ("t003.yaml", "twin.yaml"):  # two manifests of one stack: neither runs
        assert 'stack "tenant-3" is also declared by' in by[twin].error
    assert not result.ok and len(result.failed) == 5
    names = {a["name"] for a in fake.agents.values()}
    assert names == {"tenant-0-helper"}  # tenant-1's create failed after its block was made
    assert holder.held is not None  # the lock another run holds is left alone
    text = result.render()
    assert "sekrit" not in text and "sekrit" not in result.render("json")
    assert "tenant-0" in text and "1 applied, 0 without changes, 5 failed." in text


def test_a_same_named_resource_not_owned_is_never_touched(tmp_path: Path) -> None:
    fake = FakeLetta.holding(
        {
            "blocks": [{"id": "block-theirs", "label": "org", "value": "not ours", "tags": []}],
            "agents": [{"id": "agent-theirs", "name": "tenant-0-helper", "block_ids": []}],
        }
    )
    client = fake.client()

    def theirs() -> str:  # as the server shows them (the fake's own bookkeeping left out)
        held = [fake.agents["agent-theirs"], fake.blocks["block-theirs"]]
        return json.dumps([{k: v for k, v in r.items() if not k.startswith("_")} for r in held])

    before = theirs()
    result = Stacks.from_folder(folder(tmp_path, 3)).apply(client)
    by = {r.stack: r for r in result.runs}
    assert by["tenant-1"].ok and by["tenant-2"].ok
    assert not by["tenant-0"].ok
    assert any("tenant-0-helper" in w and "LA626" in w for w in by["tenant-0"].why)
    assert theirs() == before
    gone = Stacks.from_folder(folder(tmp_path, 3)).destroy(client)
    assert gone.ok
    assert set(fake.agents) == {"agent-theirs"} and "block-theirs" in fake.blocks
    assert theirs() == before


def test_a_reviewed_plan_is_applied_only_if_it_still_holds(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    d = folder(tmp_path, 3)
    stacks = Stacks.from_folder(d)
    reviewed = stacks.plan(client)
    Stack.from_files([str(d / "t001.yaml")]).apply(client)  # another run applies tenant-1
    result = stacks.apply(client, reviewed)
    by = {r.stack: r for r in result.runs}
    assert by["tenant-0"].ok and by["tenant-2"].ok
    assert "stale plan" in by["tenant-1"].error and "[LA610]" in by["tenant-1"].error


def test_cli_plan_and_apply_stacks(tmp_path: Path, cli: Cli) -> None:
    d = folder(tmp_path, 3)
    r = cli("apply", "--stacks", str(d), "--auto-approve")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].split() == [
        "STACK", "CREATE", "UPDATE", "DELETE", "OTHER", "RESULT"
    ]  # fmt: skip
    assert r.out.splitlines()[1].split() == ["tenant-0", "2", "0", "0", "0", "applied"]
    assert r.out.rstrip().endswith("3 stacks: 3 applied, 0 without changes, 0 failed.")
    (d / "bad.yaml").write_text("version: 1\nstack: b\nagents: {a: {modle: x}}\n")
    r = cli("plan", "--stacks", str(d), "--format", "json", "--detailed-exitcode")
    assert r.code == 1  # a stack failed: that wins over changes
    doc = json.loads(r.out)
    assert [e["stack"] for e in doc["stacks"]] == [None, "tenant-0", "tenant-1", "tenant-2"]
    assert doc["stacks"][0]["errors"][0].endswith("[LA302]")
    assert doc["summary"]["failed"] == 1 and doc["summary"]["no_changes"] == 3
    (d / "bad.yaml").unlink()
    folder(tmp_path, 3, changed=True)
    r = cli("plan", "--stacks", str(d), "--detailed-exitcode")
    assert r.code == 2 and "3 stacks: 3 with changes" in r.out
    r = cli("destroy", "--stacks", str(d), "--auto-approve", "--format", "json")
    assert r.code == 0 and {e["status"] for e in json.loads(r.out)["stacks"]} == {"destroyed"}
    assert not cli.fake.agents


def test_cli_stacks_refuses_one_stack_options(tmp_path: Path, cli: Cli) -> None:
    d = folder(tmp_path, 1)
    r = cli("plan", "--stacks", str(d), "-f", str(d / "t000.yaml"))
    assert (r.code, r.err) == (1, "error: --stacks: not with -f (it names one stack) [LA903]\n")
    r = cli("apply", "--stacks", str(d))
    assert r.code == 1 and "[LA905]" in r.err  # no terminal to confirm on
    r = cli("plan", "--stacks", str(tmp_path / "none"))
    assert r.code == 1 and "no such folder [LA902]" in r.err
    assert cli.fake.writes == 0


def test_a_bug_in_one_stack_ends_no_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from letta_apply.many import run as many_run

    fake = FakeLetta()
    real = many_run.plan_for

    def buggy(client: Any, desired: Any, **kw: Any) -> Any:
        if desired.stack == "tenant-1":
            raise RuntimeError("oops")
        return real(client, desired, **kw)

    monkeypatch.setattr(many_run, "plan_for", buggy)
    result = Stacks.from_folder(folder(tmp_path, 3)).apply(fake.client())
    assert [r.ok for r in result.runs] == [True, False, True]
    assert result.runs[1].error == "unexpected error (a bug: please report it): RuntimeError: oops"
    assert len(fake.agents) == 2


def test_cli_reads_the_server_while_the_manifests_load(tmp_path: Path, cli: Cli) -> None:
    d = folder(tmp_path, 20)  # past 16 stacks: agents and blocks are listed whole
    r = cli("apply", "--stacks", str(d), "--auto-approve", "-v")
    assert r.code == 0 and "20 stacks: 20 applied" in r.out
    assert len(cli.fake.agents) == 20
    r = cli("plan", "--stacks", str(d), "-v", "--detailed-exitcode")
    assert r.code == 0 and "20 stacks: 0 with changes, 20 without changes, 0 failed." in r.out
    assert "requests: 6 reads, 0 writes" in r.err  # a page and the empty one of each kind


NOT_TENANT_1 = """\
rules:
  - id: no-tenant-1
    applies_to: {kinds: [agent]}
    condition: resource.name != "tenant-1-helper"
    severity: error
    message: "{{resource.name}} is not allowed"
"""


def _names(fake: FakeLetta) -> set[str]:
    return {str(a["name"]) for a in fake.agents.values()}


def test_cli_stacks_checks_every_stack_by_the_policy_and_refuses_only_the_violating_one(
    tmp_path: Path, cli: Cli
) -> None:
    d = folder(tmp_path, 3)
    rules = tmp_path / "rules.yaml"
    rules.write_text(NOT_TENANT_1, encoding="utf-8")
    r = cli("apply", "--stacks", str(d), "--policy", str(rules), "--auto-approve")
    assert r.code == 1, r.err
    assert "policy: 1 violation(s) at error; nothing was applied [LA655]" in r.out + r.err
    assert r.out.rstrip().endswith("3 stacks: 2 applied, 0 without changes, 1 failed.")
    assert _names(cli.fake) == {"tenant-0-helper", "tenant-2-helper"}
    # Nothing of the refused stack was written, not its lock nor its serial record either.
    assert not [b for b in cli.fake.blocks.values() if "tenant-1" in json.dumps(b)]


def test_cli_stacks_with_a_broken_policy_file_sends_nothing(tmp_path: Path, cli: Cli) -> None:
    d = folder(tmp_path, 1)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {id: b, condition: 'x ===', severity: error, message: m}\n")
    r = cli("plan", "--stacks", str(d), "--policy", str(rules))
    assert r.code == 1
    assert r.err.endswith("1 error in the policy files; nothing was sent to the server.\n")
    assert cli.fake.counts["GET"] == 0 and cli.fake.writes == 0


def test_a_stacks_own_policy_refuses_it_alone(tmp_path: Path) -> None:
    fake = FakeLetta()
    rules = tmp_path / "rules.yaml"
    rules.write_text(NOT_TENANT_1, encoding="utf-8")
    d = folder(tmp_path, 3)
    # The manifest's own `policy:` (relative to it), never skipped for many stacks.
    (d / "t001.yaml").write_text(tenant(1, extra="policy: {files: [../rules.yaml]}\n"))
    result = Stacks.from_folder(d).apply(fake.client())
    (refused,) = result.failed
    assert refused.stack == "tenant-1"
    assert refused.why == ["policy: 1 violation(s) at error; nothing was applied [LA655]"]
    assert _names(fake) == {"tenant-0-helper", "tenant-2-helper"}


def test_the_python_api_checks_policies_and_a_refused_apply_writes_nothing(
    tmp_path: Path,
) -> None:
    fake = FakeLetta()
    client = fake.client()
    rules = tmp_path / "rules.yaml"
    rules.write_text(NOT_TENANT_1, encoding="utf-8")
    (tmp_path / "t.yaml").write_text(tenant(1))
    stack = Stack.from_files(str(tmp_path / "t.yaml"), policies=str(rules))
    plan = stack.plan(client)
    (v,) = plan.violations
    assert (v.rule, v.address, v.severity) == ("no-tenant-1", "agent.helper", "error")
    assert plan.blocked
    with pytest.raises(letta_apply.PolicyViolated) as info:
        stack.apply(client)
    assert info.value.code == "LA655"
    assert fake.writes == 0
    # Without the rule the same stack applies; a broken rule file is refused at load.
    assert Stack.from_files(str(tmp_path / "t.yaml")).apply(client).ok
    rules.write_text("rules: [{id: b, condition: 'x ===', severity: error, message: m}]\n")
    with pytest.raises(letta_apply.PolicyFileError):
        Stack.from_files(str(tmp_path / "t.yaml"), policies=[str(rules)])


@pytest.mark.parametrize("n", [3, 40])
def test_the_shared_agents_listing_has_their_tools_only_when_a_stack_manages_some(
    tmp_path: Path, n: int
) -> None:
    """As for one stack (model.listed_with), by tags or whole: no stack declaring `tools`,
    `tool_rules` or `mcp_tools`, no tools asked for; one that does, and they are."""
    fake = FakeLetta()
    client = fake.client()
    d = folder(tmp_path, n)
    assert Stacks.from_folder(d).apply(client).ok
    includes = agent_includes(fake)
    result = Stacks.from_folder(d).plan(client)
    assert result.ok and not any(r.plan.has_changes for r in result.runs if r.plan)
    assert includes and all("agent.tools" not in i and "agent.blocks" in i for i in includes)
    (d / "t001.yaml").write_text(tenant(1, extra="    tools: [web_search]\n"), encoding="utf-8")
    includes.clear()
    result = Stacks.from_folder(d).plan(client)
    assert result.ok and includes and all("agent.tools" in i for i in includes)
    [changed] = [r for r in result.runs if r.plan and r.plan.has_changes]
    assert changed.stack == "tenant-1"


def test_cli_read_ahead_lists_agents_without_tools_and_again_when_a_stack_manages_some(
    tmp_path: Path, cli: Cli
) -> None:
    """`--stacks` lists agents before the manifests are known, without their tools (most
    fleets manage none); once one manifest declares `tools`, they are listed again with them
    and compared: a tool detached by hand is found."""
    d = folder(tmp_path, 20)  # past 16 stacks: listed whole, while the manifests load
    assert cli("apply", "--stacks", str(d), "--auto-approve").code == 0
    includes = agent_includes(cli.fake)
    r = cli("plan", "--stacks", str(d), "-v", "--detailed-exitcode")
    assert r.code == 0 and "requests: 6 reads, 0 writes" in r.err
    assert len(includes) == 2 and all("agent.tools" not in i for i in includes)
    (d / "t001.yaml").write_text(tenant(1, extra="    tools: [web_search]\n"), encoding="utf-8")
    assert cli("apply", "--stacks", str(d), "--auto-approve").code == 0
    [agent] = [a for a in cli.fake.agents.values() if a["name"] == "tenant-1-helper"]
    web_search = [t["id"] for t in cli.fake.tools.values() if t["name"] == "web_search"]
    assert web_search and set(web_search) <= set(agent["tool_ids"])
    agent["tool_ids"] = [t for t in agent["tool_ids"] if t not in web_search]  # by hand
    includes.clear()
    r = cli("plan", "--stacks", str(d), "-v", "--detailed-exitcode")
    assert r.code == 2 and "19 without changes" in r.out and "requests: 8 reads" in r.err
    assert ["agent.tools" in i for i in includes] == [False, False, True, True]


def _paths(fake: FakeLetta) -> list[str]:
    seen: list[str] = []
    fake.before.append(lambda request: seen.append(f"{request.method} {request.url.path}"))
    return seen


def test_the_served_models_are_read_once_for_all_the_stacks_that_create_agents(
    tmp_path: Path,
) -> None:
    fake = FakeLetta()
    client = fake.client()
    sent = _paths(fake)
    assert Stacks.from_folder(folder(tmp_path, 20)).apply(client).ok
    assert sent.count("GET /v1/models/") == 1 and sent.count("GET /v1/models/embedding") == 1
    assert sent.count("POST /v1/agents/") == 20


def test_a_handle_the_remembered_models_lack_is_looked_up_again() -> None:
    fake = FakeLetta()
    client = fake.client()
    sent = _paths(fake)
    models = Route("/v1/models/")
    served = client.handles(models, {"letta/letta-free"})
    assert "letta/letta-free" in served and sent == ["GET /v1/models/"]
    assert client.handles(models, ["letta/letta-free"]) == served and len(sent) == 1
    assert client.handles(models, {"openai/gpt-new"}) == served and len(sent) == 2


def test_stacks_asking_for_the_served_models_at_once_wait_for_one_listing() -> None:
    fake = FakeLetta()
    client = fake.client()
    sent = _paths(fake)
    gate = threading.Event()

    def held(request: httpx.Request) -> None:
        assert gate.wait(10)

    fake.before.append(held)
    models = Route("/v1/models/")
    with ThreadPoolExecutor(8) as pool:
        asked = [pool.submit(client.handles, models, {"letta/letta-free"}) for _ in range(8)]
        time.sleep(0.05)  # all eight ask while the first listing is on its way
        gate.set()
        served = {f.result() for f in asked}
    assert len(served) == 1 and sent == ["GET /v1/models/"]


def test_past_16_stacks_a_name_is_checked_against_the_listing_of_every_agent(
    tmp_path: Path,
) -> None:
    """Listed whole, the agents every stack would create are checked against the names of the
    server's unmarked agents that listing saw: no lookup by name per stack (were every tenant's
    agent named alike, each lookup would list every tenant's agent), and the clash still found."""
    fake = FakeLetta.holding({"agents": [{"id": "agent-theirs", "name": "tenant-0-helper"}]})
    client = fake.client()
    named: list[str] = []
    fake.before.append(lambda r: named.extend(r.url.params.get_list("name")))
    result = Stacks.from_folder(folder(tmp_path, 20)).apply(client)
    by = {r.stack: r for r in result.runs}
    assert not by["tenant-0"].ok and any("LA626" in w for w in by["tenant-0"].why)
    assert all(by[f"tenant-{i}"].ok for i in range(1, 20))
    assert named == [] and len(fake.agents) == 20
