"""The quick reader (manifest.quick) and the pipeline's quick path: a manifest read without
positions gives the same values, the same desired state and the same diagnostics as one read with
them, or the quick reader declines it and the slow one reads it.

Differential over every manifest file in examples/ and tests/, the generated manifests of
test_generated.py, hand-written hostile YAML, and random YAML-like text; and the constructs the
quick reader leaves to the slow one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from letta_apply import pipeline
from letta_apply.core.model import Desired
from letta_apply.errors import Diagnostic, ManifestError
from letta_apply.manifest import language, parse
from letta_apply.manifest.quick import quick_values
from letta_apply.pipeline import load_manifest, validate_manifest
from tests.unit.conftest import COMPARE_QUICK
from tests.unit.test_generated import BASES, _mutate, _text

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    p
    for folder in ("examples", "tests")
    for p in (ROOT / folder).rglob("*")
    if p.suffix in (".yaml", ".yml") and p.is_file()
)


def same(a: object, b: object) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True to Python, not here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def agrees(text: str) -> bool:
    """Whether the quick reader declines `text` or reads what the slow one reads without a
    problem; True when it read it."""
    quick = quick_values(text)
    if quick is None:
        return False
    doc, errors = parse.parse_text(text, "m.yaml")  # raises on what the quick reader took: a bug
    assert errors == [], (text, errors)
    assert same(quick, doc.data), (text, quick, doc.data)
    return True


# --- the reader alone -----------------------------------------------------------------------

SCALARS = [
    "a", "abc def", "a  b", "yes", "No", "on", "OFF", "y", "n", "true", "False", "null", "Null",
    "~", "0", "-1", "+1", "007", "0o17", "0x1F", "0b101", "1_000", "1:30", "190:20:30", "1.5",
    "-.5", ".5", "1e3", "1.0e+3", "1.0e3", "6.8523015e+5", ".inf", "-.Inf", ".nan", "2001-12-14",
    "2001-12-14t21:59:43.10-05:00", "<<", "=", "a:b", "a: b", "a:", "a #b", "a#b", "a,b", "[a",
    "a]", "{a}", "'a'", '"a"', "'it''s'", "'a' b", '"a\\nb"', '"a\\"b"', "'a", '"a', "&x a", "*x",
    "!!str 1", "!x a", "!!binary aGk=", "|", "|-", ">", "- a", "-a", "-", "--", "? a", "?a", ":a",
    "%a", "@a", "`a", "---", "...", "\u00a0a", "a\u00a0", "\u3000", "é", "a ", "[]", "{}",
    "[a, b]", "[a,]", "[a, , b]", "[, a]", "{a: 1}", "{a: 1,}", "{a:1}", "{a}", "{a: }", "[a: b]",
    "[[a], {b: c}]", "[-1, -a]", "[- a]", "{a: [b, {c: d}]}", "['a,b', \"c]\"]", "[a #c]",
    "[a] #c", "[a]#c", "[a] b", "{a: 1, a: 2}", "{1: a}", "{yes: a}", "[a, 'b''c', \"d\"]",
    "[.inf]", "[2001-12-14]", "[<<]", "'#x'", "a # b: c", "[ a , b ]", "{ a : b }", "{a: b }",
    "[a b, c  d ]", "12345678901234567890123", "0.1", "-0", "+.5", "0x_1", "1__0", "10:",
]  # fmt: skip
KEYS = ["a", "b", "key", "a.b", "a-b", "_x", "1", "true", "yes", "null", "1.5", "<<", "'q'",
        '"q"', "a b", "-a", "k:", "~", "x1"]  # fmt: skip


COMMON = ["a", "abc def", "yes", "1", "-2", "1.5", "~", "'q'", '"q"', "[a, 1]", "{k: v}", "x.y"]


def _scalar(rng: random.Random) -> str:
    """Mostly a common value (so that many texts are read), else any of SCALARS."""
    return rng.choice(COMMON if rng.random() < 0.85 else SCALARS)


def _key(rng: random.Random) -> str:
    return rng.choice(["a", "b", "key", "x1"] if rng.random() < 0.9 else KEYS)


def _block(rng: random.Random, indent: int, depth: int) -> list[str]:
    """Lines of a random block collection at `indent`, sometimes not quite valid YAML."""
    pad = " " * indent
    out: list[str] = []
    seq = rng.random() < 0.3
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if r < 0.05:
            out.append(" " * rng.randint(0, 6) + "# note")
        elif r < 0.08:
            out.append("")
        head = f"{pad}- " if seq else f"{pad}{_key(rng)}:"
        tail = rng.choice(["", "", "", "  # c", " #c", "   "])
        if depth < 4 and rng.random() < 0.35:
            if seq and rng.random() < 0.5:  # `- key: value` and the keys under it
                first = f"{_key(rng)}: {_scalar(rng)}"
                out.append(f"{head}{first}")
                out += [f"{pad}  {_key(rng)}: {_scalar(rng)}" for _ in range(rng.randint(0, 2))]
                continue
            out.append(head.rstrip() + tail)
            step = rng.choice([2, 2, 4, 1, 0]) if not seq else rng.choice([2, 4, 1])
            out += _block(rng, indent + step, depth + 1)
        else:
            out.append(f"{head} {_scalar(rng)}{tail}".replace(":  ", ": ").replace("-  ", "- "))
        if rng.random() < 0.01:  # a line that goes on, or is indented wrong
            out.append(" " * (indent + rng.choice([1, 2, 3])) + _scalar(rng))
    return out


def _random_text(rng: random.Random) -> str:
    lines = _block(rng, 0, 0)
    if rng.random() < 0.05:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["---", "...", "%YAML 1.1", "\t"]))
    text = "\n".join(lines) + rng.choice(["\n", "", "\n\n"])
    if rng.random() < 0.03:
        text = text.replace("\n", "\r\n")
    return text


def test_random_yaml_is_read_alike_or_declined() -> None:
    rng = random.Random(27)
    read = sum(agrees(_random_text(rng)) for _ in range(3000))
    assert read > 400  # the quick reader took a good share: what it took was compared


@pytest.mark.parametrize("value", SCALARS)
@pytest.mark.parametrize("where", ["block", "flow", "list", "key"])
def test_each_scalar_is_read_alike_or_declined(value: str, where: str) -> None:
    text = {
        "block": f"version: 1\nv: {value}\n",
        "flow": f"v: [{value}]\nw: {{k: {value}}}\n",
        "list": f"v:\n- {value}\n-  {value}  # c\n",
        "key": f"{value}: 1\n",
    }[where]
    agrees(text)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_manifest_file_is_read_alike_or_declined(path: Path) -> None:
    agrees(path.read_text(encoding="utf-8", errors="replace"))


@pytest.mark.parametrize("seed", range(60))
def test_generated_manifests_are_read_alike_or_declined(seed: int) -> None:
    rng = random.Random(seed)
    assert agrees(_text(_mutate(BASES[seed % len(BASES)], rng))) or True


def test_the_common_shapes_are_read() -> None:
    text = (ROOT / "examples" / "shared-memory.yaml").read_text(encoding="utf-8")
    assert agrees(text)
    fleet = (
        "version: 1\nstack: s\nblocks:\n  k:\n    value: 'it''s'  # c\n\nagents:\n"
        "  a:\n    model: letta/letta-free\n    tags: [x, 'y', \"z\"]\n"
        "    memory_blocks: [{label: persona, value: I am a.}]\n    blocks:\n    - k\n"
        "    tool_rules:\n      - type: run_first\n        tool_name: t\n    count: 2\n"
    )
    assert agrees(fleet)


DECLINED = {
    "anchor and alias": "a: &x 1\nb: *x\n",
    "merge key": "a: {k: 1}\nb:\n  <<: {k: 2}\n",
    "tag": "a: !!str 1\n",
    "literal block": "a: |\n  text\n",
    "folded block": "a: >-\n  text\n",
    "multi-line plain": "a: one\n  two\n",
    "multi-line quoted": "a: 'one\n  two'\n",
    "escape": 'a: "one\\ttwo"\n',
    "duplicate key": "a: 1\na: 2\n",
    "duplicate flow key": "a: {k: 1, k: 2}\n",
    "integer key": "1: a\n",
    "boolean key": "yes: a\n",
    "null key": "~: a\n",
    "quoted key": "'a': 1\n",
    "complex key": "? a\n: 1\n",
    "date": "a: 2001-12-14\n",
    "infinity": "a: .inf\n",
    "documents": "---\na: 1\n",
    "directive": "%YAML 1.1\n---\na: 1\n",
    "tab": "a:\t1\n",
    "CRLF": "a: 1\r\nb: 2\r\n",
    "a list": "- a\n",
    "a scalar": "a\n",
    "empty": "# nothing\n",
    "flow over lines": "a: [1,\n  2]\n",
    "nested dash": "a:\n- - 1\n",
    "bad indentation": "a:\n    b: 1\n  c: 2\n",
    "deep": "a: " + "[" * 60 + "]" * 60 + "\n",
    "huge integer": "a: " + "9" * 5000 + "\n",
    "huge integer in a list": "a: [" + "9" * 5000 + "]\n",
}


@pytest.mark.parametrize("text", DECLINED.values(), ids=DECLINED.keys())
def test_what_the_quick_reader_leaves_to_the_slow_one(text: str) -> None:
    assert quick_values(text) is None


def test_big_numbers_and_yaml_1_1_scalars_are_read_as_pyyaml_reads_them() -> None:
    text = "a: [yes, off, 0o17, 017, 0x1F, 1_000, 1e3, 1.0e+3, ~, 9" + "9" * 30 + "]\nb: 1:30\n"
    assert quick_values(text) == {
        "a": [True, False, "0o17", 15, 31, 1000, "1e3", 1000.0, None, int("9" * 31)],
        "b": 90,
    }
    assert agrees(text)


# --- the pipeline --------------------------------------------------------------------------


def _slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(language, "quick_values", lambda text: None)


def _outcome(call: object) -> Desired | list[Diagnostic] | None:
    try:
        out = call()  # type: ignore[operator]
    except ManifestError as e:
        return e.diagnostics
    return getattr(out, "desired", out)  # type: ignore[no-any-return]


MANIFESTS = [p for p in FILES if "examples" in p.parts or p.name == "manifest.yaml"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize("load", [load_manifest, validate_manifest])
def test_every_manifest_has_the_same_outcome_either_way(
    path: Path, load: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(path.parent)
    quick = _outcome(lambda: load(str(path)))  # type: ignore[operator]
    _slow(monkeypatch)
    assert quick == _outcome(lambda: load(str(path)))  # type: ignore[operator]


@pytest.mark.parametrize("seed", range(60))
def test_generated_manifests_have_the_same_outcome_either_way(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    path = tmp_path / "m.yaml"
    path.write_text(_text(_mutate(BASES[seed % len(BASES)], rng)), encoding="utf-8")
    quick = _outcome(lambda: validate_manifest(str(path)))
    _slow(monkeypatch)
    assert quick == _outcome(lambda: validate_manifest(str(path)))


FLEET = "version: 1\nstack: fleet\nblocks:\n  shared:\n    value: Shared.\nagents:\n" + "".join(
    f"  agent{i}:\n    model: letta/letta-free\n    embedding: letta/letta-free\n"
    f"    memory_blocks: [{{label: persona, value: I am agent {i}.}}]\n    blocks: [shared]\n"
    for i in range(3)
)


@pytest.mark.skipif(COMPARE_QUICK, reason="the comparison reads it with positions too")
def test_a_valid_fleet_is_not_read_with_positions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(FLEET, encoding="utf-8")

    def slow(*args: object, **kwargs: object) -> object:
        raise AssertionError("read with positions")

    monkeypatch.setattr(language, "parse_file", slow)
    desired = validate_manifest(str(path)).desired
    assert desired is not None and len(desired.of("agent")) == 3


@pytest.mark.parametrize(
    "mistake",
    [
        ("blocks: [shared]", "blocks: [nope]"),  # a check's error
        ("value: Shared.", "value: Shared.\n    labl: x"),  # the schema's
        ("stack: fleet", "stack: fleet\nstack: again"),  # the reader's: declined
        ("model: letta/letta-free", "model: &m letta/letta-free"),  # declined construct, valid
    ],
)
def test_a_problem_is_reported_as_the_slow_path_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mistake: tuple[str, str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(FLEET.replace(*mistake, 1), encoding="utf-8")
    quick = _outcome(lambda: validate_manifest(str(path)))
    _slow(monkeypatch)
    assert quick == _outcome(lambda: validate_manifest(str(path)))


def test_a_problem_found_by_the_checks_reads_the_manifest_again_with_positions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(FLEET.replace("blocks: [shared]", "blocks: [nope]", 1), encoding="utf-8")
    reads: list[str] = []
    real = language.parse_file
    monkeypatch.setattr(language, "parse_file", lambda f: reads.append(f) or real(f))
    with pytest.raises(ManifestError) as e:
        validate_manifest(str(path))
    assert reads == [str(path)]
    first = str(e.value.diagnostics[0])
    assert first.startswith(f"{path}:11:14: agents.agent0.blocks[0]: no shared")


def test_several_files_take_the_slow_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nstack: s\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("blocks:\n  b:\n    value: v\n", encoding="utf-8")
    assert language.quick_source(str(tmp_path), []) is None
    assert pipeline.load_manifest(str(tmp_path)).stack == "s"


def test_validate_imports_neither_the_http_client_nor_the_slow_checks(tmp_path: Path) -> None:
    """What validate never uses on a valid manifest is not imported: httpx (no request is
    sent), jsonschema (the compiled validator passes it), deepdiff (no plan is compared)."""
    import subprocess
    import sys

    path = tmp_path / "m.yaml"
    path.write_text(FLEET, encoding="utf-8")
    code = (
        "import sys\nfrom letta_apply.cli import main\n"
        f"assert main(['validate', '-f', {str(path)!r}]) == 0\n"
        "print(sorted(m for m in ('httpx', 'jsonschema', 'deepdiff') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.splitlines()[-1] == "[]"


def test_every_public_name_is_importable_from_the_package() -> None:
    import letta_apply

    assert set(letta_apply.__all__) == {*letta_apply._WHERE, "__version__"}
    assert all(getattr(letta_apply, name) is not None for name in letta_apply.__all__)
