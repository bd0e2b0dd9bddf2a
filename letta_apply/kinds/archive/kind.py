"""Archives: `archives:`, addressed archive.<key> (Letta's `/v1/archives/`: long-term knowledge an
agent searches with its archival memory tools), optionally seeded with passages from files
(kinds.archive.passages). Agents attach an archive by key (`archives: [kb]`); Letta gives an
agent one archive at most.

Where the marks live: Letta 0.16.8 takes no metadata on an archive (create and update accept name
and description only), and its description is the agents' to read. So, as for groups, the mark
(stack, address, the archive's id) is kept in a *mark block*: a block labelled
`letta-apply-archive`, tagged with the stack, attached to no agent, found in the stack's block
listing at no cost. An archive is the stack's when such a block names it, and for no other
reason. Archives are listed (one paginated listing) only for a stack that declares archives or
has mark blocks; then, per archive of the stack, its passages (Letta's passage search, pages of
100) and its agents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ...core.changes import CREATE, DELETE, MANIFEST, NEW, Change, FieldDiff, Why
from ...core.jsonish import JsonObject, items, obj, objs, opt_text, strings
from ...core.marks import digest
from ...core.model import MARK_KEY, Desired, Live
from ...errors import Diagnostic, define
from ...manifest.files import Document
from ...server.client import LettaClient
from ...server.routes import AGENTS, BLOCKS
from ..agent.refs import agent_users, unknown_refs
from ..base import Field, Kind, Link, Listing, Shape
from ..context import Context, Matched, Run, Update
from ..declaring import entries, ignored, prevents_destroy
from ..folder.files import shown_name
from ..folder.kind import embedding_body
from ..mark_blocks import (
    MarkBlock,
    MarkedLeft,
    drop_marks,
    intend,
    prune_marks,
    read_marks,
    resolve,
    reuse,
    unanswered,
    write_mark,
)
from ..resource import applied_of
from . import passages as ap
from .memory import ArchiveMemory

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA421", "ManifestError", "more than one archive on an agent",
       "An agent's `archives` names more than one archive; Letta attaches one per agent.",
       "Keep one archive per agent.")
define("LA422", "ManifestError", "no such archive",
       "An agent's `archives` names a key that `archives:` does not declare.",
       "Declare the archive, or fix the key.")
# fmt: on

MARK_LABEL = "letta-apply-archive"
FIELDS = ("name", "description")


@dataclass(frozen=True)
class DesiredArchive:
    address: str
    config: Mapping[str, object] = field(default_factory=dict)  # name, description, embedding
    passages: tuple[ap.SeedPassage, ...] = ()
    seeded: bool = False  # whether the manifest declares `passages:` (else they are not compared)
    agents: tuple[str, ...] = ()
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LiveArchive:
    id: str
    name: str
    description: str | None
    mark: Mapping[str, object]
    mark_block: str
    passages: tuple[ap.LivePassage, ...] = ()
    agents: tuple[tuple[str, str], ...] = ()  # (id, name) of the agents it is attached to


@dataclass(frozen=True)
class ArchiveState:
    """The stack's mark blocks, the server's archives (None: not listed), and, per archive of
    the stack, its passages and agents as the server returns them."""

    marks: tuple[MarkBlock, ...] = ()
    archives: tuple[Mapping[str, object], ...] | None = None
    passages: Mapping[str, tuple[Mapping[str, object], ...]] = field(default_factory=dict)
    agents: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def resolved(self) -> tuple[MarkBlock, ...]:
        """The marks, each intent answered by an archive given it (kinds.mark_blocks): by the
        name and description the create sent, among the archives made since the plan."""
        if self.archives is None:
            return self.marks
        return resolve(self.marks, self.archives, _claimed)

    def stale(self) -> tuple[MarkBlock, ...]:
        """Marks of no archive (see mark_blocks.unanswered); none known until listed."""
        if self.archives is None:
            return ()
        return unanswered(self.resolved(), [str(a["id"]) for a in self.archives])

    def live(self, stack: str) -> dict[str, LiveArchive]:
        """The stack's archives by address: the oldest mark naming an archive that exists."""
        listed = {str(a["id"]): a for a in self.archives or ()}
        out: dict[str, LiveArchive] = {}
        for m in self.resolved():
            address = str(m.mark.get("address"))
            if address in out or not m.target:
                continue
            if self.archives is not None and m.target not in listed:
                continue
            raw = listed.get(m.target, {})
            passages = list(self.passages.get(m.target, ()))
            out[address] = LiveArchive(
                m.target, str(raw.get("name") or ""), opt_text(raw.get("description")), m.mark,
                m.id, ap.ours(passages, stack, address), self.agents.get(m.target, ()),
            )  # fmt: skip
        return out


