"""Custom tools as letta-apply holds them: declared (`DesiredTool`), live (`LiveTool`, read from
Letta's answers with their types checked) and the tools' state, with the typed keys other kinds
read them through; which tools are the server's own; the digests letta-apply writes in a tool's
marks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ...core.jsonish import JsonObject, integer, obj, objs, opt_text, strings, text
from ...core.marks import digest
from ..context import DeclaredOf, ExtraOf, StateOf, Users
from ..resource import mark_of

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
    config: Mapping[str, object] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()  # ignore_changes: set at creation, never compared


@dataclass(frozen=True)
class LiveTool:
    id: str
    name: str
    tool_type: str = "custom"
    source_code: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    # Values unchecked: the MCP server and agent kinds still read `metadata["mcp"]` as a mapping
    # (their files are typed apart); Mapping[str, object] once they read it with core.jsonish.
    metadata: Mapping[str, object] = field(default_factory=dict)
    return_char_limit: int | None = None
    pip_requirements: tuple[Mapping[str, object], ...] | None = None
    default_requires_approval: bool | None = None

    @property
    def is_base(self) -> bool:
        """Tools the server provides itself (memory, search...); letta-apply leaves them alone."""
        return is_base_tool_type(self.tool_type)

    @property
    def mark(self) -> Mapping[str, object]:
        return mark_of(self.metadata)

    @classmethod
    def from_api(cls, raw: Mapping[str, object]) -> LiveTool:
        """A tool as Letta's API returns it (the fields letta-apply reads; `metadata_` is
        Letta's name for its metadata)."""
        pip, approval = raw.get("pip_requirements"), raw.get("default_requires_approval")
        return cls(
            id=text(raw["id"]),
            name=text(raw.get("name")),
            tool_type=text(raw.get("tool_type")) or "custom",
            source_code=opt_text(raw.get("source_code")),
            description=opt_text(raw.get("description")),
            tags=tuple(strings(raw.get("tags"))),
            metadata=obj(raw.get("metadata_")),
            return_char_limit=integer(raw.get("return_char_limit")),
            pip_requirements=None if pip is None else tuple(objs(pip)),
            default_requires_approval=approval if isinstance(approval, bool) else None,
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
"""The declared tools, typed (for the kinds that read them)."""
UNMARKED = ExtraOf[tuple[LiveTool, ...]]("tool")
"""What the tools' match leaves: tools with the stack's tag and no marks, which it may adopt."""


def is_base_tool_type(tool_type: str) -> bool:
    """Tools the server provides itself (memory, search...): letta-apply never owns them."""
    return tool_type.startswith("letta")


ON_REQUEST = ("letta_builtin",)
"""Types of the server's own tools that an agent gets only when it asks for them by name."""


def pip_requirements(reqs: object) -> list[JsonObject]:
    """Pip requirements as compared: the server writes a missing version as null."""
    return [{k: v for k, v in r.items() if v is not None} for r in objs(reqs)]


def tool_applied(dt: DesiredTool) -> JsonObject:
    """Digests of what letta-apply writes for a custom tool, and its protection."""
    out: JsonObject = {"name": digest(dt.name), "source_code": digest(dt.source_code)}
    for k in FIELDS:
        if k in dt.config:
            out[k] = digest(dt.config[k])
    if "tags" in dt.config:
        out["tags"] = digest(sorted(strings(dt.config["tags"])))
    if "pip_requirements" in dt.config:
        out["pip_requirements"] = digest(pip_requirements(dt.config["pip_requirements"]))
    if dt.prevent_destroy:
        out["prevent_destroy"] = True
    return out
