"""An HTTP proxy on 127.0.0.1 that sits between letta-apply and a real Letta server and injects
faults, for the fault-injection tests.

One request per connection (it asks both sides for `Connection: close`), so it needs no HTTP
body framing beyond Content-Length. Per request it picks a fault (seeded), or none:

- "429": answers 429 with Retry-After, without forwarding (the server never sees it)
- "503": answers 503, without forwarding
- "502 after", "500 after": forwards, lets the server act, then answers 502 / 500
- "reset after": forwards, reads the server's full answer, then resets the client connection
- "delay": forwards, then holds the answer past the client's timeout

When the server is down (restarting), it answers 502 like a gateway would; when the server drops
a request it was processing, it resets the client connection.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable

FAULTS = ("429", "503", "502 after", "500 after", "reset after", "delay")

Chooser = Callable[[str, str], "str | None"]


def _response(status: int, reason: str, extra: str = "") -> bytes:
    body = f'{{"detail": "injected {status} {reason}"}}'.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class FaultProxy:
    """Start with `start()`, point letta-apply at `url`, stop with `stop()`.

    `rates` maps a fault kind to its probability per request; `choose`, when set, decides
    instead (method, path -> fault or None). `injected` counts the faults made, by kind.
    """

    def __init__(
        self,
        upstream_port: int,
        *,
        seed: int = 0,
        rates: dict[str, float] | None = None,
        delay: float = 5.0,
        retry_after: int = 1,
    ) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.rng = random.Random(seed)
        self.rates = dict(rates or {})
        self.delay = delay
        self.retry_after = retry_after
        self.choose: Chooser | None = None
        self.on_request: Callable[[str, str], None] | None = None
        # (method, path) -> an event the request waits for before it is forwarded, or None.
        # Only that request waits: the proxy keeps serving every other one meanwhile.
        self.hold: Callable[[str, str], threading.Event | None] | None = None
        self.enabled = True
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # Answers still held back ("delay") are dropped, not left pending.
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

    def _pick(self, method: str, path: str) -> str | None:
        self.requests += 1
        if self.on_request is not None:
            self.on_request(method, path)
        if not self.enabled:
            return None
        if self.choose is not None:
            fault = self.choose(method, path)
        else:
            roll, fault, edge = self.rng.random(), None, 0.0
            for kind in FAULTS:
                edge += self.rates.get(kind, 0.0)
                if roll < edge:
                    fault = kind
                    break
        if fault:
            self.injected[fault] += 1
        return fault

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,  # the proxy is stopping
        ):
            pass  # the client went away (it timed out): nothing to answer
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [h for h in lines[1:] if h]
        length = 0
        for h in headers:
            name, _, value = h.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length) if length else b""
        kept = [h for h in headers if h.partition(":")[0].strip().lower() != "connection"]
        request = (
            (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in kept)).encode(
                "latin-1"
            )
            + b"Connection: close\r\n\r\n"
            + body
        )

        fault = self._pick(method, target.split("?")[0])
        gate = self.hold(method, target.split("?")[0]) if self.hold is not None else None
        if gate is not None:
            await asyncio.to_thread(gate.wait, 600)
        if fault == "429":
            writer.write(
                _response(429, "Too Many Requests", f"Retry-After: {self.retry_after}\r\n")
            )
            return
        if fault == "503":
            writer.write(_response(503, "Service Unavailable"))
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.write(_response(502, "Bad Gateway"))  # the server is down
            return
        try:
            up_writer.write(request)
            await up_writer.drain()
            answer = await asyncio.wait_for(up_reader.read(), timeout=120)
        except (OSError, asyncio.TimeoutError):
            answer = b""
        finally:
            up_writer.close()
        if not answer or fault == "reset after":
            self._reset(writer)  # the server acted (or died); the client never hears
            return
        if fault == "delay":
            await asyncio.sleep(self.delay)
        elif fault == "502 after":
            answer = _response(502, "Bad Gateway")
        elif fault == "500 after":
            answer = _response(500, "Internal Server Error")
        writer.write(_close_after(answer))
        await writer.drain()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()


def _close_after(answer: bytes) -> bytes:
    """The server's answer, telling the client not to reuse the connection."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + sep + body
