"""A saved plan's JSON read back into a Plan (plan.planfile): each part is read with the type the
plan needs, and a part that is not of that type raises as indexing it would have (KeyError,
TypeError, ValueError for a value no plan holds): planfile says the file is malformed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TypeVar

from ..core.changes import (
    ACTIONS,
    CREATE,
    DRIFT,
    DRIFT_KINDS,
    MANIFEST,
    MEMORY,
    NEW,
    WHYS,
    Change,
    Drift,
    FieldDiff,
    Held,
    Plan,
    Problem,
    Seal,
    Violation,
    Why,
)
from ..core.jsonish import JsonObject
from ..core.sensitive import MASKED
from ..kinds import kind_of_address


def plan_of(doc: Mapping[str, object]) -> Plan:
    listed = as_list(doc["changes"])
    changes = [_change_of(as_object(c)) for c in listed]
    return Plan(
        stack=as_str(doc["stack"]),
        changes=tuple(changes),
        drift=tuple(_drift_of(as_object(d)) for d in as_list(doc.get("drift", ()))),
        problems=tuple(_problem_of(as_object(p)) for p in as_list(doc["problems"])),
        notes=tuple(as_strs(doc.get("notes", ()))),
        ids={as_str(k): as_str(v) for k, v in as_object(doc.get("ids", {})).items()},
        fingerprints={
            c.key: as_str(d["fingerprint"])
            for c, d in zip(changes, map(as_object, listed), strict=True)
            if d.get("fingerprint")
        },
        seal=_seal(doc.get("seal")),
        memory=tuple(_held_of(as_object(h)) for h in as_list(doc.get("memory") or ())),
        violations=tuple(_violation_of(as_object(v)) for v in as_list(doc.get("violations", ()))),
    )


def _violation_of(v: Mapping[str, object]) -> Violation:
    severity = as_str(v["severity"])
    if severity not in ("error", "warning"):
        raise ValueError(f"severity {severity!r}")
    return Violation(
        as_str(v["rule"]), "error" if severity == "error" else "warning", as_str(v["address"]),
        as_str(v["message"]), str(v.get("code") or ""), str(v.get("file") or ""),
        int(str(v.get("line") or 0)), int(str(v.get("col") or 0)),
    )  # fmt: skip


def _change_of(c: Mapping[str, object]) -> Change:
    before = as_object(c.get("before") or {})
    after = as_object(c["after"])
    masked = set(as_strs(c.get("sensitive_fields") or ()))
    diffs = tuple(
        FieldDiff(
            p,
            _mask(before.get(p), p in masked),
            _mask(after.get(p), p in masked),
            _field_why(p, c),
        )
        for p in as_strs(c["changed_paths"])
    )
    address = as_str(c["address"])
    return Change(
        address=address,
        action=one_of(as_list(c["actions"])[0], ACTIONS),
        remote_id=as_opt_str(c.get("remote_id")),
        diffs=diffs,
        body=_masked_body(as_object(c.get("body") or {}), as_list(c.get("sensitive_paths") or ())),
        target=as_opt_str(c.get("block")),
        why=tuple(one_of(w, WHYS) for w in as_list(c.get("why") or (MANIFEST,))),
        kind=kind_of_address(address),
    )


def _field_why(path: str, change: Mapping[str, object]) -> Why:
    whys = as_list(change.get("why") or [])
    if path in as_list(change.get("drift_paths") or []):
        return DRIFT
    # A create's fields are all new (one made again after it was deleted on the server too).
    if NEW in whys or change.get("actions") == [CREATE]:
        return NEW
    if path == "value" and MEMORY in whys:
        return MEMORY
    return MANIFEST


def _drift_of(d: Mapping[str, object]) -> Drift:
    sensitive = bool(d.get("sensitive"))
    return Drift(
        as_str(d["address"]),
        as_str(d["field"]),
        _mask(d["declared"], sensitive),
        _mask(d["live"], sensitive),
        one_of(d["kind"], DRIFT_KINDS),
        d["action"] == "restored",
        conflict=bool(d.get("conflict")),
        label=str(d.get("label") or ""),
    )


def _problem_of(p: Mapping[str, object]) -> Problem:
    return Problem(
        as_str(p["address"]),
        as_str(p["message"]),
        as_str(p.get("hint", "")),
        bool(p.get("fatal")),
        str(p.get("code") or ""),
    )


def _seal(doc: object) -> Seal | None:
    if doc is None:
        return None
    seal = as_object(doc)
    pairs = [as_list(r) for r in as_list(seal["resources"])]
    resources = tuple((str(rid), tuple(map(str, as_list(names)))) for rid, names in pairs)
    return Seal(resources, str(seal["digest"]))


def _held_of(doc: Mapping[str, object]) -> Held:
    return Held(
        str(doc["address"]), str(doc["remote_id"]), str(doc["kind"]),
        as_opt_int(doc.get("messages")), as_opt_int(doc.get("passages")),
        tuple(as_strs(doc.get("capped") or ())), tuple(as_strs(doc.get("written") or ())),
        tuple(as_strs(doc.get("unknown") or ())), as_opt_int(doc.get("agent_passages")),
    )  # fmt: skip


def _mask(value: object, masked: bool) -> object:
    return MASKED if masked and value is not None else value


def _masked_body(body: Mapping[str, object], paths: Sequence[object]) -> JsonObject:
    """The body with MASKED where the saved plan left a sensitive value out."""
    out: object = json.loads(json.dumps(body))
    for path in map(as_list, paths):
        node = out
        for part in path[:-1]:
            node = _item(node, part)
        _put(node, path[-1], MASKED)
    return dict(as_object(out))


def _item(node: object, key: object) -> object:
    """node[key], in a JSON object or list."""
    if isinstance(node, dict) and isinstance(key, str):
        return node[key]
    if isinstance(node, list) and isinstance(key, int):
        return node[key]
    raise TypeError(f"no {key!r} in a {_kind(node)}")


def _put(node: object, key: object, value: object) -> None:
    """node[key] = value, in a JSON object or list."""
    if isinstance(node, dict) and isinstance(key, str):
        node[key] = value
        return
    if isinstance(node, list) and isinstance(key, int):
        node[key] = value
        return
    raise TypeError(f"no {key!r} in a {_kind(node)}")


_Known = TypeVar("_Known", bound=str)


def one_of(value: object, known: tuple[_Known, ...]) -> _Known:
    """`value` as one of the `known` strings (a Literal type's values)."""
    for k in known:
        if value == k:
            return k
    raise ValueError(f"unknown value {value!r}")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def as_object(value: object) -> Mapping[str, object]:
    if isinstance(value, Mapping):
        return value
    raise TypeError(f"expected an object, found a {_kind(value)}")


def as_list(value: object) -> Sequence[object]:
    if isinstance(value, list | tuple):
        return value
    raise TypeError(f"expected a list, found a {_kind(value)}")


def as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, found a {_kind(value)}")


def as_opt_str(value: object) -> str | None:
    return None if value is None else as_str(value)


def as_strs(value: object) -> list[str]:
    return [as_str(v) for v in as_list(value)]


def as_opt_int(value: object) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TypeError(f"expected a whole number, found a {_kind(value)}")
