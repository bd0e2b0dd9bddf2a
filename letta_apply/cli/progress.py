"""Progress of a running apply, on stderr, so that stdout keeps only the stable record.

On a terminal: one line, redrawn in place (`apply: 523/1050 done, 0 failed`) and erased at the
end. Otherwise (a CI log, a file): a plain line of the same form every `interval` seconds, so a
long apply shows it is alive and a short one prints nothing extra.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .output import Stream

TTY_REFRESH = 0.1  # seconds between redraws on a terminal
PLAIN_INTERVAL = 10.0  # seconds between plain progress lines


class Progress:
    """Counts completed and failed changes out of `total` and shows the count on `stream`.
    Thread-safe: apply reports completions from its worker threads."""

    def __init__(
        self,
        stream: Stream,
        total: int,
        *,
        tty: bool,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        what: str = "apply",
    ) -> None:
        self.what = what
        self.stream = stream
        self.total = total
        self.tty = tty
        self.interval = (TTY_REFRESH if tty else PLAIN_INTERVAL) if interval is None else interval
        self.clock = clock
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._last = clock()
        self._width = 0  # of the line on screen, to blank it out

    def line(self) -> str:
        return f"{self.what}: {self.done}/{self.total} done, {self.failed} failed"

    def completed(self) -> None:
        with self._lock:
            self.done += 1
            self._show(force=self.done + self.failed == self.total)

    def failure(self) -> None:
        with self._lock:
            self.failed += 1
            self._show(force=True)  # on a terminal, a failure shows at once

    def close(self) -> None:
        """Erase the line on a terminal; the summary that follows says the same, for good."""
        with self._lock:
            if self.tty and self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
                self._width = 0

    def _show(self, *, force: bool) -> None:
        now = self.clock()
        # Off a terminal nothing is forced: the final summary follows at once.
        if now - self._last < self.interval and not (force and self.tty):
            return
        self._last = now
        text = self.line()
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
