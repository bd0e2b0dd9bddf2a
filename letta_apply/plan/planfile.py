"""The plan as a JSON document: `plan --format json` prints it, `plan --out FILE` saves it, and
`apply FILE` reads it back. Its shape is `schemas/plan.schema.json`, versioned by
`format_version`. Keys are sorted and nothing depends on time, so the same inputs give
byte-identical output."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.changes import (
    ATTACH,
    CONFIGURATION,
    CREATE,
    DELETE,
    DELETED,
    DETACH,
    DRIFT,
    FORGET,
    IMPORT,
    MANIFEST,
    MEMORY,
    NEW,
    REPLACE,
    UPDATE,
    Change,
    Drift,
    FieldDiff,
    Held,
    Plan,
    Problem,
    Seal,
    Why,
)
from ..core.sensitive import MASKED, Masked, masked_paths
from ..errors import PlanFileError
from ..kinds import kind_of_address
from ..version import __version__

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Origin:
    """What a plan was made from and against: checked before a saved plan is applied."""

    base_url: str
    project: str | None
    files: tuple[str, ...]
    manifest_digest: str


def manifest_digest(paths: Iterable[str]) -> str:
    """sha256 over the manifest files' bytes, in path order."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(Path(p).read_bytes())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def _change(c: Change, fingerprint: str | None) -> dict[str, Any]:
    # A replacement's first difference is the field that forces it: what it was is kept.
    before = None if c.action == CREATE else {d.field: d.before for d in c.diffs}
    extra: dict[str, Any] = {}
    paths = masked_paths(dict(c.body))
    if paths:
        extra["sensitive_paths"] = [list(p) for p in paths]
    fields = [
        d.field for d in c.diffs if isinstance(d.after, Masked) or isinstance(d.before, Masked)
    ]
    if fields:
        extra["sensitive_fields"] = fields
    return {
        **extra,
        "address": c.address,
        "actions": [c.action],
        "remote_id": c.remote_id,
        "block": c.block,
        "why": list(c.why),
        "before": before,
        "after": {d.field: d.after for d in c.diffs},
        "changed_paths": [d.field for d in c.diffs],
        "drift_paths": [d.field for d in c.diffs if d.why == DRIFT],
        "fingerprint": fingerprint,
        "body": dict(c.body),
    }


def summary(plan: Plan) -> dict[str, int]:
    return {
        "create": plan.count(CREATE),
        "update": plan.count(UPDATE),
        "attach": plan.count(ATTACH),
        "detach": plan.count(DETACH),
        "delete": plan.count(DELETE),
        "import": plan.count(IMPORT),
        "replace": plan.count(REPLACE),
        # Only when the plan lets go of something (`removed:`): older readers know the rest.
        **({"forget": plan.count(FORGET)} if plan.count(FORGET) else {}),
        **drift_counts(plan, always=False),
        "refused": len({p.address for p in plan.problems}),  # resources, each with its reasons
    }


def drift_counts(plan: Plan, *, always: bool = True) -> dict[str, int]:
    """How much drift of each kind; resources deleted on the server only when there are some
    (older readers of plans know the rest), unless `always`."""
    deleted = sum(1 for d in plan.drift if d.kind == DELETED)
    return {
        "memory_drift": sum(1 for d in plan.drift if d.kind == MEMORY),
        "configuration_drift": sum(1 for d in plan.drift if d.kind == CONFIGURATION),
        **({"deleted_drift": deleted} if deleted or always else {}),
    }


def to_document(plan: Plan, origin: Origin) -> dict[str, Any]:
    """The plan as plain JSON data."""
    return {
        "format_version": FORMAT_VERSION,
        "letta_apply_version": __version__,
        "stack": plan.stack,
        "server": {"base_url": origin.base_url, "project": origin.project},
        "manifest": {"files": list(origin.files), "digest": origin.manifest_digest},
        "has_changes": plan.has_changes,
        "summary": summary(plan),
        "changes": [_change(c, plan.fingerprints.get(c.key)) for c in plan.changes],
        **(
            {
                "seal": {
                    "resources": [list(r) for r in plan.seal.resources],
                    "digest": plan.seal.digest,
                }
            }
            if plan.seal
            else {}
        ),
        **({"memory": [_held(h) for h in plan.memory]} if plan.memory else {}),
        "drift": [
            {
                "address": d.address,
                "field": d.field,
                "kind": d.kind,
                "declared": d.declared,
                "live": d.live,
                "action": "restored" if d.restored else "kept",
                **({"conflict": True} if d.conflict else {}),
                **({"label": d.label} if d.label else {}),
                **({"sensitive": True} if isinstance(d.live, Masked) else {}),
            }
            for d in plan.drift
        ],
        "problems": [
            {
                "address": p.address,
                "message": p.message,
                "hint": p.hint,
                "fatal": p.fatal,
                "code": p.code,
            }
            for p in plan.problems
        ],
        "notes": list(plan.notes),
        "ids": dict(plan.ids),
    }


def _held(h: Held) -> dict[str, Any]:
    return {
        "address": h.address, "remote_id": h.remote_id, "kind": h.kind, "messages": h.messages,
        "passages": h.passages, "capped": list(h.capped), "written": list(h.written),
        "unknown": list(h.unknown), "agent_passages": h.agent_passages,
    }  # fmt: skip


