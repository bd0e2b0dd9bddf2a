"""Which kinds a plan lists, against the fake server: a kind Letta cannot list by the stack's tag
(identities, groups, folders, archives, MCP servers) only when the manifest names it or the
stack's blocks say it holds some; the identities flag that says so (written before the first
identity, deleted after the last); and a route the server dropped (Letta Cloud marks groups,
identities and sources deprecated) said in one line, never retried."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from letta_apply.apply.runner import apply_plan
from letta_apply.core.changes import CREATE, DELETE
from letta_apply.errors import RouteGone
from letta_apply.kinds import kind
from letta_apply.kinds.flags import flag_address, flag_label
from letta_apply.pipeline import load_manifest, plan_for
from tests.fakes import FakeLetta
from tests.helpers import SEED, Cli, write

FLAG = flag_label(kind("identity"))  # letta-apply-identities
FLAG_ADDRESS = flag_address(kind("identity"))
# The routes of the kinds Letta cannot list by the stack's tag, and the one Cloud deprecates
# that letta-apply never uses (folders are its successor).
UNTAGGED = ("/v1/identities", "/v1/groups", "/v1/folders", "/v1/archives", "/v1/mcp-servers",
            "/v1/sources")  # fmt: skip
IDENTITIES = """\
version: 1
stack: unit
identities:
  acme: {identity_type: org}
  alice: {identity_type: user}
  bob: {identity_type: user}
agents:
  bot:
    model: letta/letta-free
    embedding: letta/letta-free
    identities: [acme, alice]
"""
WITHOUT = """\
version: 1
stack: unit
agents:
  bot: {model: letta/letta-free, embedding: letta/letta-free}
