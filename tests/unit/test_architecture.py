"""The core names no kind: a kind is its folder (letta_apply/kinds/<kind>/), found by the registry,
and the generic packages reach it only through the kinds' interface.

- The import-linter contracts of pyproject.toml hold (the packages form a stack; only the
  registry and the kinds import a kind's folder), and the seams they still let through
  (`ignore_imports`) are exactly those listed here: none in manifest/, read/ or convert/.
- No module outside the kinds' folders holds a string equal to a kind's name or manifest
  section (computed from the registry, so a new kind is covered), but those listed here, each
  with why.
- The registry finds every kind folder.
- Letta's routes are named once: no module outside server/ holds a raw `/v1/` path but a
  kind's own route declarations (`ROUTE = Route("/v1/...")` at the top of a module in its
  folder); every request goes through server.routes.

A seam closed makes these tests fail until its line here goes too: tighten, never widen.
"""

from __future__ import annotations

import ast
import io
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from importlinter.cli import lint_imports

from letta_apply.kinds import KINDS, Kind

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "letta_apply"
KIND_FOLDERS = PACKAGE / "kinds"

SEAMS_LEFT: set[str] = set()
"""The lines of `ignore_imports` still there. Remove one with its line in pyproject.toml."""

CLOSED = ("letta_apply.manifest", "letta_apply.read", "letta_apply.convert")
"""Packages whose seams are closed: no `ignore_imports` line may name one of their modules."""

NAMED_LEFT = {
    ("apply/report.py", "block"): "the apply report's key for Change.target (its JSON format)",
    ("plan/planfile.py", "block"): "the plan file's key for Change.target (the plan's schema)",
    ("plan/plan_reader.py", "block"): "the plan file's key for Change.target, read back",
    ("kinds/flags.py", "block"): "flags are blocks: their changes go to the blocks' routes",
    ("cli/restoring.py", "folder"): "a backup's folder on disk (JSON key), not the folder kind",
    ("render/policy.py", "tool"): "SARIF's key for the program that wrote the log (its schema)",
}
"""Strings equal to a kind's name or section still outside the kinds' folders, and why."""

NOT_CHECKED = ("memory/af_format.py",)
"""Modules whose strings are another format's: Letta's Agent File, whose keys ("agents",
"blocks", "tools"...) are the file's, not the kinds' (memory/af_format.py is the one place they
live)."""


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_the_import_contracts_hold_with_only_the_seams_listed_here() -> None:
    shown = io.StringIO()
    with redirect_stdout(shown):
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, shown.getvalue()
    ignored = [str(line) for c in _contracts() for line in c.get("ignore_imports") or ()]
    closed = [line for line in ignored if line.split(" -> ")[0].startswith(CLOSED)]
    assert closed == [], f"seams reopened in closed packages: {closed}"
    assert set(ignored) == SEAMS_LEFT, (
        f"ignore_imports left: {sorted(ignored)}; update SEAMS_LEFT (remove what is closed)"
    )


def _kind_folder(module: Path) -> bool:
    parts = module.relative_to(PACKAGE).parts
    return len(parts) > 2 and parts[0] == "kinds"


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            out.add(id(body[0].value))
    return out


def _kind_names_outside_the_kinds() -> dict[tuple[str, str], list[int]]:
    names = {k.name for k in KINDS} | {k.section for k in KINDS}
    found: dict[tuple[str, str], list[int]] = {}
    for module in sorted(PACKAGE.rglob("*.py")):
        where = module.relative_to(PACKAGE).as_posix()
        if _kind_folder(module) or where.startswith(NOT_CHECKED):
            continue
        tree = ast.parse(module.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in names
                and id(node) not in skip
            ):
                found.setdefault((where, node.value), []).append(node.lineno)
    return found


