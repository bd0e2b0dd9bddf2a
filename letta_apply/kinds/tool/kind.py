"""Custom tools: `tools:`, addressed tool.<key>, each made from a Python source file.

Letta names a tool after a function of its source (the last one `ast.walk` meets, which must
have a docstring: Letta derives the tool's JSON schema from it), so the name is known before any
request: agents may attach a declared tool by its key or by that name, and tool rules may name
it either way too. Tool names are unique on a server: a declared name already taken by a tool the
stack does not own is a clash, refused with the hint to import it.

Marks: the stack's tag in `tags`, and stack, address and digests in `metadata_` (Letta's name
for a tool's metadata). The server's own tools (memory, search...) are never owned.

The package: the model and the typed keys other kinds read tools through (model.py), a tool's
source (source.py), the manifest's rules and declarations (manifest.py), planning (plan.py),
the requests (requests.py), an agent's tool rules (rules.py) and tools in the manifests
letta-apply writes (writing.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from ...core.changes import Change, Why
from ...core.jsonish import JsonObject, objs
from ...core.model import Desired, Import, Live
from ...errors import Diagnostic
from ...manifest.files import Document
from ...server import routes
from ...server.client import LettaClient
from ..base import Field, Kind, Shape
from ..context import Context, Matched, Run, unmark_tagged
from ..writing import Conversion
from .manifest import check_tools, declare_tools
from .model import (
    ON_REQUEST,
    TOOLS,
    TOOLS_DECLARED,
    UNMARKED,
    DesiredTool,
    LiveTool,
    ToolState,
    is_base_tool_type,
)
from .plan import create_tool, delete_tool, match_tools, tool_fingerprint, update_tool
from .requests import apply_tool, tool_users
from .source import read_sources

# Other kinds import these from here (the tool kind's public names).
__all__ = [
    "ON_REQUEST",
    "TOOLS",
    "TOOLS_DECLARED",
    "DesiredTool",
    "LiveTool",
    "ToolKind",
    "ToolState",
    "is_base_tool_type",
]


class ToolKind(Kind[DesiredTool, LiveTool, ToolState]):
    name: ClassVar[str] = "tool"
    section: ClassVar[str] = "tools"
    id_prefix: ClassVar[str] = "tool-"
    same_listing: ClassVar[bool] = True  # the server's whole list: stacks share it
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
        self, doc: Document, data: Mapping[str, object]
    ) -> tuple[list[str], list[Diagnostic]]:
        return read_sources(doc, data)

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        return check_tools(doc, data)

    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, DesiredTool]:
        return declare_tools(doc, data)

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        return client.list_tools()

    def find(
        self, client: LettaClient, imp: Import, raw: Mapping[str, object]
    ) -> tuple[LiveTool | str, object]:
        """From the listing already read (tool names are unique)."""
        found = [
            t for t in map(LiveTool.from_api, objs(raw["tool"]))
            if t.id == imp.id or (imp.name is not None and t.name == imp.name)
        ]  # fmt: skip
        if not found:
            return f"no such tool on the server: {imp.id or imp.name}", None
        if found[0].is_base:
            return f"{found[0].name} is one of the server's own tools; agents use it by name", None
        return found[0], None

    def state(self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str) -> ToolState:
        return ToolState(tuple(LiveTool.from_api(t) for t in objs(raw["tool"])))

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> ToolState:
        """Agents using each tool a plan may delete (read only when a plan may delete one)."""
        state = self.state_of(live)
        ids = sorted(i for i in doomed if i.startswith(self.id_prefix))
        if not ids:
            return state
        return ToolState(state.tools, tool_users(client, ids))

    def resources(self, state: ToolState) -> Iterable[LiveTool]:
        return state.custom

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveTool]:
        return match_tools(live, stack)

    def plan(self, ctx: Context) -> None:
        """A declared tool the stack's marks do not name may have been made, unmarked, by an
        interrupted apply (`match`): that one is finished, not made again."""
        unmarked = {t.name: t for t in UNMARKED.of(ctx) or ()}
        for address, dt in self.declared(ctx.desired).items():
            lt = self.pool_of(ctx).get(address)
            if lt is not None:
                self.update(ctx, dt, lt, adopt=address in ctx.importing)
            elif dt.name in unmarked:
                lt = unmarked[dt.name]
                self.pool_of(ctx)[address] = lt
                ctx.ids[address] = lt.id
                update_tool(ctx, dt, lt, finish=True)
            else:
                self.create(ctx, dt)

    def create(self, ctx: Context, declared: DesiredTool) -> None:
        create_tool(ctx, declared)

    def update(self, ctx: Context, declared: DesiredTool, found: LiveTool, *, adopt: bool) -> None:
        update_tool(ctx, declared, found, adopt=adopt)

    def delete(self, ctx: Context, address: str, found: LiveTool, why: Why) -> None:
        delete_tool(ctx, address, found, why, self.declared(ctx.desired).get(address))

    def fingerprint(self, resource: LiveTool, blank: frozenset[str]) -> str:
        return tool_fingerprint(resource)

    def blanks(self, live: Live) -> dict[str, frozenset[str]]:
        return {}  # a tool's fields hold no sensitive values

    def created_name(self, change: Change) -> str:
        return str(change.body.get("name", ""))

    def describe(self, resource: LiveTool, live: Live, hidden: frozenset[str]) -> str:
        return f"name={resource.name!r}"

    def clash(self, live: Live, name: str) -> tuple[str, ...]:
        holder = self.state_of(live).by_name.get(name)
        return (holder,) if holder else ()

    # -- applying --------------------------------------------------------------------------

    def unmark(self, run: Run, change: Change) -> None:
        unmark_tagged(run, routes.TOOLS.at(str(change.remote_id)), "metadata_")

    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
        return apply_tool(run, change, body)

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def from_agent_file(self, conv: Conversion) -> JsonObject:
        from .writing import convert_tools  # builds on this module

        return convert_tools(conv)
