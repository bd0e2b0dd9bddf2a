"""What an agent uses by id (kinds.agent): the tools it names, the tools its rules name and the
identities it declares, each the id of a live resource or `{"$ref": address}` for one the plan
creates; a tool it cannot be given is a problem."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from ...core.changes import Problem
from ...errors import define
from ..context import Context, PoolOf
from ..resource import Resource
from ..tool.kind import TOOLS, TOOLS_DECLARED, DesiredTool, LiveTool
from ..tool.rules import rule_tool_names
from . import mcp_tools as agent_mcp_tools
from .model import identities_of, rules_of, tools_of

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
# fmt: on

IdOrRef = str | dict[str, str]
"""A live resource's id, or `{"$ref": address}` for one the plan creates (apply fills in its
id)."""

_TOOL_POOL = PoolOf[LiveTool]("tool")
_IDENTITY_POOL = PoolOf[Resource]("identity")


def _declared_tools(ctx: Context) -> dict[str, DesiredTool]:
    return {t.name: t for t in TOOLS_DECLARED.of(ctx.desired).values()}


def _pruned_tools(ctx: Context) -> dict[str, str]:
    """Names of the stack's tools this plan deletes: an agent must not attach them."""
    declared = ctx.desired.of("tool")
    return {t.name: a for a, t in _TOOL_POOL.of(ctx).items() if a not in declared}


def _kept_tools(la: LiveAgent | None) -> list[IdOrRef]:
    """The attached tools `tools:` does not manage: base tools are the server's, MCP tools are
    `mcp_tools:`'s (kinds.agent.mcp_tools)."""
    if la is None:
        return []
    return [t.id for t in la.tools if t.is_base or t.tool_type == agent_mcp_tools.MCP_TOOL]


def tool_ids(ctx: Context, da: DesiredAgent, la: LiveAgent | None) -> list[IdOrRef] | None:
    """Tool ids the agent should end with (`{"$ref": address}` for a tool this plan creates),
    or None when a tool cannot be attached (a problem was reported)."""
    ids = _kept_tools(la)
    unknown = []
    refused = False  # every tool is looked at: each reason is reported, not the first alone
    declared_tools, pruned = _declared_tools(ctx), _pruned_tools(ctx)
    by_name = TOOLS.of(ctx.live).by_name
    for name in tools_of(da):
        declared = declared_tools.get(name)
        tid: IdOrRef | None
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
            lt = _TOOL_POOL.of(ctx).get(declared.address)
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
        _unknown_tools(ctx, da, unknown, [*by_name, *declared_tools])
        return None
    return None if refused else ids


def _unknown_tools(ctx: Context, da: DesiredAgent, unknown: list[str], known: list[str]) -> None:
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


def rule_tools_known(ctx: Context, da: DesiredAgent) -> bool:
    """Every tool the agent's rules name exists, or is declared; else a problem."""
    names = {n for r in rules_of(da) for n in rule_tool_names(r)}
    declared, pruned = _declared_tools(ctx), _pruned_tools(ctx)
    by_name = TOOLS.of(ctx.live).by_name
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


def identity_ids(ctx: Context, da: DesiredAgent) -> list[IdOrRef]:
    """Ids of the identities the agent declares (`{"$ref": address}` for one this plan
    creates)."""
    pool = _IDENTITY_POOL.of(ctx)
    return [pool[a].id if a in pool else {"$ref": a} for a in identities_of(da)]


def identities_shown(ctx: Context, ids: tuple[str, ...]) -> list[str]:
    """Live identity ids as addresses where the stack manages them."""
    by_id = {r.id: a for a, r in _IDENTITY_POOL.of(ctx).items()}
    return sorted(by_id.get(i, i) for i in ids)
