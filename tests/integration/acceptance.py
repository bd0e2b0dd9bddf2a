"""The acceptance steps every kind's real-server test goes through (test_acceptance.py runs them
once per kind the registry lists, from a small case per kind):

1. apply from empty: the plan has changes, the apply makes something of the kind;
2. `plan` then says there is nothing to change, and sends no write;
3. a re-apply sends no write request (counted by the proxy in front of the server, not by
   letta-apply's own report alone);
4. import round trip, for a kind that can be imported: a resource of the kind made by hand,
   outside any stack, is adopted by an `imports:` entry (the plan says import, the apply keeps
   its id) and the plan is empty after;
5. destroy leaves nothing of the stack: nothing on the server mentions the stack any more (its
   tag, its marks, the names derived from it), and nothing the stack made or adopted is left.

"Mentions the stack" is read from Letta's own listings of every kind's route, each item as JSON:
every name a case gives is derived from the stack, and every mark letta-apply writes names it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from letta_apply.kinds import Kind

from .conftest import RECORDER, Result, Run


@dataclass(frozen=True)
class Adopt:
    """How the import step makes a resource of the kind by hand and declares it."""

    entry: str  # its manifest entry (YAML), declared under the key `adopted`
    make: Callable[[httpx.Client, Callable[[str], str]], dict[str, Any]]
    """Makes it through Letta's API (given the placeholder filler), answers what Letta answered."""
    name_field: str = ""  # the field an import by name names it by (kinds imported by name)


@dataclass(frozen=True)
class Case:
    """A kind's acceptance case: a small manifest declaring one or two of the kind (and what
    they depend on), with `{placeholders}` (see `Steps.fill`)."""

    route: str  # the kind's listing route: the apply must make something listed there
    manifest: str  # the manifest's sections (YAML), below `version:` and `stack:`
    files: Mapping[str, str] = field(default_factory=dict)  # written beside the manifest
    variables: Mapping[str, str] = field(default_factory=dict)  # sensitive, given with --var
    needs: tuple[str, ...] = ()  # fixtures whose value fills the placeholder of that name
    adopt: Adopt | None = None  # None: the kind cannot be imported
    deprecated_routes: bool = False  # the kind uses routes Letta Cloud marks deprecated


# Every route the "nothing left" look lists: each kind's, and the blocks that hold marks. Agents
# before what they use, so that a cleanup deletes in an order Letta accepts.
ROUTES = (
    "/v1/groups/", "/v1/agents/", "/v1/blocks/", "/v1/tools/", "/v1/identities/",
    "/v1/folders/", "/v1/archives/", "/v1/mcp-servers/", "/v1/providers/",
)  # fmt: skip


def importable(kind: Kind) -> bool:
    """Whether `imports:` can adopt a resource of the kind (it overrides `Kind.find`)."""
    return type(kind).find is not Kind.find


