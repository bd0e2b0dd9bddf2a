"""Planning an agent (kinds.agent): its create request with everything it declares and the
marks it is made with, replacement (create-first), and deletion with its own blocks. Its
updates are kinds.agent.update's, the blocks it holds kinds.agent.block_changes's."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...core.changes import (
    CREATE,
    DELETE,
    MANIFEST,
    NEW,
    REPLACE,
    REPLACED,
    Change,
    FieldDiff,
    Problem,
    Why,
)
from ...core.jsonish import JsonObject, obj, objs, opt_text, strings
from ...core.marks import (
    config_digests,
    digest,
    mark_metadata,
    sensitive_fields,
    sensitive_names,
)
from ...errors import define
from ...server.routes import Route
from ..base import declared_at
from ..block.kind import (
    BLOCKS,
    BlockState,
    block_applied,
    block_body,
    declared_extras,
    delete_block,
    our_agent_ids,
    owned_block_address,
    owned_of,
)
from ..context import Context, StateOf
from ..group.kind import GroupState
from ..resource import applied_of
from ..serves_models import made_to_serve
from ..tool.rules import rule_compared, rule_keys, rules_shown
from . import create_only as agent_create_only
from . import mcp_tools as agent_mcp_tools
from . import sleeptime as agent_sleeptime
from .model import (
    AGENT_POOL,
    AGENTS,
    AGENTS_DECLARED,
    identities_of,
    match_of,
    rules_of,
    tools_of,
)
from .secrets import WRITTEN, with_recorded
from .settings import SETTINGS
from .uses import identity_ids, rule_tools_known, tool_ids

if TYPE_CHECKING:
    from .model import DesiredAgent, LiveAgent

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA633", "Problem", "a model the server does not serve",
       "An agent's `model` or `embedding` handle is not among those the server serves.",
       "Use a handle the server lists (the hint gives them), or configure its provider.")
# fmt: on

FIELDS = ("description", "system", "model", "embedding")
MODELS = Route("/v1/models/")
HANDLES = {"model": MODELS, "embedding": MODELS.at("embedding")}
"""Fields naming a handle the server must serve, and where it lists those it does."""

_GROUPS = StateOf[GroupState]("group")


def agent_applied(da: DesiredAgent, previous: Mapping[str, object] | None = None) -> JsonObject:
    """Digests of the configuration letta-apply writes for an agent, the shared blocks it
    attaches (as addresses), the configuration of its own blocks, and its protection. An
    update (`previous`: the marks it replaces) writes no memory value: the bases of its own
    blocks' values are carried over (a block whose value is written gets its own marks)."""
    out: JsonObject = {
        "name": digest(da.name),
        **config_digests(da.config, (*FIELDS, *SETTINGS)),
    }
    if "tools" in da.config:
        out["tools"] = digest(sorted(tools_of(da)))
    if "tool_rules" in da.config:
        out["tool_rules"] = digest(rule_keys(rules_of(da)))
    if "identities" in da.config:
        out["identities"] = digest(sorted(identities_of(da)))
    out.update(agent_create_only.recorded(da))
    out["blocks"] = sorted(da.blocks)
    if previous is None:
        out["memory_blocks"] = {b.label: block_applied(b) for b in da.memory_blocks}
    else:
        bases = {
            label: opt_text(marks.get("value"))
            for label, marks in obj(previous.get("memory_blocks")).items()
            if isinstance(marks, Mapping)
        }
        out["memory_blocks"] = {
            b.label: block_applied(b, written=False, base=bases.get(b.label))
            for b in da.memory_blocks
        }
    if da.prevent_destroy:
        out["prevent_destroy"] = True
    return {**out, **sensitive_names(sensitive_fields(da.config))}


def shared_addresses(ctx: Context) -> dict[str, str]:
    """Shared block id -> address."""
    return {b.id: address for address, b in ctx.pool("block").items()}


def blocks_of(ctx: Context) -> BlockState:
    return BLOCKS.of(ctx.live)


# -- create and replace ------------------------------------------------------------------------


