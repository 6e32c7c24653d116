"""The soak's arithmetic: a leak must show as a slope, a filling cache must not."""

from __future__ import annotations

import pytest

from streams.devtools.soak import Sample, _gauge, _over, slope_per_hour, summarize


def _samples(rss: list[float], rocksdb: list[float]) -> list[Sample]:
    return [Sample(t_s=10.0 * (i + 1), sent=100 * (i + 1), processed=100 * (i + 1),
                   events_per_s=10.0, lag_messages=0.0, p99_latency_s=0.5, rss_mib=r,
                   cpu_pct=20.0, rocksdb_mib=c)
            for i, (r, c) in enumerate(zip(rss, rocksdb, strict=True))]


def test_slope_is_per_hour() -> None:
    assert slope_per_hour([(0.0, 0.0), (1800.0, 5.0), (3600.0, 10.0)]) == pytest.approx(10.0)
    assert slope_per_hour([(0.0, 1.0), (1.0, 1.0)]) is None  # too few points to tell


def test_a_leak_shows_in_every_slope() -> None:
    rss = [100.0 + i for i in range(40)]  # +1 MiB every 10 s, cache flat
    s = summarize(_samples(rss, [50.0] * 40))
    assert s["rss_slope_mib_per_hour"] == pytest.approx(360.0)
    assert s["rss_less_rocksdb_slope_mib_per_hour"] == pytest.approx(360.0)
    assert s["rss_slope_last_quarter_mib_per_hour"] == pytest.approx(360.0)
    assert s["rss_growth_pct"] > 0


def test_a_filling_cache_is_not_a_leak() -> None:
    # RocksDB's cache grows to its budget (64 MiB) and stays; the rest is flat.
    cache = [min(64.0, 4.0 * i) for i in range(40)]
    s = summarize(_samples([100.0 + c for c in cache], cache))
    assert s["rss_slope_mib_per_hour"] > 0  # RSS alone rises while the cache fills
    assert s["rss_less_rocksdb_slope_mib_per_hour"] == pytest.approx(0.0)
    assert s["rss_slope_last_quarter_mib_per_hour"] == pytest.approx(0.0)
    assert s["rocksdb_mib_max"] == 64.0


def test_gauge_reads_one_series() -> None:
    text = ('kpi_rocksdb_memory_bytes{kind="budget"} 2.01326592e+08\n'
            'kpi_rocksdb_memory_bytes{kind="cache"} 1048576.0\n')
    assert _gauge(text, 'kpi_rocksdb_memory_bytes{kind="cache"}') == 1048576.0
    assert _gauge(text, 'kpi_rocksdb_memory_bytes{kind="memtables"}') == 0.0


def test_latency_is_summarised_beside_the_brokers_own_delivery() -> None:
    samples = _samples([100.0] * 10, [50.0] * 10)
    for i, s in enumerate(samples):
        s.p99_latency_s = 0.5 + i  # the worker's tail grows
        s.broker_p99_s = None if i == 9 else 0.3  # the broker's does not
    out = summarize(samples, warmup_fraction=0.0)
    assert out["p99_latency_s_median"] == 5.5 and out["p99_latency_s_max"] == 9.5
    assert out["broker_p99_s_median"] == 0.3 == out["broker_p99_s_max"]
    # one second more every 10 s: 360 s an hour, all of it the worker's
    assert out["p99_latency_slope_s_per_hour"] == pytest.approx(360.0)
    assert out["p99_less_broker_slope_s_per_hour"] == pytest.approx(360.0)
    for i, s in enumerate(samples):  # now the broker's delivery is what grows (the
        s.broker_p99_s = 0.3 + i      # worker's p99 is 0.5 + i: it adds 0.2 s)
    out = summarize(samples, warmup_fraction=0.0)
    assert out["p99_less_broker_slope_s_per_hour"] == pytest.approx(0.0, abs=1e-6)
    assert out["p99_less_broker_s_mean"] == pytest.approx(0.2)


def test_share_over_two_seconds_is_read_from_the_bucket_bound() -> None:
    buckets = [(1.0, 90.0), (2.0, 96.0), (2.5, 99.0), (float("inf"), 100.0)]
    assert _over(buckets, 2.0) == 4.0
    assert _over(buckets, 1.5) is None  # not a bound of this histogram: unknown, not 0
    assert _over([(2.0, 0.0), (float("inf"), 0.0)], 2.0) is None  # nothing observed
    samples = _samples([100.0] * 4, [50.0] * 4)
    for s, pct in zip(samples, (0.0, 1.0, 3.0, None), strict=True):
        s.over_2s_pct = pct
    out = summarize(samples, warmup_fraction=0.0)
    assert out["over_2s_pct_mean"] == 1.333 and out["over_2s_pct_max"] == 3.0


def test_broker_cpu_is_compared_between_halves() -> None:
    samples = _samples([100.0] * 40, [10.0] * 40)
    for i, sample in enumerate(samples):
        sample.broker_cpu_pct = 10.0 + i  # a broker working harder as its log grows
        sample.harness_cpu_pct = 5.0
    s = summarize(samples)
    # steady state is the last 32 samples (warm-up 20 %): 18..33 then 34..49
    assert s["broker_cpu_pct_first_half"] == pytest.approx(25.5)
    assert s["broker_cpu_pct_second_half"] == pytest.approx(41.5)
    assert s["harness_cpu_pct_mean"] == 5.0
    # with --brokers there is no broker process to read
    assert summarize(_samples([100.0] * 4, [10.0] * 4))["broker_cpu_pct_first_half"] is None
