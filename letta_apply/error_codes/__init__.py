"""The codes of the problems users can meet, with what each means and what to do: docs/errors.md
is written from them (scripts/schemas). Importing this package registers the shared ones, a
module per step that finds them (the first digit of the code, RANGES). Each resource kind
declares the codes of its own checks and requests in its folder (LA4xx, and where they fall
elsewhere), so that a new kind touches nothing outside it. A code once given is never given to
another problem: one no longer raised moves to errors.RETIRED."""

from __future__ import annotations

# Each module registers its step's codes when imported.
from . import apply, checks, language, memory, plans, policies, reading, server, usage  # noqa: F401

RANGES = {
    "1": "reading the manifest: its files, YAML, data given to the Python API, files it names",
    "2": "the manifest language: variables, `${...}` references, for_each and count, secrets",
    "3": "checks of the manifest: its schema (a code per kind of rule), checks across it",
    "4": "each resource kind's own checks (a decade per kind, declared in the kind's folder)",
    "5": "the server: connections, its answers, projects",
    "6": "plans: saved plan files, stale plans, resources a plan refuses",
    "7": "apply and the stack lock",
    "8": "memory kept safe: backups, restore, Agent Files, export and convert",
    "9": "usage: command-line options and arguments of the Python API",
}
"""What the first digit of a code says: the step that found the problem. LA1xx to LA4xx are
found before any request is sent: nothing was read from the server or written."""
