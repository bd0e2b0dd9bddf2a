"""An HTTP proxy on 127.0.0.1 for the crash tests: it numbers the requests a letta-apply process
sends, and can stop the world after one of them.

Armed with `arm(n)`, it forwards requests 1..n to the server as they come; request n's answer is
read in full from the server (the server has acted) and then held, never delivered; requests
after n are held before they are forwarded (the server never sees them). `held` is set once
request n's answer is in: the test then kills the client (SIGKILL) and calls `release()`, which
drops every held connection. So the kill falls exactly between request n, done on the server,
and request n + 1, never sent: a crash at that boundary.

Unarmed, it forwards everything and records what passed (for counting a reference run). One
request per connection (it asks both sides for `Connection: close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass

from .cloudproxy import read_request
from .faultproxy import _close_after


@dataclass
class Seen:
    """One request that reached the proxy: its number (from 1), method, path (no query), when
    it arrived (seconds since `arm`), and whether it was forwarded to the server."""

    n: int
    method: str
    path: str
    at: float
    forwarded: bool = False
    answered: bool = False  # the server's answer came back (delivered or held)

    @property
    def write(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")

    def describe(self) -> str:
        return f"request {self.n} ({self.method} {self.path})"


class CrashProxy:
    """Start with `start()`, point letta-apply at `url`, stop with `stop()`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.seen: list[Seen] = []
        self.hold_at: int | None = None
        self.held = threading.Event()  # request `hold_at` was answered by the server
        self.port = 0
        self._started = time.monotonic()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._release: asyncio.Event | None = None
        self.errors: list[str] = []  # what the proxy itself could not handle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def held_request(self) -> Seen | None:
        if self.hold_at is None or len(self.seen) < self.hold_at:
            return None
        return self.seen[self.hold_at - 1]

    def start(self) -> CrashProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def arm(self, hold_at: int | None) -> None:
        """Count from 1 again; hold after request `hold_at` (None: pass everything)."""

        async def reset() -> None:
            self.seen = []
            self.hold_at = hold_at
            self.held.clear()
            self._release = asyncio.Event()
            self._started = time.monotonic()

        asyncio.run_coroutine_threadsafe(reset(), self._loop).result(timeout=10)

    def release(self) -> None:
        """Drop every held connection and pass everything from now on."""

        async def go() -> None:
            self.hold_at = None
            if self._release is not None:
                self._release.set()

        asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout=10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._release = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client is gone (killed), or the proxy is stopping
        except Exception as e:  # reported by the proxy's fixture
            self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if request is None:
            return
        seen = Seen(len(self.seen) + 1, request.method, request.path,
                    time.monotonic() - self._started)  # fmt: skip
        self.seen.append(seen)
        release = self._release
        assert release is not None
        hold_at = self.hold_at
        if hold_at is not None and seen.n > hold_at:
            await release.wait()  # never forwarded: the client is dead by then
            self._reset(writer)
            return
        kept = [
            (k, v)
            for k, v in request.headers
            if k.lower() not in ("connection", "content-length", "transfer-encoding")
        ]
        head = f"{request.method} {request.target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in kept
        )
        head += f"Content-Length: {len(request.body)}\r\nConnection: close\r\n\r\n"
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        seen.forwarded = True
        try:
            up_writer.write(head.encode("latin-1") + request.body)
            await up_writer.drain()
            answer = await asyncio.wait_for(up_reader.read(), timeout=300)
        finally:
            up_writer.close()
        seen.answered = True
        if hold_at is not None and seen.n == hold_at:
            self.held.set()
            await release.wait()
            self._reset(writer)
            return
        writer.write(_close_after(answer))
        await writer.drain()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
