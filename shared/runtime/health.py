"""One small HTTP server per service: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the loop has turned recently (a wedged loop fails it, so the
orchestrator restarts the pod). ``/readyz`` answers 200 only while the model is loaded,
the consumer has joined its group and scoring is not failing. Nothing else is served.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)


@dataclass
class HealthState:
    """Flags the loop sets; read by the HTTP threads."""

    liveness_timeout_s: float = 60.0
    model_loaded: bool = False
    joined: bool = False
    failing: bool = False
    brokers_down: bool = False
    """No Kafka broker reachable: nothing can be consumed or published until one is back."""
    denied: str | None = None
    """Why Kafka refused this service (an authorization error); it cannot make progress."""
    reason: str = "starting"
    last_loop_at: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return time.monotonic() - self.last_loop_at < self.liveness_timeout_s

    def ready(self) -> bool:
        return (self.model_loaded and self.joined and not self.failing and not self.brokers_down
                and self.denied is None)


class HealthServer:
    """Serves metrics and health on ``host:port`` from a daemon thread."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, state: HealthState) -> None:
        self._address = (host, port)
        self._registry = registry
        self._state = state
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._address[1]

    def start(self) -> None:
        registry, state = self._registry, self._state

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    ok = state.alive()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"loop stalled\n")
                elif self.path == "/readyz":
                    ok = state.ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else f"not ready: {state.reason}\n".encode())
                else:
                    self._send(404, b"not found\n")

            def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes every few seconds would drown the service's own logs

        self._server = ThreadingHTTPServer(self._address, Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True).start()
        logger.info("metrics and health on http://%s:%d", self._address[0], self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
