"""Check a loaded manifest against `schemas/manifest.schema.json`, then the rules a schema cannot
say, and turn it into the desired state. Every problem is reported at once, with its position."""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from .errors import Diagnostic, ManifestError
from .load import Document, Path_
from .model import DEFAULT_BLOCK_LIMIT, Desired, DesiredAgent, DesiredBlock, owned_block_address

SCHEMA_PATH = Path(__file__).parent / "schemas" / "manifest.schema.json"

# What the server itself accepts: agent names (AgentCreate.validate_name) and block labels (the
# core-memory routes address a block by label).
AGENT_NAME = re.compile(r"^[\w '\-]+$")
BLOCK_LABEL = re.compile(r"^[A-Za-z0-9_/-]{1,50}$")

BLOCK_CONFIG = ("description", "limit", "read_only", "metadata", "tags")
AGENT_CONFIG = ("description", "system", "model", "embedding", "tags", "metadata", "tools")


@cache
def schema() -> dict[str, Any]:
    """The manifest's JSON Schema (2020-12)."""
    with SCHEMA_PATH.open(encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "manifest"


_TYPE_NAMES = {
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "integer": "an integer",
    "boolean": "true or false",
    "number": "a number",
    "null": "null",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _schema_diagnostics(doc: Document) -> list[Diagnostic]:
    validator = jsonschema.Draft202012Validator(schema())
    out: list[Diagnostic] = []
    for err in validator.iter_errors(doc.data):
        out.extend(_explain(doc, err))
    return out


def _explain(doc: Document, err: jsonschema.ValidationError) -> list[Diagnostic]:
    path: Path_ = tuple(err.absolute_path)
    where = _where(path)
    kind = err.validator
    inst = err.instance
    if kind in ("anyOf", "oneOf", "allOf") and err.context:
        # Report the most specific sub-error rather than "is not valid under any of the schemas".
        best = jsonschema.exceptions.best_match(err.context)
        return _explain(doc, best)
    if kind == "additionalProperties" and isinstance(inst, dict):
        allowed = sorted(err.schema.get("properties", {}))
        out = []
        for key in inst:
            if key in allowed:
                continue
            hint = difflib.get_close_matches(key, allowed, n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else f" (allowed: {', '.join(allowed)})"
            out.append(doc.diag((*path, key), f"{where}: unknown key '{key}'{suggestion}", key=True))
        return out
    if kind == "required":
        missing = [k for k in err.validator_value if isinstance(inst, dict) and k not in inst]
        return [doc.diag(path, f"{where}: missing required key '{k}'", key=True) for k in missing]
    if kind == "type":
        want = err.validator_value
        names = [_TYPE_NAMES.get(t, t) for t in (want if isinstance(want, list) else [want])]
        return [doc.diag(path, f"{where}: expected {' or '.join(names)}, got {_json_type(inst)}")]
    if kind == "propertyNames":
        # err.instance is the offending key; point at the key itself.
        key = inst
        parent = path
        return [
            doc.diag(
                (*parent, key),
                f"{_where(parent)}: invalid key '{key}': keys use letters, digits, '_' and '-', "
                "start with a letter or '_', at most 100 characters",
                key=True,
            )
        ]
    if kind == "const":
        return [doc.diag(path, f"{where}: must be {_short(err.validator_value)}, got {_short(inst)}")]
    if kind == "pattern":
        what = {
            "stack": "lowercase letters, digits, '_', '.' and '-', starting with a letter or "
            "digit, at most 63 characters",
        }.get(str(path[-1]) if path else "", f"must match {err.validator_value}")
        if path and path[-1] in ("model", "embedding"):
            what = "a handle in the form provider/model, e.g. letta/letta-free"
        return [doc.diag(path, f"{where}: invalid value {_short(inst)}: {what}")]
    if kind in ("minLength", "maxLength"):
        bound = "at least" if kind == "minLength" else "at most"
        return [doc.diag(path, f"{where}: must be {bound} {err.validator_value} characters")]
    if kind in ("minimum", "maximum"):
        bound = "at least" if kind == "minimum" else "at most"
        return [doc.diag(path, f"{where}: must be {bound} {err.validator_value}, got {inst}")]
    if kind == "uniqueItems":
        return [doc.diag(path, f"{where}: items must be unique")]
    if kind == "not" and path and path[-1] == "metadata":
        return [doc.diag(path, f"{where}: the key 'letta_apply' is reserved for letta-apply's marks")]
    message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
    return [doc.diag(path, f"{where}: {message}")]


def _strings(value: Any, path: Path_) -> list[tuple[Path_, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, (*path, k))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, (*path, i))]
    return []


def _block(doc: Document, spec: dict[str, Any], address: str, label: str) -> DesiredBlock:
    return DesiredBlock(
        address=address,
        label=label,
        value=spec["value"],
        enforce_value=bool(spec.get("enforce_value", False)),
        config={k: spec[k] for k in BLOCK_CONFIG if k in spec},
    )


def _semantic(doc: Document) -> tuple[Desired, list[Diagnostic]]:
    data = doc.data
    errors: list[Diagnostic] = []
    stack = data["stack"]

    for path, text in _strings(data, ()):
        if "\x00" in text:
            errors.append(doc.diag(path, f"{_where(path)}: contains a NUL character"))

    def check_block(path: Path_, spec: dict[str, Any], label: str, label_path: Path_) -> None:
        if not BLOCK_LABEL.match(label):
            errors.append(
                doc.diag(
                    label_path,
                    f"{_where(path)}: label '{label}' is not accepted by Letta: use letters, "
                    "digits, '_', '-' and '/', at most 50 characters",
                    key=label_path == path,
                )
            )
        limit = spec.get("limit", DEFAULT_BLOCK_LIMIT)
        if len(spec["value"]) > limit:
            errors.append(
                doc.diag(
                    (*path, "value"),
                    f"{_where(path)}: value is {len(spec['value'])} characters, over the block's "
                    f"limit of {limit}",
                )
            )

    blocks: dict[str, DesiredBlock] = {}
    for key, spec in (data.get("blocks") or {}).items():
        path: Path_ = ("blocks", key)
        label = spec.get("label", key)
        check_block(path, spec, label, (*path, "label") if "label" in spec else path)
        blocks[key] = _block(doc, spec, f"block.{key}", label)

    agents: dict[str, DesiredAgent] = {}
    names: dict[str, Path_] = {}
    for key, spec in (data.get("agents") or {}).items():
        path = ("agents", key)
        address = f"agent.{key}"
        name = spec.get("name", key)
        name_path = (*path, "name") if "name" in spec else path
        if not AGENT_NAME.match(name):
            errors.append(
                doc.diag(
                    name_path,
                    f"{_where(path)}: name '{name}' is not accepted by Letta: use letters, digits, "
                    "spaces, '-', '_' and apostrophes",
                    key="name" not in spec,
                )
            )
        if name in names:
            first = doc.where(names[name])
            errors.append(
                doc.diag(
                    name_path,
                    f"{_where(path)}: agent name '{name}' is already used by "
                    f"{_where(names[name])} (line {first.line})",
                    key="name" not in spec,
                )
            )
        else:
            names[name] = name_path

        labels: dict[str, Path_] = {}

        def claim(label: str, at: Path_, what: str) -> None:
            if label in labels:
                errors.append(
                    doc.diag(
                        at,
                        f"{_where(path)}: two blocks labelled '{label}' on one agent "
                        f"({what} and {_where(labels[label])}); labels must be unique per agent",
                    )
                )
            else:
                labels[label] = at

        own: list[DesiredBlock] = []
        for i, mb in enumerate(spec.get("memory_blocks") or []):
            mpath: Path_ = (*path, "memory_blocks", i)
            check_block(mpath, mb, mb["label"], (*mpath, "label"))
            claim(mb["label"], (*mpath, "label"), _where(mpath))
            own.append(_block(doc, mb, owned_block_address(address, mb["label"]), mb["label"]))

        shared: list[str] = []
        for i, ref in enumerate(spec.get("blocks") or []):
            rpath: Path_ = (*path, "blocks", i)
            if ref not in blocks:
                hint = difflib.get_close_matches(ref, list(blocks), n=1)
                known = f"; did you mean '{hint[0]}'?" if hint else (
                    f" (declared: {', '.join(sorted(blocks))})" if blocks else
                    " (the manifest declares no shared blocks)"
                )
                errors.append(doc.diag(rpath, f"{_where(path)}: unknown block '{ref}'{known}"))
                continue
            claim(blocks[ref].label, rpath, f"block.{ref}")
            shared.append(f"block.{ref}")

        agents[address] = DesiredAgent(
            address=address,
            name=name,
            config={k: spec[k] for k in AGENT_CONFIG if k in spec},
            include_base_tools=spec.get("include_base_tools"),
            memory_blocks=tuple(own),
            blocks=tuple(shared),
        )

    desired = Desired(
        stack=stack,
        blocks={b.address: b for b in blocks.values()},
        agents=agents,
    )
    return desired, errors


def validate(doc: Document) -> Desired:
    """Validate a loaded manifest and return its desired state, or raise ManifestError with every
    problem found."""
    errors = _schema_diagnostics(doc)
    if errors:
        # Semantic checks assume the shapes the schema guarantees.
        raise ManifestError(errors)
    desired, errors = _semantic(doc)
    if errors:
        raise ManifestError(errors)
    return desired
