"""The Python API (letta_apply.Stack) against the in-memory fake server."""

from __future__ import annotations

import enum
import io
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

import letta_apply
from letta_apply import (
    ApplyFailed,
    ApplyResult,
    LettaApplyError,
    ManifestError,
    Stack,
    StalePlanError,
    render_plan,
)
from letta_apply.cli import main
from letta_apply.manifest.data import Budget, manifest_data
from tests.fakes import FakeLetta

SECRET = "s3cret-value-42"


def manifest(tenant_blocks: int = 1) -> dict[str, Any]:
    return {
        "version": 1,
        "stack": "tenant-${var.tenant}",
        "variables": {"tenant": {"type": "string"}, "key": {"sensitive": True, "default": ""}},
        "blocks": {
            f"org{i}": {"value": "Facts about ${var.tenant}.", "description": "shared"}
            for i in range(tenant_blocks)
        },
        "agents": {
            "helper": {
                "name": "${var.tenant}-helper",
                "model": "letta/letta-free",
                "embedding": "letta/letta-free",
                "system": "Use key ${var.key}.",
                "memory_blocks": [{"label": "persona", "value": "I help ${var.tenant}."}],
                "blocks": [f"org{i}" for i in range(tenant_blocks)],
            }
        },
    }


def test_the_package_exports_the_api() -> None:
    for name in ("Stack", "ApplyResult", "ApplyFailed", "StalePlanError", "render_plan"):
        assert name in letta_apply.__all__ and hasattr(letta_apply, name)


def test_from_dict_plan_apply_converge_destroy() -> None:
    fake = FakeLetta()
    client = fake.client()
    stack = Stack.from_dict(manifest(), variables={"tenant": "acme", "key": SECRET})
    assert stack.name == "tenant-acme"
    plan = stack.plan(client)
    assert [(c.action, c.address) for c in plan.changes] == [
        ("create", "block.org0"),
        ("create", "agent.helper"),
    ]
    result = stack.apply(client, plan=plan)
    assert isinstance(result, ApplyResult) and result.ok
    assert [d.change.address for d in result.done] == ["block.org0", "agent.helper"]
    assert not fake.blocks or all(b["label"] != "letta-apply-lock" for b in fake.blocks.values())
    assert stack.plan(client).changes == ()
    listing = stack.show(client)
    assert {r.address for r in listing.found} >= {"agent.helper", "block.org0"}
    assert listing.missing == ()
    writes = fake.writes
    assert stack.apply(client).done == ()  # converged: no write, not even the lock's
    assert fake.writes == writes
    gone = stack.destroy(client)
    assert {d.change.action for d in gone.done} == {"delete"}
    assert not fake.agents


def test_render_masks_sensitive_values_in_every_format() -> None:
    client = FakeLetta().client()
    stack = Stack.from_dict(manifest(), variables={"tenant": "acme", "key": SECRET})
    plan = stack.plan(client)
    text = stack.render(plan, client=client)
    assert text.startswith('letta-apply plan: stack "tenant-acme" on http://127.0.0.1:8283')
    assert "Plan: 2 to create" in text
    doc = json.loads(stack.render(plan, "json", client=client))
    assert doc["stack"] == "tenant-acme" and doc["manifest"]["files"] == ["<dict>"]
    assert "### letta-apply plan" in stack.render(plan, "markdown")
    for fmt in ("text", "json", "markdown"):
        assert SECRET not in stack.render(plan, fmt)  # type: ignore[arg-type]
        assert SECRET not in render_plan(plan, fmt)  # type: ignore[arg-type]
    with pytest.raises(LettaApplyError, match="unknown format 'yaml'"):
        render_plan(plan, "yaml")  # type: ignore[arg-type]