"""


def refuse(fake: FakeLetta, prefixes: tuple[str, ...], status: int) -> None:
    """Make the fake answer `status` on these routes and every route under them."""

    def hook(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path.rstrip("/")
        if any(path == p or path.startswith(p + "/") for p in prefixes):
            return httpx.Response(status, json={"detail": "Not Found" if status == 404 else "Gone"})
        return None

    fake.before.append(hook)


def asked(fake: FakeLetta, prefix: str) -> list[tuple[str, str]]:
    return [(m, p) for m, p in fake.calls if p.rstrip("/") == prefix or p.startswith(prefix + "/")]


def flags(fake: FakeLetta) -> list[str]:
    return [i for i, b in fake.blocks.items() if b.get("label") == FLAG]


def ok(cli: Cli, *argv: str) -> str:
    r = cli(*argv)
    assert r.code in (0, 2), r.out + r.err
    return r.out


# -- a stack that holds none of a kind never asks its routes --------------------------------


def test_a_stack_holding_none_of_the_untagged_kinds_never_asks_their_routes(
    tmp_path: Path, cli: Cli
) -> None:
    # Every command, a saved plan's apply included, on a server that dropped those routes.
    refuse(cli.fake, UNTAGGED, 410)
    path = str(write(tmp_path, SEED))
    saved = str(tmp_path / "plan.out")
    ok(cli, "plan", "-f", path, "--out", saved)
    ok(cli, "apply", saved, "--auto-approve")
    ok(cli, "apply", "-f", path, "--auto-approve")
    ok(cli, "drift", "-f", path)
    ok(cli, "show", "-f", path)
    edited = str(write(tmp_path, SEED.replace("Nothing here yet.", "Edited."), "edited.yaml"))
    ok(cli, "plan", "-f", edited, "--out", saved)
    ok(cli, "apply", saved, "--auto-approve")
    ok(cli, "destroy", "-f", path, "--auto-approve")
    assert cli.fake.agents == {}
    for prefix in UNTAGGED:
        assert asked(cli.fake, prefix) == []


# -- the identities flag ----------------------------------------------------------------------


def test_the_flag_is_written_once_before_the_first_identity_and_deleted_after_the_last(
    tmp_path: Path,
) -> None:
    fake = FakeLetta()
    path = write(tmp_path, IDENTITIES)
    with fake.client() as c:
        apply_plan(c, plan_for(c, load_manifest(str(path))), parallelism=8)
    # Three identity creates at once, one flag, written before any of them: a run killed right
    # after an identity's create still leaves a stack that lists its identities.
    assert len(flags(fake)) == 1 and len(fake.identities) == 3
    writes = [(m, p) for m, p in fake.calls if m != "GET"]
    assert writes.index(("POST", "/v1/blocks/")) < writes.index(("POST", "/v1/identities/"))

    path.write_text(WITHOUT)
    fake.calls.clear()
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
        # Out of the manifest, the identities are still found (the flag says so) and deleted;
        # the flag goes after the last, in a stage of its own.
        assert [(ch.address, ch.action) for ch in plan.changes if ch.kind != "agent"] == [
            ("identity.acme", DELETE),
            ("identity.alice", DELETE),
            ("identity.bob", DELETE),
            (FLAG_ADDRESS, DELETE),
        ]
        apply_plan(c, plan, parallelism=8)
    deletes = [p for m, p in fake.calls if m == "DELETE"]
    assert deletes[-1] == f"/v1/blocks/{plan.ids[FLAG_ADDRESS]}"
    assert fake.identities == {} and flags(fake) == []
    fake.calls.clear()
    with fake.client() as c:
        assert plan_for(c, load_manifest(str(path))).changes == ()
    assert asked(fake, "/v1/identities") == []  # the flag gone, identities are not listed


def test_destroy_leaves_no_flag_and_a_flag_left_alone_is_deleted(tmp_path: Path) -> None:
    fake = FakeLetta()
    path = write(tmp_path, IDENTITIES)
    with fake.client() as c:
        apply_plan(c, plan_for(c, load_manifest(str(path))))
        apply_plan(c, plan_for(c, load_manifest(str(path)), destroy=True))
    assert fake.identities == {} and flags(fake) == [] and fake.agents == {}
    # A run killed between its last identity delete and the flag's: the flag alone, which
    # costs a listing, and the next plan (or destroy) deletes it.
    with fake.client() as c:
        apply_plan(c, plan_for(c, load_manifest(str(path))))
    fake.identities.clear()
    for destroy in (False, True):
        with fake.client() as c:
            plan = plan_for(c, load_manifest(str(write(tmp_path, WITHOUT))), destroy=destroy)
            assert [(ch.address, ch.action) for ch in plan.changes if ch.kind != "agent"] == (
                [] if destroy else [(FLAG_ADDRESS, DELETE)]
            )
            apply_plan(c, plan)
    assert flags(fake) == []


def test_the_flag_stays_while_an_identity_does(tmp_path: Path) -> None:
    fake = FakeLetta()
    path = write(tmp_path, IDENTITIES)
    with fake.client() as c:
        apply_plan(c, plan_for(c, load_manifest(str(path))))
        # One identity still declared, the others pruned: the flag stays.
        kept = IDENTITIES.split("  alice:")[0] + "agents: {}\n"
        path.write_text(kept)
        plan = plan_for(c, load_manifest(str(path)))
        assert {ch.address for ch in plan.changes if ch.kind != "agent"} == {
            "identity.alice",
            "identity.bob",
        }
        apply_plan(c, plan)
    assert len(flags(fake)) == 1 and len(fake.identities) == 1


def test_a_stack_made_before_the_flag_gets_it_once_and_then_finds_its_identities(
    tmp_path: Path, cli: Cli
) -> None:
    path = str(write(tmp_path, IDENTITIES))
    ok(cli, "apply", "-f", path, "--auto-approve")
    for fid in flags(cli.fake):  # as a letta-apply before the flag left the stack
        del cli.fake.blocks[fid]
    plan = ok(cli, "plan", "-f", path)
    assert f"+ {FLAG_ADDRESS}: create" in plan and "Plan: 1 to create, 0 to update" in plan
    assert "made by a letta-apply before it had one" in plan
    ok(cli, "apply", "-f", path, "--auto-approve")
    assert len(flags(cli.fake)) == 1
    assert "No changes" in ok(cli, "plan", "-f", path)
    write(tmp_path, WITHOUT)  # from now on the flag finds them: three identities, then it
    assert "0 to detach, 4 to delete." in ok(cli, "plan", "-f", path)


def test_a_block_key_may_not_take_a_flags_address(tmp_path: Path, cli: Cli) -> None:
    text = "version: 1\nstack: s\nblocks:\n  letta-apply-identities: {label: x, value: v}\n"
    path = write(tmp_path, text)
    r = cli("validate", "-f", str(path))
    assert r.code == 1
    assert "m.yaml:4:3: blocks.letta-apply-identities: the key 'letta-apply-identities' is " \
        "reserved" in r.err, r.err  # fmt: skip


# -- a route the server dropped ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "says"), [(410, "410 Gone"), (404, "404 Not Found")])
def test_a_dropped_route_the_manifest_needs_is_one_line_never_retried(
    tmp_path: Path, cli: Cli, status: int, says: str
) -> None:
    refuse(cli.fake, ("/v1/identities",), status)
    path = str(write(tmp_path, IDENTITIES))
    for argv in (("plan", "-f", path), ("apply", "-f", path, "--auto-approve")):
        cli.fake.calls.clear()
        r = cli(*argv)
        assert r.code == 1
        offers = "no longer offers" if status == 410 else "does not offer"
        assert r.err.splitlines()[0] == (
            f"error: identities: Letta answered {says} for GET /v1/identities/: this server "
            f"{offers} identities, which the manifest declares [LA508]"
        ), r.err
        assert "Traceback" not in r.err and r.out == ""
        assert len(asked(cli.fake, "/v1/identities")) == 1  # asked once: never retried
        assert cli.fake.writes == 0 and cli.clock.now == 0  # nothing written, no wait


def test_a_dropped_route_of_a_kind_the_stack_holds_says_so(tmp_path: Path) -> None:
    fake = FakeLetta()
    path = write(tmp_path, IDENTITIES)
    with fake.client() as c:
        apply_plan(c, plan_for(c, load_manifest(str(path))))
    path.write_text(WITHOUT)
    refuse(fake, ("/v1/identities",), 410)
    with fake.client() as c, pytest.raises(RouteGone) as e:
        plan_for(c, load_manifest(str(path)))
    assert str(e.value).endswith("identities, which the stack holds, as its blocks say")
    assert (e.value.status, e.value.path) == (410, "/v1/identities/")


def test_a_missing_resource_is_no_dropped_route(tmp_path: Path, cli: Cli) -> None:
    # A 404 on one resource's route (an id in the path) says that resource is gone, not the
    # kind: said as the server said it.
    shared = "blocks:\n  org: {value: v, identities: [acme]}\nagents:"
    path = str(write(tmp_path, IDENTITIES.replace("agents:", shared)))
    ok(cli, "apply", "-f", path, "--auto-approve")
    refuse(cli.fake, tuple(f"/v1/identities/{i}" for i in cli.fake.identities), 404)
    r = cli("plan", "-f", path)
    assert r.code == 1 and "Letta answered" not in r.err and "HTTP 404" in r.err, r.err


def test_a_plan_records_the_flag_it_finds_and_apply_writes_none_more(tmp_path: Path) -> None:
    fake = FakeLetta()
    path = write(tmp_path, IDENTITIES)
    with fake.client() as c:
        first = plan_for(c, load_manifest(str(path)))
        assert FLAG_ADDRESS not in first.ids
        apply_plan(c, first)
        path.write_text(IDENTITIES.replace("  bob:", "  carol: {identity_type: user}\n  bob:"))
        second = plan_for(c, load_manifest(str(path)))
        assert second.ids[FLAG_ADDRESS] == flags(fake)[0]
        assert [(ch.address, ch.action) for ch in second.changes] == [("identity.carol", CREATE)]
        apply_plan(c, second)
    assert len(flags(fake)) == 1 and len(fake.identities) == 4


def test_export_from_a_server_without_groups_exports_none(cli: Cli) -> None:
    made = cli.fake._create_agent({"name": "solo", "model": "letta/letta-free", "tags": ["t"]})
    refuse(cli.fake, ("/v1/groups",), 410)
    r = cli("export", "--stack", "team", "--tag", "t")
    assert r.code == 0, r.err
    assert "solo" in r.out and "groups:" not in r.out and made["id"] in r.out
