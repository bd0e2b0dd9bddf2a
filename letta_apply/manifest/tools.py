"""Custom tools and tool rules in a manifest: the checks a schema cannot make, and their place in
the desired state.

A custom tool (`tools.<key>`, addressed `tool.<key>`) is made from a Python source file next to
the manifest. Letta names the tool after a function of that file (the last one `ast.walk`
meets, which must have a docstring: Letta derives the tool's JSON schema from it), so the name
is known here, before any request: agents may attach a declared tool by its key or by that name,
and tool rules may name it either way too.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..errors import Diagnostic
from ..model import Desired, DesiredAgent, DesiredTool
from .files import Document, Path_, clip

TOOL_CONFIG = (
    "description",
    "tags",
    "return_char_limit",
    "pip_requirements",
    "default_requires_approval",
)
MAX_TOOL_NAME = 48  # Letta 0.16.8 MAX_TOOL_NAME_LENGTH
MAX_SOURCE_BYTES = 1024 * 1024

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


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def function_name(tree: ast.AST) -> ast.FunctionDef | None:
    """The function Letta makes the tool from: the last `def` in `ast.walk` order."""
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return found[-1] if found else None


def _read_source(
    doc: Document, key: str, spec: dict[str, Any]
) -> tuple[str | None, str | None, list[Diagnostic]]:
    """The source text of a declared tool and the tool's name, or the problems found."""
    at: Path_ = ("tools", key, "source_file")
    rel = spec.get("source_file")
    if not isinstance(rel, str) or not rel:
        return None, None, []  # the schema reports it
    path, refused = doc.referenced(at, rel)
    where = f"tools.{key}.source_file"
    if refused:
        return None, None, [doc.diag(at, f"{where}: {refused}")]
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None, [doc.diag(at, f"{where}: no such file: {path}")]
    except OSError as e:
        return None, None, [doc.diag(at, f"{where}: cannot read {path}: {e.strerror}")]
    if len(raw) > MAX_SOURCE_BYTES:
        return None, None, [doc.diag(at, f"{where}: {path} is over {MAX_SOURCE_BYTES} bytes")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, None, [doc.diag(at, f"{where}: {path} is not valid UTF-8")]
    shown = str(path)
    try:
        tree = ast.parse(text, filename=shown)
    except SyntaxError as e:
        line, col = e.lineno or 1, e.offset or 1
        return None, None, [Diagnostic(shown, line, col, f"tool.{key}: {e.msg}")]
    func = function_name(tree)
    if func is None:
        return None, None, [Diagnostic(shown, 1, 1, f"tool.{key}: no function in the file")]
    if not ast.get_docstring(func):
        return None, None, [
            Diagnostic(
                shown, func.lineno, func.col_offset + 1,
                f"tool.{key}: function {func.name!r} has no docstring; Letta derives the tool's "
                "description and arguments from it",
            )
        ]  # fmt: skip
    if len(func.name) > MAX_TOOL_NAME:
        return None, None, [
            Diagnostic(
                shown, func.lineno, func.col_offset + 1,
                f"tool.{key}: tool name {func.name!r} is over {MAX_TOOL_NAME} characters",
            )
        ]  # fmt: skip
    return text, func.name, []


def check(doc: Document, data: Mapping[str, Any]) -> list[Diagnostic]:
    """Problems with `tools:` and with the tools and tool rules of agents."""
    errors: list[Diagnostic] = []
    names: dict[str, str] = {}  # tool name -> key
    for key, spec in _mapping(data.get("tools")).items():
        if not isinstance(spec, dict):
            continue
        _, name, problems = _read_source(doc, key, spec)
        errors += problems
        if name is None:
            continue
        if name in names:
            errors.append(
                doc.diag(
                    ("tools", key, "source_file"),
                    f"tools.{key}: tool name {name!r} is already declared by tools.{names[name]}; "
                    "tool names are unique on a Letta server",
                )
            )
        names.setdefault(name, key)

    for akey, spec in _mapping(data.get("agents")).items():
        rules = _mapping(spec).get("tool_rules")
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            if not isinstance(rule, dict) or rule.get("type") not in RULE_FIELDS:
                continue  # the schema reports it
            allowed = RULE_FIELDS[rule["type"]]
            for field in rule:
                if field not in ("type", "tool_name", *allowed):
                    at: Path_ = ("agents", akey, "tool_rules", i, field)
                    also = f" (it takes {', '.join(allowed)})" if allowed else ""
                    errors.append(
                        doc.diag(
                            at,
                            f"{_where(at[:-1])}: {clip(field)} is not a field of "
                            f"{rule['type']} rules{also}",
                            key=True,
                        )
                    )
    return errors


def resolve(desired: Desired, doc: Document) -> Desired:
    """Add the declared tools to a valid manifest's desired state, and write the tools agents
    name by key (and tool rules naming a tool by key) as the tools' names."""
    data = _mapping(doc.data)
    tools: dict[str, DesiredTool] = {}
    by_key: dict[str, str] = {}
    for key, spec in _mapping(data.get("tools")).items():
        text, name, _ = _read_source(doc, key, spec)
        assert text is not None and name is not None  # `check` passed
        address = f"tool.{key}"
        config = {k: spec[k] for k in TOOL_CONFIG if k in spec}
        tools[address] = DesiredTool(
            address=address,
            name=name,
            source_code=text,
            source_file=str(spec["source_file"]),
            config=config,
            prevent_destroy=bool(spec.get("prevent_destroy", False)),
            ignore=frozenset(spec.get("ignore_changes", ())),
        )
        by_key[key] = name

    def name_of(ref: str) -> str:
        return by_key.get(ref, ref)

    agents: dict[str, DesiredAgent] = {}
    for address, agent in desired.agents.items():
        config = dict(agent.config)
        if "tools" in config:
            config["tools"] = list(dict.fromkeys(name_of(t) for t in config["tools"]))
        if "tool_rules" in config:
            config["tool_rules"] = [_rule_by_name(r, name_of) for r in config["tool_rules"]]
        agents[address] = replace(agent, config=config)
    return replace(desired, tools=tools, agents=agents)


def _rule_by_name(rule: Mapping[str, Any], name_of: Any) -> dict[str, Any]:
    out = dict(rule)
    out["tool_name"] = name_of(rule["tool_name"])
    if "children" in out:
        out["children"] = [name_of(c) for c in out["children"]]
    if "default_child" in out:
        out["default_child"] = name_of(out["default_child"])
    if "child_output_mapping" in out:
        out["child_output_mapping"] = {
            k: name_of(v) for k, v in out["child_output_mapping"].items()
        }
    return out
