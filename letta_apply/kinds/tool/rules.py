"""An agent's `tool_rules`, in Letta's own shape: which fields each kind of rule takes, the tools
a rule names, and the form rules are compared in (the server adds rules of its own)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping

from ...core.jsonish import JsonObject, obj, strings, text
from ...errors import Diagnostic, define
from ...manifest.files import Document, Path_, clip

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA472", "ManifestError", "a field this tool rule does not take",
       "An agent's tool rule sets a field its rule type does not take.",
       "Remove the field (the message lists what the type takes).")
# fmt: on

RULES_INTERIM = "tool_rules_interim"
"""Key, in an agent's update, of the rules to write before its `tool_rules` (rules_interim)."""

# Fields of each kind of tool rule besides `type` and `tool_name` (Letta 0.16.8 tool_rule.py).
RULE_FIELDS: dict[str, tuple[str, ...]] = {
    "run_first": ("args",),
    "exit_loop": (),
    "continue_loop": (),
    "required_before_exit": (),
    "requires_approval": (),
    "max_count_per_step": ("max_count_limit",),
    "conditional": ("default_child", "child_output_mapping", "require_output_mapping"),
    "constrain_child_tools": ("children",),
    "parent_last_tool": ("children",),
}


def _where(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def check_rules(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """Fields a rule's kind does not take (the schema cannot tie fields to `type`)."""
    errors: list[Diagnostic] = []
    agents = data.get("agents")
    for akey, spec in (agents if isinstance(agents, dict) else {}).items():
        rules = spec.get("tool_rules") if isinstance(spec, dict) else None
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            kind = rule.get("type") if isinstance(rule, dict) else None
            if not isinstance(kind, str) or kind not in RULE_FIELDS:
                continue  # the schema reports it
            allowed = RULE_FIELDS[kind]
            for field in rule:
                if field not in ("type", "tool_name", *allowed):
                    at: Path_ = ("agents", akey, "tool_rules", i, field)
                    also = f" (it takes {', '.join(allowed)})" if allowed else ""
                    errors.append(
                        doc.diag(
                            at,
                            f"{_where(at[:-1])}: {clip(field)} is not a field of "
                            f"{kind} rules{also}",
                            code="LA472",
                            key=True,
                        )
                    )
    return errors


def rule_tool_names(rule: Mapping[str, object]) -> list[str]:
    """Every tool a tool rule names: its own, and children for the rules that have them."""
    names = [text(rule["tool_name"]), *strings(rule.get("children"))]
    if rule.get("default_child"):
        names.append(text(rule["default_child"]))
    names += strings(list(obj(rule.get("child_output_mapping")).values()))
    return names


def rule_by_name(rule: Mapping[str, object], name_of: Callable[[str], str]) -> JsonObject:
    """A rule with every tool it names written as the tool's name (rules may use keys)."""
    out = dict(rule)
    out["tool_name"] = name_of(text(rule["tool_name"]))
    if "children" in out:
        out["children"] = [name_of(c) for c in strings(out["children"])]
    if "default_child" in out:
        out["default_child"] = name_of(text(out["default_child"]))
    if "child_output_mapping" in out:
        mapping = obj(out["child_output_mapping"])
        out["child_output_mapping"] = {k: name_of(text(v)) for k, v in mapping.items()}
    return out


def rule_compared(rule: Mapping[str, object]) -> JsonObject:
    """A tool rule as compared: without fields at their server default (null, an ignored
    prompt template, require_output_mapping false)."""
    return {
        k: v
        for k, v in rule.items()
        if v is not None
        and k != "prompt_template"
        and not (k == "require_output_mapping" and v is False)
    }


def rules_shown(rules: Iterable[Mapping[str, object]]) -> list[str]:
    """Tool rules as a plan shows them: `type(tool, field=value...)`, sorted."""
    out = []
    for r in map(rule_compared, rules):
        extra = [
            f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
            for k, v in sorted(r.items())
            if k not in ("type", "tool_name")
        ]
        out.append(f"{r.get('type')}({', '.join([str(r.get('tool_name')), *extra])})")
    return sorted(out)


def rule_keys(rules: Iterable[Mapping[str, object]]) -> list[str]:
    return sorted(
        json.dumps(rule_compared(r), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        for r in rules
    )


# Fields Letta 0.16.8 leaves out when it compares two rules (schemas/tool_rule.py, `__eq__`). It
# writes an agent's new rules only when the list differs from the stored one by its comparison,
# so a change of those fields alone is dropped without an error.
LETTA_IGNORES: dict[str, tuple[str, ...]] = {"run_first": ("args",)}


def _as_letta_compares(rule: Mapping[str, object]) -> JsonObject:
    ignored = LETTA_IGNORES.get(str(rule.get("type")), ())
    return {k: v for k, v in rule_compared(rule).items() if k not in ignored}


def rules_interim(
    written: Iterable[Mapping[str, object]], live: Iterable[Mapping[str, object]]
) -> list[JsonObject] | None:
    """When Letta would drop `written` (it differs from the `live` list, in its stored order,
    only in fields Letta does not compare): the list to write first, without the rules Letta
    would not see change, so that both writes are taken. None when `written` is taken as it is."""
    new, old = [dict(r) for r in written], list(live)
    if len(new) != len(old) or rule_keys(new) == rule_keys(old):
        return None
    if any(_as_letta_compares(a) != _as_letta_compares(b) for a, b in zip(new, old, strict=True)):
        return None
    return [r for r in new if not LETTA_IGNORES.get(str(r.get("type")))]


def rules_missing(
    written: Iterable[Mapping[str, object]], answer: Iterable[Mapping[str, object]]
) -> list[JsonObject]:
    """The rules of `written` the server's `answer` does not hold (it did not take them)."""
    held = set(rule_keys(answer))
    return [rule_compared(r) for r in written if rule_keys([r])[0] not in held]


def _server_rule(
    rule: Mapping[str, object], declared_names: Collection[object], base_tools: Collection[object]
) -> bool:
    """A rule the server adds by itself (loop rules of its base tools, approval rules of tools
    that ask for it), on a tool the manifest's rules leave alone: kept, never compared."""
    if rule.get("tool_name") in declared_names:
        return False
    kind = rule.get("type")
    return kind == "requires_approval" or (
        kind in ("continue_loop", "exit_loop") and rule.get("tool_name") in base_tools
    )


def tool_rules_update(
    declared: Iterable[Mapping[str, object]],
    live: Iterable[Mapping[str, object]],
    base_tools: Iterable[str],
) -> tuple[list[JsonObject], list[JsonObject]] | None:
    """When an agent's rules differ from the declared ones: (the live rules compared, the whole
    list to write: the declared rules plus the server's own). None when they match."""
    wanted = [rule_compared(r) for r in declared]
    names = {r["tool_name"] for r in wanted}
    base = set(base_tools)
    live_rules = [rule_compared(r) for r in live]
    compared = [r for r in live_rules if not _server_rule(r, names, base)]
    if rule_keys(compared) == rule_keys(wanted):
        return None
    return compared, wanted + [r for r in live_rules if _server_rule(r, names, base)]
