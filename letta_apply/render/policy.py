"""Policy violations (letta_apply.policy) as text, as the top of a pull-request comment, and as
SARIF 2.1.0, which GitHub code scanning reads to annotate the manifest's lines."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..core.changes import Violation
from ..core.jsonish import JsonObject
from ..errors import CODES, with_code
from ..version import __version__

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning"}


def _where(v: Violation) -> str:
    return f"{v.file}:{v.line}:{v.col}: " if v.file else ""


def violation_lines(violations: Sequence[Violation]) -> list[str]:
    """Every violation, one line each, those that refuse the plan first."""
    if not violations:
        return []
    errors = [v for v in violations if v.severity == "error"]
    lines = [
        "Policy: rules broken at error; apply writes nothing:"
        if errors
        else "Policy warnings (apply goes on):"
    ]
    for v in sorted(violations, key=lambda v: v.severity != "error"):
        lines.append(
            f"  {v.severity}: {_where(v)}{with_code(f'{v.address or v.rule}: {v.message}', v.code)}"
            f" (rule {v.rule})"
        )
    return [*lines, ""]


def violation_markdown(violations: Sequence[Violation]) -> list[str]:
    """The violations as the first callouts of a plan's pull-request comment."""
    out: list[str] = []
    for severity, head in (
        ("error", "> [!CAUTION]\n> **Refused by policy: apply will write nothing.**"),
        ("warning", "> [!WARNING]\n> Policy warnings:"),
    ):
        found = [v for v in violations if v.severity == severity]
        if found:
            out += head.split("\n")
            out += [
                f"> - `{v.address or v.rule}` ({v.rule}): {with_code(v.message, v.code)}"
                for v in found
            ]
            out.append("")
    return out


def sarif(
    violations: Sequence[Violation],
    rules: Sequence[tuple[str, str]],
    base: str | None = None,
) -> JsonObject:
    """A SARIF 2.1.0 log of the violations: a result per violation at the manifest line that
    declares its resource (relative to `base`, the repository's root: the working directory by
    default), and `rules` as (id, description)."""
    base = base or os.getcwd()
    ids = [r for r, _ in rules]
    driver_rules = [
        {
            "id": rid,
            "shortDescription": {"text": text or rid},
            "helpUri": "https://github.com/letta-apply/letta-apply#policies",
        }
        for rid, text in rules
    ]
    results: list[JsonObject] = []
    for v in violations:
        result: JsonObject = {
            "ruleId": v.rule,
            "level": _LEVEL[v.severity],
            "message": {"text": f"{v.address}: {v.message}" if v.address else v.message},
            "properties": {"code": v.code, "title": CODES[v.code].title if v.code in CODES else ""},
        }
        if v.rule in ids:
            result["ruleIndex"] = ids.index(v.rule)
        if v.file:
            path = os.path.relpath(os.path.abspath(v.file), base).replace(os.sep, "/")
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": path, "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": max(v.line, 1), "startColumn": max(v.col, 1)},
                    },
                    **({"logicalLocations": [{"fullyQualifiedName": v.address}]}
                       if v.address else {}),
                }
            ]  # fmt: skip
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "letta-apply",
                        "version": __version__,
                        "informationUri": "https://github.com/letta-apply/letta-apply",
                        "rules": driver_rules,
                    }
                },
                "results": results,
            }
        ],
    }