def test_no_module_outside_the_kinds_names_a_kind_but_those_listed_here() -> None:
    found = _kind_names_outside_the_kinds()
    new = [f"{m}:{lines[0]}: {name!r}" for (m, name), lines in found.items()
           if (m, name) not in NAMED_LEFT]  # fmt: skip
    assert not new, f"generic code names a kind (go through the kinds' interface): {new}"
    gone = sorted(set(NAMED_LEFT) - set(found))
    assert not gone, f"no longer named, remove from NAMED_LEFT: {gone}"


def test_the_registry_finds_every_kind_folder() -> None:
    folders = {p.parent.name for p in KIND_FOLDERS.glob("*/kind.py")}
    found = {type(k).__module__.split(".")[-2] for k in KINDS}
    assert found == folders
    assert all(isinstance(k, Kind) for k in KINDS)


def test_written_manifests_have_one_root_and_marks_kinds_reserve_their_label() -> None:
    """Export and convert write around one kind (kinds.writing); a kind marked by mark blocks
    reserves their label (no block of a manifest may take it)."""
    assert len([k for k in KINDS if k.root]) == 1
    for k in KINDS:
        if k.listing == "marks":
            assert k.mark_label and k.mark_label in k.reserved_labels, k.name


def test_every_shared_kinds_module_is_held_to_the_kind_folder_contract() -> None:
    """A module directly in kinds/ (shared by the kinds) may not import a kind's folder: each is
    a source of that import-linter contract, so a new one cannot be left out of it."""
    folders = ["letta_apply.kinds.*.*"]
    (contract,) = [c for c in _contracts() if c.get("forbidden_modules") == folders]
    shared = {
        f"letta_apply.kinds.{p.stem}" for p in KIND_FOLDERS.glob("*.py") if p.stem != "__init__"
    }
    assert shared - set(contract["source_modules"]) == set()


def _declared_routes(tree: ast.Module) -> set[int]:
    """The path strings of a module's top-level route declarations (`X = Route("/v1/...")`)."""
    out = set()
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "Route"
            and len(value.args) == 1
            and isinstance(value.args[0], ast.Constant)
        ):
            out.add(id(value.args[0]))
    return out


def _raw_routes(source: str, *, kind_folder: bool) -> list[int]:
    """Lines of a module holding a string (or f-string part) that is a Letta path, but its
    docstrings and, in a kind's folder, its route declarations."""
    tree = ast.parse(source)
    allowed = _docstrings(tree) | (_declared_routes(tree) if kind_folder else set())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith(("/v1", "v1/"))
        and id(node) not in allowed
    ]


def test_letta_routes_are_named_only_in_server_and_the_kinds_route_declarations() -> None:
    found = {}
    for module in sorted(PACKAGE.rglob("*.py")):
        where = module.relative_to(PACKAGE)
        if where.parts[0] != "server":
            source = module.read_text(encoding="utf-8")
            if lines := _raw_routes(source, kind_folder=_kind_folder(module)):
                found[where.as_posix()] = lines
    assert not found, (
        f"raw Letta paths outside server/ (name the route once with server.routes.Route in the "
        f"kind's folder, and send through it): {found}"
    )


def test_the_route_check_sees_raw_paths_and_declarations_outside_a_kind_folder() -> None:
    """The check above is no check if it cannot fail: a raw path, in a string or an f-string,
    is seen, and so is a route declared outside a kind's folder or below the module's top."""
    source = (
        '"""Docstrings may say GET /v1/things/."""\n'
        'ROUTE = Route("/v1/things/")\n'
        "def f(c, i):\n"
        '    c.request("GET", f"/v1/things/{i}")\n'
        '    c.paginate("/v1/x", {})\n'
        '    return Route("/v1/y/")\n'
    )
    assert sorted(_raw_routes(source, kind_folder=True)) == [4, 5, 6]
    assert sorted(_raw_routes(source, kind_folder=False)) == [2, 4, 5, 6]
    assert _kind_folder(KIND_FOLDERS / "block" / "kind.py")
    assert not _kind_folder(KIND_FOLDERS / "context.py")