def body(ctx: Context, da: DesiredAgent, **mark_extra: str) -> JsonObject | None:
    """The request that creates the agent with everything it declares, or None when it cannot
    be made (a problem was reported)."""
    out: JsonObject = {"name": da.name}
    for k in (*FIELDS, *SETTINGS):
        if k in da.config:
            out[k] = da.config[k]
    out["tags"] = sorted({*strings(da.config.get("tags")), ctx.tag})
    metadata = {
        **obj(da.config.get("metadata")),
        **mark_metadata(ctx.stack, da.address, agent_applied(da), **mark_extra),
    }
    out["metadata"] = metadata
    if "secrets" in da.config:
        secrets = obj(da.config["secrets"])
        out["secrets"] = dict(secrets)
        out["metadata"] = with_recorded(metadata, dict.fromkeys(secrets, WRITTEN))
    out["memory_blocks"] = [block_body(b, ctx.stack, ctx.tag, mark=False) for b in da.memory_blocks]
    out["block_ids"] = [{"$ref": a} for a in da.blocks]
    ok = True  # every check runs: each reason the agent is refused is reported
    if "tools" in da.config:
        ids = tool_ids(ctx, da, None)
        ok = ids is not None
        out["tool_ids"] = ids
    if "mcp_tools" in da.config and not agent_mcp_tools.create_tools(ctx, da, out):
        ok = False
    if "tool_rules" in da.config:
        ok = rule_tools_known(ctx, da) and ok
        out["tool_rules"] = [rule_compared(r) for r in rules_of(da)]
    if "identities" in da.config:
        out["identity_ids"] = identity_ids(ctx, da)
    out.update(da.created)
    return out if ok else None


def create_diffs(da: DesiredAgent, body: Mapping[str, object]) -> list[FieldDiff]:
    diffs = [FieldDiff(k, None, body[k], NEW) for k in ("name", *FIELDS) if k in body]
    diffs.extend(declared_extras(da.config))
    if "tools" in da.config:
        diffs.append(FieldDiff("tools", None, tools_of(da), NEW))
    if "tool_rules" in da.config:
        diffs.append(FieldDiff("tool_rules", None, rules_shown(objs(body["tool_rules"])), NEW))
    if "identities" in da.config:
        diffs.append(FieldDiff("identities", None, sorted(identities_of(da)), NEW))
    diffs.extend(agent_create_only.create_diffs(da))
    diffs.extend(FieldDiff(k, None, da.config[k], NEW) for k in SETTINGS if k in da.config)
    secrets = sorted(obj(da.config.get("secrets")).items())
    diffs.extend(FieldDiff(f"secrets['{k}']", None, v, NEW) for k, v in secrets)
    for b in da.memory_blocks:
        diffs.append(FieldDiff(f"memory_blocks.{b.label}.value", None, b.value, NEW))
        diffs.extend(
            FieldDiff(f"memory_blocks.{b.label}.{k}", None, v, NEW) for k, v in b.config.items()
        )
    if da.blocks:
        diffs.append(FieldDiff("blocks", None, list(da.blocks), NEW))
    return diffs


def served(ctx: Context, da: DesiredAgent, body: Mapping[str, object]) -> bool:
    """Whether the server serves the model and embedding handles `body` sets (when it was asked,
    see AgentKind.facts), or will once this plan made a declared resource serving it (a BYOK
    provider: kinds.serves_models); a problem, with the closest handles, for each it does not."""
    facts = obj(ctx.live.facts.get("agent"))
    ok = True
    for name, route in HANDLES.items():
        handle, known = body.get(name), facts.get(name)
        if not isinstance(known, frozenset) or not isinstance(handle, str) or handle in known:
            continue
        if made_to_serve(ctx, handle, embedding=name == "embedding"):
            continue
        ok = False
        hints = difflib.get_close_matches(handle, sorted(known), n=3, cutoff=0.4)
        listed = ", ".join(map(repr, hints or sorted(known)[:5])) or "none"
        ctx.problems.append(
            Problem(
                da.address,
                f"{name} '{handle}' is not served by this server (GET {route.path})",
                (f"did you mean {listed}?" if hints else f"the server serves: {listed}")
                + " (a provider not configured on the server serves no handle)",
                code="LA633",
            )
        )
    return ok


def create(ctx: Context, da: DesiredAgent) -> None:
    clashes = AGENTS.of(ctx.live).clashes
    if da.name in clashes:
        ids = ", ".join(clashes[da.name])
        ctx.problems.append(
            Problem(
                da.address,
                f"an agent named '{da.name}' already exists on the server and is not managed "
                f"by stack '{ctx.stack}' ({ids})",
                "adopt it with an `imports:` entry, or give the manifest's agent another `name:`",
                code="LA626",
            )
        )
        return
    made = body(ctx, da)
    if served(ctx, da, da.config) and made is not None:
        diffs = (*create_diffs(da, made), *agent_mcp_tools.create_diffs(ctx, da))
        ctx.changes.append(
            Change(da.address, CREATE, diffs=diffs, body=made, why=(NEW,), kind="agent")
        )


