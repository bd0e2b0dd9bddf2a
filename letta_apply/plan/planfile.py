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
    MEMORY,
    REPLACE,
    UPDATE,
    Change,
    Held,
    Plan,
    Violation,
)
from ..core.jsonish import JsonObject
from ..core.sensitive import Masked, masked_paths
from ..errors import PlanFileError
from ..version import __version__
from .plan_reader import as_object, as_opt_str, as_str, as_strs, plan_of

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


def _change(c: Change, fingerprint: str | None) -> JsonObject:
    # A replacement's first difference is the field that forces it: what it was is kept.
    before = None if c.action == CREATE else {d.field: d.before for d in c.diffs}
    extra: JsonObject = {}
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
        "block": c.target,
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


def to_document(plan: Plan, origin: Origin) -> JsonObject:
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
        **({"violations": violations_json(plan.violations)} if plan.violations else {}),
    }


def violations_json(violations: Iterable[Violation]) -> list[JsonObject]:
    """The policy rules broken (letta_apply.policy), each with its place."""
    return [
        {
            "rule": v.rule, "severity": v.severity, "address": v.address, "message": v.message,
            "code": v.code, "file": v.file, "line": v.line, "col": v.col,
        }
        for v in violations
    ]  # fmt: skip


def _held(h: Held) -> JsonObject:
    return {
        "address": h.address, "remote_id": h.remote_id, "kind": h.kind, "messages": h.messages,
        "passages": h.passages, "capped": list(h.capped), "written": list(h.written),
        "unknown": list(h.unknown), "agent_passages": h.agent_passages,
    }  # fmt: skip


def drift_document(plan: Plan, origin: Origin) -> JsonObject:
    """What `drift --format json` prints: the plan's drift alone. Mask the plan first."""
    doc = to_document(plan, origin)
    return {
        "format_version": FORMAT_VERSION,
        "stack": plan.stack,
        "has_drift": bool(plan.drift),
        "drift": doc["drift"],
        **({"violations": doc["violations"]} if plan.violations else {}),
        "summary": drift_counts(plan),
    }


def dumps(plan: Plan, origin: Origin) -> str:
    return (
        json.dumps(to_document(plan, origin), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def from_document(doc: object, source: str) -> tuple[Plan, Origin]:
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
        return plan_of(doc), _origin_of(doc)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as e:
        raise PlanFileError(
            f"{source}: malformed plan file ({type(e).__name__}: {e})", code="LA602"
        ) from None


def _origin_of(doc: Mapping[str, object]) -> Origin:
    server, manifest = as_object(doc["server"]), as_object(doc["manifest"])
    return Origin(
        base_url=as_str(server["base_url"]),
        project=as_opt_str(server.get("project")),
        files=tuple(as_strs(manifest["files"])),
        manifest_digest=as_str(manifest["digest"]),
    )


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
