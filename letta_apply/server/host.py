"""This machine, as a lock record describes its holder: who runs, where, in which boot and
process namespace, and whether a process of it still runs; and the UTC times records carry."""

from __future__ import annotations

import getpass
import os
from datetime import datetime, timezone
from pathlib import Path


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> float | None:
    """A time as `utc_now` writes it, in seconds since the epoch (None when it is not one)."""
    try:
        when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return when.replace(tzinfo=timezone.utc).timestamp()


def machine() -> str:
    """This machine's boot and this process's PID namespace: a host name alone may be shared
    (containers), and a pid means something only within one boot and one namespace. "" where
    the system does not say (then only leases recover a lock)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Whether process `pid` (on this machine) still runs; a zombie does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name (some containers)
        return "unknown"
