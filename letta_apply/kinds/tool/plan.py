"""Planning custom tools: which live tools are the stack's (by their marks; a tool made by an
apply interrupted before it could mark it, by the stack's tag and its name), the create (refused
when the name is taken outside the stack), the update in place, the delete, and what a change
was planned from (`tool_fingerprint`)."""

from __future__ import annotations

from ...core.changes import CREATE, DELETE, NEW, Change, FieldDiff, Problem, Why
from ...core.jsonish import JsonObject, strings
from ...core.marks import digest, mark_metadata, user_metadata
from ...core.model import Live
from ..block.model import our_agent_ids
from ..context import Context, Matched, Update
from ..resource import applied_of
from .model import FIELDS, TOOLS, DesiredTool, LiveTool, pip_requirements, tool_applied


def match_tools(live: Live, stack: str) -> Matched[LiveTool]:
    """The stack's tools, by their marks. Tools with the stack's tag but no marks yet (`extra`)
    were created by an apply interrupted before it could mark them: matched to the declared
    tool of that name (`plan`)."""
    state = TOOLS.of(live)
    tag = f"letta-apply:{stack}"
    pool: dict[str, LiveTool] = {}
    unmarked: list[LiveTool] = []
    notes: list[str] = []
    for t in sorted(state.custom, key=lambda t: t.id):
        if tag not in t.tags:
            continue
        address = t.mark.get("address")
        if not t.mark:
            unmarked.append(t)
        elif (
            t.mark.get("stack") != stack
            # Another project's tool (tools are the organization's); a mark from before
            # projects were recorded counts as this project's.
            or t.mark.get("project", live.project) != live.project
            or not isinstance(address, str)
            or not address.startswith("tool.")
        ):
            continue
        elif address in pool:
            notes.append(
                f"{address}: more than one tool carries this address ({pool[address].id}, "
                f"{t.id}); using {pool[address].id}, the other is left alone"
            )
        else:
            pool[address] = t
    return Matched(pool, {a: t.id for a, t in pool.items()}, tuple(notes), tuple(unmarked))


def _project(ctx: Context) -> dict[str, str]:
    """The project a tool's marks name: tools are the organization's, not a project's."""
    return {"project": ctx.live.project} if ctx.live.project else {}


def create_body(ctx: Context, dt: DesiredTool) -> JsonObject:
    """What creates the tool. `name` and `metadata_` are not part of Letta's create request:
    apply checks the name and writes the marks right after."""
    body: JsonObject = {"source_code": dt.source_code, "name": dt.name}
    for k in FIELDS:
        if k in dt.config:
            body[k] = dt.config[k]
    if "pip_requirements" in dt.config:
        body["pip_requirements"] = pip_requirements(dt.config["pip_requirements"])
    body["tags"] = sorted({*strings(dt.config.get("tags")), ctx.tag})
    body["metadata_"] = mark_metadata(ctx.stack, dt.address, tool_applied(dt), **_project(ctx))
    return body


def create_tool(ctx: Context, dt: DesiredTool) -> None:
    """Plan the create of a tool, or refuse it when its name is taken outside the stack."""
    holder = TOOLS.of(ctx.live).by_name.get(dt.name)
    if holder is not None:
        ctx.refused.add(dt.address)
        ctx.problems.append(
            Problem(
                dt.address,
                f"a tool named '{dt.name}' already exists on the server and is not managed "
                f"by stack '{ctx.stack}' ({holder}); creating it would overwrite that tool",
                f"adopt it with an `imports:` entry ({{to: {dt.address}, name: {dt.name}}}), "
                f"or rename the function in {dt.source_file}",
                code="LA626",
            )
        )
        return
    body = create_body(ctx, dt)
    diffs = [
        FieldDiff("name", None, dt.name, NEW),
        FieldDiff("source_file", None, dt.source_file, NEW),
    ]
    diffs += [FieldDiff(k, None, body[k], NEW) for k in (*FIELDS, "pip_requirements") if k in body]
    if "tags" in dt.config:
        diffs.append(FieldDiff("tags", None, sorted(strings(dt.config["tags"])), NEW))
    diffs.append(FieldDiff("source_code", None, dt.source_code, NEW))
    ctx.changes.append(
        Change(dt.address, CREATE, diffs=tuple(diffs), body=body, why=(NEW,), kind="tool")
    )


def update_tool(
    ctx: Context,
    dt: DesiredTool,
    lt: LiveTool,
    *,
    finish: bool = False,
    adopt: bool = False,
) -> None:
    """Plan the update of a tool in place (same id). With `finish`, the tool was created by
    an interrupted apply and has no marks yet: they are written now. With `adopt`, the tool
    is imported: it gets the stack's tag and marks in the same request."""
    u = Update(ctx, dt, None if finish or adopt else applied_of(lt))
    if "source_code" not in dt.ignore and (lt.source_code != dt.source_code or lt.name != dt.name):
        if lt.name != dt.name:
            u.differs("name", lt.name, dt.name)
        if lt.source_code != dt.source_code:
            u.differs("source_code", lt.source_code, dt.source_code)
        # The server derives the tool's name and JSON schema from the source: apply asks it
        # for the schema of the new source and sends both (a PATCH alone keeps the old one).
        u.body["source_code"] = dt.source_code
    u.fields(lt, FIELDS)
    if u.managed("pip_requirements"):
        live_pip = pip_requirements(lt.pip_requirements)
        u.field("pip_requirements", live_pip, pip_requirements(dt.config["pip_requirements"]))
    live_tags = sorted(set(lt.tags) - {ctx.tag})
    u.tags(live_tags)
    u.protection(bool(lt.mark))
    if adopt:
        # Tags go in whole (the server replaces the set): the live ones plus the stack's.
        u.body.setdefault("tags", sorted({*live_tags, ctx.tag}))
    if u.needed(adopt=adopt, also=finish):
        u.body["metadata_"] = {
            **user_metadata(lt.metadata),
            **mark_metadata(ctx.stack, dt.address, tool_applied(dt), **_project(ctx)),
        }
        u.emit("tool", lt.id, adopt=adopt)


def delete_tool(
    ctx: Context, address: str, lt: LiveTool, why: Why, declared: DesiredTool | None
) -> None:
    """Plan the delete of a tool (or a problem: protected, or used outside the stack)."""
    if ctx.protected(lt, declared):
        ctx.refuse_destroy(address)
        return
    users = TOOLS.of(ctx.live).users.get(lt.id, ())
    if ctx.used_elsewhere(address, users, our_agent_ids(ctx)):
        return
    ctx.changes.append(Change(address, DELETE, lt.id, why=(why,), kind="tool"))


def tool_fingerprint(t: LiveTool) -> str:
    return digest(
        [
            t.id, t.name, t.source_code, t.description, sorted(t.tags), dict(t.metadata),
            t.return_char_limit, list(t.pip_requirements or ()), t.default_requires_approval,
        ]
    )  # fmt: skip
