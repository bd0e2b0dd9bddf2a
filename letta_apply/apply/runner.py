"""Carry out a plan's changes through the client, stage by stage, in parallel within a stage.

Stages follow dependencies: shared blocks, then agents (each created in one request with its own
blocks, shared block ids, tags and marks) and their own blocks, then attaches and detaches. On the
first failure no new work starts; work in flight finishes; the error says what was done, what
failed and what was not attempted.

No duplicates: a create that failed ambiguously is first looked up by its marks (stack tag,
stack and address in metadata) and adopted when the server did make it. After every create the
resources carrying the same address are listed: should another run have made one too (two
applies at once without the lock), the oldest wins and the others are deleted by their makers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from ..errors import ApiError, ApplyError
from ..model import MARK_KEY, is_base_tool_type, owned_block_address, stack_tag
from ..plan.marks import tool_rules_update
from ..plan.planner import (
    ATTACH,
    CREATE,
    DELETE,
    DETACH,
    IMPORT,
    REPLACE,
    UPDATE,
    Change,
    Plan,
)
from ..server.client import LettaClient


@dataclass(frozen=True)
class Done:
    """A change that was made, with the id of the resource it made or changed."""

    change: Change
    remote_id: str


OnDone = Callable[[Done], None]
OnFailed = Callable[[Change, BaseException], None]


def _resolve(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$ref"}:
            return ids[value["$ref"]]
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    return value


def _carries(resource: Mapping[str, Any], stack: str, address: str) -> bool:
    mark = (resource.get("metadata") or {}).get(MARK_KEY)
    return isinstance(mark, Mapping) and (mark.get("stack"), mark.get("address")) == (
        stack,
        address,
    )


class _Runner:
    def __init__(
        self, client: LettaClient, stack: str, ids: dict[str, str], on_done: OnDone
    ) -> None:
        self.client = client
        self.stack = stack
        self.tag = stack_tag(stack)
        self.ids = ids
        self.on_done = on_done
        self.lock = threading.Lock()

    def run(self, change: Change) -> Done:
        body = _resolve(dict(change.body), self.ids)
        c = self.client
        rid = change.remote_id or ""
        if change.is_tool:
            rid = self._tool(change, body)
        elif change.action in (CREATE, REPLACE) and change.is_agent:
            replaces = body.pop("replaces", None)
            rid = self._create_agent(change, body)
            if replaces:
                # Create-first: the new agent exists, wired to its blocks, before the old goes.
                c.delete_agent(replaces["agent"])
                for block_id in replaces["blocks"]:
                    c.delete_block(block_id)
        elif change.action == CREATE:
            rid = self._create_block(change, body)
            with self.lock:
                self.ids[change.address] = rid
        elif change.action in (UPDATE, IMPORT):
            (c.update_agent if change.is_agent else c.update_block)(rid, body)
        elif change.action == DELETE:
            (c.delete_agent if change.is_agent else c.delete_block)(rid)
        elif change.action in (ATTACH, DETACH):
            assert change.block
            # `block` is an address, or the id of a block the stack does not manage.
            agent_id, block_id = self.ids[change.address], self.ids.get(change.block, change.block)
            (c.attach_block if change.action == ATTACH else c.detach_block)(agent_id, block_id)
            rid = block_id
        else:  # pragma: no cover - the planner makes no other actions
            raise ValueError(change.action)
        done = Done(change, rid)
        self.on_done(done)
        return done

    def _tool(self, change: Change, body: dict[str, Any]) -> str:
        c = self.client
        rid = change.remote_id or ""
        if change.action == DELETE:
            c.delete_tool(rid)
        elif change.action == CREATE:
            name, marks = body.pop("name"), body.pop("metadata_")
            # Letta's create overwrites a tool of the same name: look right before, so that a
            # tool made since the plan is refused rather than taken over.
            if c.list_tools([name]):
                raise ApiError(
                    f"a tool named {name!r} now exists on the server; not overwritten, plan again",
                    method="POST",
                    path="/v1/tools/",
                )
            rid = c.create_tool(body)["id"]
            c.update_tool(rid, {"metadata_": marks})
            with self.lock:
                self.ids[change.address] = rid
        else:
            if "source_code" in body:
                # A PATCH with new source keeps the old JSON schema: derive the new one first.
                body["json_schema"] = c.tool_schema(body["source_code"])
            c.update_tool(rid, body)
        return rid

    def _create_block(self, change: Change, body: Mapping[str, Any]) -> str:
        def candidates() -> list[dict[str, Any]]:
            found = self.client.list_blocks(self.tag, label=body["label"])
            return [b for b in found if _carries(b, self.stack, change.address)]

        created = self.client.create_block(body, find=lambda: next(iter(candidates()), None))
        winner = self._settle(created, candidates())
        if winner is not created:
            self.client.delete_block(created["id"])
        return str(winner["id"])

    def _agent_candidates(self, change: Change, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Agents carrying the change's address (for a replacement: the replacements of the
        same agent), oldest first. One narrow list call, by stack tag and name."""
        replaces = body["metadata"][MARK_KEY].get("replaces")
        found = self.client.list_agents(
            tag=self.tag, name=body["name"], include=("agent.blocks", "agent.tags")
        )
        return [
            a for a in found
            if _carries(a, self.stack, change.address)
            and (a["metadata"][MARK_KEY].get("replaces") == replaces or not replaces)
        ]  # fmt: skip

    @staticmethod
    def _settle(created: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any]:
        """The resource to keep when more than one carries an address: the oldest (list
        order). Every run that made one computes the same winner, so each deletes only its own."""
        if not candidates or candidates[0]["id"] == created["id"]:
            return created
        return candidates[0]

    def _create_agent(self, change: Change, body: dict[str, Any]) -> str:
        created = self.client.create_agent(
            body, find=lambda: next(iter(self._agent_candidates(change, body)), None)
        )
        winner = self._settle(created, self._agent_candidates(change, body))
        if winner is not created:
            # Another run made this agent first: keep theirs, delete ours and its own blocks.
            self.client.delete_agent(created["id"])
            for b in created.get("blocks") or ():
                if b["id"] not in {w["id"] for w in winner.get("blocks") or ()}:
                    self.client.delete_block(b["id"])
            created = winner
        rid: str = created["id"]
        with self.lock:
            self.ids[change.address] = rid
            for b in created.get("blocks") or ():
                self.ids[owned_block_address(change.address, b["label"])] = b["id"]
        self._fix_owned_metadata(change, created)
        self._fix_tool_rules(body, created)
        return rid

    def _fix_tool_rules(self, body: Mapping[str, Any], created: Mapping[str, Any]) -> None:
        # Letta adds loop rules for its base tools to the declared ones, even on tools the
        # declared rules already govern: write the declared rules back for those.
        if "tool_rules" not in body:
            return
        base = [
            t["name"]
            for t in created.get("tools") or ()
            if is_base_tool_type(t.get("tool_type") or "custom")
        ]
        update = tool_rules_update(body["tool_rules"], created.get("tool_rules") or (), base)
        if update is not None:
            self.client.update_agent(created["id"], {"tool_rules": update[1]})

    def _fix_owned_metadata(self, change: Change, created: Mapping[str, Any]) -> None:
        # Letta drops `metadata` of blocks created inline with an agent; set it afterwards.
        wanted = {b["label"]: b.get("metadata") for b in change.body.get("memory_blocks", ())}
        for b in created.get("blocks") or ():
            md = wanted.get(b["label"])
            if md and b.get("metadata") != md:
                self.client.update_block(b["id"], {"metadata": md})


