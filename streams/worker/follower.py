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
        self.own_state: str | None = None  # the state recorded for this worker's generation
        self.restart_generation: int | None = None
        self._stopping = False

    def attach(self) -> None:
        if self.settings.follow_active or self.settings.stop_when_built:
            self.app.timer(2.0)(self.follow)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the registry topic."""
        if key == b"active":  # see streams.worker.generations.write
            self.active = int(orjson.loads(value)["generation"]) if value else None
        elif key == f"gen-{self.settings.generation}".encode():
            self.own_state = str(orjson.loads(value)["state"]) if value else None

    async def follow(self) -> None:
        """Restart on the new generation when the registry's `active` record changes."""
        if self.restart_generation is not None or not self.loaded.is_set():
            return
        if self.settings.stop_when_built:
            # A building worker another machine's `kpi replay` waits on: its work ends
            # with the replay, and serving is for the live workers that follow the switch.
            if self.own_state in ("active", "retired", "failed") and not self._stopping:
                log.warning("generation %d is %s: this building worker stops",
                            self.settings.generation, self.own_state)
                self._stopping = True
                os.kill(os.getpid(), signal.SIGTERM)
            return
        # As Registry.active_generation: generation 1 until one is activated.
        active = self.active if self.active is not None else 1
        if active != self.settings.generation:
            log.warning("generation %d is now active (this worker serves %d): restarting",
                        active, self.settings.generation)
            self.restart_generation = active
            os.kill(os.getpid(), signal.SIGTERM)  # Faust's graceful shutdown, then re-exec