def test_render_is_the_cli_output(tmp_path: Path) -> None:
    fake = FakeLetta()
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nstack: same\nblocks:\n  b: {value: v}\n", encoding="utf-8")
    out = io.StringIO()
    factory = lambda url, **kw: fake.client()  # noqa: E731
    assert main(["plan", "-f", str(path)], out, io.StringIO(), client_factory=factory) == 0
    stack = Stack.from_files([str(path)])
    client = fake.client()
    assert stack.render(stack.plan(client), client=client) + "\n" == out.getvalue()


def test_a_plan_the_server_outdated_is_refused() -> None:
    fake = FakeLetta()
    client = fake.client()
    stack = Stack.from_dict(manifest(), variables={"tenant": "acme"})
    plan = stack.plan(client)
    Stack.from_dict(manifest(), variables={"tenant": "acme"}).apply(client)
    writes = fake.writes
    with pytest.raises(StalePlanError, match='stale plan: stack "tenant-acme" changed'):
        stack.apply(client, plan=plan)
    assert fake.writes == writes


def test_a_failed_change_raises_with_the_result() -> None:
    fake = FakeLetta()
    client = fake.client(retry=letta_apply.RetryPolicy(max_retries=0))

    def refuse_agents(request: Any) -> Any:
        if request.method == "POST" and request.url.path.rstrip("/") == "/v1/agents":
            return httpx.Response(400, json={"detail": "no agents today"})
        return None

    fake.before.append(refuse_agents)
    stack = Stack.from_dict(manifest(), variables={"tenant": "acme"})
    with pytest.raises(ApplyFailed) as info:
        stack.apply(client)
    assert isinstance(info.value, letta_apply.ApplyError)
    assert [d.change.address for d in info.value.result.done] == ["block.org0"]
    assert "no agents today" in str(info.value)
    assert not [b for b in fake.blocks.values() if b["label"] == "letta-apply-lock"]


def test_targets_limit_the_plan() -> None:
    client = FakeLetta().client()
    stack = Stack.from_dict(manifest(2), variables={"tenant": "acme"})
    assert [c.address for c in stack.plan(client, targets=["block.org1"]).changes] == ["block.org1"]
    with pytest.raises(LettaApplyError, match=r"--target block\.nope: no such resource"):
        stack.plan(client, targets=["block.nope"])


def test_errors_in_a_dict_name_the_key_path_not_a_line() -> None:
    bad = manifest()
    bad["agents"]["helper"]["model"] = "nonsense"
    bad["blocks"]["org0"]["limit"] = "big"
    with pytest.raises(ManifestError) as info:
        Stack.from_dict(bad, variables={"tenant": "acme"})
    assert [str(d) for d in info.value.diagnostics] == [
        "<dict>: agents.helper.model: invalid model handle 'nonsense': write it as "
        "provider/model, e.g. letta/letta-free",
        "<dict>: blocks.org0.limit: expected an integer, got a string",
    ]


def test_values_that_are_not_plain_data_are_named() -> None:
    bad = manifest()
    bad["blocks"]["org0"]["value"] = {1, 2}
    with pytest.raises(ManifestError) as info:
        Stack.from_dict(bad, variables={"tenant": "acme"}, name="tenant.py")
    assert str(info.value) == (
        "tenant.py: blocks.org0.value: set is not plain data (use str, int, float, bool, None, "
        "list or dict)"
    )


def test_variables_are_typed_and_checked() -> None:
    with pytest.raises(ManifestError) as info:
        Stack.from_dict(manifest(), variables={"tenant": "acme", "nope": 1})
    assert str(info.value) == "<variables>: no variable 'nope' is declared (declared: key, tenant)"
    with pytest.raises(ManifestError, match="variable 'tenant' has no value"):
        Stack.from_dict(manifest())
    data = {
        "version": 1,
        "stack": "s",
        "variables": {"n": {"type": "number"}, "names": {"type": "list"}},
        "blocks": {"b": {"value": "x", "limit": "${var.n}", "tags": "${var.names}"}},
    }
    stack = Stack.from_dict(data, variables={"n": 500, "names": ["a", "b"]})
    block = stack.desired.of("block")["block.b"]
    assert block.config["limit"] == 500 and block.config["tags"] == ["a", "b"]


