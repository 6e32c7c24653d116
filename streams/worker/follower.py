"""The worker's side of the generation registry: restart on the generation made active."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import faust
import orjson

from streams.settings import Settings
from streams.worker.generations import registry_topic

log = logging.getLogger("kpi.worker")


class GenerationFollower:
    """Owns the registry's `active` record as last read (globalstate.py reads the topic)
    and the generation to restart on once it differs from the one served."""

    def __init__(self, settings: Settings, app: faust.App, loaded: asyncio.Event) -> None:
        self.settings = settings
        self.app = app
        self.loaded = loaded
        self.registry_name = registry_topic(settings)
        self.active: int | None = None  # the registry's `active` record
        self.restart_generation: int | None = None

    def attach(self) -> None:
        if self.settings.follow_active:
            self.app.timer(2.0)(self.follow)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the registry topic."""
        if key == b"active":  # see streams.worker.generations.write
            self.active = int(orjson.loads(value)["generation"]) if value else None

    async def follow(self) -> None:
        """Restart on the new generation when the registry's `active` record changes."""
        if self.restart_generation is not None or not self.loaded.is_set():
            return
        # As Registry.active_generation: generation 1 until one is activated.
        active = self.active if self.active is not None else 1
        if active != self.settings.generation:
            log.warning("generation %d is now active (this worker serves %d): restarting",
                        active, self.settings.generation)
            self.restart_generation = active
            os.kill(os.getpid(), signal.SIGTERM)  # Faust's graceful shutdown, then re-exec