def apply_plan(
    client: LettaClient,
    plan: Plan,
    *,
    parallelism: int = 8,
    on_done: OnDone = lambda d: None,
    on_failed: OnFailed = lambda c, e: None,
) -> list[Done]:
    """Execute `plan` against the server, calling `on_done` as each change completes and
    `on_failed` as one fails (both from worker threads). Raises ApplyError naming what failed,
    what was done and what was not attempted."""
    runner = _Runner(client, plan.stack, dict(plan.ids), on_done)
    stop = threading.Event()  # set on the first failure: queued work then never starts

    def run(change: Change) -> Done | None:
        if stop.is_set():
            return None
        try:
            return runner.run(change)
        except BaseException as e:
            stop.set()
            on_failed(change, e)
            raise

    done: list[Done] = []
    failures: list[str] = []
    changes = list(plan.changes)
    attempted: set[int] = set()
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for _, group in groupby(range(len(changes)), key=lambda i: changes[i].stage):
            futures = {pool.submit(run, changes[i]): i for i in group}
            for f in as_completed(futures):
                exc = f.exception()
                if exc is None:
                    result = f.result()
                    if result is not None:
                        done.append(result)
                        attempted.add(futures[f])
                elif isinstance(exc, ApiError):
                    failures.append(f"{_describe(changes[futures[f]])}: {exc}")
                    attempted.add(futures[f])
                else:
                    raise exc
            if failures:
                break
    if failures:
        skipped = [_describe(c) for i, c in enumerate(changes) if i not in attempted]
        raise ApplyError(failures, done=len(done), not_attempted=len(skipped), skipped=skipped)
    return done


def _describe(change: Change) -> str:
    if change.block:
        return f"{change.address}: {change.action} {change.block}"
    return f"{change.address}: {change.action}"
