"""An Agent File's messages as a manifest's `initial_message_sequence` (convert --messages): the
words people and the agent exchanged, in order, as plain text.

Letta keeps more than that: the first system message is the system prompt compiled with the
memory blocks (the manifest's `system` and blocks say it already), a user's words are wrapped in
JSON with a timestamp (`{"type": "user_message", "message": ...}`), heartbeats and system alerts
are user messages Letta wrote itself, and an agent of the MemGPT kind answers with a
`send_message` tool call. Only the user's words and the agent's answers are kept."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping


def initial_messages(messages: Iterable[Mapping[str, object]]) -> list[dict[str, str]]:
    """The user and assistant messages of `messages`, as `{role, content}` in order."""
    out: list[dict[str, str]] = []
    for m in messages:
        role, text = m.get("role"), _text(m.get("content"))
        if role == "user":
            said = _user_words(text)
            if said:
                out.append({"role": "user", "content": said})
        elif role == "assistant":
            said = _sent_message(m.get("tool_calls")) or text
            if said:
                out.append({"role": "assistant", "content": said})
    return out


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(
        p["text"]
        for p in parts
        if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
    )


def _user_words(text: str) -> str:
    """What a person said: Letta wraps it with a timestamp; a heartbeat or an alert it wrote
    itself says nothing."""
    try:
        packed = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if not isinstance(packed, dict) or "type" not in packed:
        return text
    said = packed.get("message")
    return said if packed["type"] == "user_message" and isinstance(said, str) else ""


def _sent_message(calls: object) -> str:
    """The message of a `send_message` call (how MemGPT-kind agents answer), if any."""
    for call in calls if isinstance(calls, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or fn.get("name") != "send_message":
            continue
        try:
            args = json.loads(fn.get("arguments") or "")
        except (ValueError, TypeError, RecursionError):
            continue
        if isinstance(args, dict) and isinstance(args.get("message"), str):
            return str(args["message"])
    return ""
