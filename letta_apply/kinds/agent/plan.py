"""Planning an agent (kinds.agent): its create request with everything it declares, updates of
its fields, tools, tool rules and identities, its own blocks and the shared blocks it attaches,
replacement, and deletion with its own blocks."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...core.changes import (
    ATTACH,
    CONFIGURATION,
    CREATE,
    DELETE,
    DETACH,
    DRIFT,
    MANIFEST,
    NEW,
    REPLACE,
    REPLACED,
    Change,
    Drift,
    FieldDiff,
    Problem,
    Why,
)
from ...core.jsonish import obj
from ...core.marks import (
    config_digests,
    digest,
    mark_metadata,
    sensitive_fields,
    sensitive_names,
    user_metadata,
)
from ...errors import define
from ..base import declared_at
from ..block.kind import (
    BLOCKS,
    BLOCKS_DECLARED,
    BlockState,
    LiveBlock,
    block_applied,
    block_body,
    create_block_change,
    declared_extras,
    delete_block,
    our_agent_ids,
    owned_block_address,
    owned_of,
    update_block,
)
from ..context import Context, PoolOf, Update, dict_diffs
from ..resource import applied_of
from ..serves_models import made_to_serve
from ..tool.kind import TOOLS, TOOLS_DECLARED, LiveTool
from ..tool.rules import (
    RULES_INTERIM,
    rule_compared,
    rule_keys,
    rule_tool_names,
    rules_interim,
    rules_shown,
    tool_rules_update,
)
from . import create_only as agent_create_only
from . import mcp_tools as agent_mcp_tools
from . import sleeptime as agent_sleeptime
from .model import AGENT_MATCH, AGENT_POOL, AGENTS, AGENTS_DECLARED, AgentMatch
from .secrets import WRITTEN, plan_secrets, with_recorded
from .settings import SETTINGS, compared

if TYPE_CHECKING:
    from .model import DesiredAgent, LiveAgent

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA630", "Problem", "a tool this plan deletes",
       "An agent uses a tool the manifest no longer declares, which this plan deletes.",
       "Declare the tool again under `tools:`, or stop using it.")
define("LA631", "Problem", "unknown tool",
       "An agent's `tools` names a tool that is neither declared nor on the server.",
       "Declare it under `tools:`, create it on the server, or fix its name.")
define("LA632", "Problem", "tool rules naming unknown tools",
       "An agent's `tool_rules` name a tool that is neither declared nor on the server.",
       "Declare the tool, create it on the server, or fix its name.")
define("LA633", "Problem", "a model the server does not serve",
       "An agent's `model` or `embedding` handle is not among those the server serves.",
       "Use a handle the server lists (the hint gives them), or configure its provider.")
define("LA634", "Problem", "an import that would change what Letta cannot",
       "The agent to import differs from the manifest in a field Letta cannot change "
       "(agent_type, include_base_tools...).",
       "Declare the agent's value (or leave the field out) to import it.")
define("LA635", "Problem", "a label already on the agent",
       "The agent already holds a block with the label of a block the manifest gives it.",
       "Detach that block from the agent, or give the manifest's block another label.")
# fmt: on

FIELDS = ("description", "system", "model", "embedding")
HANDLES = {"model": "/v1/models/", "embedding": "/v1/models/embedding"}
"""Fields naming a handle the server must serve, and where it lists those it does."""


_TOOL_POOL = PoolOf[LiveTool]("tool")


def _match(ctx: Context) -> AgentMatch:
    """What the agents' match left for planning (it always leaves one)."""
    found = AGENT_MATCH.of(ctx)
    assert found is not None, "the agents' match left nothing"
    return found