class Steps:
    """The steps for one kind and one stack, run against the server through `run` (the CLI
    in-process, through the session's recording proxy); `api` looks behind its back."""

    def __init__(
        self, kind: Kind, case: Case, run: Run, api: httpx.Client, stack: str, folder: Path,
        values: Mapping[str, str],
    ) -> None:  # fmt: skip
        self.kind, self.case, self._run, self.api = kind, case, run, api
        self.stack, self.folder = stack, folder
        self.values = {"stack": stack, "stack_": stack.replace("-", "_"), "dir": str(folder),
                       **values}  # fmt: skip
        self.seen: set[str] = set()  # the ids of everything the stack made or adopted
        for name, text in case.files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.fill(text), encoding="utf-8")
        head = f"version: 1\nstack: {stack}\n"
        self.doc: dict[str, Any] = yaml.safe_load(head + self.fill(case.manifest))
        self._files = itertools.count()
        self.finished = False  # the destroy left nothing

    def fill(self, text: str) -> str:
        """`text` with each `{name}` of a value replaced: `{stack}`, `{stack_}` (the stack as
        a Python identifier), `{dir}` (the folder the manifest is in), and one per `needs`."""
        for name, value in self.values.items():
            text = text.replace(f"{{{name}}}", value)
        return text

    # -- running ---------------------------------------------------------------------------

    def write(self, doc: Mapping[str, Any]) -> str:
        path = self.folder / f"manifest-{next(self._files)}.yaml"
        path.write_text(yaml.safe_dump(dict(doc), sort_keys=False), encoding="utf-8")
        return str(path)

    def run(self, *args: str) -> tuple[Result, list[str]]:
        """One command, with the case's variables (never shown); and the write requests the
        proxy saw it send (a passage search is a POST that changes nothing)."""
        before = len(RECORDER.sent)
        given = [a for k, v in self.case.variables.items() for a in ("--var", f"{k}={v}")]
        result = self._run(*args, *given)
        for name, value in self.case.variables.items():  # sensitive, every one of them
            assert value not in result.out + result.err, f"the value of var.{name} was shown"
        writes = [
            f"{s.method} {s.path}" for s in RECORDER.sent[before:]
            if s.method != "GET" and s.path != "/v1/passages/search"
        ]  # fmt: skip
        return result, writes

    def trace(self) -> dict[str, dict[str, Any]]:
        """Everything on the server that mentions the stack or that the stack made, by id (with
        its route). Listings, not reads by id: Letta keeps a deleted provider readable."""
        names = (self.stack, self.values["stack_"])
        found: dict[str, dict[str, Any]] = {}
        # The listings at once: the harness's own look should cost the suite little time.
        with ThreadPoolExecutor(len(ROUTES)) as pool:
            listed = pool.map(lambda r: self.api.get(r, params={"limit": 100000}), ROUTES)
        for route, answer in zip(ROUTES, listed, strict=True):
            assert answer.status_code == 200, f"GET {route}: {answer.text}"
            for item in answer.json():
                if item["id"] in self.seen or any(n in json.dumps(item) for n in names):
                    found[item["id"]] = {**item, "_route": route}
        return found

    def cleanup(self) -> None:
        """Delete what the stack left behind when a step failed: best effort."""
        if self.finished:
            return
        for rid, item in sorted(self.trace().items(), key=lambda i: ROUTES.index(i[1]["_route"])):
            self.api.delete(f"{item['_route']}{rid}")

    # -- the steps -------------------------------------------------------------------------

    def apply_from_empty(self) -> str:
        """The stack is new (its name is the test's own); the apply makes the kind."""
        path = self.write(self.doc)
        applied, _ = self.run("apply", "-f", path, "--auto-approve")
        assert applied.code == 0, applied.out + applied.err
        assert " to create" in applied.out, applied.out
        made = self.trace()
        self.seen.update(made)
        assert any(i["_route"] == self.case.route for i in made.values()), (
            f"the apply made nothing listed at {self.case.route}"
        )
        return path

    def plan_is_empty(self, path: str) -> None:
        plan, writes = self.run("plan", "-f", path, "--detailed-exitcode")
        assert plan.code == 0, plan.out + plan.err
        assert "No changes." in plan.out, plan.out
        assert writes == [], writes

    def reapply_writes_nothing(self, path: str) -> None:
        again, writes = self.run("apply", "-f", path, "--auto-approve")
        assert again.code == 0, again.out + again.err
        assert writes == [], f"a re-apply sent writes: {writes}\n{again.out}"
        assert again.writes == 0, again.err

    def import_round_trip(self) -> str:
        """A resource made by hand adopted with `imports:`; the manifest then declaring it."""
        adopt = self.case.adopt
        assert adopt is not None
        made = adopt.make(self.api, self.fill)
        rid = str(made["id"])
        self.seen.add(rid)
        doc = dict(self.doc)
        doc[self.kind.section] = {**doc[self.kind.section], "adopted": yaml.safe_load(
            self.fill(adopt.entry))}  # fmt: skip
        address = f"{self.kind.name}.adopted"
        by = {"name": made[adopt.name_field]} if self.kind.import_by_name else {"id": rid}
        doc["imports"] = [{"to": address, **by}]
        path = self.write(doc)
        applied, _ = self.run("apply", "-f", path, "--auto-approve")
        assert applied.code == 0, applied.out + applied.err
        assert f"{address} ({rid}): import" in applied.out, applied.out
        kept = self.api.get(f"{self.case.route}{rid}")
        assert kept.status_code == 200, f"{address}: {rid} is gone after its import"
        self.plan_is_empty(path)
        return path

    def destroy_leaves_nothing(self, path: str) -> None:
        destroyed, _ = self.run("destroy", "-f", path, "--auto-approve")
        assert destroyed.code == 0, destroyed.out + destroyed.err
        left = self.trace()
        assert left == {}, f"destroy left: {sorted((i['_route'], r) for r, i in left.items())}"
        self.finished = True


def steps(
    kind: Kind, case: Case, run: Run, api: httpx.Client, stack: str, folder: Path,
    values: Mapping[str, str],
) -> Iterator[Steps]:  # fmt: skip
    """The steps for a kind (a generator fixture's body: what is left is deleted after)."""
    s = Steps(kind, case, run, api, stack, folder, values)
    try:
        yield s
    finally:
        s.cleanup()
