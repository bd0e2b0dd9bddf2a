"""Every example manifest is one an editor checks as it is typed: its first line names the
published schema (`# yaml-language-server: $schema=...`, a path that works in a checkout), that
schema accepts the file as written, and `letta-apply validate` accepts the manifest it belongs to
(a file, or a folder with each of its `env/` var files). The README's pre-commit hook, run as
pre-commit runs it, validates the example stack of files and reports mistakes located."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers import Cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCHEMA_FILE = ROOT / "schemas" / "manifest.schema.json"
PUBLISHED = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)")


def _data(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _is_manifest(path: Path) -> bool:
    """A manifest, or a file of a folder manifest: a mapping of the manifest's sections (var
    files and CI configurations are mappings of other keys)."""
    data = _data(path)
    return isinstance(data, dict) and bool(set(data) & set(PUBLISHED["properties"]))


MANIFESTS = sorted(
    p for p in [*EXAMPLES.rglob("*.yaml"), *EXAMPLES.rglob("*.yml")] if _is_manifest(p)
)
# What `letta-apply validate -f` takes: each file at the top of examples/, each folder below it.
ROOTS = sorted({p if p.parent == EXAMPLES else p.parent for p in MANIFESTS})


def _name(path: Path) -> str:
    return path.relative_to(EXAMPLES).as_posix()


def test_the_examples_are_all_found() -> None:
    assert {_name(p) for p in MANIFESTS} >= {
        "shared-memory.yaml", "environments/base.yaml", "environments/agents.yaml",
    }  # fmt: skip
    assert {_name(p) for p in ROOTS} >= {"shared-memory.yaml", "environments"}


@pytest.mark.parametrize("path", MANIFESTS, ids=_name)
def test_example_names_the_published_schema_on_its_first_line(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = MODELINE.fullmatch(first)
    assert m, f"{_name(path)}: first line is not the yaml-language-server modeline: {first!r}"
    # Relative to the file, as editors resolve it: it works in any checkout, offline.
    assert (path.parent / m.group(1)).resolve() == SCHEMA_FILE


@pytest.mark.parametrize("path", MANIFESTS, ids=_name)
def test_example_as_written_is_valid_against_the_published_schema(path: Path) -> None:
    errors = list(jsonschema.Draft202012Validator(PUBLISHED).iter_errors(_data(path)))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def _var_files(root: Path) -> list[list[str]]:
    """The --var-file sets a root is validated with: none, or each of its env/ files."""
    env = sorted((root / "env").glob("*.yaml")) if root.is_dir() else []
    return [["--var-file", str(f)] for f in env] or [[]]


def _secrets(root: Path) -> list[str]:
    """Variables declared sensitive without a default: set in the environment, never in files."""
    files = sorted(root.glob("*.yaml")) if root.is_dir() else [root]
    out = []
    for f in files:
        for name, spec in ((_data(f) or {}).get("variables") or {}).items():
            if spec.get("sensitive") and "default" not in spec:
                out.append(name)
    return out


@pytest.mark.parametrize("root", ROOTS, ids=_name)
def test_example_passes_letta_apply_validate(
    root: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _secrets(root):
        monkeypatch.setenv(f"LETTA_APPLY_VAR_{name}", "not-a-real-secret")
    for var_files in _var_files(root):
        code, out, err = cli("validate", "-f", str(root), *var_files)
        assert (code, err) == (0, ""), err
        assert ": valid: stack " in out


def test_the_published_schema_still_catches_mistakes_in_examples() -> None:
    """References are accepted where values go; a typo or a wrong value is still an error."""
    validator = jsonschema.Draft202012Validator(PUBLISHED)
    base = _data(EXAMPLES / "environments" / "base.yaml")
    assert not list(validator.iter_errors(base))
    typo = {**base, "agents": {"a": {"modle": "letta/letta-free"}}}
    wrong = {**base, "blocks": {"b": {"value": "v", "limit": "ten"}}}
    reference = {**base, "blocks": {"b": {"value": "v", "limit": "${var.limit}"}}}
    bad_stack = {**base, "stack": "Support Team"}
    variable_typo = {**base, "variables": {"env": {"tyep": "string"}}}
    for doc in (typo, wrong, bad_stack, variable_typo):
        assert list(validator.iter_errors(doc)), doc
    assert not list(validator.iter_errors(reference))


# ---------------------------------------------------------------------------------------------
# The pre-commit hook

PRE_COMMIT = EXAMPLES / "ci" / "pre-commit-config.yaml"


def _readme_pre_commit() -> Any:
    """The pre-commit configuration the README shows: its YAML block naming the hook."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "id: letta-apply-validate" in b]
    return yaml.safe_load(block)


