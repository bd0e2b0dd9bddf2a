"""The memory package (backups, what a plan's deletes hold, restore, Agent File export) is generic
over the kinds: it finds the kinds whose resources hold memory in the registry (the HoldsMemory
capability, kinds.holds_memory) and names none of them. Letta's Agent File format has keys that
look like kinds' sections (`agents`, `blocks`): those are the format's, kept in
memory/af_format.py alone."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from letta_apply.kinds import KINDS
from letta_apply.kinds.holds_memory import HoldsMemory
from letta_apply.memory.holders import holders, kind_at, owner_of
from tests.helpers import Cli

MEMORY = Path(__file__).parents[2] / "letta_apply" / "memory"
FORMAT = "af_format.py"  # the Agent File format's keys live here, and only here


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes of a module, its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    """Every string literal of a module (f-strings' literal parts too), docstrings apart."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def _names_a_kind(text: str) -> bool:
    """Whether a literal names a kind: its name, its manifest section, a segment of its
    addresses, an address or include of it (`agent.x`, `agent.blocks`), or a server route
    (a kind's request)."""
    words = {w for k in KINDS for w in (k.name, k.section, *k.nested)}
    return (
        text in words
        or text.startswith("/v1/")
        or any(text.startswith(f"{k.name}.") for k in KINDS)
        or any(f".{segment}." in text for k in KINDS for segment in k.nested)
    )


def test_the_memory_package_names_no_kind() -> None:
    found = [
        f"{path.name}:{line}: {text!r}"
        for path in sorted(MEMORY.glob("*.py"))
        if path.name != FORMAT
        for line, text in _strings(path)
        if _names_a_kind(text)
    ]
    assert found == []


def test_the_check_sees_what_it_looks_for() -> None:
    assert all(
        _names_a_kind(t) for t in ("agent", "blocks", "/v1/x", "agent.blocks", "a.memory_blocks.b")
    )
    assert not any(_names_a_kind(t) for t in ("agent_file", "a passage", "kind", "records"))


def test_the_kinds_that_hold_memory_say_so_in_their_own_folders() -> None:
    assert [k.name for k in holders()] == ["block", "agent", "archive"]
    for k in holders():
        assert isinstance(k, HoldsMemory)
        assert type(k).__module__ == f"letta_apply.kinds.{k.name}.kind"
        assert k.memory_readme.startswith("  - ") and k.memory_readme.endswith(".\n")


@pytest.mark.parametrize(
    ("address", "kind", "owner"),
    [
        ("agent.w", "agent", None),
        ("agent.w.memory_blocks.persona", "block", "agent.w"),
        ("agent.w.memory_blocks.a.b", "block", "agent.w"),
        ("block.org", "block", None),
        ('block.org["eu.west"]', "block", None),
        ("archive.kb", "archive", None),
        ("nothing.x", None, None),
    ],
)
def test_an_address_says_its_kind_and_owner(
    address: str, kind: str | None, owner: str | None
) -> None:
    assert (kind_at(address), owner_of(address)) == (kind, owner)


def test_a_backup_folders_readme_says_what_each_kinds_records_hold(
    cli: Cli, tmp_path: Path, backups_apart: Path
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nstack: s\nblocks:\n  org: {value: v}\nagents:\n"
        "  a: {model: letta/letta-free, embedding: letta/letta-free, blocks: [org]}\n"
    )
    assert cli("apply", "-f", str(manifest), "--auto-approve").code == 0
    assert cli("destroy", "-f", str(manifest), "--auto-approve").code == 0
    readme = next(backups_apart.rglob("README.md")).read_text()
    for k in holders():
        assert k.memory_readme in readme, k.name
