"""Addresses of a template's instances as the manifest writes them: `agent.worker["eu"]` for a
`for_each` key, `agent.worker[0]` for a `count` index; `agent.worker[*]`, in a list, every one."""

from __future__ import annotations

import contextlib
import json
import re


def instance_key(key: str, index: str | int) -> str:
    """`worker["eu"]` for a for_each key, `worker[0]` for a count index."""
    if isinstance(index, int):
        return f"{key}[{index}]"
    return f"{key}[{json.dumps(index, ensure_ascii=False)}]"


# An instance address: the template's key, then `[index]` (a count index, a quoted key, or `*`).
INSTANCE = re.compile(r'^(?P<base>[^\[\]"]+)\[(?P<index>.*)\]$', re.S)


def normalize_address(address: str) -> str:
    """An address as the manifest names it: `agent.worker[eu]` and `agent.worker['eu']` are
    written `agent.worker["eu"]`; `[0]` stays a count index."""
    m = INSTANCE.match(address)
    if not m:
        return address
    index = m.group("index")
    if re.fullmatch(r"0|[1-9][0-9]*|\*", index):  # a count index, or every instance
        return address
    if len(index) >= 2 and index[0] == index[-1] and index[0] in "'\"":
        inner = index[1:-1]
        if index[0] == '"':
            with contextlib.suppress(ValueError):
                inner = json.loads(index)
        index = inner
    return instance_key(m.group("base"), index)


def instance_example(key: str, template: str, instances: list[str]) -> str:
    """One instance of template `key` as a manifest may name it: `w[0]`, `region[eu]`."""
    if template == "count":
        return f"{key}[0]"
    m = INSTANCE.match(instances[0]) if instances else None
    if not m:
        return f"{key}[KEY]"
    index = json.loads(m.group("index"))
    # A key that reads as a number keeps its quotes: `w[0]` is a count index.
    return f"{key}[{index}]" if re.fullmatch(r"[A-Za-z_][\w-]*", index) else instances[0]