def test_the_readme_shows_the_pre_commit_example() -> None:
    assert _readme_pre_commit() == _data(PRE_COMMIT)


def _hook(repo: Path) -> subprocess.CompletedProcess[str]:
    """The README's hook as pre-commit runs it in `repo`: its entry split as a shell splits it,
    its args, and no file names (pass_filenames: false); `letta-apply` is this checkout's."""
    (hook,) = _readme_pre_commit()["repos"][0]["hooks"]
    assert hook["pass_filenames"] is False and hook["language"] == "system"
    bin_dir = repo / ".bin"
    bin_dir.mkdir(exist_ok=True)
    command = bin_dir / "letta-apply"
    command.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m letta_apply.cli "$@"\n')
    command.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    env = {k: v for k, v in env.items() if not k.startswith("LETTA_APPLY_VAR_")}
    argv = [*shlex.split(hook["entry"]), *hook.get("args", [])]
    return subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def test_the_pre_commit_hook_validates_a_stack_and_its_var_files(tmp_path: Path) -> None:
    (hook,) = _readme_pre_commit()["repos"][0]["hooks"]
    # It runs when a manifest or a var-file of the stack changes.
    for changed in ("letta/agents.yaml", "letta/env/prod.yaml", "letta/base.yml"):
        assert re.search(hook["files"], changed), changed
    shutil.copytree(EXAMPLES / "environments", tmp_path / "letta")
    r = _hook(tmp_path)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.splitlines() == [
        "letta: valid, without values for var.env, var.regions, var.ticket_api_key (what depends "
        "on them is checked by plan, which needs them)",
        *(f"letta with letta/env/{env}.yaml: valid, without values for var.ticket_api_key (what "
          "depends on them is checked by plan, which needs them)" for env in ("prod", "staging")),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("file", "old", "new", "error"),
    [
        ("agents.yaml", "    model: ${var.model}\n", "    modle: ${var.model}\n",
         "letta/agents.yaml:11:5: agents.supervisor: unknown key 'modle'; did you mean 'model'? "
         "[LA302]"),
        ("agents.yaml", "name: ${var.env}-supervisor", "name: ${var.evn}-supervisor",
         "letta/agents.yaml:10:11: ${var.evn}: undefined variable 'evn'; did you mean 'env'? "
         "(declared: env, model, regions, ticket_api_key) [LA201]"),
        ("base.yaml", "language ${each.value.language}", "language ${each.value.lang}",
         "letta/base.yaml:29:12: ${each.value.lang}: each.value has no field 'lang' [LA204]"),
        ("env/prod.yaml", "regions:", "regoins:",
         "letta/env/prod.yaml:4:1: no variable 'regoins' is declared (declared: env, model, "
         "regions, ticket_api_key) [LA237]"),
    ],
)  # fmt: skip
def test_the_pre_commit_hook_reports_mistakes_located(
    tmp_path: Path, file: str, old: str, new: str, error: str
) -> None:
    shutil.copytree(EXAMPLES / "environments", tmp_path / "letta")
    path = tmp_path / "letta" / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    r = _hook(tmp_path)
    assert r.returncode == 1
    assert error in r.stderr.splitlines(), r.stdout + r.stderr
    assert "Traceback" not in r.stderr
