"""What the tool kind asks the server beyond its listing: the agents using the tools a plan may
delete, and the requests that carry out a tool's changes (a create checked against a tool of the
same name made since the plan; an update of the source with the JSON schema derived from it)."""

from __future__ import annotations

import ast
import secrets

from ...core.changes import CREATE, DELETE, Change
from ...core.jsonish import JsonObject, obj, objs, text
from ...errors import ApiError, define
from ...server import routes
from ...server.client import LettaClient
from ..block.model import stack_of
from ..context import Run, Users
from .source import function_name, renamed

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA720", "ApiError", "a tool's name taken since the plan",
       "A tool of the same name was made on the server since the plan; Letta's create would "
       "overwrite it, so it was not sent.",
       "Plan again: adopt that tool with `imports:`, or rename yours.")
define("LA721", "ApiError", "a tool's source the server cannot take",
       "A tool's source to send holds no function, so the server cannot derive its schema.",
       "Check the tool's source file, then plan again.")
# fmt: on


def tool_users(client: LettaClient, ids: list[str]) -> dict[str, Users]:
    """The agents using each of the tools `ids`: Letta has no route for a tool's agents, so
    one listing of every agent with its tools."""
    out: dict[str, list[tuple[str, str, str | None]]] = {i: [] for i in ids}
    for a in client.list_agents(include=("agent.tools", "agent.tags")):
        for t in objs(a.get("tools")):
            users = out.get(text(t["id"]))
            if users is not None:
                users.append((text(a["id"]), text(a.get("name")), stack_of(a)))
    return {i: tuple(users) for i, users in out.items()}


def apply_tool(run: Run, change: Change, body: JsonObject) -> str:
    """Carry out one change of a tool; the tool's id."""
    c = run.client
    rid = change.remote_id or ""
    if change.action == DELETE:
        c.delete_tool(rid)
    elif change.action == CREATE:
        name, marks = text(body.pop("name")), body.pop("metadata_")
        # Letta's create overwrites a tool of the same name: look right before, so that a
        # tool made since the plan is refused rather than taken over.
        if c.list_tools([name]):
            raise ApiError(
                f"a tool named {name!r} now exists on the server; not overwritten, plan again",
                method="POST",
                path=routes.TOOLS.path,
                code="LA720",
            )
        rid = str(c.create_tool(body)["id"])
        c.update_tool(rid, {"metadata_": marks})
        run.record(change.address, rid)
    else:
        if "source_code" in body:
            # A PATCH with new source keeps the old JSON schema: derive the new one first.
            body["json_schema"] = derived_schema(c, text(body["source_code"]))
        c.update_tool(rid, body)
    return rid


def derived_schema(c: LettaClient, source: str) -> JsonObject:
    """The JSON schema the server derives from a tool's source, asked the way every Letta
    server answers (Letta Cloud has no generate-schema route): a scratch tool is made from the
    source under a name of its own, read and deleted. Its own name keeps the create from
    overwriting any tool (Letta's create replaces a tool of the same name)."""
    scratch_name = f"letta_apply_schema_{secrets.token_hex(6)}"
    scratch_source = renamed(source, scratch_name)
    name = function_name(ast.parse(source))
    if scratch_source is None or name is None:
        raise ApiError(
            "the tool's source holds no function",
            method="POST",
            path=routes.TOOLS.path,
            code="LA721",
        )
    made = c.create_tool({"source_code": scratch_source})
    try:
        schema = dict(obj(made.get("json_schema")))
    finally:
        c.delete_tool(str(made["id"]))
    schema["name"] = name.name
    return schema