def _held_of(doc: Mapping[str, Any]) -> Held:
    return Held(
        str(doc["address"]), str(doc["remote_id"]), str(doc["kind"]), doc.get("messages"),
        doc.get("passages"), tuple(doc.get("capped") or ()), tuple(doc.get("written") or ()),
        tuple(doc.get("unknown") or ()), doc.get("agent_passages"),
    )  # fmt: skip


def drift_document(plan: Plan, origin: Origin) -> dict[str, Any]:
    """What `drift --format json` prints: the plan's drift alone. Mask the plan first."""
    doc = to_document(plan, origin)
    return {
        "format_version": FORMAT_VERSION,
        "stack": plan.stack,
        "has_drift": bool(plan.drift),
        "drift": doc["drift"],
        "summary": drift_counts(plan),
    }


def dumps(plan: Plan, origin: Origin) -> str:
    return (
        json.dumps(to_document(plan, origin), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def _seal(doc: Any) -> Seal | None:
    if doc is None:
        return None
    resources = tuple((str(rid), tuple(map(str, names))) for rid, names in doc["resources"])
    return Seal(resources, str(doc["digest"]))


def _field_why(path: str, change: Mapping[str, Any]) -> Why:
    whys = change.get("why") or []
    if path in (change.get("drift_paths") or []):
        return DRIFT
    # A create's fields are all new (one made again after it was deleted on the server too).
    if NEW in whys or change.get("actions") == [CREATE]:
        return NEW
    if path == "value" and MEMORY in whys:
        return MEMORY
    return MANIFEST


def from_document(doc: Mapping[str, Any], source: str) -> tuple[Plan, Origin]:
    """Read a saved plan back; raises PlanFileError naming `source` when it is not one."""
    if not isinstance(doc, Mapping) or doc.get("format_version") != FORMAT_VERSION:
        found = doc.get("format_version") if isinstance(doc, Mapping) else None
        code = "LA602" if found is None else "LA603"  # not a plan; a plan of another format
        raise PlanFileError(
            f"{source}: not a letta-apply plan of format_version {FORMAT_VERSION} "
            f"(found {found!r})",
            code=code,
        )
    try:
        changes = []
        for c in doc["changes"]:
            before = c.get("before") or {}
            masked = set(c.get("sensitive_fields") or ())
            diffs = tuple(
                FieldDiff(
                    p,
                    _mask(before.get(p), p in masked),
                    _mask(c["after"].get(p), p in masked),
                    _field_why(p, c),
                )
                for p in c["changed_paths"]
            )
            changes.append(
                Change(
                    address=c["address"],
                    action=c["actions"][0],
                    remote_id=c.get("remote_id"),
                    diffs=diffs,
                    body=_masked_body(c.get("body") or {}, c.get("sensitive_paths") or ()),
                    block=c.get("block"),
                    why=tuple(c.get("why") or (MANIFEST,)),
                    kind=kind_of_address(c["address"]),
                )
            )
        plan = Plan(
            stack=doc["stack"],
            changes=tuple(changes),
            drift=tuple(
                Drift(
                    d["address"],
                    d["field"],
                    _mask(d["declared"], bool(d.get("sensitive"))),
                    _mask(d["live"], bool(d.get("sensitive"))),
                    d["kind"],
                    d["action"] == "restored",
                    conflict=bool(d.get("conflict")),
                    label=str(d.get("label") or ""),
                )
                for d in doc.get("drift", ())
            ),
            problems=tuple(
                Problem(
                    p["address"],
                    p["message"],
                    p.get("hint", ""),
                    bool(p.get("fatal")),
                    str(p.get("code") or ""),
                )
                for p in doc["problems"]
            ),
            notes=tuple(doc.get("notes", ())),
            ids=dict(doc.get("ids", {})),
            fingerprints={
                c.key: d["fingerprint"]
                for c, d in zip(changes, doc["changes"], strict=True)
                if d.get("fingerprint")
            },
            seal=_seal(doc.get("seal")),
            memory=tuple(_held_of(h) for h in doc.get("memory") or ()),
        )
        origin = Origin(
            base_url=doc["server"]["base_url"],
            project=doc["server"].get("project"),
            files=tuple(doc["manifest"]["files"]),
            manifest_digest=doc["manifest"]["digest"],
        )
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise PlanFileError(
            f"{source}: malformed plan file ({type(e).__name__}: {e})", code="LA602"
        ) from None
    return plan, origin


def _mask(value: Any, masked: bool) -> Any:
    return MASKED if masked and value is not None else value


def _masked_body(body: Mapping[str, Any], paths: Iterable[Any]) -> dict[str, Any]:
    """The body with MASKED where the saved plan left a sensitive value out."""
    out: Any = json.loads(json.dumps(body))
    for path in paths:
        node = out
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = MASKED
    return dict(out)


def read(path: str) -> tuple[Plan, Origin]:
    """Load a saved plan file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PlanFileError(f"{path}: cannot read: {e.strerror}", code="LA601") from None
    except UnicodeDecodeError:
        raise PlanFileError(
            f"{path}: not a letta-apply plan (not UTF-8 text)", code="LA602"
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        if _looks_like_a_manifest(text):
            raise PlanFileError(
                f"{path} is a manifest, not a saved plan: pass it with -f (apply -f {path})",
                code="LA604",
            ) from None
        raise PlanFileError(
            f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}", code="LA602"
        ) from None
    return from_document(doc, path)


def _looks_like_a_manifest(text: str) -> bool:
    """Whether a file given as a saved plan is a manifest (a user forgot `-f`)."""
    return bool(re.search(r"^(version|stack)\s*:", text[:10_000], re.M))