def _claimed(claims: Mapping[str, object], raw: Mapping[str, object]) -> bool:
    return raw.get("name") == claims.get("name") and (raw.get("description") or None) == (
        claims.get("description") or None
    )


class ArchiveKind(Kind[DesiredArchive, LiveArchive, ArchiveState], ArchiveMemory):
    name: ClassVar[str] = "archive"
    section: ClassVar[str] = "archives"
    id_prefix: ClassVar[str] = "archive-"
    same_listing: ClassVar[bool] = True  # the server's whole list: stacks share it
    depends_on: ClassVar[tuple[str, ...]] = ("agent",)  # attached to agents by their ids
    fields: ClassVar[tuple[Field, ...]] = (
        Field("name"),
        Field("description"),
        Field("embedding", "initial"),
        Field("passages"),
    )
    marks: ClassVar[str] = f"the metadata of a `{MARK_LABEL}` block tagged with the stack"
    shape: ClassVar[Shape] = "cylinder"
    listing: ClassVar[Listing] = "marks"
    mark_label: ClassVar[str] = MARK_LABEL

    # -- the manifest ----------------------------------------------------------------------

    def read_files(
        self, doc: Document, data: Mapping[str, object]
    ) -> tuple[list[str], list[Diagnostic]]:
        return ap.read_all(doc, data)

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        """Agents name declared archives, one each (Letta attaches one archive per agent)."""
        errors: list[Diagnostic] = []
        section = data.get("archives")
        archives = section if isinstance(section, dict) else {}
        agents = data.get("agents")
        for key, spec in (agents if isinstance(agents, dict) else {}).items():
            refs = spec.get("archives") if isinstance(spec, dict) else None
            if not isinstance(refs, list):
                continue
            if len(refs) > 1:
                errors.append(
                    doc.diag(
                        ("agents", key, "archives", 1),
                        f"agents.{key}.archives: Letta attaches one archive per agent; "
                        f"{len(refs)} are named",
                        code="LA421",
                    )
                )
            errors += unknown_refs(doc, key, "archives", refs, archives, "archive", "LA422")
        return errors

    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, DesiredArchive]:
        users = agent_users(data, "archives")
        out: dict[str, DesiredArchive] = {}
        for key, spec in entries(data, self.section):
            config: JsonObject = {"name": spec.get("name", key)}
            for k in ("description", "embedding"):
                if k in spec:
                    config[k] = spec[k]
            address = f"archive.{key}"
            out[address] = DesiredArchive(
                address, config, ap.seed_passages(doc, key, spec), "passages" in spec,
                tuple(sorted(users.get(key, ()))), prevents_destroy(spec), ignored(spec),
            )  # fmt: skip
        return out

    def references(self, declared: DesiredArchive, desired: Desired) -> list[str]:
        return list(declared.agents)

    def links(self, declared: DesiredArchive, desired: Desired) -> list[Link]:
        return [Link(a, shared=True) for a in declared.agents]

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        return list(ap.ROUTE.list(client))

    def marked(self, blocks: Sequence[Mapping[str, object]], stack: str) -> bool:
        return bool(read_marks(blocks, stack, MARK_LABEL, self.name))

    def state(
        self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str
    ) -> ArchiveState:
        marks = read_marks(objs(raw.get("block")), stack, MARK_LABEL, self.name)
        listing = raw.get("archive")
        return ArchiveState(marks, None if listing is None else tuple(objs(listing)))

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> ArchiveState:
        state = self.state_of(live)
        if not state.marks or state.archives is None:
            return state
        passages: dict[str, tuple[Mapping[str, object], ...]] = {}
        agents: dict[str, tuple[tuple[str, str], ...]] = {}
        for la in state.live(desired.stack).values():
            passages[la.id] = tuple(ap.list_passages(client, la.id))
            found = ap.ROUTE.at(la.id, "agents").list(client, {"include": ["agent.tags"]})
            agents[la.id] = tuple((str(a["id"]), str(a.get("name") or "")) for a in found)
        return ArchiveState(state.marks, state.archives, passages, agents)

    def resources(self, state: ArchiveState) -> Iterable[LiveArchive]:
        stacks = {str(m.mark.get("stack")) for m in state.resolved()}
        return [a for s in sorted(stacks) for a in state.live(s).values()]

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveArchive]:
        state = self.state_of(live)
        pool = state.live(stack)
        ids = {a: x.id for a, x in pool.items()}
        return Matched(pool, ids, extra=MarkedLeft[LiveArchive](state.stale()))

    def create(self, ctx: Context, declared: DesiredArchive) -> None:
        da = declared
        archive: JsonObject = {k: da.config[k] for k in FIELDS if k in da.config}
        if "embedding" in da.config:
            archive.update(embedding_body(da.config["embedding"]))
        diffs = [FieldDiff(k, None, da.config[k], NEW) for k in (*FIELDS, "embedding")
                 if k in da.config]  # fmt: skip
        inserts, p_diffs, _ = self._passages(ctx, da, None)
        attach, a_diffs, _ = self._agents(ctx, da, None)
        # Archives already on the server under this name: never adopted by its intent.
        state = self.state_of(ctx.live)
        alike = [str(a["id"]) for a in state.archives or () if a.get("name") == da.config["name"]]
        body: JsonObject = {"archive": archive, "mark": self._mark(ctx, da), "insert": inserts,
                "delete": [], "attach": attach, "detach": [], "exclude": alike,
                **reuse(ctx, self.name, da.address)}  # fmt: skip
        ctx.changes.append(
            Change(
                da.address,
                CREATE,
                diffs=(*diffs, *p_diffs, *a_diffs),
                body=body,
                why=(NEW,),
                kind=self.name,
            )
        )

    def update(
        self, ctx: Context, declared: DesiredArchive, found: LiveArchive, *, adopt: bool
    ) -> None:
        da, la = declared, found
        u = Update(ctx, da, applied_of(la))
        u.fields(la, FIELDS)
        u.protection(True)
        marked = any(d.field == "prevent_destroy" for d in u.diffs)
        inserts, p_diffs, deletes = self._passages(ctx, da, la)
        attach, a_diffs, detach = self._agents(ctx, da, la)
        if u.needed(adopt=adopt, also=bool(inserts or deletes or attach or detach)):
            u.diffs.extend([*p_diffs, *a_diffs])
            # An adopted archive (by its intent) gets its mark written.
            mark = self._mark(ctx, da) if marked or adopt else None
            u.body = {"archive": dict(u.body), "mark": mark,
                      "mark_block": la.mark_block, "insert": inserts, "delete": deletes,
                      "attach": attach, "detach": detach}  # fmt: skip
            u.emit(self.name, la.id, adopt=adopt)

    def _mark(self, ctx: Context, da: DesiredArchive) -> JsonObject:
        mark: JsonObject = {"stack": ctx.stack, "address": da.address}
        if da.prevent_destroy:
            mark["applied"] = {"prevent_destroy": True}
        return {MARK_KEY: mark}

    def prune(self, ctx: Context, *, destroy: bool) -> None:
        super().prune(ctx, destroy=destroy)
        prune_marks(ctx, self.name)

    def _passages(
        self, ctx: Context, da: DesiredArchive, la: LiveArchive | None
    ) -> tuple[list[JsonObject], list[FieldDiff], list[str]]:
        """Seeded passages to insert (new or changed), and the ids of those whose source is
        gone or changed; agent-written passages carry no mark and are never among them."""
        if not da.seeded or "passages" in da.ignore:
            return [], [], []
        have = {(p.source, p.digest): p for p in (la.passages if la else ())}
        want = {(p.source, p.digest): p for p in da.passages}
        why: Why = NEW if la is None else MANIFEST
        inserts: list[JsonObject] = []
        diffs: list[FieldDiff] = []
        for k, p in want.items():
            if k not in have:
                inserts.append(ap.passage_body(ctx.stack, da.address, p))
                diffs.append(FieldDiff(_field(p.source, p.digest), None, _short(p.text), why))
        deletes = []
        for k, lp in have.items():
            if k not in want:
                deletes.append(lp.id)
                diffs.append(FieldDiff(_field(lp.source, lp.digest), _short(lp.text), None, why))
        return inserts, diffs, deletes

    def _agents(
        self, ctx: Context, da: DesiredArchive, la: LiveArchive | None
    ) -> tuple[list[object], list[FieldDiff], list[str]]:
        attached = {aid for aid, _ in la.agents} if la else set()
        agents = ctx.pool("agent")
        attach: list[object] = []
        for address in da.agents:
            aid = ctx.ids.get(address)
            if address not in ctx.refused and (
                aid is None or aid not in attached or address in ctx.replacing
            ):
                attach.append({"$ref": address})
        declared = ctx.desired.of("agent")
        detach = sorted(x.id for a, x in agents.items()
                        if x.id in attached and a in declared and a not in da.agents)  # fmt: skip
        diffs: list[FieldDiff] = []
        if attach or detach:
            before = sorted(a for a, x in agents.items() if x.id in attached) if la else None
            diffs.append(FieldDiff("agents", before, sorted(da.agents), MANIFEST if la else NEW))
        return attach, diffs, detach

    def delete(self, ctx: Context, address: str, found: LiveArchive, why: Why) -> None:
        if ctx.protected(found, self.declared(ctx.desired).get(address)):
            ctx.refuse_destroy(address)
            return
        ours = {x.id for x in ctx.pool("agent").values()}
        if ctx.used_elsewhere(address, tuple((i, n, None) for i, n in found.agents), ours):
            return
        body: JsonObject = {"mark_block": found.mark_block}
        ctx.changes.append(Change(address, DELETE, found.id, body=body, why=(why,), kind=self.name))

    def fingerprint(self, resource: LiveArchive, blank: frozenset[str]) -> str:
        a = resource
        passages = sorted((p.id, p.digest) for p in a.passages)
        return digest([a.id, a.name, a.description, dict(a.mark), a.mark_block, passages,
                       sorted(a.agents)])  # fmt: skip

    def describe(self, resource: LiveArchive, live: Live, hidden: frozenset[str]) -> str:
        return f"name={resource.name!r}  passages={len(resource.passages)}"

    # -- applying --------------------------------------------------------------------------

    def unmark(self, run: Run, change: Change) -> None:
        drop_marks(run, MARK_LABEL, self.name, change.address)

    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
        c = run.client
        rid = change.remote_id or ""
        mark = obj(body.get("mark"))
        if change.action == DELETE:
            if rid:  # else a mark that marks nothing
                ap.ROUTE.at(rid).delete(c)
            BLOCKS.at(str(body["mark_block"])).delete(c)
            return rid or str(body["mark_block"])
        if change.action == CREATE:
            # The intent first: a run that dies after the create leaves an archive its stack
            # adopts, never one that is nobody's (kinds.mark_blocks).
            sent = obj(body["archive"])
            claims = {"name": sent["name"], "description": sent.get("description")}
            block = intend(
                run, MARK_LABEL, self.name, change.address, mark, claims,
                strings(body.get("exclude")), opt_text(body.get("intent_block")),
            )  # fmt: skip
            rid = str(obj(ap.ROUTE.post(c, sent))["id"])
            run.record(change.address, rid)
            write_mark(run, MARK_LABEL, self.name, change.address, rid, mark, block)
            for stale in items(body.get("stale")):
                BLOCKS.at(str(stale)).delete(c)
        else:
            if body.get("archive"):
                ap.ROUTE.at(rid).patch(c, body["archive"])
            if mark:
                held = opt_text(body.get("mark_block"))
                write_mark(run, MARK_LABEL, self.name, change.address, rid, mark, held)
        for pid in items(body.get("delete")):
            ap.ROUTE.at(rid, "passages", str(pid)).delete(c)
        if body.get("insert"):
            batch = {"passages": ap.stamped(objs(body["insert"]))}
            ap.ROUTE.at(rid, "passages", "batch").post(c, batch)
        for aid in items(body.get("detach")):
            AGENTS.at(str(aid), "archives", "detach", rid).patch(c)
        for aid in items(body.get("attach")):
            AGENTS.at(str(aid), "archives", "attach", rid).patch(c)
        return rid


def _short(text: str, limit: int = 70) -> str:
    """A passage as a plan shows it: one line, cut short."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _field(source: str, text_digest: str) -> str:
    # Escaped as a folder's file names are: a name (or a mark's source on the server) with a
    # newline or a terminal escape cannot fake a line of the plan.
    return f"passages['{shown_name(source)}'][{text_digest[:8]}]"
