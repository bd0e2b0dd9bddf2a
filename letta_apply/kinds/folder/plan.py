"""What a folder's update does to its files and its agents (kinds.folder), and how apply carries
it out: uploads, deletes, waiting for Letta to process what was sent, attaches and detaches.

Files are content-addressed: the folder's mark records, for each file letta-apply uploaded, its
digest, size and the id Letta gave it. A declared file whose digest and id still match is never
sent again; one whose digest changed is re-uploaded (Letta's `duplicate_handling=replace` drops
the old one in the same request); a recorded file no longer declared is deleted; a file in the
folder that the mark does not record and the manifest does not name was put there by hand and is
left alone. A file Letta failed to process is sent again on the next apply, alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...core.changes import DRIFT, MANIFEST, NEW, FieldDiff, Why
from ...core.jsonish import JsonObject, integer, obj, text
from ...errors import ApiError, StalePlanError, define
from ...manifest.files import Unreadable, read_regular
from ...server.routes import Route
from .files import MAX_FILE_BYTES, LocalFile, file_digest, shown_name, size

if TYPE_CHECKING:
    from ..context import Context, Run
    from .kind import DesiredFolder, LiveFolder

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA614", "StalePlanError", "a file to upload cannot be read now",
       "A folder's file the plan uploads cannot be read any more.",
       "Put the file back, or plan again.")
define("LA615", "StalePlanError", "a file to upload changed since the plan",
       "A folder's file the plan uploads changed since the plan was made.",
       "Plan again.")
define("LA724", "ApiError", "files still processing",
       "Letta was still processing a folder's files when the wait ran out (--wait-timeout).",
       "Apply again later: it sees how the processing ended.")
# fmt: on

ROUTE = Route("/v1/folders/")

DONE = frozenset({"completed", "error"})
POLL = 0.5  # seconds between looks at the folder's files while they are processed
PROGRESS = 5.0  # seconds between progress lines while waiting


@dataclass(frozen=True)
class LiveFile:
    """A file in a folder, as Letta lists it: its name is the name it was uploaded under."""

    id: str
    name: str
    size: int
    status: str
    error: str = ""

    @classmethod
    def from_api(cls, raw: Mapping[str, object]) -> LiveFile:
        return cls(
            str(raw["id"]),
            str(raw.get("original_file_name") or raw.get("file_name") or ""),
            integer(raw.get("file_size")) or 0,
            str(raw.get("processing_status") or ""),
            str(raw.get("error_message") or ""),
        )


def recorded_files(mark: Mapping[str, object], key: str = "files") -> dict[str, JsonObject]:
    """Name -> {digest, size, id} of the files letta-apply uploaded, from a folder's mark
    (`pending`: name -> {digest, size} of those an apply was about to upload)."""
    got = mark.get(key)
    if not isinstance(got, Mapping):
        return {}
    return {str(k): dict(v) for k, v in got.items() if isinstance(v, Mapping)}


def pending_mark(mark: Mapping[str, object], uploads: list[Mapping[str, object]]) -> JsonObject:
    """A folder's mark with the intent to upload `uploads`, written before they are sent: a run
    that stops before recording them leaves files its stack knows as its own."""
    pending = {str(u["name"]): {"digest": u["digest"], "size": u["size"]} for u in uploads}
    return {**mark, "pending": pending}


def resumed(ctx: Context, address: str, mark: Mapping[str, object],
            live: Mapping[str, list[LiveFile]]) -> dict[str, JsonObject]:  # fmt: skip
    """The files a run that stopped uploaded and did not record, as its intent names them
    (name, and size where Letta reports one), with the ids Letta gave them."""
    was = recorded_files(mark)
    out = {}
    for name, p in recorded_files(mark, "pending").items():
        found = [f for f in live.get(name, []) if not f.size or f.size == p.get("size")]
        if name not in was and len(found) == 1:
            out[name] = {**p, "id": found[0].id}
            ctx.notes.append(
                f"{address}: file '{shown_name(name)}' adopted, uploaded by a run that stopped "
                "before recording it"
            )
    return out


def shown(f: LocalFile | Mapping[str, object]) -> str:
    """A file as a plan shows it: its size and digest."""
    if isinstance(f, LocalFile):
        return f"{size(f.size)} sha256:{f.digest}"
    return f"{size(integer(f.get('size')) or 0)} sha256:{f.get('digest', '?')}"


def _field(name: str) -> str:
    return f"files['{shown_name(name)}']"


def upload_of(f: LocalFile) -> JsonObject:
    return {"name": f.name, "path": f.path, "digest": f.digest, "size": f.size}


def plan_files(
    ctx: Context, df: DesiredFolder, lf: LiveFolder | None
) -> tuple[list[FieldDiff], list[JsonObject], list[str], dict[str, JsonObject]]:
    """The per-file differences (`+` new, `~` changed or failed, `-` gone from the globs), the
    uploads and the file ids to delete, and the files the mark keeps as they are."""
    live: dict[str, list[LiveFile]] = {}
    for lfile in lf.files if lf else ():
        live.setdefault(lfile.name, []).append(lfile)
    was = {**recorded_files(lf.mark), **resumed(ctx, df.address, lf.mark, live)} if lf else {}
    diffs: list[FieldDiff] = []
    uploads: list[JsonObject] = []
    deletes: list[str] = []
    kept: dict[str, JsonObject] = {}
    for f in df.files:
        rec = was.get(f.name)
        found = live.get(f.name, [])
        ours = next((x for x in found if rec and x.id == rec.get("id")), None)
        why: Why
        if lf is None:
            diffs.append(FieldDiff(_field(f.name), None, shown(f), NEW))
        elif not found:
            # Recorded and gone: deleted on the server.
            why = DRIFT if rec else MANIFEST
            diffs.append(FieldDiff(_field(f.name), None, shown(f), why))
        elif ours is None:
            # Uploaded by a run that stopped before recording it, or by hand under a name the
            # manifest declares: the declared content replaces it.
            diffs.append(FieldDiff(_field(f.name), f"{size(found[0].size)} (not recorded)",
                                   shown(f), DRIFT))  # fmt: skip
        elif rec and rec.get("digest") != f.digest:
            diffs.append(FieldDiff(_field(f.name), shown(rec), shown(f), MANIFEST))
        elif ours.status == "error":
            before = f"{shown(f)} (failed: {ours.error or 'no reason given'})"
            diffs.append(FieldDiff(_field(f.name), before, shown(f), DRIFT))
        else:
            kept[f.name] = {"digest": f.digest, "size": f.size, "id": ours.id}
            if ours.status not in DONE:
                ctx.notes.append(
                    f"{df.address}: {shown_name(f.name)} is still being processed ({ours.status})"
                )
            continue
        uploads.append(upload_of(f))
    declared = {f.name for f in df.files}
    for name, rec in sorted(was.items()):
        if name in declared:
            continue
        gone = [x.id for x in live.get(name, []) if x.id == rec.get("id")]
        if gone:
            diffs.append(FieldDiff(_field(name), shown(rec), None, MANIFEST))
            deletes.extend(gone)
    for name in sorted(live):
        if name not in declared and name not in was:
            ctx.notes.append(
                f"{df.address}: file '{shown_name(name)}' was put in the folder by hand; left alone"
            )
    return diffs, uploads, deletes, kept


def plan_agents(
    ctx: Context, df: DesiredFolder, lf: LiveFolder | None
) -> tuple[list[FieldDiff], list[object], list[str]]:
    """Attach the folder to the agents that declare it; detach it from the stack's declared
    agents that no longer do. Agents outside the stack are left alone."""
    attached = set(lf.agents) if lf else set()
    agents = ctx.pool("agent")
    declared_agents = ctx.desired.of("agent")
    attach: list[object] = []
    names: list[str] = []
    for address in df.agents:
        if address in ctx.refused:
            continue
        aid = ctx.ids.get(address)
        if aid is None or aid not in attached or address in ctx.replacing:
            attach.append({"$ref": address})
            names.append(address)
    detach = sorted(
        la.id
        for a, la in agents.items()
        if la.id in attached and a in declared_agents and a not in df.agents
    )
    ours = {la.id for la in agents.values()}
    for aid in sorted(attached - ours):
        ctx.notes.append(f"{df.address}: attached to {aid} outside the stack; left alone")
    diffs: list[FieldDiff] = []
    if names or detach:
        # A create's differences have no before (as a saved plan reads them back).
        before = sorted(a for a, la in agents.items() if la.id in attached) if lf else None
        diffs.append(FieldDiff("agents", before, sorted(df.agents), MANIFEST if lf else NEW))
    return diffs, attach, detach


# -- applying ----------------------------------------------------------------------------------


def read_upload(address: str, up: Mapping[str, object]) -> bytes:
    """The bytes of a planned upload, read again now: a file changed since the plan is refused
    (a plan is a promise)."""
    try:
        data = read_regular(text(up["path"]), MAX_FILE_BYTES)
    except Unreadable as e:
        raise StalePlanError(f"{address}: {up['path']} {e}", code="LA614") from None
    if file_digest(data) != up["digest"]:
        raise StalePlanError(
            f"{address}: {up['path']} changed since the plan was made; plan again", code="LA615"
        )
    return data


def upload(run: Run, address: str, fid: str, up: Mapping[str, object]) -> LiveFile:
    data = read_upload(address, up)
    name = str(up["name"])
    answer = ROUTE.at(fid, "upload").post(
        run.client,
        params={"name": name, "duplicate_handling": "replace"},
        files={"file": (name.rsplit("/", 1)[-1], data, "application/octet-stream")},
        find=lambda: _uploaded(run, fid, name),
    )
    return LiveFile.from_api(obj(answer))


def _uploaded(run: Run, fid: str, name: str) -> JsonObject | None:
    """The file an ambiguous upload may have made: the newest of that name."""
    found = [f for f in ROUTE.at(fid, "files").list(run.client) if
             (f.get("original_file_name") or f.get("file_name")) == name]  # fmt: skip
    return found[-1] if found else None


def wait_processed(run: Run, address: str, fid: str, ids: set[str]) -> dict[str, LiveFile]:
    """Wait, bounded by the client's `wait_timeout`, until Letta has processed the files `ids`
    (completed or failed); their final state, each also told in a line. Reads the folder's
    file listing, never one request per file."""
    c = run.client
    if not ids:
        return {}
    started = c.clock()
    told = started
    while True:
        now = {f.id: f for f in map(LiveFile.from_api, ROUTE.at(fid, "files").list(c))}
        pending = sorted(now[i].name for i in ids if i in now and now[i].status not in DONE)
        elapsed = c.clock() - started
        if not pending:
            done = {i: now[i] for i in ids if i in now}
            each = sorted(f"{shown_name(f.name)} ({f.status})" for f in done.values())
            _tell(run, f"{address}: processed in {elapsed:.1f} s: {', '.join(each)}")
            return done
        if elapsed > c.wait_timeout:
            raise ApiError(
                f"Letta is still processing {', '.join(pending)} after {c.wait_timeout:.0f} s; "
                "apply again later to see how it ended",
                code="LA724",
            )
        if c.clock() - told >= PROGRESS:
            told = c.clock()
            _tell(run, f"{address}: Letta is processing {len(pending)} of {len(ids)} file(s)")
        c.sleep(POLL)


def _tell(run: Run, line: str) -> None:
    if run.client.on_retry is not None:
        run.client.on_retry(line)


def failures(done: Mapping[str, LiveFile]) -> str:
    """One line naming each file Letta failed to process, with its reason ("" for none)."""
    bad = sorted(
        (f.name, f.error or "no reason given") for f in done.values() if f.status == "error"
    )
    return "; ".join(f"file '{shown_name(n)}' failed processing: {why}" for n, why in bad)
