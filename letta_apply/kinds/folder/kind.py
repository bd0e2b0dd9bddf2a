"""Folders: `folders:`, addressed folder.<key> (Letta's `/v1/folders/`: documents an agent reads,
searches and opens with its file tools), with their files (`files:`, paths and globs relative to
the manifest, see kinds.folder.files). Agents attach folders by key (`folders: [handbook]`); a
folder attached to many agents is uploaded once.

Marks: in the folder's `metadata`, under `letta_apply`: stack, address, field digests, and the
files letta-apply uploaded (name -> digest, size, file id; see kinds.folder.plan). Letta's
files carry no metadata of their own, so the folder holds the record. Folder names are unique
on a server: a declared name held by a folder the stack does not own is refused.

The folder's embedding is set when it is made (Letta embeds every file with it; changing it
under existing files would mix two models): a different declared embedding is a note, not a
change. Reads are one folder listing plus, per folder of the stack, its file listing and its
agent list, and only for a stack that declares folders or carries the folders flag (folders
carry no tag to list a stack's by; see kinds.flags).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ...core.changes import CREATE, DELETE, NEW, Change, FieldDiff, Why
from ...core.jsonish import JsonObject, items, obj, objs, opt_text, strings, text
from ...core.marks import digest
from ...core.model import MARK_KEY, Desired, Live
from ...errors import ApiError, Diagnostic, define
from ...manifest.files import Document
from ...server.client import LettaClient
from ...server.routes import AGENTS
from ..agent.refs import agent_users, unknown_refs
from ..base import Field, Kind, Link, Listing, Shape
from ..context import Context, Matched, Run, Update, unmark_tagged
from ..declaring import entries, ignored, prevents_destroy, same_names
from ..matching import one_per_address
from ..named import refuse_taken
from ..resource import applied_of, carries, mark_of, settle
from ..writing import Conversion
from . import plan as fp
from .files import LocalFile, declared_files, files_at, read_all

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA435", "ManifestError", "folder name used twice",
       "Two folders of the manifest have the same name; folder names are unique on a server.",
       "Give each folder its own `name`.")
define("LA436", "ManifestError", "no such folder",
       "An agent's `folders` names a key that `folders:` does not declare.",
       "Declare the folder, or fix the key.")
define("LA725", "ApiError", "a file Letta failed to process",
       "Letta took a folder's file but failed to process it (parse or embed); the message "
       "gives its reason.",
       "Fix or replace the file (or the embedding setup), then apply again.")
# fmt: on

FIELDS = ("name", "description", "instructions")


@dataclass(frozen=True)
class DesiredFolder:
    """A folder as the manifest declares it; `config` holds name and whatever else it sets
    (description, instructions, metadata, embedding)."""

    address: str
    config: Mapping[str, object] = field(default_factory=dict)
    files: tuple[LocalFile, ...] = ()
    agents: tuple[str, ...] = ()  # addresses of the agents that attach it
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LiveFolder:
    id: str
    name: str
    description: str | None
    instructions: str | None
    metadata: Mapping[str, object]  # the mark apart
    embedding: Mapping[str, object]
    mark: Mapping[str, object]
    files: tuple[fp.LiveFile, ...] = ()
    agents: tuple[str, ...] = ()  # ids of the agents it is attached to

    @classmethod
    def from_api(
        cls, raw: Mapping[str, object], files: object = (), agents: object = ()
    ) -> LiveFolder:
        """A folder as listed, with its files and the ids of its agents as their routes list
        them."""
        meta = dict(obj(raw.get("metadata")))
        mark = mark_of(meta)
        meta.pop(MARK_KEY, None)
        return cls(
            str(raw["id"]), str(raw.get("name") or ""), opt_text(raw.get("description")),
            opt_text(raw.get("instructions")), meta, dict(obj(raw.get("embedding_config"))),
            mark, tuple(map(fp.LiveFile.from_api, objs(files))), tuple(strings(agents)),
        )  # fmt: skip


@dataclass(frozen=True)
class FolderState:
    folders: tuple[LiveFolder, ...] = ()


def folder_applied(df: DesiredFolder) -> JsonObject:
    out: JsonObject = {k: digest(df.config[k]) for k in (*FIELDS, "metadata") if k in df.config}
    if df.prevent_destroy:
        out["prevent_destroy"] = True
    return out


def folder_mark(stack: str, df: DesiredFolder, files: Mapping[str, object]) -> JsonObject:
    return {"stack": stack, "address": df.address, "applied": folder_applied(df),
            "files": dict(files)}  # fmt: skip


def embedding_body(embedding: object) -> JsonObject:
    """How a create names a declared embedding: a handle, or a whole embedding config."""
    if isinstance(embedding, str):
        return {"embedding": embedding}
    return {"embedding_config": dict(obj(embedding))}


def _embedding_differs(declared: object, live: Mapping[str, object]) -> bool:
    if isinstance(declared, str):
        return bool(live.get("handle")) and live.get("handle") != declared
    return any(live.get(k) != v for k, v in obj(declared).items())


class FolderKind(Kind[DesiredFolder, LiveFolder, FolderState]):
    name: ClassVar[str] = "folder"
    section: ClassVar[str] = "folders"
    id_prefix: ClassVar[str] = "source-"
    depends_on: ClassVar[tuple[str, ...]] = ("agent",)  # attached to agents by their ids
    fields: ClassVar[tuple[Field, ...]] = (
        Field("name"),
        Field("description"),
        Field("instructions"),
        Field("metadata"),
        Field("embedding", "initial"),
        Field("files"),
    )
    marks: ClassVar[str] = f"the `{MARK_KEY}` entry of `metadata` (with the uploaded files)"
    shape: ClassVar[Shape] = "cylinder"
    listing: ClassVar[Listing] = "flag"

    # -- the manifest ----------------------------------------------------------------------

    def read_files(
        self, doc: Document, data: Mapping[str, object]
    ) -> tuple[list[str], list[Diagnostic]]:
        return read_all(doc, data)

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        """Folder names are unique on a server; agents name declared folders."""
        folders = obj(data.get(self.section))
        names = [
            (key, obj(spec).get("name", key), isinstance(spec, dict) and "name" in spec)
            for key, spec in folders.items()
        ]
        unique = "folder names are unique on a Letta server"
        errors = same_names(doc, self.section, names, "name", "LA435", unique)
        agents = data.get("agents")
        for key, spec in (agents if isinstance(agents, dict) else {}).items():
            refs = spec.get("folders") if isinstance(spec, dict) else None
            if isinstance(refs, list):
                errors += unknown_refs(doc, key, "folders", refs, folders, "folder", "LA436")
        return errors

    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, DesiredFolder]:
        users = agent_users(data, "folders")
        out: dict[str, DesiredFolder] = {}
        for key, spec in entries(data, self.section):
            config: JsonObject = {"name": spec.get("name", key)}
            for k in ("description", "instructions", "embedding"):
                if k in spec:
                    config[k] = spec[k]
            if "metadata" in spec:
                config["metadata"] = dict(obj(spec["metadata"]))
            address = f"folder.{key}"
            files = declared_files(doc, files_at(key))
            out[address] = DesiredFolder(
                address, config, files, tuple(sorted(users.get(key, ()))),
                prevents_destroy(spec), ignored(spec),
            )  # fmt: skip
        return out

    def references(self, declared: DesiredFolder, desired: Desired) -> list[str]:
        return list(declared.agents)

    def links(self, declared: DesiredFolder, desired: Desired) -> list[Link]:
        return [Link(a, shared=True) for a in declared.agents]

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        """Every folder (folders have no tags to filter on); files and agents of the stack's."""
        return _listing(client, stack)

    def state(
        self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str
    ) -> FolderState:
        got = raw.get("folder")
        if got is None:
            return FolderState()
        listing = obj(got)
        files, agents = obj(listing.get("files")), obj(listing.get("agents"))
        return FolderState(
            tuple(
                LiveFolder.from_api(f, files.get(str(f["id"]), ()), agents.get(str(f["id"]), ()))
                for f in objs(listing.get("folders"))
            )
        )

    def resources(self, state: FolderState) -> Iterable[LiveFolder]:
        return state.folders

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveFolder]:
        found = self.state_of(live).folders
        pool, notes = one_per_address(found, stack, self.name, self.name)
        return Matched(pool, {a: f.id for a, f in pool.items()}, notes)

    def create(self, ctx: Context, declared: DesiredFolder) -> None:
        df = declared
        holder = self.clash(ctx.live, text(df.config["name"]))
        if holder:
            what = f"a folder named '{df.config['name']}'"
            hint = "declare another name (folder names are unique on a Letta server)"
            refuse_taken(ctx, df.address, what, holder, hint)
            return
        folder: JsonObject = {k: df.config[k] for k in FIELDS if k in df.config}
        folder["metadata"] = {**obj(df.config.get("metadata")),
                              MARK_KEY: folder_mark(ctx.stack, df, {})}  # fmt: skip
        if "embedding" in df.config:
            folder.update(embedding_body(df.config["embedding"]))
        diffs = [FieldDiff(k, None, df.config[k], NEW) for k in (*FIELDS, "metadata", "embedding")
                 if k in df.config]  # fmt: skip
        file_diffs, uploads, _, _ = fp.plan_files(ctx, df, None)
        agent_diffs, attach, _ = fp.plan_agents(ctx, df, None)
        body: JsonObject = {"folder": folder, "uploads": uploads, "deletes": [],
                            "attach": attach, "detach": [], "kept": {}}  # fmt: skip
        ctx.changes.append(
            Change(
                df.address,
                CREATE,
                diffs=(*diffs, *file_diffs, *agent_diffs),
                body=body,
                why=(NEW,),
                kind=self.name,
            )
        )

    def update(
        self, ctx: Context, declared: DesiredFolder, found: LiveFolder, *, adopt: bool
    ) -> None:
        df, lf = declared, found
        u = Update(ctx, df, None if adopt else applied_of(lf))
        u.fields(lf, FIELDS)
        u.mapping("metadata", lf.metadata)
        u.protection(bool(lf.mark) or adopt)
        if "embedding" in df.config and _embedding_differs(df.config["embedding"], lf.embedding):
            ctx.notes.append(
                f"{df.address}: the declared embedding differs from the folder's; a folder keeps "
                "the embedding it was made with (rename the folder to make a new one)"
            )
        file_diffs, uploads, deletes, kept = fp.plan_files(ctx, df, lf)
        agent_diffs, attach, detach = fp.plan_agents(ctx, df, lf)
        # An intent to upload left by a run that stopped: the mark is written without it.
        pending = bool(fp.recorded_files(lf.mark, "pending"))
        writes = bool(uploads or deletes or attach or detach) or pending
        if u.needed(adopt=adopt, also=writes):
            # Attaches alone leave the mark as it is.
            marked = bool(u.diffs) or bool(file_diffs) or adopt or pending
            u.diffs.extend([*file_diffs, *agent_diffs])
            folder = dict(u.body)
            if marked:
                meta = obj(df.config["metadata"]) if "metadata" in df.config else lf.metadata
                folder["metadata"] = {**meta, MARK_KEY: folder_mark(ctx.stack, df, kept)}
            u.body = {"folder": folder, "uploads": uploads, "deletes": deletes,
                      "attach": attach, "detach": detach, "kept": kept}  # fmt: skip
            u.emit(self.name, lf.id, adopt=adopt)

    def delete(self, ctx: Context, address: str, found: LiveFolder, why: Why) -> None:
        if ctx.protected(found, self.declared(ctx.desired).get(address)):
            ctx.refuse_destroy(address)
            return
        ours = {la.id for la in ctx.pool("agent").values()}
        users = tuple((aid, aid, None) for aid in found.agents)
        if ctx.used_elsewhere(address, users, ours):
            return
        ctx.changes.append(Change(address, DELETE, found.id, why=(why,), kind=self.name))

    def fingerprint(self, resource: LiveFolder, blank: frozenset[str]) -> str:
        f = resource
        # A file still being processed when the plan was made may have finished since: only a
        # failure changes what a plan does with it.
        files = sorted((x.id, x.name, x.status == "error") for x in f.files)
        return digest([f.id, f.name, f.description, f.instructions, dict(f.metadata),
                       dict(f.mark), files, sorted(f.agents)])  # fmt: skip

    def describe(self, resource: LiveFolder, live: Live, hidden: frozenset[str]) -> str:
        return f"name={resource.name!r}  files={len(resource.files)}"

    def created_name(self, change: Change) -> str:
        return str(obj(change.body.get("folder", {})).get("name", ""))

    def clash(self, live: Live, name: str) -> tuple[str, ...]:
        state = self.state_of(live)
        return tuple(f.id for f in state.folders if f.name == name and not f.mark)

    # -- applying --------------------------------------------------------------------------

    def unmark(self, run: Run, change: Change) -> None:
        # The mark holds the record of the uploaded files: they stay, with the folder.
        unmark_tagged(run, fp.ROUTE.at(str(change.remote_id)), tags=False)

    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
        c = run.client
        rid = change.remote_id or ""
        if change.action == DELETE:
            fp.ROUTE.at(rid).delete(c)
            return rid
        folder = dict(obj(body.get("folder")))
        uploads = objs(body.get("uploads"))
        meta = dict(obj(folder.get("metadata")))
        # The intent to upload goes first (kinds.folder.plan.pending_mark): in the create
        # itself, or in one write before an update's uploads.
        intent = {**meta, MARK_KEY: fp.pending_mark(obj(meta.get(MARK_KEY)), uploads)}
        if change.action == CREATE:
            rid = _create(run, change.address, dict(folder, metadata=intent) if uploads else folder)
            run.record(change.address, rid)
        elif uploads and MARK_KEY in meta:
            fp.ROUTE.at(rid).patch(c, {"metadata": intent})
        for file_id in items(body.get("deletes")):
            fp.ROUTE.at(rid, str(file_id)).delete(c)
        files = dict(obj(body.get("kept")))
        sent: dict[str, fp.LiveFile] = {}
        for up in uploads:
            made = fp.upload(run, change.address, rid, up)
            sent[made.id] = made
            files[str(up["name"])] = {"digest": up["digest"], "size": up["size"], "id": made.id}
        done = fp.wait_processed(run, change.address, rid, set(sent))
        # The mark records every uploaded file with the id Letta gave it, failed ones too: their
        # status says they are sent again. A create wrote the rest of the folder already.
        patch: JsonObject = {} if change.action == CREATE else folder
        if "metadata" in folder and (sent or patch):
            meta = dict(obj(folder["metadata"]))
            mark = {**obj(meta.get(MARK_KEY)), "files": files}
            fp.ROUTE.at(rid).patch(c, {**patch, "metadata": {**meta, MARK_KEY: mark}})
        for aid in items(body.get("detach")):
            AGENTS.at(str(aid), "folders", "detach", rid).patch(c)
        for aid in items(body.get("attach")):
            AGENTS.at(str(aid), "folders", "attach", rid).patch(c)
        failed = fp.failures(done)
        if failed:
            raise ApiError(failed, code="LA725")
        return rid

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def from_agent_file(self, conv: Conversion) -> JsonObject:
        """No section: an Agent File's folders are noted (kinds.folder.writing)."""
        from .writing import note_sources  # builds on this module

        note_sources(conv)
        return {}


