"""`kpi bench` end to end with a tiny N on the session broker: every figure is present and
every count reconciles. Speed is never asserted (the machine is shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.devtools.broker import EmbeddedBroker
from streams.devtools.peers import SKIPPED, quix_available

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

N = 3000
LIVE_RATE, LIVE_SECONDS = 50, 2


def _number(d: dict, key: str) -> float:
    value = d[key]
    assert isinstance(value, int | float) and value > 0, (key, value)
    return float(value)


def test_bench_figures_and_counts(broker: EmbeddedBroker, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bench", "--brokers", broker.bootstrap,
         "--events", str(N), "--partitions", "2", "--live-rate", str(LIVE_RATE),
         "--live-seconds", str(LIVE_SECONDS), "--timeout", "300", "--work-dir", str(tmp_path),
         "--json", str(out), "--workers", "2"],
        capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for label in ("pure fold", "plain aiokafka consumer", "Faust pass-through agent",
                  "Faust naive agent", "kpi worker", "kpi replay", "ratios: ours/pure fold",
                  "ours/naive"):
        assert label in proc.stdout, proc.stdout
    r = json.loads(out.read_text())

    assert r["events"] == N and r["partitions"] == 2
    assert r["broker"] == f"external {broker.bootstrap}"
    for key in ("cpu", "cpus", "memory_bytes", "python", "versions", "load_before",
                "load_after"):
        assert r["machine"][key] is not None, key

    pre = r["preload"]
    assert pre["events"] == N == sum(pre["by_topic"].values())
    assert {"tickets", "calls", "norm-orders", "roster"} <= set(pre["by_topic"])
    assert pre["employees"] >= 1
    assert 1 <= pre["tickets"] <= pre["by_topic"]["tickets"]
    assert r["phases"] == ["pure-fold", "plain", "pass-through", "naive", "quix", "ours",
                           "replay"]

    for phase in ("preload", "pure_fold", "plain_consumer", "faust_pass_through",
                  "faust_naive", "ours"):
        d = r[phase]
        assert d["events"] == N, phase
        _number(d, "seconds")
        _number(d, "events_per_s")
    _number(r["pure_fold"], "decode_events_per_s")
    _number(r["pure_fold"], "fold_events_per_s")
    for phase in ("faust_pass_through", "faust_naive", "ours"):
        _number(r[phase], "peak_rss_bytes")
        assert r[phase]["allocator"] == r["ours"]["allocator"] in ("jemalloc", "system")
        assert r[phase]["cpu_process_s"] is not None

    ours = r["ours"]
    assert ours["accepted"] + ours["duplicates"] + ours["dead_letters"] == N
    assert ours["dead_letters"] == 0 and ours["duplicates"] == 0  # the simulator is clean
    assert ours["committed"] == N
    assert ours["counted_after_s"] <= ours["seconds"]
    for key in ("lag_backlog_p50_s", "lag_backlog_p99_s"):
        _number(ours, key)

    live = ours["live"]
    assert live["events"] == LIVE_RATE * LIVE_SECONDS
    assert live["observed"] == live["events"] == live["pipe_events"]
    assert live["metric"] == "kpi_processing_latency_seconds"
    for key in ("p50_s", "p99_s", "pipe_p50_s", "pipe_p99_s"):
        assert live[key] is not None and live[key] >= 0, key
    assert live["p50_s"] <= live["p99_s"]

    # A new worker on the stopped one's state serves the same figures (or the bench fails).
    restart = ours["restart"]
    assert restart["employees_compared"] >= 1
    assert 0 < restart["serving_s"] <= restart["same_figures_s"]
    assert "warm restart on the same state" in proc.stdout

    rep = r["replay"]
    assert rep["generation"] == 2
    assert rep["events"] == rep["processed"] == N + live["events"]
    _number(rep, "events_per_s")
    _number(rep, "whole_run_events_per_s")
    # Measured from its first output, so within its whole run (start and join included).
    assert 0 < rep["seconds"] <= rep["whole_run_s"]
    # The same history replayed again by two workers: every event, the same figures.
    two = r["replay_workers"]
    assert two["workers"] == 2 and two["generation"] == 3
    assert two["events"] == two["processed"] == rep["events"]
    assert two["changed_rows"] == 0
    assert len(two["cpu_workers_s"]) == 2
    for d in (rep, two):
        _number(d, "cpu_us_per_event_workers")
        assert d["cpu_broker_s"] is None  # an external broker: not ours to measure
    assert "replay 2 workers / 1" in " ".join(proc.stdout.split())

    # The live worker again, as two processes in one group, on a copy of the preload.
    group = r["ours_workers"]
    assert group["workers"] == 2 and group["events"] == N
    assert group["topic_prefix"] != r["topic_prefix"]
    assert group["counted"] == sum(group["counted_workers"]) >= N
    assert len(group["cpu_workers_s"]) == len(group["peak_rss_bytes_workers"]) == 2
    for d in (ours, group):
        _number(d, "events_per_s")
        _number(d, "cpu_us_per_event_workers")
        assert d["cpu_broker_s"] is None and d["cpu_us_per_event_broker"] is None
    text = " ".join(proc.stdout.split())  # rich wraps lines
    assert "ours with 1 worker(s)" in text and "ours with 2 worker(s)" in text
    assert "ours 2 workers / 1" in text

    _check_quix(r, text)

    ratios = r["ratios"]
    for key in ("ours_over_naive", "ours_over_pass_through", "ours_over_plain_consumer",
                "replay_over_live", "replay_scaling", "ours_scaling", "ours_over_pure_fold",
                "ours_workers_over_pure_fold", "ours_workers_over_pass_through"):
        _number(ratios, key)
    # (ratios are rounded to 3 decimals, and a tiny N's can be ~0.02)
    assert ratios["ours_workers_over_pure_fold"] == pytest.approx(
        group["events_per_s"] / r["pure_fold"]["events_per_s"], rel=1e-2, abs=1e-3)
    assert ratios["ours_over_naive"] == pytest.approx(
        ours["events_per_s"] / r["faust_naive"]["events_per_s"], rel=1e-2)
    assert ratios["ours_scaling"] == pytest.approx(
        group["events_per_s"] / ours["events_per_s"], rel=1e-2)


def _check_quix(r: dict, text: str) -> None:
    """The Quix Streams row: figures when the 'peer' extra is installed, else one note."""
    if quix_available():
        q = r["quix"]
        assert q["events"] == N and r["quix_skipped"] is None
        for key in ("seconds", "events_per_s", "peak_rss_bytes"):
            _number(q, key)
        assert q["allocator"] == r["ours"]["allocator"]
        assert "Quix Streams counter" in text and "ours/quix" in text
        _number(r["ratios"], "ours_over_quix")
    else:
        assert r["quix"] is None and r["quix_skipped"] == SKIPPED
        assert SKIPPED in text and "Quix Streams counter" not in text
        assert r["ratios"]["ours_over_quix"] is None


@pytest.mark.skipif(not quix_available(), reason="quixstreams is not installed (the 'peer' "
                    "extra: pip install '.[peer]')")
def test_bench_quix_peer_counts_every_event(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The Quix Streams counter alone: it sees every preloaded event and commits them."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bench", "--brokers", broker.bootstrap,
         "--events", "1500", "--only", "quix", "--partitions", "2", "--timeout", "300",
         "--work-dir", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["phases"] == ["quix"] and r["quix_skipped"] is None
    q = r["quix"]
    assert q["events"] == 1500
    for key in ("seconds", "events_per_s", "peak_rss_bytes"):
        _number(q, key)
    assert "Quix Streams counter" in proc.stdout


def test_bench_runs_only_the_phases_asked_for_a_centre_of_the_size_asked(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The state-size run of the Performance section (`--employees 10000 --only ours`), in
    small: only our worker is measured, over as many seats as asked."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bench", "--brokers", broker.bootstrap,
         "--events", "1500", "--employees", "40", "--only", "ours", "--partitions", "2",
         "--live-rate", "20", "--live-seconds", "1", "--timeout", "300",
         "--work-dir", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "kpi worker" in proc.stdout and "Faust naive agent" not in proc.stdout
    r = json.loads(out.read_text())
    assert r["phases"] == ["ours"]
    assert r["preload"]["employees"] == 40
    for phase in ("pure_fold", "plain_consumer", "faust_pass_through", "faust_naive",
                  "quix", "quix_skipped", "replay", "ours_workers"):
        assert r[phase] is None, phase
    assert r["ours"]["accepted"] + r["ours"]["duplicates"] == 1500
    _number(r["ours"], "peak_rss_bytes")
    assert r["ratios"]["ours_over_naive"] is None
