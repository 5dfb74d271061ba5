"""A loopback HTTP endpoint that records what genops POSTs to it (alert webhooks, checkpoints).

    with WebhookSink("/hook") as sink:
        post_to(sink.url)
        sink.bodies[0]      # the parsed JSON; sink.raw[0] the bytes as sent
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookSink:
    def __init__(self, path: str = "/hook", status: int = 204) -> None:
        self.raw: list[bytes] = []
        self.bodies: list[Any] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.raw.append(body)
                try:
                    sink.bodies.append(json.loads(body))
                except ValueError:
                    sink.bodies.append(None)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
