"""Carry out a plan's changes through the client, stage by stage, in parallel within a stage.

Stages follow dependencies: shared blocks, then agents (each created in one request with its own
blocks, shared block ids, tags and marks) and their own blocks, then attaches and detaches. On the
first failure no new work starts; work in flight finishes; the error says what was done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from .client import LettaClient
from .errors import ApiError, ApplyError
from .marks import tool_rules_update
from .model import is_base_tool_type, owned_block_address
from .plan import (
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


class _Runner:
    def __init__(self, client: LettaClient, ids: dict[str, str], on_done: OnDone) -> None:
        self.client = client
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
            rid = c.create_block(body)["id"]
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

    def _create_agent(self, change: Change, body: dict[str, Any]) -> str:
        created = self.client.create_agent(body)
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
    runner = _Runner(client, dict(plan.ids), on_done)
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
    attempted = 0
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for _, group in groupby(changes, key=lambda c: c.stage):
            futures: dict[Future[Done | None], Change] = {pool.submit(run, c): c for c in group}
            for f in as_completed(futures):
                exc = f.exception()
                if exc is None:
                    result = f.result()
                    if result is not None:
                        done.append(result)
                        attempted += 1
                elif isinstance(exc, ApiError):
                    failures.append(f"{_describe(futures[f])}: {exc}")
                    attempted += 1
                else:
                    raise exc
            if failures:
                break
    if failures:
        raise ApplyError(failures, done=len(done), not_attempted=len(changes) - attempted)
    return done


def _describe(change: Change) -> str:
    if change.block:
        return f"{change.address}: {change.action} {change.block}"
    return f"{change.address}: {change.action}"
