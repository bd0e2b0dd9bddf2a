"""What the manifest knows of a resource kind: a section of entries, its schema, the rules a schema
cannot say, and how its entries become declared resources.

The manifest names no kind. Whoever loads a manifest (the pipeline, the Python API, the CLI, a
test) hands the kinds in, and every kind-specific rule (a label's default, the files an entry
names, where a sensitive value may go, the labels letta-apply keeps for itself) comes from them
through `Section`, which every `letta_apply.kinds.Kind` satisfies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ..core.jsonish import JsonObject
    from ..core.model import Desired
    from ..errors import Diagnostic
    from .files import Document

KeyDefault = Literal["key", "instance"]
"""How a field defaults to an entry's key (`Section.key_fields`): "key", the key itself, for
every instance of a template alike (a label: what an agent sees); "instance", the instance's own
`key-index` (a name: unique)."""


class FieldSpec(Protocol):
    """A field a kind manages, and how (kinds.base.Policy)."""

    @property
    def name(self) -> str: ...

    @property
    def policy(self) -> str: ...


class Section(Protocol):
    """A resource kind as the manifest sees it."""

    @property
    def name(self) -> str:
        """The address prefix: identity.<key>."""
        ...

    @property
    def section(self) -> str:
        """The manifest section: identities:."""
        ...

    @property
    def noun(self) -> str:
        """What one is called in messages, when not `name` with spaces."""
        ...

    @property
    def id_prefix(self) -> str:
        """The prefix of its ids on the server, which an import's id starts with."""
        ...

    @property
    def import_by_name(self) -> bool: ...

    @property
    def fields(self) -> Sequence[FieldSpec]: ...

    @property
    def nested(self) -> Mapping[str, str]:
        """An entry's field -> the kind of the entries it holds (an agent's own blocks)."""
        ...

    @property
    def instance_refs(self) -> Mapping[str, str]:
        """An entry's fields that name entries of a section by key (field -> that section)."""
        ...

    @property
    def templated(self) -> bool:
        """Whether an entry may be a template (`for_each`, `count`)."""
        ...

    @property
    def key_fields(self) -> Mapping[str, KeyDefault]:
        """Fields that default to the entry's key, and how (`KeyDefault`)."""
        ...

    @property
    def file_fields(self) -> Mapping[str, str]:
        """Keys naming a file whose text becomes a field (`value_file` -> `value`)."""
        ...

    @property
    def sensitive_in(self) -> Sequence[str]:
        """Fields where a sensitive value may go (text sent to the server, masked in every
        output): names, labels and tags are shown and matched everywhere."""
        ...

    @property
    def shown_whole(self) -> Mapping[str, str]:
        """Fields no sensitive value may go in, not even inside one of `sensitive_in`, with
        why."""
        ...

    @property
    def tagged(self) -> bool:
        """Whether its resources carry the stack's tag in their own tags (so that an entry may
        declare none of the tags, labels and metadata keys letta-apply reserves)."""
        ...

    @property
    def reserved_labels(self) -> Sequence[str]:
        """Labels of the blocks letta-apply keeps for the kind: no block may take one."""
        ...

    @property
    def reserved_addresses(self) -> Sequence[str]:
        """Addresses a plan shows letta-apply's own blocks for the kind at: no entry may have
        one."""
        ...

    def schema(self) -> JsonObject:
        """The schema of its section, and the `$defs` it adds to the manifest's."""
        ...

    def read_files(
        self, doc: Document, data: Mapping[str, object]
    ) -> tuple[list[str], list[Diagnostic]]:
        """Read the files its entries name, once, while the manifest is loaded."""
        ...

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        """Rules the schema cannot say (no I/O)."""
        ...

    def declare(self, doc: Document, data: Mapping[str, object]) -> Mapping[str, object]:
        """The declared resources of a manifest that passed every check, by address (each
        kind's own dataclass)."""
        ...

    def resolve(self, desired: Desired) -> Desired:
        """A last look at the whole desired state."""
        ...


def by_section(kinds: Iterable[Section]) -> dict[str, Section]:
    return {k.section: k for k in kinds}


def plural(k: Section) -> str:
    """What several of a kind are called in messages: `shared blocks`, `MCP servers`."""
    return (k.noun or k.name.replace("_", " ")) + "s"
