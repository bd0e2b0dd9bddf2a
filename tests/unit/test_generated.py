"""Generated hostile manifests: the examples, mutated at random (seeded) node by node: wrong
types, nulls, garbage and unclosed references, huge and non-finite numbers, deep nesting, keys
removed or renamed, templates emptied. Whatever comes out, `plan` exits 0 or 1 with located
messages, never a traceback, within a time bound, and sends no request for an invalid one."""

from __future__ import annotations

import copy
import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Cli

ROOT = Path(__file__).resolve().parents[2]
SEEDS = range(600)
BASES = [
    yaml.safe_load((ROOT / "examples" / "shared-memory.yaml").read_text()),
    {
        "version": 1,
        "stack": "gen",
        "variables": {"n": {"type": "number", "default": 2}, "k": {"sensitive": True}},
        "identities": {"acme": {"identity_type": "org", "properties": {"plan": "pro"}}},
        "blocks": {
            "org": {"value": "facts", "identities": ["acme"]},
            "region": {"for_each": ["eu", "us"], "value": "${each.key}"},
        },
        "agents": {
            "w": {
                "count": "${var.n}",
                "name": "w-${count.index}",
                "model": "letta/letta-free",
                "embedding": "letta/letta-free",
                "system": "key ${var.k}",
                "memory_blocks": [{"label": "persona", "value": "I am ${count.index}"}],
                "blocks": ["org", "region[*]"],
                "tool_rules": [{"type": "run_first", "tool_name": "send_message"}],
                "identities": ["acme"],
                "metadata": {"team": "a"},
                "tags": ["x"],
            }
        },
        "moved": [{"from": "agent.old", "to": "agent.w[0]"}],
    },
]
GARBAGE: list[Any] = [
    None, 0, -1, 1.5, 10**12, 1e308, True, "", " ", "${", "${var.", "${var.nope}", "$${x}",
    "${each.value.x}", "\x00", "\ud800", "x" * 5000, [], {}, [None], {"": 1}, {"letta_apply": 1},
    ["letta-apply:s"], "letta-apply-lock", [[[[[[]]]]]], {"a": {"b": {"c": {}}}}, "agent.x",
    "block.", "identity.acme", "tool-123",
]  # fmt: skip


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nodes(v, (*path, i))
    return out


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(rng.choice((1, 1, 1, 2, 4))):
        paths = [p for p in _nodes(doc) if p]
        path = rng.choice(paths)
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = rng.random()
        if action < 0.6:
            parent[last] = copy.deepcopy(rng.choice(GARBAGE))
        elif action < 0.8 and isinstance(parent, dict):
            del parent[last]
        elif isinstance(parent, dict):
            parent[rng.choice(["count", "for_each", "zzz", "ignore_changes"])] = rng.choice(GARBAGE)
        else:
            parent.append(copy.deepcopy(rng.choice(GARBAGE)))
    return doc


def _text(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:  # a lone surrogate cannot be written: write its escape
        return yaml.safe_dump(doc, allow_unicode=False, sort_keys=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_generated_manifest_gives_a_located_answer(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    base = rng.choice(BASES)
    path = tmp_path / "m.yaml"
    path.write_text(_text(_mutate(base, rng)), encoding="utf-8")
    cli = Cli()
    started = time.monotonic()
    variables = ["--var", "k=s3cr3t-value"] if "variables" in base else []
    r = cli("plan", "-f", str(path), *variables)
    assert time.monotonic() - started < 20
    assert r.code in (0, 1), r.err
    assert "Traceback" not in r.err and "Error:" not in r.err.split(":", 1)[0]
    assert "s3cr3t-value" not in r.out + r.err
    if "in the manifest; nothing was sent to the server" in r.err:
        assert cli.fake.calls == []
        located = [line for line in r.err.splitlines()[:-1] if line]
        assert located and all(
            line.startswith((str(path) + ":", "--var:", "m.yaml")) for line in located
        ), r.err
