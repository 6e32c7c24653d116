"""One frozen settings object (env prefix KPI_), built once and passed in."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a worker, the CLI and the tests need to know about their surroundings."""

    model_config = SettingsConfigDict(env_prefix="KPI_", frozen=True, extra="ignore")

    brokers: str = Field("127.0.0.1:9092", description="bootstrap servers, comma-separated")
    topic_prefix: str = Field("", description="prepended to every topic, e.g. 'acme.'")
    partitions: int = Field(4, ge=1, le=1024, description="partitions of topics we create")
    replication_factor: int = Field(1, ge=1, le=16,
                                    description="replication of the topics we create")
    data_dir: Path = Field(Path(".kpi/data"), description="RocksDB state of this worker")
    web_host: str = Field("127.0.0.1", description="HTTP bind address of this worker")
    web_port: int = Field(6066, ge=1, le=65535, description="HTTP port of this worker")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error")
    app_id: str = Field("kpi", pattern=r"^[A-Za-z0-9._-]{1,64}$",
                        description="consumer group and changelog names")
    generation: int = Field(1, ge=1, description="projection generation this worker builds")
    session_timeout: float = Field(10.0, gt=0, description="consumer group session timeout, s")
    snapshot_interval: float = Field(1.0, gt=0, le=2.0, description="kpi-employee flush, s")
    orders_cutoff: datetime | None = Field(
        None, description="orders issued by this instant count as issued at the start "
        "(a replay generation's); set from the generation registry when a worker starts")
    snapshots: bool = Field(True, description="publish kpi-employee snapshots")
    follow_active: bool = Field(True, description="serve the registry's active generation")
    stop_when_built: bool = Field(False, description="a building worker of another machine: "
                                  "stop once its generation is switched to or failed")
    gauge_interval: float = Field(5.0, gt=0, description="per-employee gauge refresh, s")
    gauge_full_refresh: float = Field(
        60.0, gt=0, description="every gauge recomputed, not only changed employees', s")
    # Faust's RocksDB defaults are 64 MiB memtables (x3) and a 2 GiB block cache *per
    # partition of each table*: unbounded in practice. streams/worker/store.py puts every table
    # partition under one budget (block cache, index and filter blocks, memtables).
    rocksdb_write_buffer_mb: int = Field(8, ge=1, le=1024, description="memtable size, MiB")
    rocksdb_memory_mb: int = Field(192, ge=16, le=65536,
                                   description="RocksDB memory budget of the process, MiB")
    # glibc's heap (streams/worker/memory.py): arenas capped, free pages returned on a timer.
    # auto: the worker re-executes itself on jemalloc when the machine has libjemalloc2
    # (streams/worker/memory.py says why); system: glibc's malloc, arenas capped and trimmed.
    allocator: Literal["auto", "jemalloc", "system"] = Field(
        "auto", description="auto: jemalloc when libjemalloc2 is installed (the image has "
        "it), else glibc; jemalloc: the same, an error without it; system: glibc's malloc")
    malloc_arenas: int = Field(2, ge=0, le=64, description="glibc malloc arenas (0: default)")
    malloc_trim_interval: float = Field(30.0, ge=0, description="malloc_trim period, s (0: off)")
    gc_threshold: int = Field(50_000, ge=0, description="gen-0 GC threshold (0: Python's)")
    # Faust's producer sends a request per 16 KiB batch as soon as it can; ticket states
    # of a few KiB each (changelogs) then cost a socket write per handful of records.
    producer_linger_ms: float = Field(5.0, ge=0, le=1000,
                                      description="producer batching delay, ms")
    producer_batch_kb: int = Field(256, ge=16, le=960,
                                   description="producer batch per partition, KiB")
    # What one fetch brings per partition, so what one batch of the fast path can hold:
    # a batch writes each changed ticket and day once, so larger batches of a backlog
    # write (and changelog) less. Live batches are small whatever the limit.
    fetch_max_kb: int = Field(1024, ge=64, le=65536,
                              description="consumer fetch per partition, KiB")
    # How long a fetch may wait at the broker for records (Faust's 1,500 ms). A broker that
    # answers only when the wait expires (Tansu) delays a record by up to this much, but
    # a shorter wait means more fetches, and the embedded broker's fetch costs it CPU in
    # proportion to every batch the partition ever stored: with 200 ms the worker's own
    # p99 rose ~10 s/h over a 30-minute soak and 5 % of events took over 2 s; with
    # 1,500 ms it stayed flat (docs/performance.md, "Where the time goes"). Apache Kafka
    # answers as soon as records arrive, so there the wait only paces the empty polls of
    # an idle worker.
    fetch_max_wait_ms: int = Field(1500, ge=10, le=10_000,
                                   description="consumer fetch wait, ms")
    # The wait while the worker is far behind (a backlog after downtime, an import, a
    # replay): then a fetch that holds only partitions empty as it came (the facts topic
    # at the end of a ticket batch) keeps the inputs waiting behind it for the whole wait
    # on a broker that answers only when it expires, ~20 % of a backlog's rate on the
    # embedded broker. Records are waiting anyway, so the shorter wait costs no extra
    # empty polls. Chosen every broker probe from the consumer lag the worker exports.
    backlog_fetch_max_wait_ms: int = Field(200, ge=10, le=10_000,
                                           description="fetch wait while behind, ms")
    backlog_messages: int = Field(5000, ge=0, description="consumer lag (messages over the "
                                  "inputs this worker owns) above which it is behind")
    # How often processed offsets are committed (Faust's default is 2.8 s): what a crash
    # makes the worker process again, and how soon a caught-up worker is seen caught up
    # (its lag is measured from committed offsets). A commit is a producer flush and one
    # request, made beside the agents, so a second costs them nothing visible.
    commit_interval: float = Field(1.0, ge=0.1, le=60.0,
                                   description="seconds between offset commits")
    # Records one poll brings over all partitions (None: as many as the fetches hold): a
    # bound on a batch, so on how long an agent holds the event loop in a backlog.
    max_poll_records: int | None = Field(None, ge=1, le=1_000_000,
                                         description="records per poll, all partitions")
    # Fetched chunks queued for each agent before the consumer stops fetching its
    # partitions. Faust's stream_buffer_maxsize (4,096) counts messages; on the fast path
    # a message is a whole chunk of up to ~5,000 records, so with it a backlog's
    # read-ahead grew to 3.4 GiB of queued records after 1.7M events of a 10,000-seat
    # centre, against a flat ~800 MiB with 8 (docs/performance.md, "Where the time goes").
    # 4096 restores Faust's bound.
    buffer_batches: int = Field(8, ge=2, le=4096,
                                description="fetched chunks queued per agent (fast path)")
    standby_replicas: int = Field(0, ge=0, le=8,
                                  description="warm standby copies of each table partition")
    broker_probe_interval: float = Field(2.0, gt=0, description="broker liveness probe, s")
    broker_probe_timeout: float = Field(5.0, gt=0, description="probe deadline, s")
    alerts: bool = Field(True, description="publish live SLA alerts (off for replays)")
    auth_enabled: bool = Field(True, description="require bearer tokens on the API")
    tokens_file: Path = Field(Path(".kpi/tokens.json"), description="hashed API tokens")
    fast_path: bool = Field(True, description="deliver fetched batches to agents (fastpath.py)")
    # Kafka security, passed through to every client (Faust/aiokafka and kafka-python).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    sasl_username: str | None = Field(None, description="SASL user")
    sasl_password: SecretStr | None = Field(None, description="SASL password")
    ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers")
    ssl_certfile: Path | None = Field(None, description="client certificate (mutual TLS)")
    ssl_keyfile: Path | None = Field(None, description="client key (mutual TLS)")

    @property
    def bootstrap_list(self) -> list[str]:
        return [b.strip() for b in self.brokers.split(",") if b.strip()]

    def topic(self, name: str) -> str:
        """The full topic name for an input, output or internal topic name."""
        return f"{self.topic_prefix}{name}"

    def internal_topic(self, name: str) -> str:
        """Internal topics carry the prefix and the generation, so generations never mix."""
        return f"{self.topic_prefix}kpi-g{self.generation}-{name}"

    def kafka_python_options(self) -> dict[str, Any]:
        """Client options for kafka-python (producer, admin, consumer)."""
        opts: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_list,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
            opts["sasl_plain_username"] = self.sasl_username
            opts["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.ssl_cafile:
            opts["ssl_cafile"] = str(self.ssl_cafile)
        if self.ssl_certfile:
            opts["ssl_certfile"] = str(self.ssl_certfile)
        if self.ssl_keyfile:
            opts["ssl_keyfile"] = str(self.ssl_keyfile)
        return opts
