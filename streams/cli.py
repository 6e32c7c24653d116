"""The `kpi` command line: broker, topics, worker, simulate, produce, dev."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from streams.settings import Settings

if TYPE_CHECKING:  # imported where used: the worker's start does not load the dev tools
    import faust

    from streams.devtools.broker import EmbeddedBroker
    from streams.worker.app import KpiWorker


class CliError(click.ClickException):
    """A user-facing failure: printed as one line, exit code 1."""


def _fail(msg: str) -> NoReturn:
    raise CliError(msg)


def _settings(ctx: click.Context) -> Settings:
    obj: Settings = ctx.obj
    return obj


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--brokers", envvar="KPI_BROKERS", help="Kafka bootstrap servers (host:port,...).")
@click.option("--prefix", "topic_prefix", envvar="KPI_TOPIC_PREFIX", help="Topic name prefix.")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="KPI_DATA_DIR",
              help="Directory for the worker's RocksDB state.")
@click.pass_context
def cli(ctx: click.Context, brokers: str | None, topic_prefix: str | None,
        data_dir: Path | None) -> None:
    """Live KPI and SLA engine for support and contact-centre teams."""
    overrides: dict[str, Any] = {}
    if brokers:
        overrides["brokers"] = brokers
    if topic_prefix is not None:
        overrides["topic_prefix"] = topic_prefix
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        ctx.obj = Settings(**overrides)
    except Exception as exc:  # pydantic's message is long: keep the first line
        _fail(f"invalid settings: {str(exc).splitlines()[0]}")


def _start_broker(port: int) -> EmbeddedBroker:
    """The embedded broker on `port`, started; a failure is one line and exit 1."""
    from streams.devtools.broker import BrokerError, EmbeddedBroker

    b = EmbeddedBroker(port=port)
    try:
        b.start()
    except BrokerError as exc:
        _fail(str(exc))
    return b


@cli.command()
@click.option("--port", default=9092, show_default=True, type=click.IntRange(1, 65535))
def broker(port: int) -> None:
    """Run the embedded Kafka-compatible broker (development and tests only)."""
    click.echo(f"kpi broker: embedded Tansu broker on 127.0.0.1:{port}, memory storage, "
               "for development and tests only; production uses Apache Kafka.")
    b = _start_broker(port)
    click.echo(f"ready: KPI_BROKERS=127.0.0.1:{port} (Ctrl-C stops it; all topics are lost)")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM and SIGHUP take the broker down as Ctrl-C does

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    try:
        b.wait()
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()
        click.echo("kpi broker: stopped")


@cli.group()
def topics() -> None:
    """Manage the topics."""


@topics.command("create")
@click.option("--partitions", type=click.IntRange(1, 1024), help="Partitions for new topics.")
@click.pass_context
def topics_create(ctx: click.Context, partitions: int | None) -> None:
    """Create every input and output topic and this generation's internal ones (idempotent)."""
    from streams.admin import BrokerUnavailable, create_topics

    s = _settings(ctx)
    if partitions:
        s = s.model_copy(update={"partitions": partitions})
    try:
        created, existing = create_topics(s)
    except BrokerUnavailable as exc:
        _fail(str(exc))
    click.echo(f"created {len(created)} topic(s), {len(existing)} already present")
    for name in created:
        click.echo(f"  + {name}")


@cli.command()
@click.option("--web-port", type=click.IntRange(1, 65535), help="HTTP port of this worker.")
@click.option("--web-host", help="HTTP bind address (default 127.0.0.1).")
@click.option("--loglevel", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--reset-local-state", is_flag=True,
              help="Delete this worker's local state for its generation (under --data-dir) "
                   "and rebuild it from the broker's changelogs.")
@click.option("--build-generation", type=click.IntRange(2),
              help="Join the building group of this generation, registered by `kpi replay "
                   "--external-workers`: no alerts, no snapshots, not following the active "
                   "generation.")
