"""Custom tools: `tools:`, addressed tool.<key>, each made from a Python source file.

Letta names a tool after a function of its source (the last one `ast.walk` meets, which must
have a docstring: Letta derives the tool's JSON schema from it), so the name is known before any
request: agents may attach a declared tool by its key or by that name, and tool rules may name
it either way too. Tool names are unique on a server: a declared name already taken by a tool the
stack does not own is a clash, refused with the hint to import it.

Marks: the stack's tag in `tags`, and stack, address and digests in `metadata_` (Letta's name
for a tool's metadata). The server's own tools (memory, search...) are never owned.
"""

from __future__ import annotations

import ast
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict, cast

from ...core.changes import (
    CREATE,
    DELETE,
    NEW,
    Change,
    FieldDiff,
    Problem,
    Why,
)
from ...core.marks import digest, mark_metadata, user_metadata
from ...core.model import Desired, Import, Live
from ...errors import ApiError, Diagnostic, define
from ...manifest.files import Document
from ...server.client import LettaClient
from ..base import Field, Kind, Shape
from ..block.kind import our_agent_ids, stack_of
from ..context import (
    Context,
    DeclaredOf,
    ExtraOf,
    Matched,
    Run,
    StateOf,
    Update,
    Users,
    unmark_tagged,
)
from ..resource import applied_of, mark_of
from ..writing import Conversion
from .source import function_name, parse_source, read_sources, renamed, source_at

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA471", "ManifestError", "tool name used twice",
       "Two tools of the manifest have the same name (their function's name); tool names are "
       "unique on a server.",
       "Rename one of the functions.")
define("LA720", "ApiError", "a tool's name taken since the plan",
       "A tool of the same name was made on the server since the plan; Letta's create would "
       "overwrite it, so it was not sent.",
       "Plan again: adopt that tool with `imports:`, or rename yours.")
define("LA721", "ApiError", "a tool's source the server cannot take",
       "A tool's source to send holds no function, so the server cannot derive its schema.",
       "Check the tool's source file, then plan again.")
# fmt: on

CONFIG = (
    "description",
    "tags",
    "return_char_limit",
    "pip_requirements",
    "default_requires_approval",
)
FIELDS = ("description", "return_char_limit", "default_requires_approval")


@dataclass(frozen=True)
class DesiredTool:
    """A custom tool declared under `tools:`, from a Python source file. `name` is the function
    Letta makes the tool from (the last one in the file); `config` holds only the fields the
    manifest sets (description, tags, return_char_limit, pip_requirements,
    default_requires_approval)."""

    address: str
    name: str
    source_code: str
    source_file: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()  # ignore_changes: set at creation, never compared


class _Id(TypedDict):
    id: str


class ToolJSON(_Id, total=False):
    """A tool as Letta's API returns it (the fields letta-apply reads)."""

    name: str
    tool_type: str
    source_code: str | None
    description: str | None
    tags: list[str] | None
    metadata_: dict[str, Any] | None
    return_char_limit: int | None
    pip_requirements: list[dict[str, Any]] | None
    default_requires_approval: bool | None


@dataclass(frozen=True)
class LiveTool:
    id: str
    name: str
    tool_type: str = "custom"
    source_code: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    return_char_limit: int | None = None
    pip_requirements: tuple[Mapping[str, Any], ...] | None = None
    default_requires_approval: bool | None = None

    @property
    def is_base(self) -> bool:
        """Tools the server provides itself (memory, search...); letta-apply leaves them alone."""
        return is_base_tool_type(self.tool_type)

    @property
    def mark(self) -> Mapping[str, Any]:
        return mark_of(self.metadata)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> LiveTool:
        d = cast(ToolJSON, raw)
        pip = d.get("pip_requirements")
        return cls(
            id=d["id"],
            name=d.get("name") or "",
            tool_type=d.get("tool_type") or "custom",
            source_code=d.get("source_code"),
            description=d.get("description"),
            tags=tuple(d.get("tags") or ()),
            metadata=d.get("metadata_") or {},
            return_char_limit=d.get("return_char_limit"),
            pip_requirements=None if pip is None else tuple(pip),
            default_requires_approval=d.get("default_requires_approval"),
        )