def agent_applied(da: DesiredAgent, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Digests of the configuration letta-apply writes for an agent, the shared blocks it
    attaches (as addresses), the configuration of its own blocks, and its protection. An
    update (`previous`: the marks it replaces) writes no memory value: the bases of its own
    blocks' values are carried over (a block whose value is written gets its own marks)."""
    out: dict[str, Any] = {
        "name": digest(da.name),
        **config_digests(da.config, (*FIELDS, *SETTINGS)),
    }
    if "tools" in da.config:
        out["tools"] = digest(sorted(da.config["tools"]))
    if "tool_rules" in da.config:
        out["tool_rules"] = digest(rule_keys(da.config["tool_rules"]))
    if "identities" in da.config:
        out["identities"] = digest(sorted(da.config["identities"]))
    out.update(agent_create_only.recorded(da))
    out["blocks"] = sorted(da.blocks)
    if previous is None:
        out["memory_blocks"] = {b.label: block_applied(b) for b in da.memory_blocks}
    else:
        before = previous.get("memory_blocks")
        bases = {
            label: marks.get("value")
            for label, marks in (before.items() if isinstance(before, Mapping) else ())
            if isinstance(marks, Mapping)
        }
        out["memory_blocks"] = {
            b.label: block_applied(b, written=False, base=bases.get(b.label))
            for b in da.memory_blocks
        }
    if da.prevent_destroy:
        out["prevent_destroy"] = True
    return {**out, **sensitive_names(sensitive_fields(da.config))}


def _shared(ctx: Context) -> dict[str, str]:
    """Shared block id -> address."""
    return {b.id: address for address, b in ctx.pool("block").items()}


def _blocks(ctx: Context) -> BlockState:
    state = BLOCKS.of(ctx.live)
    return state


# -- tools and identities ----------------------------------------------------------------------


def _declared_tools(ctx: Context) -> dict[str, Any]:
    return {t.name: t for t in TOOLS_DECLARED.of(ctx.desired).values()}


def _pruned_tools(ctx: Context) -> dict[str, str]:
    """Names of the stack's tools this plan deletes: an agent must not attach them."""
    declared = ctx.desired.of("tool")
    return {t.name: a for a, t in _TOOL_POOL.of(ctx).items() if a not in declared}


def tool_ids(ctx: Context, da: DesiredAgent, la: LiveAgent | None) -> list[Any] | None:
    """Tool ids the agent should end with (`{"$ref": address}` for a tool this plan creates),
    or None when a tool cannot be attached (a problem was reported)."""
    # Base tools are the server's; MCP tools are `mcp_tools:`'s (kinds.agent.mcp_tools).
    ids: list[Any] = [
        t.id for t in la.tools if t.is_base or t.tool_type == agent_mcp_tools.MCP_TOOL
    ] if la else []  # fmt: skip
    unknown = []
    refused = False  # every tool is looked at: each reason is reported, not the first alone
    declared_tools, pruned = _declared_tools(ctx), _pruned_tools(ctx)
    tools = TOOLS.of(ctx.live)
    by_name = tools.by_name
    for name in da.config["tools"]:
        declared = declared_tools.get(name)
        tid: Any
        if declared is not None and declared.address in ctx.refused:
            ctx.problems.append(
                Problem(
                    da.address,
                    f"uses {declared.address}, which apply refuses to create",
                    f"see {declared.address}",
                    code="LA622",
                )
            )
            refused = True
            continue
        if declared is not None:
            lt = ctx.pool("tool").get(declared.address)
            tid = lt.id if lt is not None else {"$ref": declared.address}
        elif name in pruned:
            ctx.problems.append(
                Problem(
                    da.address,
                    f"uses tool '{name}', which this plan deletes ({pruned[name]} is no longer "
                    "declared)",
                    "declare the tool again under `tools:`, or stop using it",
                    code="LA630",
                )
            )
            refused = True
            continue
        else:
            tid = by_name.get(name)
        if tid is None:
            unknown.append(name)
        elif tid not in ids:
            ids.append(tid)
    if unknown:
        known = [*by_name, *declared_tools]
        hints = [h for n in unknown for h in difflib.get_close_matches(n, known, n=1)]
        ctx.problems.append(
            Problem(
                da.address,
                f"unknown tool{'s' if len(unknown) > 1 else ''} " + ", ".join(map(repr, unknown)),
                f"did you mean {', '.join(map(repr, hints))}?"
                if hints
                else "create the tool on the server first, or fix its name",
                code="LA631",
            )
        )
        return None
    return None if refused else ids


def rule_tools_known(ctx: Context, da: DesiredAgent) -> bool:
    """Every tool the agent's rules name exists, or is declared; else a problem."""
    names = {n for r in da.config["tool_rules"] for n in rule_tool_names(r)}
    declared, pruned = _declared_tools(ctx), _pruned_tools(ctx)
    tools = TOOLS.of(ctx.live)
    by_name = tools.by_name
    unknown = sorted(n for n in names if n not in declared and (n not in by_name or n in pruned))
    if unknown:
        ctx.problems.append(
            Problem(
                da.address,
                f"tool_rules name unknown tool{'s' if len(unknown) > 1 else ''} "
                + ", ".join(map(repr, unknown)),
                "declare the tool under `tools:`, create it on the server, or fix its name",
                code="LA632",
            )
        )
    return not unknown


def identity_ids(ctx: Context, da: DesiredAgent) -> list[Any]:
    """Ids of the identities the agent declares (`{"$ref": address}` for one this plan
    creates)."""
    pool = ctx.pool("identity")
    return [pool[a].id if a in pool else {"$ref": a} for a in da.config.get("identities", ())]


def _identities_shown(ctx: Context, ids: tuple[str, ...]) -> list[str]:
    """Live identity ids as addresses where the stack manages them."""
    by_id = {r.id: a for a, r in ctx.pool("identity").items()}
    return sorted(by_id.get(i, i) for i in ids)


# -- create and replace ------------------------------------------------------------------------


def body(ctx: Context, da: DesiredAgent, **mark_extra: Any) -> dict[str, Any] | None:
    """The request that creates the agent with everything it declares, or None when it cannot
    be made (a problem was reported)."""
    out: dict[str, Any] = {"name": da.name}
    for k in (*FIELDS, *SETTINGS):
        if k in da.config:
            out[k] = da.config[k]
    out["tags"] = sorted({*da.config.get("tags", ()), ctx.tag})
    out["metadata"] = {
        **da.config.get("metadata", {}),
        **mark_metadata(ctx.stack, da.address, agent_applied(da), **mark_extra),
    }
    if "secrets" in da.config:
        out["secrets"] = dict(da.config["secrets"])
        written = dict.fromkeys(da.config["secrets"], WRITTEN)
        out["metadata"] = with_recorded(out["metadata"], written)
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
        out["tool_rules"] = [rule_compared(r) for r in da.config["tool_rules"]]
    if "identities" in da.config:
        out["identity_ids"] = identity_ids(ctx, da)
    out.update(da.created)
    return out if ok else None


def create_diffs(da: DesiredAgent, body: Mapping[str, Any]) -> list[FieldDiff]:
    diffs = [FieldDiff(k, None, body[k], NEW) for k in ("name", *FIELDS) if k in body]
    diffs.extend(declared_extras(da.config))
    if "tools" in da.config:
        diffs.append(FieldDiff("tools", None, list(da.config["tools"]), NEW))
    if "tool_rules" in da.config:
        diffs.append(FieldDiff("tool_rules", None, rules_shown(body["tool_rules"]), NEW))
    if "identities" in da.config:
        diffs.append(FieldDiff("identities", None, sorted(da.config["identities"]), NEW))
    diffs.extend(agent_create_only.create_diffs(da))
    diffs.extend(FieldDiff(k, None, da.config[k], NEW) for k in SETTINGS if k in da.config)
    secrets = sorted((da.config.get("secrets") or {}).items())
    diffs.extend(FieldDiff(f"secrets['{k}']", None, v, NEW) for k, v in secrets)
    for b in da.memory_blocks:
        diffs.append(FieldDiff(f"memory_blocks.{b.label}.value", None, b.value, NEW))
        diffs.extend(
            FieldDiff(f"memory_blocks.{b.label}.{k}", None, v, NEW) for k, v in b.config.items()
        )
    if da.blocks:
        diffs.append(FieldDiff("blocks", None, list(da.blocks), NEW))
    return diffs


def same_handle(declared: Any, live: Any) -> bool:
    """Whether the server holds the declared model or embedding handle, compared the way
    servers report them: a handle the server does not report (Letta Cloud manages embeddings
    itself) is not a difference, case does not count, and a provider prefix the server drops
    or adds (`openai/gpt-4o` against `gpt-4o`) is the same model."""
    if live is None or live == "":
        return True
    if not isinstance(declared, str) or not isinstance(live, str):
        return bool(declared == live)
    a, b = declared.strip().lower(), live.strip().lower()
    return a == b or a.split("/", 1)[-1] == b or b.split("/", 1)[-1] == a


def served(ctx: Context, da: DesiredAgent, body: Mapping[str, Any]) -> bool:
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
                f"{name} '{handle}' is not served by this server (GET {route})",
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
        old_blocks = [b.id for b in owned_of(la, _blocks(ctx), set(_shared(ctx)))]
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
    groups = getattr(ctx.live.of("group"), "groups", ())
    return {str(g["manager_agent_id"]) for g in groups if g.get("manager_agent_id")}


# -- update ------------------------------------------------------------------------------------


def update(ctx: Context, da: DesiredAgent, la: LiveAgent) -> None:
    adopt = da.address in ctx.importing
    applied = applied_of(la)
    reason = agent_create_only.replacement(da, la, applied)
    if reason is not None and adopt:  # adopting, never replacing: what it has stays
        ctx.problems.append(
            Problem(
                da.address,
                f"the agent to import has {reason.field} {reason.before}, the manifest declares "
                f"{reason.after}: Letta cannot change it",
                f"declare {reason.field}: {reason.before} (or leave it out) to import this agent",
                code="LA634",
            )
        )
        return
    if reason is not None:
        replace(ctx, da, la, reason)
        return
    u = _field_changes(ctx, da, la, applied, adopt=adopt)
    secrets = plan_secrets(ctx, u, da, la)
    agent_mcp_tools.plan_mcp_tools(ctx, u, da, la)
    if not served(ctx, da, u.body):
        return
    if u.needed(adopt=adopt):
        user_md = da.config.get("metadata", user_metadata(la.metadata))
        metadata = {
            **user_md,
            **mark_metadata(ctx.stack, da.address, agent_applied(da, applied or {})),
        }
        u.body["metadata"] = with_recorded(metadata, secrets) if secrets else metadata
        u.emit("agent", la.id, adopt=adopt)
    _agent_blocks(ctx, da, la, applied, adopt=adopt)


def _field_changes(
    ctx: Context,
    da: DesiredAgent,
    la: LiveAgent,
    applied: Mapping[str, Any] | None,
    *,
    adopt: bool,
) -> Update:
    """The agent's own fields that differ, and the PATCH body that converges them."""
    u = Update(ctx, da, applied)
    if "name" not in da.ignore:
        u.field("name", la.name, da.name)
    u.fields(la, [f for f in FIELDS if f not in HANDLES])
    for name in HANDLES:
        live = getattr(la, name)
        if u.managed(name) and not same_handle(da.config[name], live):
            u.field(name, live, da.config[name])
    live_tags = sorted(set(la.tags) - {ctx.tag})
    u.tags(live_tags)
    u.mapping("metadata", user_metadata(la.metadata))
    if u.managed("tools"):
        ids = tool_ids(ctx, da, la)
        known = {i for i in ids or () if isinstance(i, str)}
        if ids is not None and (len(known) != len(ids) or known != {t.id for t in la.tools}):
            shown = sorted(
                t.name for t in la.tools if not t.is_base or t.name in da.config["tools"]
            )
            u.differs("tools", shown, sorted(da.config["tools"]))
            u.body["tool_ids"] = ids
    if u.managed("tool_rules") and rule_tools_known(ctx, da):
        base = {t.name for t in la.tools if t.is_base}
        rules = tool_rules_update(da.config["tool_rules"], la.tool_rules, base)
        if rules is not None:
            # The marks digest the rules as compared (rule_keys), not as a plan shows them.
            why = ctx.why(applied, "tool_rules", rule_keys(rules[0]))
            before, after = rules_shown(rules[0]), rules_shown(da.config["tool_rules"])
            u.diffs.append(FieldDiff("tool_rules", before, after, why))
            u.body["tool_rules"] = rules[1]
            interim = rules_interim(rules[1], la.tool_rules)
            if interim is not None:
                u.body[RULES_INTERIM] = interim
    if u.managed("identities"):
        ids_ = identity_ids(ctx, da)
        if any(not isinstance(i, str) for i in ids_) or set(ids_) != set(la.identity_ids):
            shown_ids = _identities_shown(ctx, la.identity_ids)
            u.differs("identities", shown_ids, sorted(da.config["identities"]))
            u.body["identity_ids"] = ids_
    for k in SETTINGS:
        if u.managed(k):
            declared = da.config[k]
            live = compared(declared, la.settings.get(k))
            if live == declared:
                continue
            u.body[k] = declared
            if isinstance(live, Mapping):  # key by key, as metadata
                why = ctx.why(applied, k, live)
                u.diffs.extend(dict_diffs(k, live, declared, why))
            else:
                u.differs(k, live, declared)
    u.protection(bool(la.mark) or adopt)
    if adopt:
        u.body.setdefault("tags", sorted({*live_tags, ctx.tag}))
    return u


# -- blocks ------------------------------------------------------------------------------------


def _agent_blocks(
    ctx: Context,
    da: DesiredAgent,
    la: LiveAgent,
    applied: Mapping[str, Any] | None,
    *,
    adopt: bool,
) -> None:
    state = _blocks(ctx)
    attached = [state.blocks[i] for i in la.block_ids if i in state.blocks]
    by_label = {b.label: b for b in attached}
    if "memory_blocks" not in da.ignore:
        _own_blocks(ctx, da, la, by_label, applied, adopt=adopt)
    if "blocks" not in da.ignore:
        _shared_blocks(ctx, da, la, attached, by_label, applied)


def _own_blocks(
    ctx: Context,
    da: DesiredAgent,
    la: LiveAgent,
    by_label: Mapping[str, LiveBlock],
    applied: Mapping[str, Any] | None,
    *,
    adopt: bool,
) -> None:
    shared_ids = _shared(ctx)
    state = _blocks(ctx)
    owned_applied = (applied or {}).get("memory_blocks") or {}
    taken = "detach that block from the agent or give the declared block another label"
    for db in da.memory_blocks:
        lb = by_label.get(db.label)
        if lb is None:
            ctx.changes.append(create_block_change(ctx, db))
            ctx.changes.append(
                Change(da.address, ATTACH, la.id, block=db.address, why=(NEW,), kind="agent")
            )
        elif lb.id in shared_ids:
            ctx.problems.append(
                Problem(
                    db.address,
                    f"the agent already has a block labelled '{db.label}' ({lb.id}, "
                    f"{shared_ids[lb.id]})",
                    taken,
                    code="LA635",
                )
            )
        elif lb.id in state.tagged and not adopt:
            ctx.ids[db.address] = lb.id
            # Blocks created inline with an agent carry no mark of their own until letta-apply
            # updates them; until then the agent's mark speaks for them.
            own = applied_of(lb)
            update_block(ctx, db, lb, own if own is not None else owned_applied.get(db.label))
        elif adopt and not lb.mark:
            ctx.ids[db.address] = lb.id
            update_block(ctx, db, lb, None, adopt=True)
        else:
            ctx.problems.append(
                Problem(
                    db.address,
                    f"the agent already has a block labelled '{db.label}' ({lb.id}, a block "
                    "this stack does not manage)",
                    taken,
                    code="LA635",
                )
            )


def _shared_blocks(
    ctx: Context,
    da: DesiredAgent,
    la: LiveAgent,
    attached: list[LiveBlock],
    by_label: Mapping[str, LiveBlock],
    applied: Mapping[str, Any] | None,
) -> None:
    shared_ids = _shared(ctx)
    state = _blocks(ctx)
    was = set(applied["blocks"]) if applied and isinstance(applied.get("blocks"), list) else None
    wanted = set(da.blocks)
    for addr in da.blocks:
        lb = ctx.pool("block").get(addr)
        if lb is not None and lb.id in la.block_ids:
            continue
        label = BLOCKS_DECLARED.of(ctx.desired)[addr].label
        other = by_label.get(label)
        if other is not None and other.id not in shared_ids:
            ctx.problems.append(
                Problem(
                    da.address,
                    f"cannot attach {addr}: the agent already has a block labelled "
                    f"'{label}' ({other.id})",
                    "detach that block from the agent or give the shared block another label",
                    code="LA635",
                )
            )
            continue
        # Declared and attached before, missing now: someone detached it on the server.
        why: Why = DRIFT if was is not None and addr in was and lb is not None else MANIFEST
        ctx.changes.append(Change(da.address, ATTACH, la.id, block=addr, why=(why,), kind="agent"))
        if why == DRIFT:
            ctx.drift.append(
                Drift(da.address, f"blocks[{addr}]", "attached", "detached", CONFIGURATION, True)
            )
    declared_labels = {b.label for b in da.memory_blocks}
    for b in attached:
        shared = shared_ids.get(b.id)
        if shared is not None and shared not in wanted:
            # Never attached by letta-apply: someone attached it on the server.
            why = DRIFT if was is not None and shared not in was else MANIFEST
            ctx.changes.append(
                Change(da.address, DETACH, la.id, block=shared, why=(why,), kind="agent")
            )
            if why == DRIFT:
                ctx.drift.append(
                    Drift(
                        da.address, f"blocks[{shared}]", "detached", "attached", CONFIGURATION,
                        True,
                    )
                )  # fmt: skip
        elif shared is None and b.id not in state.tagged and b.label not in declared_labels:
            _unmanaged_block(ctx, da, la, b)


def _unmanaged_block(ctx: Context, da: DesiredAgent, la: LiveAgent, b: LiveBlock) -> None:
    """A block this stack does not manage, attached to one of its agents by hand: drift,
    detached only when asked (--detach-unmanaged-blocks), else left alone."""
    ctx.drift.append(
        Drift(
            da.address, f"blocks[{b.id}]", "detached", "attached", CONFIGURATION,
            ctx.detach_unmanaged, label=b.label,
        )
    )  # fmt: skip
    if ctx.detach_unmanaged:
        ctx.changes.append(
            Change(da.address, DETACH, la.id, block=b.id, why=(DRIFT,), kind="agent")
        )


# -- deletion ----------------------------------------------------------------------------------


def delete(ctx: Context, address: str, la: LiveAgent, why: Why, declared: Any = None) -> None:
    """Delete the agent and its own blocks (Letta leaves them behind), and the blocks Letta made
    for its sleep-time agents (which Letta deletes with it), in the agent's own change."""
    own = owned_of(la, _blocks(ctx), set(_shared(ctx)))
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
    shared = set(_shared(ctx))
    for address, la in AGENT_POOL.of(ctx).items():
        da = AGENTS_DECLARED.of(ctx.desired).get(address)
        if da is None or "memory_blocks" in da.ignore:
            continue
        if address in ctx.importing or address in ctx.replacing:
            continue
        labels = {b.label for b in da.memory_blocks}
        for b in owned_of(la, _blocks(ctx), shared):
            if b.label not in labels:
                delete_block(ctx, owned_block_address(address, b.label), b, MANIFEST)


def prune_leftovers(ctx: Context, why: Why) -> None:
    """Own blocks whose agent is gone are the stack's leftovers: deleted, by apply and destroy
    alike, unless protected (by their marks or the manifest) or attached to an agent outside
    the stack: those are kept, and named."""
    extra = _match(ctx)
    users = _blocks(ctx).users
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


def superseded(ctx: Context) -> tuple[tuple[str, LiveAgent], ...]:
    extra = _match(ctx)
    return extra.superseded