@click.pass_context
def worker(ctx: click.Context, web_port: int | None, web_host: str | None,
           loglevel: str | None, reset_local_state: bool,
           build_generation: int | None) -> None:
    """Run one Faust worker (several may run in one group)."""
    from streams.admin import BrokerUnavailable, create_topics, partitions_of
    from streams.worker.memory import AllocatorError, allocator_env

    s = _settings(ctx)
    try:
        env = allocator_env(s.allocator, os.environ)
    except AllocatorError as exc:
        _fail(str(exc))
    if env is not None:
        os.execve(sys.executable, sys.orig_argv, env)  # same PID, same command, on jemalloc
    upd: dict[str, Any] = {}
    if web_port:
        upd["web_port"] = web_port
    if web_host:
        upd["web_host"] = web_host
    if loglevel:
        upd["log_level"] = loglevel
    if build_generation:
        # What `kpi replay` gives the building workers it starts itself.
        upd.update(generation=build_generation, follow_active=False, alerts=False,
                   snapshots=False, stop_when_built=True)
    s = s.model_copy(update=upd)
    from streams.worker.startup import wait_for_broker

    wait_for_broker(s, lambda line: click.echo(line, err=True))
    try:
        create_topics(s)
        # Tables are co-partitioned with their source topics: follow the topics as they are.
        actual = partitions_of(s, s.topic("tickets"))
        if actual and actual != s.partitions:
            click.echo(f"kpi worker: input topics have {actual} partitions "
                       f"(KPI_PARTITIONS={s.partitions}); using {actual}", err=True)
            s = s.model_copy(update={"partitions": actual})
    except BrokerUnavailable as exc:
        click.echo(f"kpi worker: {exc}; starting anyway, will retry", err=True)
    _check_local_state(s, reset_local_state)
    run_worker(s)


def _check_local_state(s: Settings, reset: bool) -> None:
    """Reset the local state on request; refuse, in one line, state the broker lacks."""
    from kafka.errors import KafkaError

    from streams.worker import localstate

    if reset:
        gone = localstate.reset(s)
        click.echo(f"kpi worker: deleted local state {gone}" if gone else
                   f"kpi worker: no local state at {localstate.state_dir(s)}", err=True)
        return
    try:
        localstate.check(s)
    except localstate.LocalStateError as exc:
        _fail(str(exc))
    except (KafkaError, OSError) as exc:  # Faust's own recovery will meet the same broker
        click.echo(f"kpi worker: local state not checked ({exc})", err=True)


def run_worker(s: Settings) -> None:
    """Run the Faust worker in the foreground until SIGINT/SIGTERM."""
    import faust

    from streams.worker.app import KpiWorker
    from streams.worker.generations import NothingToBuild, UnknownGeneration, serving_settings

    try:
        # The generation, and the order cutoff it was built with, from the registry.
        s = serving_settings(s, lambda line: click.echo(line, err=True))
    except (UnknownGeneration, NothingToBuild) as exc:
        _fail(str(exc))
    from streams.worker.memory import allocator_in_use, limit_arenas, tune_gc

    allocator = allocator_in_use()
    click.echo(f"kpi worker: memory allocator {allocator}"
               + ("" if allocator == "jemalloc" or s.allocator == "system"
                  else " (install libjemalloc2 for a flat RSS: README, Soak)"), err=True)
    limit_arenas(s.malloc_arenas)  # before Faust, aiokafka and RocksDB start threads
    tune_gc(s.gc_threshold)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"kpi worker: API on http://{s.web_host}:{s.web_port}, authentication "
               + ("ON (bearer tokens from " + str(s.tokens_file) + ")" if s.auth_enabled
                  else "OFF (KPI_AUTH_ENABLED=false)"), err=True)
    kw = KpiWorker(s)
    w = faust.Worker(kw.app, loglevel=s.log_level, quiet=True, redirect_stdouts=False)
    _run_marked(s, w, kw)


def _run_marked(s: Settings, w: faust.Worker, kw: KpiWorker) -> None:
    """Run the Faust worker with its state marked in use until it stops cleanly."""
    from streams.worker import localstate

    if localstate.open_state(s):
        click.echo(f"kpi worker: the last process on {localstate.state_dir(s)} did not stop "
                   "cleanly; its tables are rebuilt from the changelogs", err=True)
    clean = False
    try:
        w.execute_from_commandline()
    except SystemExit as exc:
        clean = not exc.code and kw.settled()
        raise
    finally:
        if clean:
            localstate.close_state(s)
        if kw.restart_generation is not None:
            # A new generation became active: start afresh on it (new consumer group,
            # changelogs and local state; tables recover from its changelogs).
            os.environ["KPI_GENERATION"] = str(kw.restart_generation)
            os.execv(sys.executable, [sys.executable, "-m", "streams.cli", *sys.argv[1:]])


