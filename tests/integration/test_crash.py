"""Crash safety against the real server: `letta-apply apply` and `destroy`, run as a user runs
them (a subprocess), killed with SIGKILL at a request boundary or at a random instant; then plain
re-runs only (no force-unlock, no imports:), at most 2, must converge the stack.

The stack declares every kind: 2 shared blocks, an identity, 4 agents (2 of them attach tools of
the MCP server), a supervisor group over the agents, a folder of 3 text files, an archive seeded
with 3 passages and a stdio MCP server (mcpserver.py); folder and archive are embedded by the
local endpoint (embedding.py).

A boundary kill: letta-apply talks to the server through a CrashProxy (crashproxy.py) armed at
request N: the server acts on requests 1..N, request N's answer is held, nothing after N reaches
the server, and the process is killed (SIGKILL, never a catchable signal) before it hears
anything more. Boundary kills run at `--parallelism 1`, so every boundary is a point between two
requests, the same one from run to run; random-time kills and the two-runs cases use the default
parallelism. A reference cold apply and destroy of a fresh stack count the requests: R, the
boundaries 1..R.

Right after a kill at a request boundary, `drift` must report nothing deleted on the server:
only letta-apply deleted anything, and the stack's record never names what a run takes away.
After each kill and recovery, the server is examined through its own API (never through
letta-apply): exactly the declared resources (by name, by the stack's tag, by mark), no orphan
(an unmarked resource, a mark pointing at nothing, a lock record left, an agent's block attached
to no agent), no duplicate (agent, block, group, MCP server, folder, folder file, archive,
passage); a further `apply -v` makes 0 writes; `destroy` then leaves nothing of the stack (no
block tagged `letta-apply:<stack>`, `letta-apply-lock:<stack>` or `letta-apply-serial:<stack>`,
no agent, group, identity, MCP server, folder or archive, no block seen before the destroy).

Every run is given `--lock-timeout` (LETTA_APPLY_CRASH_LOCK_TIMEOUT, default 10 s): a run that
waits for a dead run's lock then fails (a wedge) within seconds instead of a minute.

Sizing. By default (what scripts/test runs) a seeded sample: 3 apply boundaries (one just after a
create whose mark is written after it, one after another write, one anywhere), 1 destroy
boundary, 1 random-time kill, and two applies at once of which one is killed. The full sweep,
by parametrization (never by deselecting tests):

    LETTA_APPLY_CRASH_SWEEP=all       every apply boundary 1..R and destroy boundary 1..R, in
                                      LETTA_APPLY_CRASH_SLOTS (default 8) tests per operation
    LETTA_APPLY_CRASH_RANDOM=50       random-time kills (default 1; 50 with the sweep)
    LETTA_APPLY_CRASH_SEED=1          the seed of the sample and of the random kills
    LETTA_APPLY_CRASH_APPLY_AT=12,37  exactly these apply boundaries (and _DESTROY_AT)
    LETTA_APPLY_CRASH_JSON=PATH       write the outcomes as JSON (the sweep writes
                                      bench/results/crash-sweep.json unless told otherwise)

scripts/crash-sweep runs the sweep. A failure names the boundary (request number, method and
path of the held request) and everything found wrong.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import BASE_URL, ROOT, SESSION, Result
from .crashproxy import CrashProxy, Seen

SCRIPT = Path(__file__).resolve().parent / "mcpserver.py"


def _ints(name: str) -> list[int]:
    raw = os.environ.get(name, "").strip()
    return [int(x) for x in raw.replace(";", ",").split(",") if x.strip()]


SWEEP = os.environ.get("LETTA_APPLY_CRASH_SWEEP", "").strip().lower() == "all"
RANDOM_KILLS = int(os.environ.get("LETTA_APPLY_CRASH_RANDOM") or (50 if SWEEP else 1))
SEED = int(os.environ.get("LETTA_APPLY_CRASH_SEED") or 1)
SLOTS = max(1, int(os.environ.get("LETTA_APPLY_CRASH_SLOTS") or 8))
LOCK_TIMEOUT = os.environ.get("LETTA_APPLY_CRASH_LOCK_TIMEOUT") or "10"
APPLY_AT = _ints("LETTA_APPLY_CRASH_APPLY_AT")
DESTROY_AT = _ints("LETTA_APPLY_CRASH_DESTROY_AT")
JSON_OUT = os.environ.get("LETTA_APPLY_CRASH_JSON") or (
    str(ROOT / "bench" / "results" / "crash-sweep.json") if SWEEP else ""
)
RECOVERY_RUNS = 2
RUN_TIMEOUT = 600.0  # seconds one letta-apply process may take before the test gives up on it

# Creates whose ownership mark is written by a later request (the kinds the design gives
# write-ahead intents): a kill just after one is the sharpest boundary.
MARKED_AFTER = ("/v1/groups/", "/v1/mcp-servers/", "/v1/archives/")

EMBEDDING = """\
    embedding:
      embedding_endpoint_type: openai
      embedding_endpoint: {endpoint}
      embedding_model: hashed-words
      embedding_dim: 384
      embedding_chunk_size: 300
"""

MANIFEST = (
    """\
version: 1
stack: {stack}
identities:
  customer:
    identifier_key: {stack}-customer
    identity_type: org
    name: Crash test customer
blocks:
  org:
    description: Shared facts about the organization.
    value: Nothing here yet.
  handoff:
    description: Work the workers hand to the boss.
    value: Empty.
mcp_servers:
  echo:
    server_name: {stack}-echo
    mcp_server_type: stdio
    command: {python}
    args: [{script}, {tools}]
folders:
  docs:
    name: {stack}-docs
    description: Three small documents.