def _create(run: Run, address: str, body: Mapping[str, object]) -> str:
    """Create a folder; settle with any other run that made the same address meanwhile."""

    def candidates() -> list[JsonObject]:
        found = fp.ROUTE.list(run.client, {"name": text(body["name"])})
        return [f for f in found if carries(f, run.stack, address)]

    created = obj(fp.ROUTE.post(run.client, body, find=lambda: next(iter(candidates()), None)))
    winner = settle(created, candidates())
    if winner is not created:
        fp.ROUTE.at(str(created["id"])).delete(run.client)
    return str(winner["id"])


def _listing(client: LettaClient, stack: str) -> JsonObject:
    folders = list(fp.ROUTE.list(client))
    files: dict[str, list[JsonObject]] = {}
    agents: dict[str, list[str]] = {}
    for f in folders:
        if mark_of(f.get("metadata")).get("stack") != stack:
            continue
        fid = str(f["id"])
        files[fid] = list(fp.ROUTE.at(fid, "files").list(client))
        agents[fid] = folder_agents(client, fid)
    return {"folders": folders, "files": files, "agents": agents}


def folder_agents(client: LettaClient, fid: str) -> list[str]:
    """Ids of the agents a folder is attached to (the route lists ids, not objects)."""
    out: list[str] = []
    while True:
        params: dict[str, str | int] = {"limit": 1000, "order": "asc"}
        if out:
            params["after"] = out[-1]
        page = fp.ROUTE.at(fid, "agents").get(client, params)
        fresh = [str(a) for a in items(page) if str(a) not in out]
        out.extend(fresh)
        if len(fresh) < 1000:
            return out