@cli.command()
@click.option("--employees", default=40, show_default=True, type=click.IntRange(1, 100000))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a historical feed to this JSONL file instead of the broker.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]),
              help="First day of the historical feed (default: first day of last month).")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660),
              help="Days of history for --out.")
@click.option("--rate", type=click.FloatRange(0.1, 1e6),
              help="Live events per second to the broker (events happen now).")
@click.option("--limit", type=click.IntRange(1), help="Stop after this many live events.")
@click.option("--demo-history-days", type=click.IntRange(0, 366),
              help="The demo centre: this many days of history up to now, then live events "
                   "at a seat's own pace, in a zone where now is working time.")
@click.pass_context
def simulate(ctx: click.Context, employees: int, seed: int, out: Path | None,
             start: datetime | None, days: int, rate: float | None, limit: int | None,
             demo_history_days: int | None) -> None:
    """Generate a realistic synthetic feed: to --out FILE.jsonl, or live to the broker."""
    from streams.ops import simulate as sim

    s = _settings(ctx)
    if demo_history_days is not None:
        if out is not None or rate is not None:
            _fail("--demo-history-days sets its own history and pace: drop --out and --rate")
        _simulate_demo(s, employees, seed, demo_history_days)
        return
    if out is not None:
        if rate is not None:
            _fail("--out writes history; --rate sends live events: choose one")
        first = start.date() if start else _first_of_last_month()
        events = sim.historical(employees=employees, start=first, days=days, seed=seed)
        n = sim.write_jsonl(out, events, progress=sys.stderr.isatty())
        click.echo(f"wrote {n} events to {out}")
        return
    from streams.admin import BrokerUnavailable, create_topics

    try:
        create_topics(s)
        producer = _producer(s)
    except BrokerUnavailable as exc:
        _fail(str(exc))
    feed = sim.live(employees=employees, seed=seed, rate=rate or 20.0,
                    now=lambda: datetime.now(UTC))
    try:
        sent = sim.send(feed, producer, s.topic_prefix, rate=rate or 20.0, limit=limit,
                        progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        sent = -1
    finally:
        producer.flush()
        producer.close()
    if sent >= 0:
        click.echo(f"sent {sent} events")


def _simulate_demo(s: Settings, employees: int, seed: int, history_days: int) -> None:
    """Send the demo centre's history as fast as the broker takes it, then live events."""
    from streams.admin import BrokerUnavailable, create_topics
    from streams.ops import simulate as sim

    plan, history, feed = sim.demo(employees=employees, seed=seed,
                                   now=lambda: datetime.now(UTC), history_days=history_days)
    click.echo(f"kpi simulate: {plan.describe()}", err=True)
    try:
        create_topics(s)
        producer = _producer(s)
    except BrokerUnavailable as exc:
        _fail(str(exc))
    try:
        n = sim.send(history, producer, s.topic_prefix, rate=None, limit=None, progress=False)
        producer.flush()
        rate = sim.seat_rate(employees)
        click.echo(f"kpi simulate: sent {n} history events; live now at {rate * 60:.1f} "
                   "events/min", err=True)
        if plan.last_ticket is not None:
            click.echo(f"  ticket   http://{s.web_host}:{s.web_port}/tickets/"
                       f"{plan.last_ticket}", err=True)
        sim.send(feed, producer, s.topic_prefix, rate=rate, limit=None, progress=False)
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush()
        producer.close()


def _first_of_last_month() -> date:
    today = datetime.now(UTC).date()
    y, m = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return date(y, m, 1)


def _producer(s: Settings) -> Any:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from streams.admin import BrokerUnavailable

    try:
        return KafkaProducer(acks="all", linger_ms=5, max_block_ms=10000,
                             **s.kafka_python_options())
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {s.brokers}: {exc}") from exc


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def produce(ctx: click.Context, file: Path) -> None:
    """Publish events from a JSONL file (topic and key follow from each type).

    Valid lines are sent even when others are not; every problem of each invalid line is
    listed, and the exit status is 1 if any line was left out, so a script notices."""
    from streams.admin import BrokerUnavailable, create_topics
    from streams.ops.produce import BrokerUnavailable as ProduceUnavailable
    from streams.ops.produce import produce_file

    s = _settings(ctx)
    try:
        create_topics(s)
        summary = produce_file(file, bootstrap=s.brokers, prefix=s.topic_prefix,
                               client_options=s.kafka_python_options(),
                               progress=sys.stderr.isatty())
    except (BrokerUnavailable, ProduceUnavailable) as exc:
        _fail(str(exc))
    total = sum(summary.sent.values())
    click.echo(f"sent {total} events: " + ", ".join(
        f"{t}={n}" for t, n in sorted(summary.sent.items())))
    for line_no, _, _ in summary.invalid:
        for reason, detail in summary.problems[line_no]:
            click.echo(f"  line {line_no}: {reason}: {detail}", err=True)
    if summary.rejected:
        _fail(f"{len(summary.invalid)} invalid line(s) not sent")


@cli.command()
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("reports"), show_default=True,
              help="Where the change report (CSV and JSON) is written.")
