"""Where a command writes, and how: the output streams, format and colors, the server client
it talks through (with its request counts), and how a plan is shown."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Protocol, TextIO

from ..core.changes import Plan
from ..core.model import Desired
from ..core.sensitive import Masker, mask_plan
from ..memory.backup import Backups
from ..plan import planfile
from ..plan.graph import stack_graph
from ..render.markdown import plan_markdown
from ..render.text import colorize, plan_text
from ..server.client import DEFAULT_MAX_CONNECTIONS, LettaClient
from ..server.lock import StackLock
from ..server.retry import RetryPolicy
from ..server.urls import url_secrets


class Stream(Protocol):
    """What a command writes to: standard output or error (a text stream, or the stream that
    masks secrets in everything written to one: core.sensitive.MaskedStream)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...

    def isatty(self) -> bool: ...


ClientFactory = Callable[..., LettaClient]
"""Makes the client a command talks through: `factory(base_url, **options)`, like LettaClient."""


class Out:
    """Where a command writes, and how: format, colors, request counts."""

    def __init__(
        self,
        args: argparse.Namespace,
        out: Stream,
        err: Stream,
        masker: Masker | None = None,
        *,
        client_factory: ClientFactory = LettaClient,
        stdin: TextIO | None = None,
    ) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.masker = masker if masker is not None else Masker()
        self.client_factory = client_factory
        self.stdin = stdin if stdin is not None else sys.stdin
        self.targets_expanded = False  # --target is expanded once, by the first plan
        # export's default format depends on its -o file; completion has none.
        self.format: str = getattr(args, "format", None) or ""
        self.lock: StackLock | None = None  # the stack lock, while apply or destroy holds it
        # Where a run's deletes are saved first (None: --no-backup), and how plans say it.
        self.backups: Backups | None = None
        self.backup_note: str | None = ""
        self.color = (
            self.format == "text"
            and not getattr(args, "no_color", False)
            and "NO_COLOR" not in os.environ
            and out.isatty()
        )

    @property
    def progress_tty(self) -> bool:
        """Whether progress may redraw a line in place on stderr."""
        return self.err.isatty() and os.environ.get("TERM") != "dumb"

    def text(self, text: str) -> None:
        print(colorize(text) if self.color else text, file=self.out, flush=True)

    def json(self, doc: object) -> None:
        print(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False), file=self.out)

    def connect(self) -> LettaClient:
        a = self.args
        self.masker.add(url_secrets(a.base_url))  # the client shows the URL without them
        self.client = self.client_factory(
            a.base_url,
            api_key=a.api_key,
            project=a.project,
            timeout=a.timeout,
            # One connection per concurrent write, so that --parallelism is not capped by the pool.
            max_connections=max(getattr(a, "parallelism", 0), DEFAULT_MAX_CONNECTIONS),
            retry=RetryPolicy(max_retries=a.max_retries, max_time=a.retry_max_time),
            redact=self.masker.text,
            on_retry=lambda line: print(line, file=self.err, flush=True),
        )
        self.client.wait_timeout = getattr(a, "wait_timeout", self.client.wait_timeout)
        return self.client

    def stats(self) -> None:
        """With -v, how many requests the command made: printed whether it succeeded or not."""
        client: LettaClient | None = getattr(self, "client", None)
        if getattr(self.args, "verbose", False):
            reads, writes = (client.reads, client.writes) if client else (0, 0)
            extra = ""
            if client and client.retries:
                extra += f", {client.retries} retried"
            if client and client.adopted:
                extra += f", {client.adopted} create(s) found made after an unclear failure"
            lock = self.lock
            if lock is not None:
                # The lock's own requests are shown apart: the counts stay the cost of the work.
                reads, writes = reads - lock.reads, writes - lock.writes
                extra += f"; stack lock: {lock.reads} reads, {lock.writes} writes"
            print(f"requests: {reads} reads, {writes} writes{extra}", file=self.err)


def plan_origin(
    args: argparse.Namespace, client: LettaClient, desired: Desired | None = None
) -> planfile.Origin:
    """Where a plan was made: the server, the project and the manifest it was made from."""
    files = desired.files if desired else ()
    return planfile.Origin(client.base_url, args.project, files, desired.digest if desired else "")


def show_plan(
    o: Out,
    plan: Plan,
    origin: planfile.Origin,
    *,
    destroy: bool = False,
    desired: Desired | None = None,
) -> None:
    """Print the plan, sensitive values masked (markdown with a diagram, given `desired`)."""
    plan = mask_plan(plan, o.masker)
    if o.format == "json":
        o.out.write(planfile.dumps(plan, origin))
    elif o.format == "markdown":
        graph = stack_graph(desired, plan) if desired is not None else None
        o.out.write(plan_markdown(plan, origin.base_url, graph, o.backup_note))
    else:
        o.text(plan_text(plan, origin.base_url, destroy=destroy, backups=o.backup_note))
