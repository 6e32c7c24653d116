"""The bench's own arithmetic and reports, without a broker."""

from __future__ import annotations

import json
from pathlib import Path

from streams.devtools.benchkit import StatusFile
from streams.devtools.scaleout import _cpu_window, ours_cpu_per_event, scaling_lines


def test_status_file_reports_first_event_and_the_nth(tmp_path: Path) -> None:
    path = tmp_path / "child.status.json"
    st = StatusFile(path, events=5)
    st.seen(2)
    st.write()
    first = json.loads(path.read_text())
    assert first["n"] == first["n_first"] == 2 and first["first"] and not first["done"]
    st.seen(3)  # the N-th event writes at once: the bench should not wait for the timer
    done = json.loads(path.read_text())
    assert done["n"] == 5 and done["done"] and done["end"] >= done["first"]
    assert done["first"] == first["first"]


def test_cpu_window_per_worker_and_per_event() -> None:
    got = _cpu_window(([1.0, 2.0], 10.0), [3.0, 5.5], 12.0, events=1000)
    assert got == {"cpu_workers_s": [2.0, 3.5], "cpu_us_per_event_workers": 5500.0,
                   "cpu_broker_s": 2.0, "cpu_us_per_event_broker": 2000.0}
    # An external broker (no pid) and an unreadable worker: what is known, no guesses.
    got = _cpu_window(([1.0, None], None), [3.0, 4.0], None, events=1000)
    assert got["cpu_workers_s"] == [2.0, None]
    assert got["cpu_us_per_event_workers"] == 2000.0
    assert got["cpu_broker_s"] is None and got["cpu_us_per_event_broker"] is None


def test_one_worker_cpu_per_event_and_the_printed_lines() -> None:
    # The CPU of the measured window, over the events of that window (not all N).
    one = {"events": 4000, "window_events": 2000, "events_per_s": 400.0, "cpu_process_s": 1.0,
           "cpu_broker_s": None}
    one.update(ours_cpu_per_event(one))
    assert one["cpu_us_per_event_workers"] == 500.0 and one["cpu_us_per_event_broker"] is None
    two = {"events": 2000, "events_per_s": 500.0, "workers": 2, "cpu_workers_s": [0.6, 0.5],
           "cpu_us_per_event_workers": 550.0, "cpu_us_per_event_broker": 100.0}
    lines = scaling_lines({"ours": one, "ours_workers": two})
    assert lines == [
        "ours with 1 worker(s): 400 events/s, CPU per event 500 µs in the workers (1.0 s), "
        "broker not measured",
        "ours with 2 worker(s): 500 events/s, CPU per event 550 µs in the workers "
        "(0.6, 0.5 s), 100 µs in the broker"]
    assert scaling_lines({"ours": None, "ours_workers": None}) == []
    assert ours_cpu_per_event(None) == {}


def test_the_printout_names_a_skipped_peer_in_plain_text(capsys) -> None:
    """Without the 'peer' extra the run prints one note (rich must not read "[peer]" as
    a style) and the ratios leave Quix out."""
    from streams.devtools.bench import _ratios, render
    from streams.devtools.peers import SKIPPED

    results: dict = {"events": 10, "partitions": 1, "broker": "external x:1",
                     "preload": {"events": 10, "seconds": 0.1, "events_per_s": 100.0,
                                 "employees": 1, "tickets": 2},
                     "faust_naive": None, "quix": None, "quix_skipped": SKIPPED,
                     "ours": None, "ours_workers": None, "faust_pass_through": None,
                     "plain_consumer": None, "replay": None, "replay_workers": None,
                     "machine": {"cpus": 2, "cpu": "x", "memory_bytes": 2**30,
                                 "python": "3.11", "load_before": [0.0]}}
    results["ratios"] = _ratios(results)
    render(results)
    out = " ".join(capsys.readouterr().out.split())
    assert SKIPPED in out and "ours/quix" not in out
    assert results["ratios"]["ours_over_quix"] is None
