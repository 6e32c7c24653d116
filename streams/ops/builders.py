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

    def data_dir(self, index: int) -> Path:
        d = self.settings.data_dir
        return d if index == 0 else d.parent / f"{d.name}-build-{index}"

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        s = self.settings
        env = {**os.environ, "KPI_BROKERS": s.brokers, "KPI_TOPIC_PREFIX": s.topic_prefix,
               "KPI_DATA_DIR": str(self.data_dir(index)),
               "KPI_GENERATION": str(self.generation), "KPI_FOLLOW_ACTIVE": "false",
               "KPI_ALERTS": "false", "KPI_SNAPSHOTS": "false", "KPI_WEB_HOST": "127.0.0.1",
               "KPI_WEB_PORT": str(free_port()), "KPI_APP_ID": s.app_id,
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
        self.cpu_seconds = [cpu_seconds(p.pid) for p in self.procs]
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            stop_process(proc)
        for i in range(1, self.count):
            shutil.rmtree(self.data_dir(i), ignore_errors=True)
