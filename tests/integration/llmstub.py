"""A local OpenAI-compatible endpoint on 127.0.0.1 for the provider tests: what Letta asks of a
BYOK provider while letta-apply manages it. Letta lists the provider's models (`GET
/v1/models`, with the provider's key as a bearer token) when a provider is made and when its
models are refreshed; the stub answers with its `models` and records each key it was asked
with, so a test sees which key Letta holds without reading it from Letta. Nothing leaves the
machine."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LlmStub:
    """Start with `start()`; `url` is its OpenAI base URL (`.../v1`)."""

    def __init__(self, models: list[str]) -> None:
        self.models = list(models)
        self.keys: list[str] = []  # the bearer tokens of the model listings, in order
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0].rstrip("/") != "/v1/models":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                auth = self.headers.get("authorization") or ""
                stub.keys.append(auth.removeprefix("Bearer "))
                data = [{"id": m, "object": "model", "owned_by": "stub"} for m in stub.models]
                self._send(200, {"object": "list", "data": data})

            def do_POST(self) -> None:
                self._send(501, {"error": {"message": "the stub serves model listings only"}})

            def _send(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> LlmStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
