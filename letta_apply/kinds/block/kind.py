"""Memory blocks: `blocks:` (shared, addressed block.<key>) and the agents' own blocks (declared
under an agent's `memory_blocks`, addressed agent.<key>.memory_blocks.<label>, planned by the
agent kind with the helpers of this package).

Marks: the stack's tag in `tags`, and stack, address and field digests in `metadata`. A block's
`value` is memory: agents rewrite it. A difference is decided three ways against the value
letta-apply last wrote (see `plan.plan_value`): a manifest edit is applied, an agent's write is
kept and reported, both at once is a conflict, kept and reported; `enforce_value` always writes.

The package: the model and the typed keys other kinds read blocks through (model.py), the
manifest's rules and declarations (manifest.py), reading the server (reads.py), planning
(plan.py), the requests (requests.py), what a block holds of memory (memory.py) and blocks in
the manifests letta-apply writes (writing.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from ...core.changes import Change, Why
from ...core.jsonish import JsonObject, objs
from ...core.marks import has_secret
from ...core.model import SHOWN, Desired, Import, Live, stack_tag
from ...errors import ApiError, Diagnostic
from ...manifest.files import Document
from ...manifest.sections import KeyDefault
from ...server import routes
from ...server.client import LettaClient
from ...server.lock_records import lock_tag
from ...server.serial import serial_tag
from ..base import TAGGED_AT_ONCE, Field, Kind, Shape, by_tags, tagged
from ..context import Context, Matched, Run, unmark_tagged
from ..resource import applied_of
from ..writing import Conversion, Export
from .manifest import FILE_FIELDS, check_block, check_blocks, declare_block, declare_blocks
from .memory import BlockMemory
from .model import (
    BLOCKS,
    BLOCKS_DECLARED,
    DEFAULT_DESCRIPTIONS,
    DEFAULT_LIMIT,
    BlockState,
    DesiredBlock,
    LiveBlock,
    leftover_own_blocks,
    our_agent_ids,
    owned_block_address,
    owned_of,
    stack_of,
)
from .plan import (
    blanked,
    block_applied,
    block_body,
    block_fingerprint,
    create_block_change,
    declared_extras,
    delete_block,
    match_blocks,
    update_block,
)
from .reads import block_state, block_users
from .requests import apply_block, settle_blocks

# Other kinds import these from here (the block kind's public names).
__all__ = [
    "BLOCKS",
    "BLOCKS_DECLARED",
    "DEFAULT_DESCRIPTIONS",
    "DEFAULT_LIMIT",
    "BlockKind",
    "BlockState",
    "DesiredBlock",
    "LiveBlock",
    "blanked",
    "block_applied",
    "block_body",
    "check_block",
    "create_block_change",
    "declare_block",
    "declared_extras",
    "delete_block",
    "leftover_own_blocks",
    "our_agent_ids",
    "owned_block_address",
    "owned_of",
    "stack_of",
    "update_block",
]


class BlockKind(Kind[DesiredBlock, LiveBlock, BlockState], BlockMemory):
    name: ClassVar[str] = "block"
    noun: ClassVar[str] = "shared block"  # an agent's own blocks are counted with it
    section: ClassVar[str] = "blocks"
    id_prefix: ClassVar[str] = "block-"
    depends_on: ClassVar[tuple[str, ...]] = ("identity",)
    fields: ClassVar[tuple[Field, ...]] = (
        Field("label"),
        Field("value", "initial"),
        Field("description"),
        Field("limit"),
        Field("read_only"),
        Field("metadata"),
        Field("tags"),
        Field("identities"),
    )
    marks: ClassVar[str] = "the stack's tag in `tags`; stack, address and digests in `metadata`"
    shape: ClassVar[Shape] = "cylinder"
    tagged: ClassVar[bool] = True
    templated: ClassVar[bool] = True
    # Labels are what the agent sees: every instance of a template takes the key alone.
    key_fields: ClassVar[Mapping[str, KeyDefault]] = {"label": "key"}
    file_fields: ClassVar[Mapping[str, str]] = FILE_FIELDS
    sensitive_in: ClassVar[tuple[str, ...]] = ("value", "description", "metadata")

    # -- the manifest ----------------------------------------------------------------------

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        return check_blocks(doc, data)

    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, DesiredBlock]:
        return declare_blocks(data)

    def references(self, declared: DesiredBlock, desired: Desired) -> list[str]:
        return declared.identities

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        # The stack's serial and lock records come along (server.lock): `state` leaves them out.
        return client.list_blocks(stack_tag(stack), serial_tag(stack), lock_tag(stack))

    def read_many(
        self, client: LettaClient, stacks: Sequence[str], desired: Sequence[Desired] = ()
    ) -> dict[str, object]:
        """Each stack's blocks, serial and lock records, as `read` lists them for one: by the
        stacks' tags when they are few, else from one listing of every block."""
        if len(stacks) > TAGGED_AT_ONCE:
            return super().read_many(client, stacks, desired)
        owners = _owners(stacks)
        return by_tags(routes.BLOCKS.list(client, {"tags": list(owners)}), owners, stacks)

    def read_whole(self, client: LettaClient, desired: Sequence[Desired] = ()) -> object:
        """Every block some stack owns, or holding a stack's serial or lock."""
        prefixes = (stack_tag(""), serial_tag(""), lock_tag(""))
        return tagged(routes.BLOCKS.list(client), prefixes)

    def split(self, whole: object, stacks: Sequence[str]) -> dict[str, object]:
        return by_tags(objs(whole), _owners(stacks), stacks)

    def find(
        self, client: LettaClient, imp: Import, raw: Mapping[str, object]
    ) -> tuple[LiveBlock | str, object]:
        assert imp.id is not None  # validation: blocks are imported by id
        try:
            raw_block = client.get_block(imp.id)
            return LiveBlock.from_api(raw_block), raw_block
        except ApiError as e:
            if e.status == 404:
                return f"no such resource on the server: {imp.id}", None
            raise

    def state(
        self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str
    ) -> BlockState:
        return block_state(raw, seen)

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> BlockState:
        state = self.state_of(live)
        candidates = sorted(i for i in doomed if i in state.blocks)
        users = block_users(client, desired, live, candidates)
        return BlockState(state.blocks, state.tagged, users)

    def resources(self, state: BlockState) -> Iterable[LiveBlock]:
        return state.blocks.values()

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveBlock]:
        return match_blocks(live, stack)

    def create(self, ctx: Context, declared: DesiredBlock) -> None:
        ctx.changes.append(create_block_change(ctx, declared))

    def update(
        self, ctx: Context, declared: DesiredBlock, found: LiveBlock, *, adopt: bool
    ) -> None:
        update_block(ctx, declared, found, None if adopt else applied_of(found), adopt=adopt)

    def delete(self, ctx: Context, address: str, found: LiveBlock, why: Why) -> None:
        delete_block(ctx, address, found, why, self.declared(ctx.desired).get(address))

    def fingerprint(self, resource: LiveBlock, blank: frozenset[str]) -> str:
        return block_fingerprint(resource, blank)

    def watched(self, change: Change) -> str:
        return "value" if "value" in change.body else ""

    def hidden(self, declared: DesiredBlock) -> frozenset[str]:
        value = frozenset({"value"}) if has_secret(declared.value) else frozenset()
        return super().hidden(declared) | value

    def describe(self, resource: LiveBlock, live: Live, hidden: frozenset[str]) -> str:
        value = SHOWN if "value" in hidden else resource.value
        return f"label={resource.label!r}  value={value!r}"

    # -- applying --------------------------------------------------------------------------

    def settle(self, run: Run, made: Sequence[tuple[Change, str]]) -> dict[str, str]:
        return settle_blocks(run, made)

    def unmark(self, run: Run, change: Change) -> None:
        unmark_tagged(run, routes.BLOCKS.at(str(change.remote_id)))

    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
        return apply_block(run, change, body)

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def export_section(self, ex: Export) -> JsonObject:
        from .writing import export_shared  # builds on this module

        return export_shared(ex)

    def from_agent_file(self, conv: Conversion) -> JsonObject:
        from .writing import convert_shared

        return convert_shared(conv)


def _owners(stacks: Sequence[str]) -> dict[str, str]:
    """Each tag a stack's blocks, serial and lock records carry, to the stack."""
    return {t: s for s in stacks for t in (stack_tag(s), serial_tag(s), lock_tag(s))}
