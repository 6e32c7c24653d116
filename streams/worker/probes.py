"""Whether the broker answers, the consumer lag, and the fetch wait paced by that lag."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from schemas.topics import INPUT_TOPICS
from streams.settings import Settings
from streams.worker.fastpath import fetch_wait_for
from streams.worker.runtime import Runtime
from streams.worker.store import budget_usage

log = logging.getLogger("kpi.worker")


class BrokerState:
    """Whether the broker answers (None) or why not; /health answers 503 while it does not."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.error: str | None = None

    def set(self, error: str | None) -> None:
        """Record whether the broker answers; one log line per change of state."""
        if error == self.error:
            return
        if error is None:
            log.info("broker %s answering again: processing resumes", self.settings.brokers)
        elif self.error is None:
            log.warning("broker %s lost: %s (retrying with backoff; /health answers 503)",
                        self.settings.brokers, error)
        self.error = error


class BrokerProbe:
    """On its timer: asks the broker for metadata, exports lag and the RocksDB memory
    gauges, and sets the consumer's fetch wait for the lag."""

    def __init__(self, rt: Runtime, broker: BrokerState, consumer: Callable[[], Any]) -> None:
        self.settings, self.app, self.metrics = rt.settings, rt.app, rt.metrics
        self.broker = broker
        # The global-state reader's consumer (None while it reconnects).
        self.consumer = consumer
        self._prefix_len = len(rt.settings.topic_prefix)

    def attach(self) -> None:
        self.app.timer(self.settings.broker_probe_interval)(self.probe)

    async def probe(self) -> None:
        """Ask the broker for metadata with a deadline: Kafka clients retry silently, so
        a paused or partitioned broker would otherwise look healthy."""
        consumer = self.consumer()
        if consumer is None:
            return  # the loader is (re)connecting and reports its own errors
        try:
            await asyncio.wait_for(consumer._client.fetch_all_metadata(),
                                   self.settings.broker_probe_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            what = ("no answer within "
                    f"{self.settings.broker_probe_timeout:g} s" if isinstance(exc, TimeoutError)
                    else f"{exc.__class__.__name__}: {exc}")
            self.broker.set(f"broker not answering ({what})")
        else:
            self.broker.set(None)
        await self.update_lag()
        for kind, used in budget_usage().items():
            self.metrics.rocksdb_memory.labels(kind).set(used)

    async def update_lag(self) -> None:
        """kpi_consumer_lag_messages per input topic over the partitions this worker owns:
        high watermark of the last fetch minus the committed offset (Kafka's own notion
        of lag: what a crash now would have to redo), else the fetch position; 0 for
        topics it owns none of, so sums across workers stay right."""
        lag = dict.fromkeys((t.name for t in INPUT_TOPICS), 0)
        consumer = self.app.consumer
        try:
            for tp in consumer.assignment():
                topic = tp.topic[self._prefix_len:]
                if topic not in lag or not tp.topic.startswith(self.settings.topic_prefix):
                    continue
                hw = consumer.highwater(tp)
                # Faust's record of what it committed (no public accessor).
                pos = cast(Any, consumer)._committed_offset.get(tp)
                if pos is None:
                    pos = await consumer.position(tp)
                if hw is not None and pos is not None:
                    lag[topic] += max(0, hw - pos)
        except Exception as exc:  # during a rebalance the assignment may move under us
            log.debug("lag not updated: %s", exc)
            return
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic).set(value)
        self.pace_fetches(sum(lag.values()))

    def pace_fetches(self, lag: int) -> None:
        """The consumer's fetch wait for this lag (settings.py: fetch_max_wait_ms, live,
        and backlog_fetch_max_wait_ms, behind). aiokafka reads its fetcher's wait for each
        request it builds; the fetcher lives in Faust's consumer thread, and an int
        assigned from here is seen there on its next request."""
        s = self.settings
        wait = fetch_wait_for(lag, s.fetch_max_wait_ms, s.backlog_fetch_max_wait_ms,
                              s.backlog_messages)
        # Also what a consumer Faust builds again (after a fatal error) starts with.
        cast(Any, self.app).kpi_fetch_max_wait_ms = wait
        consumer = getattr(cast(Any, self.app.consumer)._thread, "_consumer", None)
        fetcher = getattr(consumer, "_fetcher", None)
        # The fetcher's own value, not one remembered here: a rebuilt consumer has its own.
        if fetcher is None or fetcher._fetch_max_wait_ms == wait:
            return  # not started yet (the next probe tries again), or already so
        fetcher._fetch_max_wait_ms = wait
        log.info("consumer lag %d messages: fetch wait %d ms", lag, wait)
