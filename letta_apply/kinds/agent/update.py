"""Planning an agent's update (kinds.agent): its own fields, model and embedding handles, tags,
metadata, tools, tool rules, identities and settings compared with the live agent's, each
difference with why; secrets and MCP tools (kinds.agent.secrets, kinds.agent.mcp_tools); the
blocks it holds (kinds.agent.block_changes). A field Letta cannot change replaces the agent
(kinds.agent.plan), or refuses an import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...core.changes import FieldDiff, Problem
from ...core.jsonish import obj
from ...core.marks import mark_metadata, user_metadata
from ...errors import define
from ..context import Context, Update, dict_diffs
from ..resource import applied_of
from ..tool.rules import RULES_INTERIM, rule_keys, rules_interim, rules_shown, tool_rules_update
from . import create_only as agent_create_only
from . import mcp_tools as agent_mcp_tools
from .block_changes import agent_blocks
from .model import identities_of, rules_of, tools_of
from .plan import FIELDS, HANDLES, agent_applied, replace, served
from .secrets import plan_secrets, with_recorded
from .settings import SETTINGS, compared
from .uses import identities_shown, identity_ids, rule_tools_known, tool_ids

if TYPE_CHECKING:
    from .model import DesiredAgent, LiveAgent

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA634", "Problem", "an import that would change what Letta cannot",
       "The agent to import differs from the manifest in a field Letta cannot change "
       "(agent_type, include_base_tools...).",
       "Declare the agent's value (or leave the field out) to import it.")
# fmt: on


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
        declared_md = da.config.get("metadata")
        user_md = obj(declared_md) if "metadata" in da.config else user_metadata(la.metadata)
        metadata = {
            **user_md,
            **mark_metadata(ctx.stack, da.address, agent_applied(da, applied or {})),
        }
        u.body["metadata"] = with_recorded(metadata, secrets) if secrets else metadata
        u.emit("agent", la.id, adopt=adopt)
    agent_blocks(ctx, da, la, applied, adopt=adopt)


def same_handle(declared: object, live: object) -> bool:
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


def _field_changes(
    ctx: Context,
    da: DesiredAgent,
    la: LiveAgent,
    applied: Mapping[str, object] | None,
    *,
    adopt: bool,
) -> Update:
    """The agent's own fields that differ, and the PATCH body that converges them."""
    u = Update(ctx, da, applied)
    if "name" not in da.ignore:
        u.field("name", la.name, da.name)
    u.fields(la, [f for f in FIELDS if f not in HANDLES])
    handles = {"model": la.model, "embedding": la.embedding}
    for name in HANDLES:
        live = handles[name]
        if u.managed(name) and not same_handle(da.config[name], live):
            u.field(name, live, da.config[name])
    live_tags = sorted(set(la.tags) - {ctx.tag})
    u.tags(live_tags)
    u.mapping("metadata", user_metadata(la.metadata))
    if u.managed("tools"):
        _tools(ctx, u, da, la)
    if u.managed("tool_rules") and rule_tools_known(ctx, da):
        _tool_rules(ctx, u, da, la, applied)
    if u.managed("identities"):
        ids = identity_ids(ctx, da)
        if any(not isinstance(i, str) for i in ids) or set(ids) != set(la.identity_ids):
            shown = identities_shown(ctx, la.identity_ids)
            u.differs("identities", shown, sorted(identities_of(da)))
            u.body["identity_ids"] = ids
    _settings(ctx, u, da, la, applied)
    u.protection(bool(la.mark) or adopt)
    if adopt:
        u.body.setdefault("tags", sorted({*live_tags, ctx.tag}))
    return u


def _tools(ctx: Context, u: Update, da: DesiredAgent, la: LiveAgent) -> None:
    ids = tool_ids(ctx, da, la)
    known = {i for i in ids or () if isinstance(i, str)}
    if ids is not None and (len(known) != len(ids) or known != {t.id for t in la.tools}):
        declared = tools_of(da)
        shown = sorted(t.name for t in la.tools if not t.is_base or t.name in declared)
        u.differs("tools", shown, sorted(declared))
        u.body["tool_ids"] = ids


def _tool_rules(
    ctx: Context,
    u: Update,
    da: DesiredAgent,
    la: LiveAgent,
    applied: Mapping[str, object] | None,
) -> None:
    base = {t.name for t in la.tools if t.is_base}
    rules = tool_rules_update(rules_of(da), la.tool_rules, base)
    if rules is None:
        return
    # The marks digest the rules as compared (rule_keys), not as a plan shows them.
    why = ctx.why(applied, "tool_rules", rule_keys(rules[0]))
    before, after = rules_shown(rules[0]), rules_shown(rules_of(da))
    u.diffs.append(FieldDiff("tool_rules", before, after, why))
    u.body["tool_rules"] = rules[1]
    interim = rules_interim(rules[1], la.tool_rules)
    if interim is not None:
        u.body[RULES_INTERIM] = interim


def _settings(
    ctx: Context,
    u: Update,
    da: DesiredAgent,
    la: LiveAgent,
    applied: Mapping[str, object] | None,
) -> None:
    for k in SETTINGS:
        if not u.managed(k):
            continue
        declared = da.config[k]
        live = compared(declared, la.settings.get(k))
        if live == declared:
            continue
        u.body[k] = declared
        if isinstance(live, Mapping) and isinstance(declared, Mapping):  # key by key, as metadata
            why = ctx.why(applied, k, live)
            u.diffs.extend(dict_diffs(k, live, declared, why))
        else:
            u.differs(k, live, declared)