"""
    + EMBEDDING
    + """\
    files: ["docs/*.txt"]
archives:
  facts:
    name: {stack}-facts
    description: Three facts.
"""
    + EMBEDDING
    + """\
    passages: {files: [facts.txt], separator: "\\n---\\n"}
agents:
  boss:
    name: {stack}-boss
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: I am the boss}]
    blocks: [org, handoff]
    identities: [customer]
    archives: [facts]
  w1:
    name: {stack}-w1
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: I am worker 1}]
    blocks: [org, handoff]
    folders: [docs]
    mcp_tools: [{server: echo, tools: all}]
  w2:
    name: {stack}-w2
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: I am worker 2}]
    blocks: [org]
    folders: [docs]
    mcp_tools: [{server: echo, tools: [beta]}]
  w3:
    name: {stack}-w3
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: I am worker 3}]
    blocks: [handoff]
groups:
  team:
    manager_type: supervisor
    manager_agent: boss
    agents: [w1, w2, w3]
    description: The crash-test team of {stack}.
"""
)

DOCS = {
    "docs/refunds.txt": "Returns within 30 days get a full refund.\n",
    "docs/shipping.txt": "Standard shipping takes 3 to 5 days.\n",
    "docs/escalation.txt": "Escalate lost orders over 500 EUR to a human.\n",
}
FACTS = ["Rocket Skates come in sizes 36 to 46.", "Anvils ship by freight.",
         "Invoices go out monthly."]  # fmt: skip
SHARED = ("org", "handoff")
AGENTS = ("boss", "w1", "w2", "w3")


@dataclass
class Stack:
    """One every-kind stack on disk: its name, its manifest, and the names it declares."""

    name: str
    dir: Path

    @property
    def path(self) -> str:
        return str(self.dir / "stack.yaml")

    @property
    def tag(self) -> str:
        return f"letta-apply:{self.name}"

    def agent(self, key: str) -> str:
        return f"{self.name}-{key}"

    @property
    def mcp_server(self) -> str:
        return f"{self.name}-echo"

    @property
    def folder(self) -> str:
        return f"{self.name}-docs"

    @property
    def archive(self) -> str:
        return f"{self.name}-facts"

    @property
    def identity(self) -> str:
        return f"{self.name}-customer"

    @classmethod
    def write(cls, root: Path, endpoint: str) -> Stack:
        # `t-` and 10 hex digits: the suite's own sweep (conftest) recognises the name.
        name = f"t-{uuid.uuid4().hex[:10]}"
        d = root / name
        for rel, text in DOCS.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text, encoding="utf-8")
        (d / "facts.txt").write_text("\n---\n".join(FACTS) + "\n", encoding="utf-8")
        (d / "tools.txt").write_text("alpha\nbeta\n", encoding="utf-8")
        text = MANIFEST.replace("{python}", sys.executable).replace("{script}", str(SCRIPT))
        text = text.replace("{tools}", str(d / "tools.txt")).replace("{endpoint}", endpoint)
        (d / "stack.yaml").write_text(text.replace("{stack}", name), encoding="utf-8")
        return cls(name, d)


# ----------------------------------------------------------------------------------------------
# Looking at the server through its own API


def _get(api: httpx.Client, path: str, **params: Any) -> Any:
    r = api.get(path, params=params)
    r.raise_for_status()
    return r.json()


def _mark(resource: dict[str, Any]) -> dict[str, Any]:
    found = (resource.get("metadata") or {}).get("letta_apply")
    return found if isinstance(found, dict) else {}


@dataclass
class Live:
    """Everything on the server that belongs (or might belong) to one stack."""

    blocks: list[dict[str, Any]]  # tagged with the stack's tag
    locks: list[dict[str, Any]]  # tagged with its lock tag
    serials: list[dict[str, Any]]  # tagged with its serial tag
    agents: list[dict[str, Any]]  # named after the stack, or tagged with its tag
    groups: list[dict[str, Any]]  # described with the stack's name, or over its agents
    identities: list[dict[str, Any]]
    mcp_servers: list[dict[str, Any]]
    folders: list[dict[str, Any]]
    archives: list[dict[str, Any]]

    def ids(self) -> set[str]:
        out = {
            str(r["id"])
            for kind in (self.blocks, self.locks, self.serials, self.agents, self.groups,
                         self.identities, self.mcp_servers, self.folders, self.archives)
            for r in kind
        }  # fmt: skip
        out |= {str(b["id"]) for a in self.agents for b in a.get("blocks") or ()}
        return out


def look(api: httpx.Client, s: Stack, known_agents: Iterable[str] = ()) -> Live:
    prefix = f"{s.name}-"
    agents = [
        a
        for a in _get(api, "/v1/agents/", limit=100000, include=["agent.blocks", "agent.tags"])
        if (a.get("name") or "").startswith(prefix) or s.tag in (a.get("tags") or ())
    ]
    agent_ids = {a["id"] for a in agents} | set(known_agents)
    groups = [
        g
        for g in _get(api, "/v1/groups/", limit=100000)
        if s.name in (g.get("description") or "")
        or g.get("manager_agent_id") in agent_ids
        or set(g.get("agent_ids") or ()) & agent_ids
    ]
    return Live(
        blocks=_get(api, "/v1/blocks/", tags=[s.tag], limit=100000),
        locks=_get(api, "/v1/blocks/", tags=[f"letta-apply-lock:{s.name}"], limit=100000),
        serials=_get(api, "/v1/blocks/", tags=[f"letta-apply-serial:{s.name}"], limit=100000),
        agents=agents,
        groups=groups,
        identities=[
            i
            for i in _get(api, "/v1/identities/", limit=100000)
            if (i.get("identifier_key") or "").startswith(prefix)
        ],
        mcp_servers=[
            m
            for m in _get(api, "/v1/mcp-servers/")
            if (m.get("server_name") or "").startswith(prefix)
        ],
        folders=[
            f
            for f in _get(api, "/v1/folders/", limit=100000)
            if (f.get("name") or "").startswith(prefix)
        ],
        archives=[
            a
            for a in _get(api, "/v1/archives/", limit=100000)
            if (a.get("name") or "").startswith(prefix)
        ],
    )


@dataclass
class Findings:
    duplicates: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _count(found: Findings, what: str, items: list[dict[str, Any]]) -> None:
    """Exactly one of `what` is declared: none is missing, more are duplicates."""
    if not items:
        found.missing.append(what)
    elif len(items) > 1:
        found.duplicates.append(f"{what} x{len(items)} ({', '.join(str(i['id']) for i in items)})")


def examine(api: httpx.Client, s: Stack) -> tuple[Findings, Live]:
    """The stack as the server holds it after a converging apply, against the manifest."""
    live = look(api, s)
    found = Findings()

    # Agents: one per declared name, each tagged; nothing else named after or tagged with the stack.
    for key in AGENTS:
        named = [a for a in live.agents if a.get("name") == s.agent(key)]
        _count(found, f"agent {s.agent(key)}", named)
        found.orphans += [
            f"agent {a['name']} ({a['id']}) lacks the stack's tag"
            for a in named
            if s.tag not in (a.get("tags") or ())
        ]
    declared = {s.agent(k) for k in AGENTS}
    found.orphans += [
        f"agent {a.get('name')} ({a['id']}) is not declared"
        for a in live.agents
        if a.get("name") not in declared
    ]
    agent_ids = {a["id"] for a in live.agents}
    attached = {b["id"] for a in live.agents for b in a.get("blocks") or ()}
    for a in live.agents:
        personas = [b for b in a.get("blocks") or () if b.get("label") == "persona"]
        if len(personas) > 1:
            found.duplicates.append(f"agent {a['name']} holds {len(personas)} persona blocks")

    # Memory blocks: the shared ones once each by address, the agents' own attached to their agent.
    memory = [b for b in live.blocks if not (b.get("label") or "").startswith("letta-apply-")]
    for key in SHARED:
        _count(found, f"shared block block.{key}",
               [b for b in memory if _mark(b).get("address") == f"block.{key}"])  # fmt: skip
    for b in memory:
        address = _mark(b).get("address") or "?"
        if address not in {f"block.{k}" for k in SHARED} and b["id"] not in attached:
            found.orphans.append(f"block {b.get('label')} ({address}, {b['id']}) is attached to "
                                 "no agent of the stack")  # fmt: skip
        elif address.startswith("block.") and address not in {f"block.{k}" for k in SHARED}:
            found.orphans.append(f"block {address} ({b['id']}) is not declared")

    # The stack's bookkeeping blocks (marks, flags, intents): one per (label, address), each
    # naming a declared address, and any resource id it names must exist.
    live_ids = {
        "group": {g["id"] for g in live.groups},
        "mcp_server": {m["id"] for m in live.mcp_servers},
        "archive": {a["id"] for a in live.archives},
        "folder": {f["id"] for f in live.folders},
        "agent": agent_ids,
        "identity": {i["id"] for i in live.identities},
    }
    addresses = {"group.team", "mcp_server.echo", "archive.facts", "folder.docs",
                 *(f"agent.{k}" for k in AGENTS), *(f"block.{k}" for k in SHARED),
                 "identity.customer"}  # fmt: skip
    books = [b for b in live.blocks if (b.get("label") or "").startswith("letta-apply-")]
    by_key = Counter((b.get("label"), _mark(b).get("address")) for b in books)
    found.duplicates += [f"{n} bookkeeping blocks {label} for {addr}"
                         for (label, addr), n in by_key.items() if n > 1]  # fmt: skip
    marked: dict[str, set[str]] = {}
    for b in books:
        m = _mark(b)
        address = m.get("address")
        if isinstance(address, str) and address:
            kind = address.split(".", 1)[0]
            if address not in addresses:
                found.orphans.append(f"{b['label']} block ({b['id']}) for undeclared {address}")
            target = m.get(kind)
            if isinstance(target, str) and target:
                marked.setdefault(kind, set()).add(target)
                if kind in live_ids and target not in live_ids[kind]:
                    found.orphans.append(
                        f"{b['label']} block ({b['id']}) marks {address} as {target}, which "
                        "does not exist"
                    )

    # Groups, MCP servers, archives: once each, and marked (their marks live in mark blocks).
    _count(found, "group team", live.groups)
    found.orphans += [
        f"group {g['id']} ({g.get('description')!r}) carries no mark"
        for g in live.groups
        if g["id"] not in marked.get("group", set())
    ]
    servers = [m for m in live.mcp_servers if m.get("server_name") == s.mcp_server]
    _count(found, f"MCP server {s.mcp_server}", servers)
    found.orphans += [
        f"MCP server {m.get('server_name')} ({m['id']}) carries no mark (the stack cannot adopt it)"
        for m in live.mcp_servers
        if m["id"] not in marked.get("mcp_server", set())
    ]
    found.orphans += [f"MCP server {m.get('server_name')} ({m['id']}) is not declared"
                      for m in live.mcp_servers if m not in servers]  # fmt: skip
    archives = [a for a in live.archives if a.get("name") == s.archive]
    _count(found, f"archive {s.archive}", archives)
    found.orphans += [
        f"archive {a.get('name')} ({a['id']}) carries no mark"
        for a in live.archives
        if a["id"] not in marked.get("archive", set())
    ]
    found.orphans += [f"archive {a.get('name')} ({a['id']}) is not declared"
                      for a in live.archives if a not in archives]  # fmt: skip
    for a in archives:
        hits = api.post("/v1/passages/search", json={"archive_id": a["id"], "limit": 100})
        hits.raise_for_status()
        texts = Counter(str(h["passage"]["text"]).strip() for h in hits.json())
        for text in FACTS:
            if texts[text] == 0:
                found.missing.append(f"passage {text!r} of archive {s.archive}")
            elif texts[text] > 1:
                found.duplicates.append(f"passage {text!r} x{texts[text]} in {s.archive}")
        found.orphans += [f"passage {t!r} in {s.archive} is not declared"
                          for t in texts if t not in FACTS]  # fmt: skip

    # The folder: once, marked in its metadata, holding each declared file once.
    folders = [f for f in live.folders if f.get("name") == s.folder]
    _count(found, f"folder {s.folder}", folders)
    found.orphans += [
        f"folder {f.get('name')} ({f['id']}) carries no mark"
        for f in live.folders
        if _mark(f).get("stack") != s.name
    ]
    found.orphans += [f"folder {f.get('name')} ({f['id']}) is not declared"
                      for f in live.folders if f not in folders]  # fmt: skip
    expected = {Path(rel).name for rel in DOCS}
    for f in folders:
        files = Counter(
            str(x.get("original_file_name") or x.get("file_name"))
            for x in _get(api, f"/v1/folders/{f['id']}/files", limit=1000)
        )
        for name in sorted(expected):
            if files[name] == 0:
                found.missing.append(f"file {name} in folder {s.folder}")
            elif files[name] > 1:
                found.duplicates.append(f"file {name} x{files[name]} in folder {s.folder}")
        found.duplicates += [f"file {n} in folder {s.folder} (a second upload)"
                             for n in files if n not in expected]  # fmt: skip

    # The identity: once, by its key, marked in its properties.
    _count(found, f"identity {s.identity}",
           [i for i in live.identities if i.get("identifier_key") == s.identity])  # fmt: skip
    for i in live.identities:
        props = {p.get("key"): p.get("value") for p in i.get("properties") or ()}
        if "letta_apply" not in props:
            found.orphans.append(f"identity {i['identifier_key']} ({i['id']}) carries no mark")
        if i.get("identifier_key") != s.identity:
            found.orphans.append(f"identity {i['identifier_key']} ({i['id']}) is not declared")

    # The lock: no record left once a run succeeded; one serial at most.
    for b in live.locks:
        if b.get("label") != "letta-apply-stack":
            holder = json.dumps((b.get("metadata") or {}).get("letta_apply_lock"))
            found.orphans.append(f"lock record {b['id']} left: {holder}")
    if len(live.serials) > 1:
        found.duplicates.append(f"{len(live.serials)} serial blocks")
    return found, live


def leftovers(api: httpx.Client, s: Stack, before: Live | None) -> list[str]:
    """What of the stack is still on the server (after a destroy): should be nothing."""
    known_agents = {a["id"] for a in before.agents} if before else set()
    live = look(api, s, known_agents)
    left = [f"block {b.get('label')} ({b['id']}) tagged {s.tag}" for b in live.blocks]
    left += [f"block {b.get('label')} ({b['id']}) tagged letta-apply-lock:{s.name}"
             for b in live.locks]  # fmt: skip
    left += [f"block {b.get('label')} ({b['id']}) tagged letta-apply-serial:{s.name}"
             for b in live.serials]  # fmt: skip
    left += [f"agent {a.get('name')} ({a['id']})" for a in live.agents]
    left += [f"group {g['id']} ({g.get('description')!r})" for g in live.groups]
    left += [f"identity {i.get('identifier_key')} ({i['id']})" for i in live.identities]
    left += [f"MCP server {m.get('server_name')} ({m['id']})" for m in live.mcp_servers]
    left += [f"folder {f.get('name')} ({f['id']})" for f in live.folders]
    left += [f"archive {a.get('name')} ({a['id']})" for a in live.archives]
    if before is not None:
        listed = live.ids()
        for b in {b["id"]: b for a in before.agents for b in a.get("blocks") or ()}.values():
            if b["id"] not in listed and api.get(f"/v1/blocks/{b['id']}").status_code == 200:
                left.append(f"block {b.get('label')} ({b['id']}) of agent (deleted) left untagged")
    return left


def scrub(api: httpx.Client, s: Stack) -> None:
    """Delete whatever of the stack is left, whoever made it (best effort, never fails)."""
    try:
        live = look(api, s)
        for g in live.groups:
            api.delete(f"/v1/groups/{g['id']}")
        for a in live.agents:
            api.delete(f"/v1/agents/{a['id']}")
        blocks = {b["id"] for b in live.blocks + live.locks + live.serials}
        blocks |= {b["id"] for a in live.agents for b in a.get("blocks") or ()}
        for bid in blocks:
            api.delete(f"/v1/blocks/{bid}")
        for m in live.mcp_servers:
            api.delete(f"/v1/mcp-servers/{m['id']}")
        for f in live.folders:
            api.delete(f"/v1/folders/{f['id']}")
        for a in live.archives:
            api.delete(f"/v1/archives/{a['id']}")
        for i in live.identities:
            api.delete(f"/v1/identities/{i['id']}")
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        pass


# ----------------------------------------------------------------------------------------------
# Running letta-apply as a user does


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path
    args: tuple[str, ...]

    def finish(self, timeout: float = RUN_TIMEOUT) -> Result:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            code = -999
        return Result(code, self.out.read_text(errors="replace"),
                      self.err.read_text(errors="replace"))  # fmt: skip

    def kill(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(60)


def errors_of(r: Result) -> str:
    """The lines of a failed run that say why (its error lines, else its last lines)."""
    if r.code == -999:
        return f"did not finish within {RUN_TIMEOUT:.0f} s"
    lines = [ln for ln in r.err.splitlines() if "error" in ln.lower() or "refus" in ln.lower()]
    lines = lines or (r.err.strip().splitlines() + r.out.strip().splitlines())[-6:]
    return " | ".join(ln.strip() for ln in lines[:8])


@dataclass
class Outcome:
    """What one crash case found; `ok` when nothing was wrong."""

    case: str
    operation: str  # the operation killed: apply or destroy
    boundary: int | None = None  # the request after which it was killed
    of: int | None = None  # R: requests of the reference run of that operation
    request: str | None = None  # method and path of the held request
    killed_after_s: float | None = None
    recovery_runs: int | None = None  # plain re-runs needed (None: wedged)
    recovery: list[str] = field(default_factory=list)  # each re-run: exit code and why
    wedged: str = ""
    duplicates: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    converged_writes: int | None = None  # writes of the further apply (should be 0)
    not_converged: str = ""
    destroy_left: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # anything else (the survivor, a setup)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.wedged or self.duplicates or self.orphans or self.missing
                    or self.not_converged or self.destroy_left or self.errors)  # fmt: skip

    def where(self) -> str:
        if self.boundary is not None:
            at = f"at {self.request or f'request {self.boundary}'} of {self.of}"
        elif self.killed_after_s is not None:
            at = f"after {self.killed_after_s:.2f} s ({self.request or 'no request yet'})"
        else:
            return f"[{self.case}] {self.operation}, not killed"
        return f"[{self.case}] {self.operation} killed {at}"

    def report(self) -> str:
        lines = [self.where()]
        if self.wedged:
            lines.append(f"  WEDGED: {self.wedged}")
        for label, items in (("DUPLICATE", self.duplicates), ("ORPHAN", self.orphans),
                             ("MISSING", self.missing), ("LEFT AFTER DESTROY", self.destroy_left),
                             ("ERROR", self.errors)):  # fmt: skip
            lines += [f"  {label}: {x}" for x in items]
        if self.not_converged:
            lines.append(f"  NOT CONVERGED: {self.not_converged}")
        lines += [f"  recovery {x}" for x in self.recovery]
        lines += [f"  note: {x}" for x in self.notes]
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


OUTCOMES: list[Outcome] = []
REFERENCE_SEQUENCES: list[list[Seen]] = [[], []]  # the reference apply's and destroy's requests


@dataclass
class Reference:
    """The uninterrupted runs that size the sweep."""

    apply: list[Seen]
    destroy: list[Seen]
    apply_seconds: float
    destroy_seconds: float
    outcome: Outcome


class Harness:
    def __init__(self, api: httpx.Client, proxy: CrashProxy, server: str, root: Path,
                 endpoint: str) -> None:  # fmt: skip
        self.api, self.proxy, self.server, self.root, self.endpoint = (
            api, proxy, server, root, endpoint,
        )  # fmt: skip
        self.counter = 0

    def stack(self) -> Stack:
        return Stack.write(self.root, self.endpoint)

    def start(self, *args: str, url: str | None = None) -> Proc:
        self.counter += 1
        out = self.root / f"run-{self.counter}.out"
        err = self.root / f"run-{self.counter}.err"
        argv = (*args, "--base-url", url or self.proxy.url, "-v")
        if args[0] in ("apply", "destroy"):
            argv += ("--lock-timeout", LOCK_TIMEOUT)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
        with out.open("wb") as o, err.open("wb") as e:
            popen = subprocess.Popen(
                [sys.executable, "-m", "letta_apply.cli", *argv], stdout=o, stderr=e, env=env,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        return Proc(popen, out, err, argv)

    def run(self, *args: str, url: str | None = None) -> Result:
        return self.start(*args, url=url).finish()

    def op(self, operation: str, s: Stack, *extra: str, url: str | None = None) -> Result:
        return self.run(operation, "-f", s.path, "--auto-approve", *extra, url=url)

    def kill_at(self, p: Proc, o: Outcome, ref: list[Seen] | None = None) -> bool:
        """Wait for the armed proxy to hold its request, kill `p` (SIGKILL), release the
        proxy. False when the run ended before reaching the boundary."""
        deadline = time.monotonic() + RUN_TIMEOUT
        while not self.proxy.held.wait(0.05):
            if p.popen.poll() is not None or time.monotonic() > deadline:
                break
        reached = self.proxy.held.is_set()
        if reached:
            p.kill()
            held = self.proxy.held_request
            o.request = f"request {o.boundary} ({held.method} {held.path})" if held else None
            if held and ref and o.boundary and o.boundary <= len(ref):
                was = ref[o.boundary - 1]
                if (was.method, _shape(was.path)) != (held.method, _shape(held.path)):
                    o.notes.append(f"the reference run's request {o.boundary} was {was.method} "
                                   f"{was.path}")  # fmt: skip
        self.proxy.release()
        if not reached:
            r = p.finish()
            o.notes.append(f"the run ended (exit {r.code}) after {len(self.proxy.seen)} requests, "
                           f"before request {o.boundary}: not killed")  # fmt: skip
        return reached

    def recover(self, operation: str, s: Stack, o: Outcome) -> bool:
        """Plain re-runs of `operation`, at most RECOVERY_RUNS, until one succeeds."""
        last = ""
        for attempt in range(1, RECOVERY_RUNS + 1):
            r = self.op(operation, s)
            why = errors_of(r) if r.code else ""
            shown = "the same error" if why and why == last else why
            o.recovery.append(f"{operation} {attempt}: exit {r.code}"
                              + (f": {shown}" if shown else ""))  # fmt: skip
            if r.code == 0:
                o.recovery_runs = attempt
                return True
            last = why
        o.wedged = f"{RECOVERY_RUNS} plain `{operation}` runs failed: {last}"
        # What stands behind the first wedge: `plan` takes no lock, and shows whether the stack
        # as left could be planned at all (a resource it refuses, say). Looked at, not a re-run.
        plan = self.run("plan", "-f", s.path, *(("--destroy",) if operation == "destroy" else ()))
        if plan.code != 0:
            o.wedged += f"; and `plan` exits {plan.code}: {errors_of(plan)}"
        return False

    def verify_converged(self, s: Stack, o: Outcome) -> Live:
        """The stack as declared, exactly; a further apply writes nothing; destroy leaves
        nothing."""
        found, live = examine(self.api, s)
        o.duplicates += found.duplicates
        o.orphans += found.orphans
        o.missing += found.missing
        again = self.op("apply", s)
        if again.code != 0:
            o.not_converged = f"a further apply exited {again.code}: {errors_of(again)}"
        else:
            o.converged_writes = again.writes
            if again.writes:
                changes = [ln.strip() for ln in again.out.splitlines()
                           if ln.strip().startswith(("+", "~", "-", "-/+"))]  # fmt: skip
                o.not_converged = (f"a further apply made {again.writes} writes: "
                                   + " | ".join(changes[:8]))  # fmt: skip
        return live

    def no_false_drift(self, s: Stack, o: Outcome) -> None:
        """Right after a kill: nothing shows as deleted on the server, since only letta-apply
        deleted anything (the stack's record never names what a run is taking away)."""
        r = self.run("drift", "-f", s.path, "--format", "json")
        if r.code not in (0, 2):
            o.errors.append(f"drift after the kill exited {r.code}: {errors_of(r)}")
            return
        wrong = [d["address"] for d in json.loads(r.out)["drift"] if d["kind"] == "deleted"]
        if wrong:
            o.errors.append("drift after the kill says deleted on the server, though only "
                            "letta-apply deleted: " + ", ".join(wrong))  # fmt: skip

    def recover_and_verify(self, s: Stack, o: Outcome) -> Live:
        """Plain applies until one succeeds (at most RECOVERY_RUNS), then the converged checks;
        when none succeeds (wedged), what is duplicated or orphaned all the same."""
        if self.recover("apply", s, o):
            return self.verify_converged(s, o)
        found, live = examine(self.api, s)
        o.duplicates += found.duplicates
        o.orphans += found.orphans
        return live

    def verify_destroyed(self, s: Stack, o: Outcome, before: Live | None) -> None:
        d = self.op("destroy", s)
        if d.code != 0:
            why = errors_of(d)
            if why in o.wedged:
                why = "the error that wedged the recovery"
            o.errors.append(f"destroy exited {d.code}: {why}")
        o.destroy_left += leftovers(self.api, s, before)


_ID = re.compile(r"[a-z_]+-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _shape(path: str) -> str:
    """A request path with its resource ids left out (ids differ from stack to stack)."""
    return _ID.sub("{id}", path)


def _record(o: Outcome, started: float) -> Outcome:
    o.seconds = round(time.monotonic() - started, 1)
    OUTCOMES.append(o)
    return o


def apply_killed_at(h: Harness, n: int, ref: Reference) -> Outcome:
    started = time.monotonic()
    s = h.stack()
    o = Outcome(f"apply@{n}", "apply", boundary=n, of=len(ref.apply))
    try:
        h.proxy.arm(n)
        p = h.start("apply", "-f", s.path, "--auto-approve", "--parallelism", "1")
        h.kill_at(p, o, ref.apply)
        h.no_false_drift(s, o)
        before = h.recover_and_verify(s, o)
        h.verify_destroyed(s, o, before)
    finally:
        h.proxy.release()
        scrub(h.api, s)
    return _record(o, started)


def destroy_killed_at(h: Harness, n: int, ref: Reference) -> Outcome:
    started = time.monotonic()
    s = h.stack()
    o = Outcome(f"destroy@{n}", "destroy", boundary=n, of=len(ref.destroy))
    try:
        first = h.op("apply", s)
        if first.code != 0:
            o.errors.append(f"the apply before the destroy exited {first.code}: "
                            f"{errors_of(first)}")  # fmt: skip
        before = look(h.api, s)
        h.proxy.arm(n)
        p = h.start("destroy", "-f", s.path, "--auto-approve", "--parallelism", "1")
        h.kill_at(p, o, ref.destroy)
        h.no_false_drift(s, o)
        h.recover("destroy", s, o)
        o.destroy_left += leftovers(h.api, s, before)
    finally:
        h.proxy.release()
        scrub(h.api, s)
    return _record(o, started)


def _last_request(seen: list[Seen]) -> str:
    if not seen:
        return "no request sent yet"
    last = seen[-1]
    state = "answered" if last.answered else "in flight"
    return f"{len(seen)} requests sent, the last {state}: {last.method} {last.path}"


def apply_killed_after(h: Harness, delay: float, index: int) -> Outcome:
    started = time.monotonic()
    s = h.stack()
    o = Outcome(f"random#{index}", "apply", killed_after_s=round(delay, 3))
    try:
        h.proxy.arm(None)
        p = h.start("apply", "-f", s.path, "--auto-approve")
        ended = False
        try:
            p.popen.wait(delay)
            ended = True
        except subprocess.TimeoutExpired:
            p.kill()
        o.request = _last_request(list(h.proxy.seen))
        if ended:
            o.notes.append(f"the run ended (exit {p.popen.returncode}) before {delay:.2f} s: "
                           "not killed")  # fmt: skip
        before = h.recover_and_verify(s, o)
        h.verify_destroyed(s, o, before)
    finally:
        scrub(h.api, s)
    return _record(o, started)


def two_applies_one_killed(h: Harness, how: str, ref: Reference, seed: int) -> Outcome:
    """Run A through the proxy and B straight to the server, at once; kill A (held at a write
    boundary while B waits, or after a random delay). B must finish, with no duplicate; then
    plain applies converge."""
    started = time.monotonic()
    rng = random.Random(f"race-{how}-{seed}")
    s = h.stack()
    o = Outcome(f"race-{how}#{seed}", "apply")
    try:
        args = ("apply", "-f", s.path, "--auto-approve")
        if how == "held":
            writes = [x.n for x in ref.apply if x.write][2:]  # past taking the lock
            o.boundary, o.of = rng.choice(writes), len(ref.apply)
            h.proxy.arm(o.boundary)
            a = h.start(*args, "--parallelism", "1")
            deadline = time.monotonic() + RUN_TIMEOUT
            while not h.proxy.held.wait(0.05) and a.popen.poll() is None:
                assert time.monotonic() < deadline, "run A never reached its boundary"
            b = h.start(*args, url=h.server)
            time.sleep(3.0)  # B plans, and finds the stack locked by A (alive, held)
            if h.kill_at(a, o, ref.apply):
                o.notes.append("B was started while A held its request, and waited for A")
        else:
            delay = rng.uniform(0.3, max(0.5, ref.apply_seconds))
            o.killed_after_s = round(delay, 3)
            h.proxy.arm(None)
            a = h.start(*args)
            b = h.start(*args, url=h.server)
            try:
                a.popen.wait(delay)
                o.notes.append(f"A ended (exit {a.popen.returncode}) before {delay:.2f} s")
            except subprocess.TimeoutExpired:
                a.kill()
            o.request = _last_request(list(h.proxy.seen))
        survivor = b.finish()
        if survivor.code != 0:
            o.errors.append(f"the surviving run B exited {survivor.code}: {errors_of(survivor)}")
        found, _ = examine(h.api, s)
        o.duplicates += found.duplicates  # no duplicate, before any recovery
        before = h.recover_and_verify(s, o)
        o.duplicates = sorted(set(o.duplicates))
        h.verify_destroyed(s, o, before)
    finally:
        h.proxy.release()
        scrub(h.api, s)
    return _record(o, started)


# ----------------------------------------------------------------------------------------------
# Fixtures and the choice of boundaries


@pytest.fixture(scope="module")
def crash_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


@pytest.fixture(scope="module")
def crash_proxy(server: str) -> Iterator[CrashProxy]:
    # Behind the session's own proxy, so that the contract test sees these requests too.
    p = CrashProxy(httpx.URL(server).port or 80).start()
    yield p
    p.stop()
    assert not p.errors, f"the crash proxy failed on requests: {p.errors}"


@pytest.fixture(scope="module")
def crash_api(server: str) -> Iterator[httpx.Client]:
    """The tests' own look at the server, straight to it (never through letta-apply)."""
    with httpx.Client(base_url=BASE_URL, timeout=120,
                      headers={"User-Agent": "letta-apply-tests"}) as c:  # fmt: skip
        yield c


@pytest.fixture(scope="module")
def harness(
    crash_api: httpx.Client, crash_proxy: CrashProxy, server: str, crash_root: Path,
    endpoint: str,
) -> Iterator[Harness]:  # fmt: skip
    started = time.monotonic()
    yield Harness(crash_api, crash_proxy, server, crash_root, endpoint)
    _write_summary(time.monotonic() - started)


@pytest.fixture(scope="module")
def reference(harness: Harness) -> Reference:
    """A cold apply and a destroy of a fresh stack, uninterrupted, counted by the proxy."""
    started = time.monotonic()
    s = harness.stack()
    o = Outcome("reference", "apply, then destroy")
    try:
        harness.proxy.arm(None)
        t = time.monotonic()
        r = harness.op("apply", s, "--parallelism", "1")
        apply_seconds = time.monotonic() - t
        applied = list(harness.proxy.seen)
        if r.code != 0:
            o.errors.append(f"the reference apply exited {r.code}: {errors_of(r)}")
        before = harness.verify_converged(s, o)
        harness.proxy.arm(None)
        t = time.monotonic()
        d = harness.op("destroy", s, "--parallelism", "1")
        destroy_seconds = time.monotonic() - t
        destroyed = list(harness.proxy.seen)
        if d.code != 0:
            o.errors.append(f"the reference destroy exited {d.code}: {errors_of(d)}")
        o.destroy_left += leftovers(harness.api, s, before)
    finally:
        scrub(harness.api, s)
    o.notes.append(
        f"apply: {len(applied)} requests ({sum(x.write for x in applied)} writes) in "
        f"{apply_seconds:.1f} s; destroy: {len(destroyed)} requests "
        f"({sum(x.write for x in destroyed)} writes) in {destroy_seconds:.1f} s"
    )
    _record(o, started)
    REFERENCE_SEQUENCES[:] = [applied, destroyed]
    assert applied and destroyed, o.report()
    return Reference(applied, destroyed, apply_seconds, destroy_seconds, o)


def sample_apply_boundaries(ref: Reference) -> list[int]:
    """Seeded: one boundary just after a create whose mark a later request writes, one after
    another write, one anywhere."""
    rng = random.Random(f"apply-{SEED}")
    marked_after = [x.n for x in ref.apply if x.method == "POST" and x.path in MARKED_AFTER]
    marked_after += [x.n for x in ref.apply if x.method == "POST" and x.path.endswith("/upload")]
    writes = [x.n for x in ref.apply if x.write and x.n not in marked_after]
    picked = [rng.choice(marked_after)] if marked_after else []
    picked.append(rng.choice([n for n in writes if n not in picked]))
    picked.append(rng.choice([n for n in range(1, len(ref.apply) + 1) if n not in picked]))
    return picked


def boundaries(operation: str, part: int, ref: Reference) -> list[int]:
    """The boundaries test `part` of `operation` covers."""
    named = APPLY_AT if operation == "apply" else DESTROY_AT
    if named:
        return [named[part]]
    seq = ref.apply if operation == "apply" else ref.destroy
    if SWEEP:
        return [n for n in range(1, len(seq) + 1) if (n - 1) % SLOTS == part]
    if operation == "apply":
        return [sample_apply_boundaries(ref)[part]]
    writes = [x.n for x in seq if x.write]
    return [random.Random(f"destroy-{SEED}").choice(writes)]


def _parts(operation: str) -> list[str]:
    named = APPLY_AT if operation == "apply" else DESTROY_AT
    if named:
        return [f"{operation}@{n}" for n in named]
    if SWEEP:
        return [f"{operation}-part{k + 1}of{SLOTS}" for k in range(SLOTS)]
    return [f"{operation}-sample{k + 1}" for k in range(3 if operation == "apply" else 1)]


def _check(outcomes: list[Outcome]) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        pytest.fail(
            f"{len(failed)} of {len(outcomes)} crash case(s) went wrong:\n\n"
            + "\n\n".join(o.report() for o in failed),
            pytrace=False,
        )


def _write_summary(seconds: float) -> None:
    cases = [o for o in OUTCOMES if o.case != "reference"]
    totals = {
        "cases": len(cases),
        "ok": sum(o.ok for o in cases),
        "wedged": sum(bool(o.wedged) for o in cases),
        "with_orphans": sum(bool(o.orphans) for o in cases),
        "with_duplicates": sum(bool(o.duplicates) for o in cases),
        "with_missing": sum(bool(o.missing) for o in cases),
        "not_converged": sum(bool(o.not_converged) for o in cases),
        "left_after_destroy": sum(bool(o.destroy_left) for o in cases),
        "recovery_runs": dict(sorted(Counter(str(o.recovery_runs) for o in cases).items())),
    }
    if cases:
        SESSION.summary.append(
            f"crash cases: {totals['ok']} of {totals['cases']} converged cleanly; "
            f"{totals['wedged']} wedged, {totals['with_orphans']} with orphans, "
            f"{totals['with_duplicates']} with duplicates, {totals['left_after_destroy']} left "
            f"something after destroy ({seconds:.0f} s)"
        )
    if not JSON_OUT:
        return
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    ref = next((o for o in OUTCOMES if o.case == "reference"), None)
    doc = {
        "commit": commit,
        "sweep": "all" if SWEEP else "sample",
        "seed": SEED,
        "random_kills": RANDOM_KILLS,
        "lock_timeout": float(LOCK_TIMEOUT),
        "seconds": round(seconds, 1),
        "reference": ref.summary() if ref else None,
        "apply_requests": [f"{x.method} {_shape(x.path)}" for x in REFERENCE_SEQUENCES[0]],
        "destroy_requests": [f"{x.method} {_shape(x.path)}" for x in REFERENCE_SEQUENCES[1]],
        "totals": totals,
        "cases": [o.summary() for o in cases],
    }
    path = Path(JSON_OUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# The tests


def test_an_uninterrupted_run_converges_and_destroy_leaves_nothing(reference: Reference) -> None:
    """The yardstick: with no kill, the checks the crash cases face all pass."""
    o = reference.outcome
    assert len(reference.apply) > 20 and sum(x.write for x in reference.destroy) > 5, o.report()
    assert o.converged_writes == 0 or o.not_converged, o.report()
    _check([o])


@pytest.mark.parametrize("part", range(len(_parts("apply"))), ids=_parts("apply"))
def test_apply_killed_at_a_request_boundary(
    harness: Harness, reference: Reference, part: int
) -> None:
    _check([apply_killed_at(harness, n, reference) for n in boundaries("apply", part, reference)])


@pytest.mark.parametrize("part", range(len(_parts("destroy"))), ids=_parts("destroy"))
def test_destroy_killed_at_a_request_boundary(
    harness: Harness, reference: Reference, part: int
) -> None:
    found = [destroy_killed_at(harness, n, reference)
             for n in boundaries("destroy", part, reference)]  # fmt: skip
    _check(found)


@pytest.mark.parametrize(
    "index", range(RANDOM_KILLS), ids=[f"random{i}" for i in range(RANDOM_KILLS)]
)
def test_apply_killed_at_a_random_instant(
    harness: Harness, reference: Reference, index: int
) -> None:
    rng = random.Random(f"random-{SEED}-{index}")
    # The reference ran at --parallelism 1; a run at the default is quicker.
    delay = rng.uniform(0.1, 0.9 * reference.apply_seconds)
    _check([apply_killed_after(harness, delay, index)])


# The default run keeps the deterministic race (the suite's time is counted); the sweep adds
# runs killed at random while the other waits.
RACES = ["held"] if not SWEEP else [f"{how}-{i}" for how in ("held", "random")
                                    for i in range(3)]  # fmt: skip


@pytest.mark.parametrize("race", RACES)
def test_two_applies_at_once_one_killed(harness: Harness, reference: Reference, race: str) -> None:
    how, _, n = race.partition("-")
    _check([two_applies_one_killed(harness, how, reference, SEED + int(n or 0))])
