"""One small HTTP server per service: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the loop has turned recently (a wedged loop fails it, so the
orchestrator restarts the pod). ``/readyz`` answers 200 only while :meth:`HealthState.ready`;
otherwise it names every reason, each derived from a flag (never "not ready: ready").
Nothing else is served.
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
    """The service's readiness, as flags; the reasons it is not ready are computed from them.

    The loop and the client callbacks set the flags; the HTTP threads read them. Nothing stores a
    reason: a flag cleared is a reason gone, so recovering from one failure can never hide another.
    """

    liveness_timeout_s: float = 60.0
    model_loaded: bool = False
    joined: bool = False
    """The consumer has joined its group and been assigned partitions at least once."""
    scorer_failing: str | None = None
    """The scorer's last exception class while a batch waits to be retried."""
    produce_failing: bool = False
    """The last delivery unit failed (its partitions rewind); cleared by one that succeeds."""
    brokers_down: bool = False
    """No Kafka broker reachable: nothing can be consumed or published until one is back."""
    denied: str | None = None
    """Why Kafka refused this service (an authorization error); it cannot make progress."""
    fatal: str | None = None
    """A fatal client error: the process exits for a restart."""
    lost_at: float | None = None
    """When the consumer's partitions were lost (``on_lost``); cleared by the next assignment."""
    stalled: tuple[str, ...] = ()
    """Input partitions with records waiting and no progress for the stall time (``topic[n]``)."""
    last_loop_at: float = field(default_factory=time.monotonic)

    @property
    def failing(self) -> bool:
        """The scorer raised, or a client died: the service is not scoring."""
        return self.scorer_failing is not None or self.fatal is not None

    def reasons(self) -> list[str]:
        """Why the service is not ready, most fundamental first; empty when ready."""
        flagged = [
            (self.fatal is not None, f"fatal kafka error: {self.fatal}"),
            (self.denied is not None, f"denied by kafka: {self.denied}"),
            (self.brokers_down, "all brokers down"),
            (not self.model_loaded, "model not loaded"),
            (not self.joined, "not joined to the consumer group"),
            (self.scorer_failing is not None, f"scorer failing: {self.scorer_failing}"),
            (self.produce_failing, "produce failing"),
            (bool(self.stalled), f"stalled partitions: {', '.join(self.stalled)}"),
        ]
        return [reason for on, reason in flagged if on]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons()) or "ready"

    def alive(self) -> bool:
        return time.monotonic() - self.last_loop_at < self.liveness_timeout_s

    def ready(self) -> bool:
        return not self.reasons()


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
                    reasons = state.reasons()
                    body = f"not ready: {'; '.join(reasons)}\n" if reasons else "ready\n"
                    self._send(503 if reasons else 200, body.encode())
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
