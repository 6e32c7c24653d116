"""A peer framework in the bench's run: Quix Streams (the optional `peer` extra).

Its job is the Faust naive baseline's: count the events of every input topic per message
key in a RocksDB-backed state with a changelog. One streaming dataframe
per input topic, each with its own store and changelog topic (Quix scopes state to the
message key, as Faust's table is keyed here). Quix's defaults otherwise (at-least-once).
Faust writes each count to RocksDB and the changelog as it is made; Quix writes each
changed key's last count of a checkpoint when it commits, so its run ends only once its
committed offsets reach the end of every input partition.

Quix derives its changelog topics' configuration from the input topics' `retention.ms`,
which the embedded broker does not report; the bench's child fills in -1 (unlimited, the
input topics' own setting) so Quix can create them. This stays in the bench: the product
never talks to Quix.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

from streams.devtools.benchkit import StatusFile, _caught_up, _committed, _Run, status_child

SKIPPED = "Quix Streams baseline skipped: pip install '.[peer]'"
# Quix keeps a checkpoint's state writes in memory and flushes them to RocksDB and the
# changelog when it commits (every 5 s by default): its run ends when its offsets are
# committed, so a shorter interval keeps the wait for the last commit short.
COMMIT_INTERVAL = 1.0


def quix_available() -> bool:
    try:
        return importlib.util.find_spec("quixstreams") is not None
    except (ImportError, ValueError):  # an import hook refused it, or sys.modules holds None
        return False


def quix_peer(run: _Run) -> dict[str, Any] | None:
    """The Quix Streams counter on the preloaded topics; None when it is not installed."""
    if not quix_available():
        return None
    cfg = run.cfg
    group = f"{run.prefix}bench-quix"
    ends = run.preloaded

    def committed() -> bool:  # its state flushed and changelogged, its offsets committed
        return _caught_up(_committed(run.settings(), group), ends)

    return status_child(run, "Quix Streams counter", "quix", [
        "streams.devtools.peers", "quix", "--brokers", run.bootstrap,
        "--topics", ",".join(run.inputs), "--events", str(cfg.events),
        "--group", group, "--state-dir", str(run.dir / "quix-data"),
        "--commit-interval", str(COMMIT_INTERVAL)], until=committed)


def _quix_child(args: argparse.Namespace) -> None:
    """The peer process: one Quix Application, a stateful count per key of each topic."""
    from quixstreams import Application
    from quixstreams.models.topics import TopicAdmin, TopicManager

    class Retained(TopicManager):
        @classmethod
        def derive_topic_config(cls, topics: Any) -> Any:
            for t in topics:
                t.broker_config.extra_config.setdefault("retention.ms", "-1")
            return super().derive_topic_config(topics)

    status = StatusFile(Path(args.status), args.events)
    manager = Retained(TopicAdmin(broker_address=args.brokers), consumer_group=args.group)
    app = Application(broker_address=args.brokers, consumer_group=args.group,
                      auto_offset_reset="earliest", state_dir=args.state_dir,
                      commit_interval=args.commit_interval,
                      loglevel="WARNING", topic_manager=manager)

    def count(_value: Any, state: Any) -> None:
        state.set("n", state.get("n", 0) + 1)  # kept in the checkpoint until its commit
        status.seen(1)

    for name in args.topics.split(","):
        sdf = app.dataframe(app.topic(name, key_deserializer="bytes",
                                      value_deserializer="bytes"))
        sdf.update(count, stateful=True)
    stopping = threading.Event()

    def report() -> None:
        while not stopping.wait(0.25):
            status.write()

    threading.Thread(target=report, name="status", daemon=True).start()
    try:
        app.run()  # until the bench stops it (SIGTERM), after reading its peak RSS
    finally:
        stopping.set()


def _child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m streams.devtools.peers")
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quix", help="the Quix Streams counter (run by kpi bench)")
    q.add_argument("--brokers", required=True)
    q.add_argument("--topics", required=True)
    q.add_argument("--events", type=int, required=True)
    q.add_argument("--group", required=True)
    q.add_argument("--state-dir", required=True)
    q.add_argument("--commit-interval", type=float, required=True)
    q.add_argument("--status", required=True)
    args = p.parse_args(argv)
    _quix_child(args)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
