"""A small reverse proxy on 127.0.0.1 in front of a real server, for fault injection in tests.

It forwards every request unchanged to the upstream server (a real `transformers serve`), except
that it can: answer with given HTTP statuses first (429, 503: `faults`), demand an API key as
`vllm serve --api-key` does (`require_key`; its 401 body echoes part of the key, as OpenAI's does,
so tests see that we redact it), and go away after a number of forwarded requests (`die_after`:
it stops listening, so later connections are refused, as when a server process dies).
"""

from __future__ import annotations

import http.server
import json
import socket
import threading

import requests

from lm_eval_audio.serve.launch import free_port


class FaultProxy:
    """Start with `FaultProxy(upstream)`; `url` is its root; `stop()` closes it."""

    def __init__(self, upstream: str, *, faults: list[int] | None = None, require_key: str | None = None,
                 die_after: int | None = None, port: int | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = list(faults or [])
        self.require_key = require_key
        self.die_after = die_after
        self.forwarded = 0
        self.faults_sent = 0
        self.auth_headers: list[str | None] = []
        self._lock = threading.Lock()
        self.port = port or free_port()  # a restarted server keeps its address: pass the old port
        self.url = f"http://127.0.0.1:{self.port}"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth = self.headers.get("Authorization")
                with proxy._lock:
                    proxy.auth_headers.append(auth)
                    if proxy.require_key is not None and auth != f"Bearer {proxy.require_key}":
                        sent = (auth or "").removeprefix("Bearer ")
                        shown = f"{sent[:6]}***{sent[-8:]}" if sent else "none"
                        msg = {"error": {"message": f"Incorrect API key provided: {shown}", "code": 401}}
                        return self._reply(401, json.dumps(msg).encode())
                    if proxy.faults:
                        status = proxy.faults.pop(0)
                        proxy.faults_sent += 1
                        return self._reply(status, json.dumps({"error": {"message": f"injected {status}"}}).encode())
                    if proxy.die_after is not None and proxy.forwarded >= proxy.die_after:
                        threading.Thread(target=proxy.stop, daemon=True).start()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    proxy.forwarded += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type",)}
                r = requests.post(proxy.upstream + self.path, data=body, headers=headers, timeout=300)
                self._reply(r.status_code, r.content, r.headers.get("Content-Type", "application/json"))

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._stopped = False
        self._stop_lock = threading.Lock()

    def stop(self) -> None:
        """Stop listening (idempotent): later connections are refused."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.shutdown()
        self._server.server_close()
