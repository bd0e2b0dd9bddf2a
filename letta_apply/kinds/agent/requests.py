"""Carrying out an agent's changes (kinds.agent): its create (found again by its marks should
the answer be lost), what Letta's create leaves out (its own blocks' metadata, the declared tool
rules, the secrets' row ids in its mark), a replacement's deletes once the new agent exists, its
updates, attaches and detaches, its delete; and, after a stage of creates, the agents another run
made at the same addresses (`settle_agents`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial

from ...core.changes import ATTACH, CREATE, DELETE, DETACH, REPLACE, Change
from ...core.jsonish import JsonObject, obj, objs, opt_text, strings, text
from ...core.sensitive import Masker
from ...errors import ApiError, define
from ...server.routes import AGENTS
from ..block.kind import owned_block_address
from ..context import Run
from ..resource import Listed, carries, mark_of, settle
from ..tool.kind import is_base_tool_type
from ..tool.rules import RULES_INTERIM, rules_missing, rules_shown, tool_rules_update
from . import sleeptime as agent_sleeptime
from .mcp_tools import expand
from .model import LiveAgent
from .secrets import LIVE, carried_over, live_secrets, with_recorded, written_ids
from .slim import Shared, slim_agent

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA722", "ApiError", "tool rules the server did not keep",
       "After an agent's update, the server's agent lacks tool rules that were written.",
       "Check the rules against the server's version (a rule type it does not know); apply "
       "again.")
# fmt: on


def apply_change(run: Run, change: Change, body: JsonObject) -> str:
    """Carry out one of the agents' changes; the id of the agent (or of the block attached or
    detached)."""
    c = run.client
    rid = change.remote_id or ""
    body = expand(run, body)  # MCP tools registered by this apply, by id
    if change.action in (CREATE, REPLACE):
        replaces = body.pop("replaces", None)
        rid = _create(run, change, body)
        if replaces:
            # Create-first: the new agent exists, wired to its blocks, before the old goes;
            # its own blocks before it (stopped in between, the old agent is still seen).
            old = obj(replaces)
            for block_id in strings(old["blocks"]):
                c.delete_block(block_id)
            c.delete_agent(str(old["agent"]))
    elif change.action == DELETE:
        # The blocks Letta made for its sleep-time agents, which outlive them.
        for block_id in strings(body.get(agent_sleeptime.BLOCKS)):
            c.delete_block(block_id)
        c.delete_agent(rid)
    elif change.action in (ATTACH, DETACH):
        assert change.target
        # `block` is an address, or the id of a block the stack does not manage.
        agent_id, block_id = run.id_of(change.address), run.id_of(change.target)
        (c.attach_block if change.action == ATTACH else c.detach_block)(agent_id, block_id)
        rid = block_id
    else:
        _update(run, rid, body)
    return rid


def _carrying(
    run: Run, change: Change, body: Mapping[str, object], agents: Iterable[Listed]
) -> list[Listed]:
    """Those of `agents` carrying the change's address (for a replacement: the replacements
    of the same agent)."""
    replaces = mark_of(body["metadata"]).get("replaces")
    return [
        a for a in agents
        if carries(a, run.stack, change.address)
        and (mark_of(a.get("metadata")).get("replaces") == replaces or not replaces)
    ]  # fmt: skip


def settle_agents(run: Run, made: Sequence[tuple[Change, str]]) -> dict[str, str]:
    """Agents made by this stage that another run made too (for a replacement: the same
    replacement): the oldest stays, and every run that made one computes the same winner, so
    each deletes only its own, with its own blocks. One listing of the stack's agents for the
    whole stage."""
    shared = Shared()
    params = {"include": ["agent.blocks", "agent.managed_group", "agent.tags"], "tags": [run.tag]}
    # Cut down as read and looked up by address: a stage may make 10,000 agents.
    listing = [slim_agent(a, shared) for a in AGENTS.list(run.client, params)]
    by_address: dict[object, list[JsonObject]] = {}
    for a in listing:
        by_address.setdefault(mark_of(a.get("metadata")).get("address"), []).append(a)
    by_id = {a.get("id"): a for a in listing}
    moved: dict[str, str] = {}
    for change, rid in made:
        carrying = _carrying(run, change, change.body, by_address.get(change.address, ()))
        winner = settle({"id": rid}, carrying)
        if winner["id"] == rid:
            continue
        ours = by_id.get(rid, {})
        kept = {b.get("id") for b in objs(winner.get("blocks"))}
        for b in objs(ours.get("blocks")):
            if b["id"] not in kept:
                run.client.delete_block(str(b["id"]))
        if ours:  # and the block Letta made for its sleep-time agent (kinds.agent.sleeptime)
            letta_made = agent_sleeptime.made_blocks(
                run.client, LiveAgent.from_api(ours), run.stack
            )
            for block_id in letta_made:
                run.client.delete_block(block_id)
        run.client.delete_agent(rid)
        # What ours was given after its create, theirs gets too (their run may have stopped
        # before giving it).
        moved[change.address] = _finish(run, change, run.resolve(change.body), winner)
    return moved


def _create(run: Run, change: Change, body: JsonObject) -> str:
    # Should its answer be lost, the agent is found by its marks (see `_carrying`), oldest
    # first: one narrow list call, by stack tag and name.
    listed = partial(
        run.client.list_agents,
        tag=run.tag,
        name=opt_text(body["name"]),
        include=("agent.blocks", "agent.tags"),
    )
    created = run.client.create_agent(
        body, find=lambda: next(iter(_carrying(run, change, body, listed())), None)
    )
    return _finish(run, change, body, created)


def _finish(
    run: Run, change: Change, body: Mapping[str, object], created: Mapping[str, object]
) -> str:
    """Record an agent just made, and write what Letta's create leaves out."""
    c = run.client
    rid = str(created["id"])
    run.record(change.address, rid)
    _record_secrets(run, rid, body, created)
    made_blocks = objs(created.get("blocks"))
    for b in made_blocks:
        run.record(owned_block_address(change.address, str(b["label"])), str(b["id"]))
    # Letta drops `metadata` of blocks created inline with an agent; set it afterwards.
    wanted = {b["label"]: b.get("metadata") for b in objs(change.body.get("memory_blocks"))}
    for b in made_blocks:
        md = wanted.get(b["label"])
        if md and b.get("metadata") != md:
            c.update_block(str(b["id"]), {"metadata": md})
    # Letta adds loop rules for its base tools to the declared ones, even on tools the declared
    # rules already govern: write the declared rules back for those.
    if "tool_rules" in body:
        base = [
            text(t.get("name"))
            for t in objs(created.get("tools"))
            if is_base_tool_type(text(t.get("tool_type")) or "custom")
        ]
        live_rules = objs(created.get("tool_rules"))
        update = tool_rules_update(objs(body["tool_rules"]), live_rules, base)
        if update is not None:
            c.update_agent(rid, {"tool_rules": update[1]})
    return rid