def replace(ctx: Context, da: DesiredAgent, la: LiveAgent, reason: FieldDiff) -> None:
    """Create the new agent first (wired to its blocks in the same request), then delete the
    old one and its own blocks (and the blocks Letta made for its sleep-time agents). The old
    one of a group's manager is deleted with the deletes, once the group names the new one:
    Letta refuses to delete a group's manager."""
    if ctx.protected(la, da):
        ctx.refuse_destroy(da.address, "replace")
        return
    if agent_sleeptime.refused(ctx, da.address, la):
        return
    made = body(ctx, da, replaces=la.id)
    if not served(ctx, da, da.config) or made is None:
        return
    manages = la.id in _managers(ctx)
    if not manages:
        old_blocks = [b.id for b in owned_of(la, blocks_of(ctx), set(shared_addresses(ctx)))]
        old_blocks += agent_sleeptime.blocks(ctx, la)
        made = {**made, "replaces": {"agent": la.id, "blocks": old_blocks}}
        agent_sleeptime.going(ctx, da.address, la, "the replaced agent's")
    # As a saved plan reads them back: what the new agent is made with, for the manifest.
    made_diffs = (
        FieldDiff(d.field, None, d.after)
        for d in (*create_diffs(da, made), *agent_mcp_tools.create_diffs(ctx, da))
        if d.field != reason.field
    )
    diffs = (reason, *made_diffs)
    ctx.changes.append(
        Change(da.address, REPLACE, la.id, diffs, made, why=(reason.why,), kind="agent")
    )
    ctx.replacing.add(da.address)
    if manages:
        delete(ctx, da.address, la, REPLACED)


def _managers(ctx: Context) -> set[str]:
    """The ids of the agents managing a group, as far as the plan listed groups (it does
    whenever the manifest or the stack has some)."""
    groups = _GROUPS.of(ctx.live).groups
    return {str(g["manager_agent_id"]) for g in groups if g.get("manager_agent_id")}


# -- deletion ----------------------------------------------------------------------------------


def delete(
    ctx: Context, address: str, la: LiveAgent, why: Why, declared: DesiredAgent | None = None
) -> None:
    """Delete the agent and its own blocks (Letta leaves them behind), and the blocks Letta made
    for its sleep-time agents (which Letta deletes with it), in the agent's own change."""
    own = owned_of(la, blocks_of(ctx), set(shared_addresses(ctx)))
    owned_applied = obj((applied_of(la) or {}).get("memory_blocks"))
    protected_blocks = [
        b.label for b in own if obj(owned_applied.get(b.label)).get("prevent_destroy")
    ]
    if ctx.protected(la, declared) or protected_blocks:
        ctx.refuse_destroy(address)
        return
    if agent_sleeptime.refused(ctx, address, la):
        return
    made = agent_sleeptime.blocks(ctx, la)
    request = {agent_sleeptime.BLOCKS: made} if made else {}
    ctx.changes.append(Change(address, DELETE, la.id, body=request, why=(why,), kind="agent"))
    agent_sleeptime.going(ctx, address, la, "the replaced agent's" if why == REPLACED else "its")
    for b in own:
        delete_block(ctx, owned_block_address(address, b.label), b, why)


def prune_own_blocks(ctx: Context) -> None:
    """Own blocks the manifest no longer declares, on agents it still does."""
    shared = set(shared_addresses(ctx))
    for address, la in AGENT_POOL.of(ctx).items():
        da = AGENTS_DECLARED.of(ctx.desired).get(address)
        if da is None or "memory_blocks" in da.ignore:
            continue
        if address in ctx.importing or address in ctx.replacing:
            continue
        labels = {b.label for b in da.memory_blocks}
        for b in owned_of(la, blocks_of(ctx), shared):
            if b.label not in labels:
                delete_block(ctx, owned_block_address(address, b.label), b, MANIFEST)


def prune_leftovers(ctx: Context, why: Why) -> None:
    """Own blocks whose agent is gone are the stack's leftovers: deleted, by apply and destroy
    alike, unless protected (by their marks or the manifest) or attached to an agent outside
    the stack: those are kept, and named."""
    extra = match_of(ctx)
    users = blocks_of(ctx).users
    ours = our_agent_ids(ctx)
    for address, b in extra.leftovers:
        head = f"{address} ({b.id}): its agent is gone"
        if ctx.protected(b, declared_at(ctx.desired, address)):
            ctx.notes.append(f"{head}; kept: prevent_destroy is set")
            continue
        foreign = [f"{name} ({aid})" for aid, name, _ in users.get(b.id, ()) if aid not in ours]
        if foreign:
            ctx.notes.append(f"{head}; kept: attached to {', '.join(foreign)}, not this stack's")
            continue
        ctx.changes.append(Change(address, DELETE, b.id, why=(why,), kind="block"))
        ctx.notes.append(f"{head}; the block is deleted")
