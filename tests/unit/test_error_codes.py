"""Every problem a user can meet has a stable code (letta_apply.errors): each raise of an error,
each manifest diagnostic and each refused resource names one, a registered one, given to no
other problem; docs/errors.md lists them as the code defines them; the command line, the JSON
outputs and the Python API carry the same code, on the same class."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import letta_apply
from letta_apply import Stack, StalePlanError, UsageError
from letta_apply.errors import CODES, RETIRED, LettaApplyError, ManifestError, define
from letta_apply.render.codes import reference_page
from tests.fakes import FakeLetta
from tests.helpers import SEED, Cli, write

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "letta_apply"
CODE = re.compile(r"LA\d{3}")
# Calls that make a manifest diagnostic: a code there is a ManifestError's.
DIAGNOSTIC_CALLS = {"diag", "Diagnostic", "err", "error", "_at"}


def _import_everything() -> None:
    """Every module of the package: each defines its codes and classes when imported."""
    for m in pkgutil.walk_packages(letta_apply.__path__, "letta_apply."):
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)


def _classes() -> dict[str, type[LettaApplyError]]:
    _import_everything()
    out: dict[str, type[LettaApplyError]] = {}
    todo: list[type[LettaApplyError]] = [LettaApplyError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("letta_apply."):  # not a test's own
            out[cls.__name__] = cls
        todo += cls.__subclasses__()
    return out


def _name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def uncoded(source: str, classes: dict[str, type[LettaApplyError]]) -> list[str]:
    """Where `source` makes an error or a diagnostic without a code: the base class raised
    itself, a class of several problems given no `code=`, a diagnostic or a refused resource
    (Problem) without one."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name, code = _name(node), _keyword(node, "code")
        if name == "LettaApplyError":
            out.append(f"line {node.lineno}: the base class, which names no problem")
        elif name in classes and name != "ManifestError" and not classes[name].code and not code:
            out.append(f"line {node.lineno}: {name} without a code")
        elif name == "Diagnostic" and code is None:
            message = node.args[3] if len(node.args) > 3 else _keyword(node, "message")
            if not (isinstance(message, ast.Constant) and message.value == ""):  # a place
                out.append(f"line {node.lineno}: a diagnostic without a code")
        elif name in ("diag", "Problem") and code is None and len(node.args) < 5:
            out.append(f"line {node.lineno}: a {name} without a code")
    return out