def _update(run: Run, rid: str, body: JsonObject) -> None:
    c = run.client
    by_hand: list[str] = []
    secrets = obj(body.get("secrets"))
    if any(isinstance(v, Mapping) and LIVE in v for v in secrets.values()):
        # Letta replaces the whole set: the secrets set by hand go along, as they are now.
        now = live_secrets(c.get_agent(rid, ("agent.secrets",)).get("secrets"))
        by_hand = [now[k].value for k, v in secrets.items() if isinstance(v, Mapping) and k in now]
        body["secrets"] = carried_over(secrets, now)
    interim = body.pop(RULES_INTERIM, None)
    if interim is not None:
        c.update_agent(rid, {"tool_rules": interim})
    try:
        answer = c.update_agent(rid, body)
    except ApiError as e:
        if not by_hand:
            raise
        # No sensitive variable holds those: mask them here, should the server quote them.
        masker = Masker(by_hand)
        detail = masker.text(e.detail)
        raise ApiError(detail, status=e.status, method=e.method, path=e.path, code=e.code) from None
    missing = rules_missing(objs(body.get("tool_rules")), objs(answer.get("tool_rules")))
    if "tool_rules" in body and missing:
        raise ApiError(
            f"the server did not take the tool_rules written: {', '.join(rules_shown(missing))} "
            "missing from the agent's rules after the update",
            method="PATCH",
            path=AGENTS.at(rid).path,
            code="LA722",
        )
    _record_secrets(run, rid, body, answer)


def _record_secrets(
    run: Run, rid: str, body: Mapping[str, object], answer: Mapping[str, object]
) -> None:
    """Record in the mark the row ids the server gave the secrets just written (how a later
    rewrite on the server is told from a change of the manifest)."""
    metadata = obj(body.get("metadata"))
    ids = written_ids(metadata, answer)
    if ids is not None:
        run.client.update_agent(rid, {"metadata": with_recorded(metadata, ids)})