@dataclass(frozen=True)
class ToolState:
    """Every tool on the server (Letta cannot filter tools by tag: one listing finds the stack's
    tools, the ids of the tools agents name and the names declared tools would take), and the
    agents using each tool a plan may delete."""

    tools: tuple[LiveTool, ...] = ()
    users: Mapping[str, Users] = field(default_factory=dict)

    @property
    def by_name(self) -> dict[str, str]:
        return {t.name: t.id for t in self.tools}

    @property
    def custom(self) -> tuple[LiveTool, ...]:
        return tuple(t for t in self.tools if not t.is_base)


TOOLS = StateOf[ToolState]("tool")
"""The tools' live state, typed (for the kinds that read it)."""
TOOLS_DECLARED = DeclaredOf[DesiredTool]("tool")
_UNMARKED = ExtraOf[tuple[LiveTool, ...]]("tool")  # same-named tools the stack may adopt
"""The declared tools, typed (for the kinds that read them)."""


def is_base_tool_type(tool_type: str) -> bool:
    """Tools the server provides itself (memory, search...): letta-apply never owns them."""
    return tool_type.startswith("letta")


ON_REQUEST = ("letta_builtin",)
"""Types of the server's own tools that an agent gets only when it asks for them by name."""


def pip_requirements(reqs: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Pip requirements as compared: the server writes a missing version as null."""
    return [{k: v for k, v in r.items() if v is not None} for r in reqs or ()]


def _project(ctx: Context) -> dict[str, str]:
    """The project a tool's marks name: tools are the organization's, not a project's."""
    return {"project": ctx.live.project} if ctx.live.project else {}


def tool_applied(dt: DesiredTool) -> dict[str, Any]:
    """Digests of what letta-apply writes for a custom tool, and its protection."""
    out: dict[str, Any] = {"name": digest(dt.name), "source_code": digest(dt.source_code)}
    for k in FIELDS:
        if k in dt.config:
            out[k] = digest(dt.config[k])
    if "tags" in dt.config:
        out["tags"] = digest(sorted(dt.config["tags"]))
    if "pip_requirements" in dt.config:
        out["pip_requirements"] = digest(pip_requirements(dt.config["pip_requirements"]))
    if dt.prevent_destroy:
        out["prevent_destroy"] = True
    return out


class ToolKind(Kind[DesiredTool, LiveTool, ToolState]):
    name: ClassVar[str] = "tool"
    section: ClassVar[str] = "tools"
    id_prefix: ClassVar[str] = "tool-"
    fields: ClassVar[tuple[Field, ...]] = (
        Field("source_code"),
        Field("description"),
        Field("tags"),
        Field("return_char_limit"),
        Field("pip_requirements"),
        Field("default_requires_approval"),
    )
    marks: ClassVar[str] = "the stack's tag in `tags`; stack, address and digests in `metadata_`"
    shape: ClassVar[Shape] = "hexagon"
    import_by_name: ClassVar[bool] = True
    tagged: ClassVar[bool] = True

    # -- the manifest ----------------------------------------------------------------------

    def read_files(
        self, doc: Document, data: Mapping[str, Any]
    ) -> tuple[list[str], list[Diagnostic]]:
        return read_sources(doc, data)

    def check(self, doc: Document, data: Mapping[str, Any]) -> list[Diagnostic]:
        errors: list[Diagnostic] = []
        names: dict[str, str] = {}  # tool name -> key
        tools = data.get("tools")
        for key, spec in (tools if isinstance(tools, dict) else {}).items():
            if not isinstance(spec, dict) or not isinstance(spec.get("source_file"), str):
                continue  # the schema reports it
            _, name, problems = parse_source(doc, key)
            errors += problems
            if name is None:
                continue
            if name in names:
                errors.append(
                    doc.diag(
                        source_at(key),
                        f"tools.{key}: tool name {name!r} is already declared by "
                        f"tools.{names[name]}; tool names are unique on a Letta server",
                        code="LA471",
                    )
                )
            names.setdefault(name, key)
        return errors

    def declare(self, doc: Document, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, DesiredTool] = {}
        for key, spec in (data.get("tools") or {}).items():
            text, name, _ = parse_source(doc, key)
            assert text is not None and name is not None  # `check` passed
            address = f"tool.{key}"
            out[address] = DesiredTool(
                address=address,
                name=name,
                source_code=text,
                source_file=str(spec["source_file"]),
                config={k: spec[k] for k in CONFIG if k in spec},
                prevent_destroy=bool(spec.get("prevent_destroy", False)),
                ignore=frozenset(spec.get("ignore_changes", ())),
            )
        return out

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> Any:
        return client.list_tools()

    def find(self, client: LettaClient, imp: Import, raw: Mapping[str, Any]) -> tuple[Any, Any]:
        """From the listing already read (tool names are unique)."""
        found = [
            t for t in map(LiveTool.from_api, raw["tool"])
            if t.id == imp.id or (imp.name is not None and t.name == imp.name)
        ]  # fmt: skip
        if not found:
            return f"no such tool on the server: {imp.id or imp.name}", None
        if found[0].is_base:
            return f"{found[0].name} is one of the server's own tools; agents use it by name", None
        return found[0], None

    def state(self, raw: Mapping[str, Any], seen: Mapping[str, Any], stack: str) -> ToolState:
        return ToolState(tuple(LiveTool.from_api(t) for t in raw["tool"]))

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> ToolState:
        """Agents using each tool a plan may delete: Letta has no route for a tool's agents, so
        one listing of every agent with its tools (only when a plan may delete a tool)."""
        state: ToolState = self.state_of(live)
        ids = sorted(i for i in doomed if i.startswith(self.id_prefix))
        if not ids:
            return state
        out: dict[str, list[tuple[str, str, str | None]]] = {i: [] for i in ids}
        for a in client.list_agents(include=("agent.tools", "agent.tags")):
            for t in a.get("tools") or ():
                if t["id"] in out:
                    out[t["id"]].append((a["id"], a.get("name") or "", stack_of(a)))
        return ToolState(state.tools, {i: tuple(users) for i, users in out.items()})

    def resources(self, state: Any) -> Iterable[LiveTool]:
        tools: ToolState = state
        return tools.custom

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveTool]:
        """Tools with the stack's tag but no marks yet (`extra`) were created by an apply
        interrupted before it could mark them: matched to the declared tool of that name."""
        state: ToolState = self.state_of(live)
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

    def plan(self, ctx: Context) -> None:
        unmarked = {t.name: t for t in _UNMARKED.of(ctx) or ()}
        for address, dt in self.declared(ctx.desired).items():
            lt = self.pool_of(ctx).get(address)
            if lt is not None:
                self.update(ctx, dt, lt, adopt=address in ctx.importing)
            elif dt.name in unmarked:
                lt = unmarked[dt.name]
                self.pool_of(ctx)[address] = lt
                ctx.ids[address] = lt.id
                self._update(ctx, dt, lt, finish=True)
            else:
                self.create(ctx, dt)

    def body(self, ctx: Context, dt: DesiredTool) -> dict[str, Any]:
        """What creates the tool. `name` and `metadata_` are not part of Letta's create request:
        apply checks the name and writes the marks right after."""
        body: dict[str, Any] = {"source_code": dt.source_code, "name": dt.name}
        for k in FIELDS:
            if k in dt.config:
                body[k] = dt.config[k]
        if "pip_requirements" in dt.config:
            body["pip_requirements"] = pip_requirements(dt.config["pip_requirements"])
        body["tags"] = sorted({*dt.config.get("tags", ()), ctx.tag})
        body["metadata_"] = mark_metadata(ctx.stack, dt.address, tool_applied(dt), **_project(ctx))
        return body

    def create(self, ctx: Context, declared: DesiredTool) -> None:
        dt = declared
        state: ToolState = self.state_of(ctx.live)
        holder = state.by_name.get(dt.name)
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
        body = self.body(ctx, dt)
        diffs = [
            FieldDiff("name", None, dt.name, NEW),
            FieldDiff("source_file", None, dt.source_file, NEW),
        ]
        diffs += [
            FieldDiff(k, None, body[k], NEW) for k in (*FIELDS, "pip_requirements") if k in body
        ]
        if "tags" in dt.config:
            diffs.append(FieldDiff("tags", None, sorted(dt.config["tags"]), NEW))
        diffs.append(FieldDiff("source_code", None, dt.source_code, NEW))
        ctx.changes.append(
            Change(dt.address, CREATE, diffs=tuple(diffs), body=body, why=(NEW,), kind="tool")
        )

    def update(self, ctx: Context, declared: DesiredTool, found: LiveTool, *, adopt: bool) -> None:
        self._update(ctx, declared, found, adopt=adopt)

    def _update(
        self,
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
        if "source_code" not in dt.ignore and (
            lt.source_code != dt.source_code or lt.name != dt.name
        ):
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

    def delete(self, ctx: Context, address: str, found: LiveTool, why: Why) -> None:
        if ctx.protected(found, self.declared(ctx.desired).get(address)):
            ctx.refuse_destroy(address)
            return
        state: ToolState = self.state_of(ctx.live)
        if ctx.used_elsewhere(address, state.users.get(found.id, ()), our_agent_ids(ctx)):
            return
        ctx.changes.append(Change(address, DELETE, found.id, why=(why,), kind="tool"))

    def fingerprint(self, resource: LiveTool, blank: frozenset[str]) -> str:
        t = resource
        return digest(
            [
                t.id, t.name, t.source_code, t.description, sorted(t.tags), dict(t.metadata),
                t.return_char_limit, list(t.pip_requirements or ()), t.default_requires_approval,
            ]
        )  # fmt: skip

    def blanks(self, live: Live) -> dict[str, frozenset[str]]:
        return {}  # a tool's fields hold no sensitive values

    def created_name(self, change: Change) -> str:
        return str(change.body.get("name", ""))

    def describe(self, resource: LiveTool, live: Live, hidden: frozenset[str]) -> str:
        return f"name={resource.name!r}"

    def clash(self, live: Live, name: str) -> tuple[str, ...]:
        state: ToolState = self.state_of(live)
        holder = state.by_name.get(name)
        return (holder,) if holder else ()

    # -- applying --------------------------------------------------------------------------

    def unmark(self, run: Run, change: Change) -> None:
        unmark_tagged(run, f"/v1/tools/{change.remote_id}", "metadata_")

    def apply(self, run: Run, change: Change, body: dict[str, Any]) -> str:
        c = run.client
        rid = change.remote_id or ""
        if change.action == DELETE:
            c.delete_tool(rid)
        elif change.action == CREATE:
            name, marks = body.pop("name"), body.pop("metadata_")
            # Letta's create overwrites a tool of the same name: look right before, so that a
            # tool made since the plan is refused rather than taken over.
            if c.list_tools([name]):
                raise ApiError(
                    f"a tool named {name!r} now exists on the server; not overwritten, plan again",
                    method="POST",
                    path="/v1/tools/",
                    code="LA720",
                )
            rid = c.create_tool(body)["id"]
            c.update_tool(rid, {"metadata_": marks})
            run.record(change.address, rid)
        else:
            if "source_code" in body:
                # A PATCH with new source keeps the old JSON schema: derive the new one first.
                body["json_schema"] = derived_schema(c, body["source_code"])
            c.update_tool(rid, body)
        return rid

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def from_agent_file(self, conv: Conversion) -> dict[str, Any]:
        from .writing import convert_tools  # builds on this module

        return convert_tools(conv)


def derived_schema(c: LettaClient, source: str) -> dict[str, Any]:
    """The JSON schema the server derives from a tool's source, asked the way every Letta
    server answers (Letta Cloud has no generate-schema route): a scratch tool is made from the
    source under a name of its own, read and deleted. Its own name keeps the create from
    overwriting any tool (Letta's create replaces a tool of the same name)."""
    scratch_name = f"letta_apply_schema_{secrets.token_hex(6)}"
    scratch_source = renamed(source, scratch_name)
    name = function_name(ast.parse(source))
    if scratch_source is None or name is None:
        raise ApiError(
            "the tool's source holds no function", method="POST", path="/v1/tools/", code="LA721"
        )
    made = c.create_tool({"source_code": scratch_source})
    try:
        schema = dict(made.get("json_schema") or {})
    finally:
        c.delete_tool(made["id"])
    schema["name"] = name.name
    return schema
