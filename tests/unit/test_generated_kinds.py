"""Generated hostile input for every kind, in the order the loader must check it: the document's
shape first (scalars, lists, nulls, nested wrong types at every level), then every file field of
every kind given every kind of hostile path. Whatever comes in, `validate` and `plan` answer
with located messages, no traceback, and no request for an invalid manifest."""

from __future__ import annotations

import copy
import os
import random
from pathlib import Path
from typing import Any

import pytest

from letta_apply.kinds import KINDS
from letta_apply.manifest.validate import schema
from tests.helpers import Cli
from tests.unit.test_generated import _nodes, _text

EMBEDDING = {"embedding": "letta/letta-free"}
EVERY_KIND: dict[str, Any] = {
    "version": 1,
    "stack": "gen-kinds",
    "identities": {"customer": {"identifier_key": "c-1", "identity_type": "org"}},
    "blocks": {
        "org": {"description_file": "text/org-about.txt", "value_file": "text/org.txt"},
        "region": {"for_each": ["eu", "us"], "label": "region-${each.key}", "value": "${each.key}"},
    },
    "tools": {"lookup": {"source_file": "tools/lookup.py"}},
    "mcp_servers": {
        "echo": {
            "server_name": "echo",
            "mcp_server_type": "stdio",
            "command": "python3",
            "args": ["echo.py"],
        },
    },
    "providers": {
        "local": {
            "name": "local",
            "provider_type": "openai",
            "api_key": "sk-gen-kinds",
            "base_url": "http://127.0.0.1:9/v1",
        },
    },
    "folders": {"docs": {"name": "docs", **EMBEDDING, "files": ["docs/*.txt"]}},
    "archives": {
        "facts": {
            "name": "facts",
            **EMBEDDING,
            "passages": {"files": ["facts.txt"], "separator": "\n---\n"},
        },
    },
    "agents": {
        "boss": {
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "system_file": "text/system.txt",
            "description_file": "text/about.txt",
            "memory_blocks": [{"label": "persona", "value": "I am the boss"}],
            "blocks": ["org", "region[*]"],
            "tools": ["lookup"],
            "identities": ["customer"],
            "archives": ["facts"],
            "folders": ["docs"],
        },
        "w": {
            "count": 2,
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "memory_blocks": [{"label": "persona", "value": "I am ${count.index}"}],
            "blocks": ["org"],
            "mcp_tools": [{"server": "echo", "tools": "all"}],
        },
    },
    "groups": {"team": {"manager_type": "supervisor", "manager_agent": "boss", "agents": ["w[0]"]}},
}
FILES = {
    "text/org.txt": "Shared facts.\n",
    "text/org-about.txt": "What the organisation knows.\n",
    "text/system.txt": "You are the boss.\n",
    "text/about.txt": "The boss.\n",
    "tools/lookup.py": 'def lookup(q: str) -> str:\n    """Look q up.\n\n    Args:\n'
    '        q: what to look up\n    """\n    return q\n',
    "docs/a.txt": "Returns within 30 days.\n",
    "docs/b.txt": "Shipping takes 3 days.\n",
    "facts.txt": "Skates.\n---\nAnvils.\n",
}
# Every field of every kind that names a file, and where it sits in EVERY_KIND.
FILE_FIELDS: dict[str, tuple[Any, ...]] = {
    "block.value_file": ("blocks", "org", "value_file"),
    "block.description_file": ("blocks", "org", "description_file"),
    "tool.source_file": ("tools", "lookup", "source_file"),
    "agent.system_file": ("agents", "boss", "system_file"),
    "agent.description_file": ("agents", "boss", "description_file"),
    "folder.files": ("folders", "docs", "files", 0),
    "archive.passages.files": ("archives", "facts", "passages", "files", 0),
}
HOSTILE_PATHS = {
    "missing": "nope/missing.txt",
    "long-name": "x" * 5000 + ".txt",
    "long-component": "d/" + "y" * 300 + "/z.txt",
    "nul": "text/a\x00b.txt",
    "outside": "../../etc/passwd",
    "absolute": "/etc/passwd",
    "directory": "docs",
    "loop": "loop/x.txt",
    "fifo": "pipe",
    "empty": "",
    "glob-class": "docs/[z-a].txt",
    "many-stars": "*" * 3000,
    "newline": "docs/a\n  + agent.fake: create.txt",
}
SHAPES: list[Any] = [
    None, 0, 1.5, True, "text", [], [None], ["x"], {}, {"k": None}, {"k": "x"}, {"k": []},
    {"k": [None]}, {"k": {"j": []}}, {"k": {"j": {"i": "x"}}},
]  # fmt: skip


def _tree(tmp_path: Path) -> None:
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    (tmp_path / "loop").symlink_to("loop")
    os.mkfifo(tmp_path / "pipe")


