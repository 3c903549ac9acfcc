"""A real HTTP receiver on loopback for the webhook tests: verifies every signature with
`standardwebhooks` and answers as told (2xx, 500, a timeout, a dropped connection)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


class Receiver:
    def __init__(self):
        self.secrets: list[str] = []  # every secret the receiver accepts (one is enough to verify)
        self.plan: deque[str] = deque()  # answers for the next requests: "ok", "500", "timeout", "drop"
        self.default = "ok"
        self.timeout_seconds = 3.0
        self.received: list[dict] = []  # every request, verified or not
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    answer = receiver.plan.popleft() if receiver.plan else receiver.default
                    verified = receiver._verify(body, headers)
                    receiver.received.append({"headers": headers, "body": body, "verified": verified,
                                              "answer": answer, "at": time.monotonic(),
                                              "json": json.loads(body) if body else None})
                if answer == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if answer == "timeout":
                    time.sleep(receiver.timeout_seconds)
                status = 500 if answer == "500" else 200
                payload = b"boom " * 200 if status == 500 else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks?src=platform"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _verify(self, body: bytes, headers: dict) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    def verified_by(self, request: dict, secret: str) -> bool:
        try:
            Webhook(secret).verify(request["body"], request["headers"])
            return True
        except WebhookVerificationError:
            return False

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self) -> list[dict]:
        """Requests answered 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.received if r["answer"] == "ok"]
