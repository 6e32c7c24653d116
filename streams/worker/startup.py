"""Waiting for the broker before a worker starts, with `/health` answering meanwhile.

Faust gives up at once when its producer cannot bootstrap, and Kafka clients block for
tens of seconds per attempt; an orchestrator needs a worker that stays up, says why it is
not ready, and starts by itself when the broker comes (compose starts both at once).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from streams.settings import Settings

PROBE_TIMEOUT = 5.0
MAX_BACKOFF = 15.0


def broker_problem(s: Settings, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when the broker answers a metadata request within `timeout`; else why not."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    ms = int(timeout * 1000)
    try:
        admin = KafkaAdminClient(request_timeout_ms=ms, bootstrap_timeout_ms=ms,
                                 **s.kafka_python_options())
    except (KafkaError, OSError, ValueError) as exc:
        return f"{exc.__class__.__name__}: {exc}"
    try:
        admin.list_topics()
        return None
    except (KafkaError, OSError) as exc:
        return f"{exc.__class__.__name__}: {exc}"
    finally:
        admin.close()


def _health_server(host: str, port: int, body: Callable[[], dict[str, object]]
                   ) -> ThreadingHTTPServer:
    """A stand-in for the worker's web server: /health 503 with the reason, 503 elsewhere."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = body() if self.path.split("?")[0] == "/health" else {
                "error": "starting", "detail": "waiting for the broker"}
            raw = json.dumps(payload).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: object) -> None:
            return  # the worker logs state changes, not probes

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="kpi-startup-health",
                     daemon=True).start()
    return server


def wait_for_broker(s: Settings, say: Callable[[str], None],
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once the broker answers; until then retry with backoff and serve /health."""
    problem = broker_problem(s)
    if problem is None:
        return
    state = {"reason": f"broker unreachable: {problem}"}
    say(f"kpi worker: broker {s.brokers} unreachable ({problem}); /health answers 503; "
        "retrying with backoff")
    server = _health_server(s.web_host, s.web_port, lambda: {
        "status": "unavailable", "reason": state["reason"], "generation": s.generation,
        "orders": 0})
    try:
        backoff = 1.0
        while problem is not None:
            sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            problem = broker_problem(s)
            if problem is not None:
                state["reason"] = f"broker unreachable: {problem}"
    finally:
        server.shutdown()
        server.server_close()
    say(f"kpi worker: broker {s.brokers} reachable; starting")
