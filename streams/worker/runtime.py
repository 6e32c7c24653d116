"""What every service of a worker shares: the settings, the Faust app, the metrics, the
clock, the edge (decoding, dead letters) and the tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import faust

from streams.settings import Settings
from streams.worker.edge import Edge
from streams.worker.metrics import Metrics
from streams.worker.tables import WorkerTables


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    app: faust.App
    metrics: Metrics
    clock: Callable[[], datetime]
    edge: Edge
    tables: WorkerTables