def test_from_files_takes_variables_and_env(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nstack: ${var.tenant}-${env.REGION}\nvariables:\n  tenant: {}\n"
        "blocks:\n  b: {value: v}\n",
        encoding="utf-8",
    )
    stack = Stack.from_files(str(path), {"tenant": "acme"}, env={"REGION": "eu"})
    assert stack.name == "acme-eu"
    assert stack.desired.files == (str(path),)


def test_a_saved_plan_digest_differs_with_the_dict() -> None:
    a = Stack.from_dict(manifest(), variables={"tenant": "acme"})
    b = Stack.from_dict(manifest(2), variables={"tenant": "acme"})
    c = Stack.from_dict(manifest(), variables={"tenant": "acme"})
    assert a.desired.digest != b.desired.digest and a.desired.digest == c.desired.digest


def test_the_cli_confirms_through_the_stdin_it_is_given(tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    fake = FakeLetta()
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nstack: asked\nblocks:\n  b: {value: v}\n", encoding="utf-8")
    factory = lambda url, **kw: fake.client()  # noqa: E731
    out = io.StringIO()
    argv = ["apply", "-f", str(path)]
    assert main(argv, out, io.StringIO(), client_factory=factory, stdin=Terminal("no\n")) == 1
    assert "Apply cancelled; nothing was changed." in out.getvalue() and not fake.blocks
    code = main(argv, io.StringIO(), io.StringIO(), client_factory=factory, stdin=Terminal("yes\n"))
    assert code == 0 and len(fake.memory) == 1
    err = io.StringIO()
    argv = ["destroy", "-f", str(path)]
    assert main(argv, io.StringIO(), err, client_factory=factory, stdin=io.StringIO("yes\n")) == 1
    assert "standard input is not a terminal" in err.getvalue()


# -- hostile data: every problem is the library's own error, with the key path, found fast ------


class Count(enum.IntEnum):
    FIVE_HUNDRED = 500


class Text(str, enum.Enum):
    HELLO = "hello"


def refused(data: Any = None, **kwargs: Any) -> list[str]:
    with pytest.raises(ManifestError) as info:
        if "paths" in kwargs:
            Stack.from_files(**kwargs)
        else:
            Stack.from_dict(manifest() if data is None else data, **kwargs)
    return [str(d) for d in info.value.diagnostics]


def with_metadata(value: Any) -> dict[str, Any]:
    data = manifest()
    data["blocks"]["org0"]["metadata"] = {"x": value}
    return data


def test_cycles_and_deep_nesting_are_named_not_a_recursion_error() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    deep: list[Any] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    vars_ = {"tenant": "acme"}
    assert refused(with_metadata(cycle), variables=vars_) == [
        "<dict>: blocks.org0.metadata.x.self: refers to a list or mapping that contains it (a "
        "cycle)"
    ]
    [message] = refused(with_metadata(deep), variables=vars_)
    assert message.startswith("<dict>: blocks.org0.metadata.x[0][0]")
    assert message.endswith("[0]: nested more than 100 levels deep") and len(message) < 300


def test_numbers_python_cannot_write_are_named() -> None:
    vars_ = {"tenant": "acme"}
    assert refused(with_metadata(10**5000), variables=vars_) == [
        "<dict>: blocks.org0.metadata.x: a whole number of more than 4300 digits"
    ]
    assert refused(with_metadata(float("inf")), variables=vars_) == [
        "<dict>: blocks.org0.metadata.x: inf is not a finite number"
    ]
    data = manifest()
    data["variables"]["n"] = {"type": "number"}
    data["blocks"]["org0"]["limit"] = "${var.n}"
    assert refused(data, variables={"tenant": "acme", "n": float("nan")}) == [
        "<variables>: n: nan is not a finite number"
    ]


def test_enum_members_are_their_plain_values() -> None:
    data = manifest()
    data["blocks"]["org0"]["limit"] = Count.FIVE_HUNDRED
    data["blocks"]["org0"]["value"] = Text.HELLO
    stack = Stack.from_dict(data, variables={"tenant": Text.HELLO})
    block = stack.desired.of("block")["block.org0"]
    assert block.config["limit"] == 500 and block.value == "hello"
    assert stack.name == "tenant-hello"


def test_arguments_of_the_wrong_type_are_named(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nstack: s\nblocks: {b: {value: x}}\n", encoding="utf-8")
    # One var file, not one per character of its name.
    assert refused(paths=str(path), var_files="vars.yaml") == [
        "vars.yaml:1:1: cannot read: No such file or directory"
    ]
    assert refused(paths=[str(path), 5]) == ["paths: [1]: expected a path, not int"]
    assert refused(paths=path, variables=[("a", 1)]) == [
        "<variables>: expected a mapping of variable names to values, not list"
    ]
    assert refused(paths=str(path), env={"A": 1, 2: "x"}) == [
        "<env>: A: expected a string",
        "<env>: a key is int, not a string",
    ]
    assert refused([("version", 1)]) == ["<dict>: a manifest is a mapping of sections, not list"]
    assert refused(name=5) == ["name: expected a non-empty string"]
    assert refused(base_dir=5, variables={"tenant": "acme"}) == ["root: expected a path, not int"]


@pytest.mark.parametrize(
    ("option", "value"),
    [("parallelism", 0), ("parallelism", "8"), ("parallelism", True), ("lock", 1),
     ("lock_timeout", float("nan")), ("lock_timeout", -1), ("lock_timeout", "60"),
     ("on_done", 5)],
)  # fmt: skip
def test_apply_options_of_the_wrong_type_are_named_before_anything_is_read(
    option: str, value: Any
) -> None:
    fake = FakeLetta()
    stack = Stack.from_dict(manifest(), variables={"tenant": "acme"})
    for run in (stack.apply, stack.destroy):
        with pytest.raises(LettaApplyError, match=f"^{option}: expected"):
            run(fake.client(), **{option: value})
    assert fake.calls == []


class Failing(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise OSError("no")

    def __len__(self) -> int:
        return 1


def test_a_mapping_whose_items_fail_is_named() -> None:
    assert refused(with_metadata(Failing()), variables={"tenant": "acme"}) == [
        "<dict>: blocks.org0.metadata.x: its items cannot be read (OSError)"
    ]


def test_data_over_the_size_of_a_manifest_file_is_refused_before_it_is_converted() -> None:
    # 70 MB as the manifest sees it, 1 MB in memory: one string named 70 times.
    data = manifest()
    data["blocks"]["org0"]["tags"] = ["y" * 1_000_000] * 70
    started = time.monotonic()
    assert refused(data, variables={"tenant": "acme"}) == [
        "<dict>: blocks.org0.tags[67]: over 67108864 characters in all (the size limit of a "
        "manifest file); stopped reading here"
    ]
    assert time.monotonic() - started < 5
    # The limit holds for everything one call is given, variables included.
    assert refused(manifest(), variables={"tenant": "acme", "x": ["y" * 1_000_000] * 70}) == [
        "<variables>: x[67]: over 67108864 characters in all (the size limit of a manifest "
        "file); stopped reading here"
    ]
    with pytest.raises(ManifestError, match=r"more than 100 values in all"):
        manifest_data({"a": list(range(200))}, "<dict>", Budget(values=100))


def test_one_target_is_one_address_not_its_characters() -> None:
    client = FakeLetta().client()
    stack = Stack.from_dict(manifest(2), variables={"tenant": "acme"})
    assert [c.address for c in stack.plan(client, targets="block.org1").changes] == ["block.org1"]