@click.option("--timeout", default=3600, show_default=True, type=click.IntRange(10),
              help="Give up (the live generation keeps serving) after this many seconds.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Building workers on this machine, one consumer group (up to the "
                   "partition count do work).")
@click.option("--max-restarts", default=3, show_default=True, type=click.IntRange(0),
              help="Building workers that die are replaced this many times in all; one "
                   "more death fails the replay (the live generation keeps serving).")
@click.option("--external-workers", is_flag=True,
              help="Start no building worker here: register the generation, wait for "
                   "workers started on other machines with `kpi worker --build-generation "
                   "N` to catch up, then switch.")
@click.pass_context
def replay(ctx: click.Context, report_dir: Path, timeout: int, workers: int,
           max_restarts: int, external_workers: bool) -> None:
    """Rebuild history into a new generation, switch to it, report what changed."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from streams.admin import BrokerUnavailable
    from streams.ops.replay import ProgressLines, ReplayError
    from streams.ops.replay import replay as run_replay

    s = _settings(ctx)
    log_path = s.data_dir.parent / "replay-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn("replay"), BarColumn(), TextColumn("{task.completed:,.0f}/"
               "{task.total:,.0f} events"), TextColumn("{task.fields[rate]:,.0f}/s"),
               TimeRemainingColumn())
    started = time.monotonic()
    terminal = sys.stderr.isatty()
    lines = ProgressLines(lambda line: click.echo(line, err=True))
    with Progress(*columns, disable=not terminal) as bar:
        task = bar.add_task("replay", total=None, rate=0.0)

        def progress(done: int, total: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=done, total=total, rate=done / elapsed)
            if not terminal:
                lines(done, total)

        try:
            result = run_replay(s, report_dir, timeout_s=timeout, on_progress=progress,
                                log_path=log_path,
                                workers=0 if external_workers else workers,
                                max_restarts=max_restarts,
                                on_line=lambda line: click.echo(line, err=True))
        except ReplayError as exc:
            _fail(f"replay failed: {exc} (worker log: {log_path})")
        except BrokerUnavailable as exc:
            _fail(f"replay failed, generation unchanged: {exc}")
    changed = sorted({r.employee_id for r in result.rows})
    click.echo(f"generation {result.new_generation} is active (was {result.old_generation}): "
               f"{result.events} events in {result.seconds:.1f}s ({result.rate:,.0f}/s)")
    click.echo(f"{len(changed)} employee(s) changed, {len(result.rows)} (employee, period) "
               f"row(s): {result.csv_path}, {result.json_path}")


@cli.group()
def generations() -> None:
    """Projection generations (replays)."""


@generations.command("list")
@click.pass_context
def generations_list(ctx: click.Context) -> None:
    """Number, state, order cutoff, started, caught up, active.

    A generation's order cutoff is what it fixes: orders issued by then count as issued at
    the start. Generation 1 (live, never replayed) has none and was started by the first
    worker, before the registry records anything.
    """
    from streams.admin import BrokerUnavailable
    from streams.worker.generations import read_registry

    try:
        reg = read_registry(_settings(ctx))
    except BrokerUnavailable as exc:
        _fail(str(exc))
    rows = dict(reg.generations)
    if reg.active_generation not in rows:
        from streams.worker.generations import Generation

        rows[reg.active_generation] = Generation(reg.active_generation, "active")
    click.echo(f"{'gen':>4}  {'state':<10}  {'order cutoff':<32}  {'started':<25}  "
               f"{'caught up':<25}  active")
    for n in sorted(rows):
        g = rows[n]
        mark = "*" if n == reg.active_generation else ""
        cutoff = g.orders_cutoff or "none (live)"
        start = g.started_at or ("first worker start" if n == 1 else "-")
        click.echo(f"{n:>4}  {g.state:<10}  {cutoff:<32}  {start:<25}  "
                   f"{g.caught_up_at or '-':<25}  {mark}")


@generations.command("prune")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def generations_prune(ctx: click.Context, yes: bool) -> None:
    """Remove the topics and local state of inactive generations."""
    from streams.admin import (
        INTERNAL_TOPICS,
        TABLES,
        BrokerUnavailable,
        delete_topics,
        list_topics,
    )
    from streams.ops.replay import group_id
    from streams.worker.generations import read_registry, write

    s = _settings(ctx)
    try:
        reg = read_registry(s)
        existing = set(list_topics(s))
    except BrokerUnavailable as exc:
        _fail(str(exc))
    doomed = [g for n, g in sorted(reg.generations.items())
              if n != reg.active_generation and g.state not in ("pruned", "building")]
    if not doomed:
        click.echo("nothing to prune")
        return
    plan: dict[int, list[str]] = {}
    for g in doomed:
        gid = group_id(s, g.number)
        names = [f"{gid}-{t}-changelog" for t in TABLES]
        names += [f"{gid}-__assignor-__leader"]
        names += [s.model_copy(update={"generation": g.number}).internal_topic(t)
                  for t in INTERNAL_TOPICS]
        plan[g.number] = [n for n in names if n in existing]
    for n, names in plan.items():
        click.echo(f"generation {n}: {len(names)} topic(s), local state {s.data_dir / f'v{n}'}")
    if not yes and not click.confirm("delete these?", default=False):
        click.echo("nothing deleted")  # the operator's answer, not a failure
        return
    for g in doomed:
        delete_topics(s, plan[g.number])
        shutil.rmtree(s.data_dir / f"v{g.number}", ignore_errors=True)
        g.state = "pruned"
        write(s, generation=g)
    click.echo(f"pruned {len(doomed)} generation(s)")


@cli.group()
def tokens() -> None:
    """API bearer tokens (only their hashes are stored, in KPI_TOKENS_FILE)."""


@tokens.command("add")
@click.option("--role", required=True, type=click.Choice(["employee", "manager", "operations",
                                                           "metrics"]))
@click.option("--employee", "employee_id", help="The employee an employee token may read.")
@click.option("--department", "departments", multiple=True,
              help="A department a manager token may read (repeatable).")
@click.option("--label", default="", help="A note for `kpi tokens list`.")
@click.pass_context
def tokens_add(ctx: click.Context, role: str, employee_id: str | None,
               departments: tuple[str, ...], label: str) -> None:
    """Create a token and print it once."""
    from streams.api.auth import TokenError, TokenStore

    store = TokenStore(_settings(ctx).tokens_file)
    try:
        token, rec = store.add(role, employee_id=employee_id,  # type: ignore[arg-type]
                               departments=list(departments), label=label)
    except TokenError as exc:
        _fail(str(exc))
    click.echo(token)
    click.echo(f"id {rec.id}, role {rec.role}: store it now, it is not shown again", err=True)


@tokens.command("list")
@click.pass_context
def tokens_list(ctx: click.Context) -> None:
    """List tokens (ids, roles, scopes; never the tokens themselves)."""
    from streams.api.auth import TokenStore

    records = TokenStore(_settings(ctx).tokens_file).list()
    rows = [(r.id, r.role, r.employee_id or ",".join(r.departments) or "*", r.created_at,
             f"revoked {r.revoked_at}" if r.revoked_at else "active", r.label)
            for r in records]
    header = ("ID", "ROLE", "SCOPE", "CREATED", "STATE", "LABEL")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        cells = [str(v).ljust(w) for v, w in zip(row[:5], widths, strict=True)]
        click.echo("  ".join([*cells, str(row[5])]).rstrip())


@tokens.command("revoke")
@click.argument("token_id")
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke a token by id; workers stop accepting it at once."""
    from streams.api.auth import TokenError, TokenStore

    try:
        TokenStore(_settings(ctx).tokens_file).revoke(token_id)
    except TokenError as exc:
        _fail(str(exc))
    click.echo(f"revoked {token_id}")