def _located(tmp_path: Path, doc: Any, *, command: str = "plan") -> str:
    """Run `command` on `doc` and check the answer is located and clean; return stderr."""
    path = tmp_path / "m.yaml"
    path.write_text(_text(doc), encoding="utf-8")
    cli = Cli()
    r = cli(command, "-f", str(path))
    assert r.code in (0, 1), r.err
    assert "Traceback" not in r.out + r.err and "Error:" not in r.err.split(":", 1)[0], r.err
    if r.code == 1 and not r.err:  # a plan that refuses resources, each named in it
        assert "refused" in r.out, r.out
    elif r.code == 1:
        assert "in the manifest; nothing was sent to the server" in r.err, r.err
        assert cli.fake.calls == []
        located = [line for line in r.err.splitlines()[:-1] if line]
        assert located and all(line.startswith(str(path) + ":") for line in located), r.err
    return r.err


def test_the_every_kind_manifest_is_valid(tmp_path: Path) -> None:
    # The base the cases below break must itself pass, or they prove nothing.
    _tree(tmp_path)
    path = tmp_path / "m.yaml"
    path.write_text(_text(EVERY_KIND), encoding="utf-8")
    r = Cli()("validate", "-f", str(path))
    assert r.code == 0, r.err


def test_the_every_kind_manifest_declares_every_kind() -> None:
    # A new kind is covered by every case here only once it has an entry above.
    assert {k.section for k in KINDS} <= set(EVERY_KIND)


SENSITIVE_FIELDS = [(k.section, f.name) for k in KINDS for f in k.fields if f.policy == "sensitive"]


@pytest.mark.parametrize(("section", "field"), SENSITIVE_FIELDS)
def test_every_sensitive_field_of_every_kind_takes_a_sensitive_variable(
    tmp_path: Path, section: str, field: str
) -> None:
    _tree(tmp_path)
    doc = copy.deepcopy(EVERY_KIND)
    doc["variables"] = {"secret": {"sensitive": True, "default": "s3cret-Value-91"}}
    entry = next(iter(doc[section].values()))
    kind_schema = schema(KINDS)["$defs"][next(k.name for k in KINDS if k.section == section)]
    mapping = kind_schema["properties"][field].get("type") == "object"
    entry[field] = {"K": "${var.secret}"} if mapping else "${var.secret}"
    path = tmp_path / "m.yaml"
    path.write_text(_text(doc), encoding="utf-8")
    r = Cli()("validate", "-f", str(path))
    # Another rule of the kind's may refuse the field there (a token on a stdio MCP server):
    # never the sensitive value itself.
    assert "a sensitive value cannot be used here" not in r.err, r.err
    assert "s3cret-Value-91" not in r.out + r.err


@pytest.mark.parametrize("shape", SHAPES, ids=repr)
def test_a_document_of_any_shape_is_a_located_error(tmp_path: Path, shape: Any) -> None:
    err = _located(tmp_path, shape)
    assert "m.yaml:" in err


@pytest.mark.parametrize("section", [k for k in EVERY_KIND if k != "version"])
def test_a_section_of_any_shape_is_refused_before_any_kind_reads_a_file(
    tmp_path: Path, section: str
) -> None:
    _tree(tmp_path)
    keys = list(EVERY_KIND[section]) if isinstance(EVERY_KIND[section], dict) else []
    for shape in SHAPES:
        doc = copy.deepcopy(EVERY_KIND)
        doc[section] = copy.deepcopy(shape)
        _located(tmp_path, doc)
        for key in keys:  # and each of its resources
            doc = copy.deepcopy(EVERY_KIND)
            doc[section][key] = copy.deepcopy(shape)
            _located(tmp_path, doc)


@pytest.mark.parametrize("field", sorted(FILE_FIELDS))
@pytest.mark.parametrize("hostile", sorted(HOSTILE_PATHS))
def test_every_file_field_of_every_kind_refuses_a_hostile_path(
    tmp_path: Path, field: str, hostile: str
) -> None:
    _tree(tmp_path)
    doc = copy.deepcopy(EVERY_KIND)
    where = FILE_FIELDS[field]
    parent = doc
    for part in where[:-1]:
        parent = parent[part]
    parent[where[-1]] = HOSTILE_PATHS[hostile]
    err = _located(tmp_path, doc, command="validate")
    assert err, f"{field} took {hostile!r}"
    assert len(max(err.splitlines(), key=len)) < 600  # a huge name is never echoed whole
    assert not any(line.lstrip().startswith("+") for line in err.splitlines())  # no fake line


@pytest.mark.parametrize("seed", range(150))
def test_a_generated_every_kind_manifest_gives_a_located_answer(tmp_path: Path, seed: int) -> None:
    _tree(tmp_path)
    rng = random.Random(seed)
    doc = copy.deepcopy(EVERY_KIND)
    garbage = [*SHAPES, *HOSTILE_PATHS.values()]
    for _ in range(rng.choice((1, 2, 3))):
        path = rng.choice(_nodes(doc)[1:])
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = copy.deepcopy(rng.choice(garbage))
    _located(tmp_path, doc)