def _sources() -> Iterator[tuple[Path, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, path.read_text(encoding="utf-8")


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _literals(tree: ast.AST) -> Iterator[tuple[str, ast.AST | None, bool]]:
    """Each code written in `tree`: (code, the call or class it is written in, whether it is
    the code's definition)."""
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if not CODE.fullmatch(node.value):
            continue
        up = parents.get(node)
        while up is not None and not isinstance(up, (ast.Call, ast.ClassDef, *_FUNCTIONS)):
            up = parents.get(up)
        defines = isinstance(up, ast.Call) and _name(up) == "define" and up.args[0] is node
        yield node.value, None if isinstance(up, _FUNCTIONS) else up, defines


def test_no_raise_goes_without_a_code() -> None:
    classes = _classes()
    found = [
        f"{path.relative_to(ROOT)}: {problem}"
        for path, text in _sources()
        for problem in uncoded(text, classes)
    ]
    assert found == []


def test_the_check_finds_what_has_no_code() -> None:
    """What the package held before codes: a bare base-class raise, a diagnostic and a
    refused resource without one."""
    classes = _classes()
    source = (
        "raise LettaApplyError('x')\n"
        "raise StalePlanError('stale plan: ...')\n"
        "e = Diagnostic('m.yaml', 1, 1, 'bad')\n"
        "where = Diagnostic('--var', 0, 0, '')\n"
        "d = doc.diag(path, 'bad', key=True)\n"
        "p = Problem('agent.a', 'taken', 'import it')\n"
        "raise StalePlanError('stale plan: ...', code='LA610')\n"
    )
    assert uncoded(source, classes) == [
        "line 1: the base class, which names no problem",
        "line 2: StalePlanError without a code",
        "line 3: a diagnostic without a code",
        "line 5: a diag without a code",
        "line 6: a Problem without a code",
    ]


def test_every_code_written_is_defined_once_and_raised() -> None:
    classes = _classes()
    written: dict[str, int] = {}
    defined: dict[str, int] = {}
    wrong: list[str] = []
    for path, text in _sources():
        for code, where, defines in _literals(ast.parse(text)):
            counts = defined if defines else written
            counts[code] = counts.get(code, 0) + 1
            if code not in CODES:
                wrong.append(f"{path.relative_to(ROOT)}: {code} is not defined")
                continue
            raised_as = [c.strip() for c in CODES[code].error.split(",")]
            if isinstance(where, ast.ClassDef):
                name = where.name
            elif isinstance(where, ast.Call) and _name(where) == "Problem":
                name = "Problem"
            elif isinstance(where, ast.Call) and _name(where) in DIAGNOSTIC_CALLS:
                name = "ManifestError"
            elif isinstance(where, ast.Call) and _name(where) in classes:
                name = _name(where) or ""
            else:
                continue  # chosen in an expression, passed on below
            if name not in raised_as:
                where_ = path.relative_to(ROOT)
                wrong.append(f"{where_}: {code} is raised as {name}, defined as {raised_as}")
    assert wrong == []
    assert set(defined) == set(CODES), "every code is defined where the package defines codes"
    assert [c for c, n in defined.items() if n > 1] == []
    assert sorted(set(CODES) - set(written)) == [], "a code no raise names: retire it"


def _owner(path: Path) -> str:
    """The kind whose folder holds `path`, or "" for the package's shared modules."""
    parts = path.relative_to(PACKAGE).parts
    return parts[1] if parts[0] == "kinds" and len(parts) > 2 else ""


def test_each_kind_defines_the_codes_only_it_raises() -> None:
    """A kind's codes live in its folder, so that adding or changing a kind edits nothing
    outside it; codes more than one kind raise, or shared modules do, live in error_codes."""
    defined: dict[str, str] = {}
    raised: dict[str, set[str]] = {}
    for path, text in _sources():
        for code, _, defines in _literals(ast.parse(text)):
            if defines:
                defined[code] = _owner(path)
            else:
                raised.setdefault(code, set()).add(_owner(path))
    wrong: list[str] = []
    for code, owners in sorted(raised.items()):
        only = next(iter(owners)) if len(owners) == 1 else ""  # one kind raises it, or none
        if code in defined and defined[code] != only:
            home = defined[code] or "error_codes"
            wrong.append(f"{code}: defined in {home}, raised in {sorted(owners)}")
    assert wrong == []
    assert {c for c, k in defined.items() if k == "provider"} >= {"LA481", "LA641", "LA642"}


def test_no_two_problems_share_a_code() -> None:
    _import_everything()
    for c in CODES.values():
        assert CODE.fullmatch(c.code) and c.title and c.meaning and c.action, c
    titles = [c.title for c in CODES.values()]
    assert sorted(t for t in set(titles) if titles.count(t) > 1) == []
    with pytest.raises(ValueError, match="already given"):
        define("LA101", "ManifestError", "another problem", "...", "...")
    RETIRED["LA999"] = "a problem gone"
    try:
        with pytest.raises(ValueError, match="already given"):
            define("LA999", "UsageError", "a new problem", "...", "...")
    finally:
        del RETIRED["LA999"]
    with pytest.raises(ValueError, match="three digits"):
        define("LA1000", "UsageError", "a long code", "...", "...")


def test_every_class_is_drawn_exported_and_raises_a_defined_code() -> None:
    classes = _classes()
    tree = letta_apply.errors.__doc__ or ""
    for name, cls in classes.items():
        assert re.search(rf"(^|─ ){name}\b", tree, re.M), f"{name} is not drawn in errors.py"
        assert getattr(letta_apply, name, None) is cls, f"{name} is not exported by letta_apply"
        assert not cls.code or cls.code in CODES, name
    named = {n.strip() for c in CODES.values() for n in c.error.split(",")}
    assert named - set(classes) == {"Problem", "Violation"}  # reported in plans, not raised


def test_the_reference_page_is_current() -> None:
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert page == reference_page(), "docs/errors.md is out of date: run scripts/schemas"
    for code in CODES:
        assert f"### {code}: " in page
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/errors.md)" in readme


# -- what users see --------------------------------------------------------------------------


def test_error_lines_end_with_their_code(
    tmp_path: Path, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    r = cli("apply", "--auto-approve")
    assert (r.code, r.err) == (
        1,
        "error: apply needs a manifest (-f FILE) or a saved plan (PLAN) [LA902]\n",
    )
    with pytest.raises(SystemExit) as usage:
        cli("plan", "--nope")
    assert usage.value.code == 1
    assert capsys.readouterr().err.endswith("arguments are required: -f/--file [LA901]\n")
    path = write(tmp_path, "version: 1\nstack: s!\nagents:\n  a: {modle: x}\n")
    r = cli("validate", "-f", str(path))
    assert r.err.splitlines() == [
        f"{path}:2:8: stack: invalid stack name 's!': use lowercase letters, digits, '_', '.' "
        "and '-', starting with a letter or digit, at most 63 characters [LA307]",
        f"{path}:4:7: agents.a: unknown key 'modle'; did you mean 'model'? [LA302]",
        "2 errors in the manifest; nothing was sent to the server.",
    ]


def test_validate_json_gives_each_diagnostic_its_code(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, "version: 2\nstack: s\n")
    r = cli("validate", "-f", str(path), "--format", "json")
    doc = json.loads(r.out)
    assert [(d["line"], d["code"]) for d in doc["diagnostics"]] == [(1, "LA305")]


def test_apply_json_ends_each_error_with_its_code(tmp_path: Path, cli: Cli) -> None:
    def refuse(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/v1/agents/":
            return httpx.Response(422, json={"detail": "no"})
        return None

    cli.fake.before.append(refuse)
    path = write(tmp_path, SEED)
    r = cli("apply", "-f", str(path), "--auto-approve", "--format", "json")
    assert r.code == 1
    errors = json.loads(r.out)["errors"]
    assert errors and all(e.endswith(": HTTP 422: no [LA507]") for e in errors), errors


def test_a_stale_plan_is_one_class_and_code_through_the_cli_and_the_api(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, SEED)
    saved = tmp_path / "plan.json"
    assert cli("plan", "-f", str(path), "--out", str(saved)).code == 0
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    r = cli("apply", str(saved), "-f", str(path), "--auto-approve")
    assert r.code == 1 and r.err.startswith("error: stale plan: ") and r.err.endswith(" [LA610]\n")

    fake = FakeLetta()
    stack = Stack.from_files([str(path)])
    plan = stack.plan(fake.client())
    Stack.from_files([str(path)]).apply(fake.client())
    with pytest.raises(StalePlanError) as info:
        stack.apply(fake.client(), plan=plan)
    assert info.value.code == "LA610"


def test_the_python_api_carries_the_codes() -> None:
    with pytest.raises(ManifestError) as bad:
        Stack.from_dict({"version": 1, "stack": "s!", "agents": {"a": {"modle": "x"}}})
    assert bad.value.code == bad.value.diagnostics[0].code
    assert {d.code for d in bad.value.diagnostics} == {"LA302", "LA307"}
    stack = Stack.from_dict({"version": 1, "stack": "s"})
    with pytest.raises(UsageError) as usage:
        stack.apply(FakeLetta().client(), parallelism=0)
    assert usage.value.code == "LA904"
