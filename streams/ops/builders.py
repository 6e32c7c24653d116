"""The workers that build a generation during a replay: one consumer group of N processes.

Each is an ordinary `kpi worker` of the new generation that neither alerts nor snapshots
(the live generation does both until the switch). They share the group, so Kafka spreads
the partitions over them; their state is changelogged and their offsets are committed
with it, which is what lets a replaced worker resume where the dead one's last committed
batch ended without losing or double counting anything.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from streams.net import free_port
from streams.settings import Settings


def exit_text(code: int) -> str:
    """How a process ended, in words: a signal by its name."""
    if code < 0:
        try:
            return f"died (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f"died (killed by signal {-code})"
    return f"died (exit status {code})"


def stop_process(proc: subprocess.Popen[bytes], grace: float = 60.0,
                 sig: int = signal.SIGTERM) -> None:
    """`sig` (SIGTERM), then SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def serving(port: int, timeout: float = 2.0) -> bool:
    """A worker's /health answers 200 (assigned, not rebalancing)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
            return bool(r.status == 200)
    except (OSError, ValueError):
        return False


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class BuilderDied(RuntimeError):
    """A building worker died and no replacement is left."""


@dataclass
class BuildingWorkers:
    """N workers of generation `generation`, started, watched and replaced.

    Worker 0 keeps its state in the data directory itself, where this machine's serving
    worker finds it warm after the switch; the others use directories of their own beside
    it (one RocksDB may be opened by one process), removed once the replay ends.
    """

    settings: Settings
    generation: int
    count: int = 1
    max_restarts: int = 3
    log_path: Path | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    restarts: int = 0
    # CPU seconds (user + system) of each worker when it was stopped (None: unreadable,
    # e.g. not Linux); a replaced worker's are those of its replacement.
    cpu_seconds: list[float | None] = field(default_factory=list)
    ports: dict[int, int] = field(default_factory=dict)  # worker index -> its web port

    def data_dir(self, index: int) -> Path:
        d = self.settings.data_dir
        return d if index == 0 else d.parent / f"{d.name}-build-{index}"

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        s = self.settings
        port = free_port()
        self.ports[index] = port
        env = {**os.environ, "KPI_BROKERS": s.brokers, "KPI_TOPIC_PREFIX": s.topic_prefix,
               "KPI_DATA_DIR": str(self.data_dir(index)),
               "KPI_GENERATION": str(self.generation), "KPI_FOLLOW_ACTIVE": "false",
               "KPI_ALERTS": "false", "KPI_SNAPSHOTS": "false", "KPI_WEB_HOST": "127.0.0.1",
               "KPI_WEB_PORT": str(port), "KPI_APP_ID": s.app_id,
               "KPI_PARTITIONS": str(s.partitions)}
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        return subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)

    def start(self) -> None:
        self.procs = [self._spawn(i) for i in range(self.count)]

    def check(self) -> list[str]:
        """Replace every worker that died; returns a line for each replacement. Raises
        BuilderDied when one dies with no replacement left."""
        said = []
        for i, proc in enumerate(self.procs):
            code = proc.poll()
            if code is None:
                continue
            who = "the replay worker" if self.count == 1 else f"building worker {i + 1}"
            if self.restarts >= self.max_restarts:
                allowed = (f" after {self.restarts} replacement(s)" if self.restarts else "")
                raise BuilderDied(f"{who} {exit_text(code)}{allowed}")
            self.restarts += 1
            self.procs[i] = self._spawn(i)
            said.append(f"{who} {exit_text(code)}; replaced "
                        f"({self.restarts} of {self.max_restarts} replacements)")
        return said

    def stop(self) -> None:
        """Stop the workers one at a time, each after the rest of the group has settled.

        Members leaving a group together, while it rebalances, can leave the embedded
        broker naming a departed member as the group's leader: the serving workers that
        join the generation's group after the switch then wait for an assignment that
        never comes. One by one, the last member leaves a settled group of one."""
        self.cpu_seconds = [cpu_seconds(p.pid) for p in self.procs]
        running = [i for i, p in enumerate(self.procs) if p.poll() is None]
        for n, i in enumerate(running):
            if n:
                self._wait_settled(running[n:])
            proc = self.procs[i]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            stop_process(proc)
        for i in range(1, self.count):
            shutil.rmtree(self.data_dir(i), ignore_errors=True)

    def _wait_settled(self, indexes: list[int], timeout: float = 60.0) -> None:
        """Until every worker of `indexes` that still runs serves, or `timeout` passes
        (a worker that never settles is stopped anyway)."""
        watched = [i for i in indexes if i in self.ports]  # (no port: not a worker)
        if not watched:
            return
        # A member hears of the departure at its next heartbeat (Faust: a third of the
        # session timeout, at most 3 s) and only then starts rebalancing: a /health of
        # 200 before that says nothing.
        time.sleep(min(3.0, self.settings.session_timeout / 3) + 1.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.procs[i].poll() is not None or serving(self.ports[i])
                   for i in watched):
                return
            time.sleep(0.5)