@cli.command("export")
@click.option("--month", required=True, help="The month, YYYY-MM.")
@click.option("--department", help="Only this department (default: every one the token "
              "may read).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: standard output).")
@click.option("--url", envvar="KPI_URL", default="http://127.0.0.1:6066", show_default=True,
              help="A worker's API (env KPI_URL); the token is read from env KPI_TOKEN.")
def export_cmd(month: str, department: str | None, fmt: str, out: Path | None,
               url: str) -> None:
    """The payroll file: one row per employee-month, every figure and bonus field."""
    import re

    from streams.ops.export import ExportError, export

    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", month):
        _fail(f"--month must be a month YYYY-MM, got {month!r}")

    def progress(done: int, total: int, rows: int) -> None:
        if total > 1:
            click.echo(f"export: {done}/{total} departments, {rows} employees", err=True)

    try:
        n, where = export(url, os.environ.get("KPI_TOKEN") or None, month, department, fmt,
                          out, progress)
    except ExportError as exc:
        _fail(str(exc))
    if out is None:
        click.echo(where, nl=False)
    click.echo(f"export: {n} employee-months of {month}"
               + (f" written to {where}" if out is not None else ""), err=True)


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one <name>.schema.json per event and output into this directory "
                   "(default: print them all as one JSON object).")
