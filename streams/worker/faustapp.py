"""The Faust app of a worker, configured from the settings."""

from __future__ import annotations

from typing import Any, cast

import faust

from streams.settings import Settings


def build_app(s: Settings) -> faust.App:
    app = faust.App(
        # The topic prefix isolates tenants: group, changelogs and local state too.
        f"{s.topic_prefix}{s.app_id}",
        version=s.generation,
        broker=[f"{'kpikafka' if s.fast_path else 'kafka'}://{b}" for b in s.bootstrap_list],
        broker_credentials=credentials(s),
        store="kpirocksdb://",  # streams/worker/store.py: one memory budget
        datadir=str(s.data_dir),
        web_host=s.web_host,
        web_port=s.web_port,
        web_bind=s.web_host,
        canonical_url=f"http://{s.web_host}:{s.web_port}",
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        topic_allow_declare=True,
        broker_session_timeout=s.session_timeout,
        broker_heartbeat_interval=min(3.0, s.session_timeout / 3),
        broker_rebalance_timeout=max(30.0, s.session_timeout * 3),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=s.producer_linger_ms / 1000,
        producer_max_batch_size=s.producer_batch_kb * 1024,
        consumer_max_fetch_size=s.fetch_max_kb * 1024,
        broker_max_poll_records=s.max_poll_records,
        broker_commit_interval=s.commit_interval,
        stream_wait_empty=False,
        table_standby_replicas=s.standby_replicas,
        logging_config=None,
        loghandlers=[],
    )
    # Read by the fast path's consumer thread (streams/worker/fastpath.py). A worker starts
    # as if behind (it may be, after downtime); the first lag it measures, within a
    # broker probe interval, sets the wait it runs with (probes.BrokerProbe.pace_fetches).
    cast(Any, app).kpi_fetch_max_wait_ms = s.backlog_fetch_max_wait_ms
    return app


def credentials(s: Settings) -> Any:
    if s.security_protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if s.security_protocol in ("SSL", "SASL_SSL"):
        ssl_context = faust.auth.ssl.create_default_context(
            cafile=str(s.ssl_cafile) if s.ssl_cafile else None
        )
        if s.ssl_certfile:
            ssl_context.load_cert_chain(str(s.ssl_certfile),
                                        str(s.ssl_keyfile) if s.ssl_keyfile else None)
    if s.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=s.sasl_username,
            password=s.sasl_password.get_secret_value() if s.sasl_password else None,
            mechanism=s.sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)