def schema(out_dir: Path | None) -> None:
    """JSON Schema of every input event and output object, from the pydantic models."""
    import json

    from streams.ops.reference import all_schemas, write_schemas

    if out_dir is None:
        click.echo(json.dumps(all_schemas(), indent=2))
        return
    try:
        written = write_schemas(out_dir)
    except OSError as exc:
        _fail(f"cannot write schemas to {out_dir}: {exc.strerror or exc}")
    click.echo(f"wrote {len(written)} schemas to {out_dir}")


@cli.command("settings")
@click.option("--markdown", is_flag=True, help="Print the settings table as Markdown.")
@click.option("--write", "doc", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Replace the table between the settings markers of this file.")
def settings_cmd(markdown: bool, doc: Path | None) -> None:
    """Every KPI_* setting with its default and meaning, from the settings object."""
    from streams.ops.reference import replace_settings_table, settings_markdown, settings_rows

    if doc is not None:
        try:
            doc.write_text(replace_settings_table(doc.read_text(encoding="utf-8")),
                           encoding="utf-8")
        except ValueError as exc:
            _fail(f"{doc}: {exc}")
        click.echo(f"updated the settings table in {doc}")
    elif markdown:
        click.echo(settings_markdown(), nl=False)
    else:
        for var, default, meaning in settings_rows():
            click.echo(f"{var.strip('`'):32} {default.strip('`') or '-':18} {meaning}")


DEV_MARKER = ".kpi-dev"  # written by `kpi dev` into the state it owns, and nowhere else


@cli.command()
@click.option("--employees", default=30, show_default=True, type=click.IntRange(1, 10000))
@click.option("--history-days", default=21, show_default=True, type=click.IntRange(0, 366),
              help="Days of simulated history preloaded before the live feed.")
@click.option("--port", default=9092, show_default=True, type=click.IntRange(1, 65535),
              help="Broker port to use or start.")
@click.option("--web-port", default=6066, show_default=True, type=click.IntRange(1, 65535))
@click.option("--dev-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".kpi/dev"), show_default=True,
              help="The demo's own state (never a hand-run worker's --data-dir).")
@click.pass_context
def dev(ctx: click.Context, employees: int, history_days: int, port: int, web_port: int,
        dev_dir: Path) -> None:
    """The demo: embedded broker (if none answers), topics, a worker and a simulated centre."""
    from streams.devtools.broker import metadata_ready, port_open

    s = _settings(ctx).model_copy(update={"brokers": f"127.0.0.1:{port}",
                                          "web_port": web_port, "data_dir": dev_dir / "data"})
    env = {**os.environ, "KPI_BROKERS": s.brokers, "KPI_WEB_PORT": str(web_port),
           "KPI_AUTH_ENABLED": "false",
           "KPI_DATA_DIR": str(s.data_dir), "KPI_TOPIC_PREFIX": s.topic_prefix}
    broker_proc: EmbeddedBroker | None = None
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the demo as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    try:
        if port_open("127.0.0.1", port) and metadata_ready(s.brokers, 3.0):
            click.echo(f"kpi dev: using the broker already answering on {s.brokers}")
        else:
            _fresh_dev_dir(dev_dir)
            broker_proc = _start_broker(port)
            click.echo(f"kpi dev: started the embedded broker on {s.brokers} (development only)")
        from streams.admin import create_topics

        create_topics(s)
        exe = [sys.executable, "-m", "streams.cli"]
        # Own sessions: Ctrl-C reaches only this process, which stops the children in order.
        procs.append(("worker", subprocess.Popen([*exe, "worker"], env=env,
                                                 start_new_session=True)))
        procs.insert(0, ("feed", subprocess.Popen(
            [*exe, "simulate", "--employees", str(employees), "--demo-history-days",
             str(history_days)], env=env, stdout=subprocess.DEVNULL, start_new_session=True)))
        _dev_banner(web_port, employees)
        while all(p.poll() is None for _, p in procs):
            time.sleep(0.5)
        _fail("a child process exited; stopping")
    except KeyboardInterrupt:
        click.echo("\nkpi dev: stopping")
    finally:
        _stop_in_order(procs, broker_proc)


def _fresh_dev_dir(dev_dir: Path) -> None:
    """A new in-memory broker has no history: clear the demo's own state, and only that."""
    marker = dev_dir / DEV_MARKER
    if dev_dir.exists() and any(dev_dir.iterdir()) and not marker.exists():
        _fail(f"{dev_dir} exists and was not made by kpi dev; choose another --dev-dir")
    if marker.exists():
        shutil.rmtree(dev_dir)
    dev_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("state of `kpi dev`; it deletes this directory when it starts afresh\n")


def _dev_banner(web_port: int, employees: int) -> None:
    base = f"http://127.0.0.1:{web_port}"
    click.echo("")
    click.echo(f"kpi dev: a simulated contact centre of {employees} seats: weeks of history "
               "up to now, then live calls, tickets and QA at a seat's own pace; its zone is "
               "chosen so that now is working time there (the feed's line below says which)")
    click.echo("kpi dev: authentication is OFF in this demo (KPI_AUTH_ENABLED=false); "
               "a real worker requires bearer tokens (kpi tokens add)")
    click.echo(f"  health   {base}/health")
    click.echo(f"  metrics  {base}/metrics")
    click.echo(f"  employee {base}/kpi/employees/e-001?date=<today in the centre's zone>")
    click.echo(f"  month    {base}/kpi/employees/e-001")
    click.echo(f"  dept     {base}/kpi/departments/d-01")
    click.echo(f"  tickets  {base}/kpi/departments/d-01/tickets?status=open")
    click.echo(f"  pages    {base}/ui/   {base}/ui/employees/e-001   "
               f"{base}/ui/departments/d-01")
    click.echo("Ctrl-C stops the feed, the worker, then the broker.")


def _stop_in_order(procs: list[tuple[str, subprocess.Popen[bytes]]],
                   broker_proc: Any) -> None:
    """Feed first, worker next, broker last: no client ever loses its broker mid-flight."""
    from streams.ops.builders import stop_process

    for name, p in procs:
        stop_process(p, grace=30, sig=signal.SIGINT)
        click.echo(f"kpi dev: {name} stopped")
    if broker_proc is not None:
        broker_proc.stop()
        click.echo("kpi dev: broker stopped")


@cli.command()
@click.option("--events", default=500_000, show_default=True, type=click.IntRange(1),
              help="Events to preload (the simulator's realistic mix).")
@click.option("--brokers", "bench_brokers",
              help="Use this broker instead of starting the embedded one (fresh topic prefix).")
@click.option("--partitions", default=4, show_default=True, type=click.IntRange(1, 1024))
@click.option("--timeout", default=1800, show_default=True, type=click.IntRange(10),
              help="Limit of each phase, seconds.")
@click.option("--live-rate", default=1000.0, show_default=True, type=click.FloatRange(1, 1e5),
              help="Events/s of the live feed that measures event lag.")
@click.option("--live-seconds", default=10.0, show_default=True,
              type=click.FloatRange(0.1, 3600))
@click.option("--no-replay", is_flag=True, help="Skip the replay phase.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every figure to this JSON file.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Parent of the run's state and logs (default: the system temp dir).")
@click.option("--keep", is_flag=True, help="Keep the run's state and logs.")
@click.option("--employees", "bench_employees", type=click.IntRange(1, 1_000_000),
              help="Seats of the simulated centre (default: as many as a month of --events "
                   "needs); a seat's month is ~1,450 events, one ticket per ~10 events.")
@click.option("--only", "only", metavar="PHASES",
              help="Comma-separated phases to run (default: all): pure-fold, plain, "
                   "pass-through, naive, quix (Quix Streams, the 'peer' extra), ours, replay.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Also run the live worker and the replay with this many workers, after "
                   "the one-worker runs, and report the scaling and the CPU per event of each.")
def bench(events: int, bench_brokers: str | None, partitions: int, timeout: int,
          live_rate: float, live_seconds: float, no_replay: bool, json_path: Path | None,
          work_dir: Path | None, keep: bool, bench_employees: int | None,
          only: str | None, workers: int) -> None:
    """Measure our worker against a plain consumer, Faust and Quix Streams (docs/performance.md)."""
    from streams.devtools.bench import PHASES, BenchConfig, BenchError
    from streams.devtools.bench import main as run_bench

    phases = frozenset(PHASES)
    if only is not None:
        phases = frozenset(p.strip() for p in only.split(",") if p.strip())
        unknown = sorted(phases - set(PHASES))
        if unknown or not phases:
            _fail(f"--only: unknown phase {', '.join(unknown) or '(none given)'}; "
                  f"choose from {', '.join(PHASES)}")
        if "replay" in phases and "ours" not in phases:
            _fail("--only: replay compares against our worker's state; add ours")
    if no_replay:
        phases -= {"replay"}
    cfg = BenchConfig(events=events, brokers=bench_brokers, partitions=partitions,
                      timeout=float(timeout), live_rate=live_rate, live_seconds=live_seconds,
                      work_dir=work_dir, keep=keep,
                      employees=bench_employees, phases=phases, workers=workers)
    try:
        run_bench(cfg, json_path)
    except BenchError as exc:
        _fail(f"bench failed: {exc}")


@cli.command()
@click.option("--minutes", default=30.0, show_default=True, type=click.FloatRange(0.05, 1440))
@click.option("--rate", default=200.0, show_default=True, type=click.FloatRange(0.1, 1e5),
              help="Live events per second.")
@click.option("--employees", default=2000, show_default=True, type=click.IntRange(1, 100000),
              help="Seats in the simulated centre (200 events/s for 2,000 seats is a busy peak).")
@click.option("--interval", default=10.0, show_default=True, type=click.FloatRange(0.5, 600),
              help="Seconds between samples.")
@click.option("--brokers", "soak_brokers",
              help="Use this broker instead of starting the embedded one (fresh topic prefix).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every sample to this CSV file.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the summary and samples to this JSON file.")
@click.option("--keep", is_flag=True, help="Keep the run's state and logs.")
@click.option("--rocksdb-memory-mb", type=click.IntRange(16, 65536),
              help="The worker's RocksDB budget (KPI_ROCKSDB_MEMORY_MB; default: the "
                   "worker's own).")
def soak(minutes: float, rate: float, employees: int, interval: float,
         soak_brokers: str | None, csv_path: Path | None, json_path: Path | None,
         keep: bool, rocksdb_memory_mb: int | None) -> None:
    """Run one worker under a steady live feed; record RSS, lag and throughput."""
    from streams.devtools.soak import SoakConfig, SoakError
    from streams.devtools.soak import main as run_soak

    cfg = SoakConfig(minutes=minutes, rate=rate, employees=employees, interval=interval,
                     brokers=soak_brokers, csv_path=csv_path, keep=keep,
                     rocksdb_memory_mb=rocksdb_memory_mb)
    try:
        run_soak(cfg, json_path)
    except SoakError as exc:
        _fail(f"soak failed: {exc}")


def main() -> None:
    """Entry point: user mistakes print one line, never a traceback."""
    try:
        cli.main(standalone_mode=False, prog_name="kpi")
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"kpi: error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
