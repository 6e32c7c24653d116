"""Deployment as code: docker-compose.yml, Prometheus and Grafana files, checked without Docker.

Structure is checked here in Python; PromQL and the Prometheus files are also handed to
`promtool` (Debian package `prometheus`) when it is installed, and the compose file to
`docker compose config` / `docker-compose config` when one of them is.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streams.api.auth import TokenStore
from streams.settings import Settings
from streams.worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
PROM_DIR = ROOT / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
ALERTS = PROM_DIR / "alerts.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROMTOOL = shutil.which("promtool") or ""
NO_PROMTOOL = "promtool not on PATH (apt-get install prometheus)"

# -- helpers ---------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose's ${VAR:-default} with the defaults (the stack as `docker compose up` runs it)."""
    if isinstance(value, str):
        value = _INTERPOLATION.sub(lambda m: m.group(2) or "", value)
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    return value


def _load_compose() -> dict[str, Any]:
    data = _interpolate(yaml.safe_load(COMPOSE.read_text()))
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of a service's short-syntax volumes."""
    out = []
    for spec in service.get("volumes") or []:
        parts = spec.split(":")
        out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def _is_bind(source: str) -> bool:
    return source.startswith((".", "/"))


def _workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items()
            if (svc.get("command") or [None])[0] == "worker"}


def _container_to_repo(service: dict[str, Any], container_path: str) -> Path | None:
    """The repo path a container path comes from, through the service's bind mounts."""
    p = PurePosixPath(container_path)
    for source, target, _ in _mounts(service):
        if _is_bind(source) and (p == PurePosixPath(target) or
                                 PurePosixPath(target) in p.parents):
            return (ROOT / source / p.relative_to(target)).resolve()
    return None


def _declared() -> dict[str, frozenset[str]]:
    """Every exposition name of streams.worker.metrics.Metrics and its labels."""
    m = Metrics(CollectorRegistry())
    names: dict[str, frozenset[str]] = {}
    for attr in vars(m).values():
        kind = getattr(attr, "_type", None)
        if kind is None:
            continue
        base, labels = attr._name, frozenset(attr._labelnames)
        if kind == "counter":
            names[f"{base}_total"] = labels
        elif kind == "gauge":
            names[base] = labels
        elif kind == "histogram":
            names[f"{base}_bucket"] = labels | {"le"}
            names[f"{base}_sum"] = labels
            names[f"{base}_count"] = labels
        else:  # a new kind: teach this test its exposition names
            raise AssertionError(f"unexpected metric type {kind} of {base}")
    for family in m.registry.collect():  # collectors without labels (process_*)
        for sample in family.samples:
            names.setdefault(sample.name, frozenset(sample.labels))
    return names


# Prometheus' own series that dashboards and rules may use, and the target labels it adds.
BUILTIN: dict[str, frozenset[str]] = {"up": frozenset()}
TARGET_LABELS = frozenset({"job", "instance"})
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan", "atan2"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?")
_MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GRAFANA_VARS = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")


def promql_names(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """([(metric, labels in its matcher)], labels named in by/without/on/ignoring clauses)."""
    s = _STRING.sub('""', expr)
    s = GRAFANA_VARS.sub("0", s)
    grouping: set[str] = set()
    for m in _GROUPING.finditer(s):
        grouping |= {x.strip() for x in m.group(2).split(",") if x.strip()}
    s = _GROUPING.sub(" ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    selectors = []
    for m in _SELECTOR.finditer(s):
        name, matchers, call = m.groups()
        if call or name in _KEYWORDS:
            continue
        selectors.append((name, set(_MATCHER_LABEL.findall(matchers or ""))))
    return selectors, grouping


def promql_problems(expr: str, declared: dict[str, frozenset[str]]) -> list[str]:
    """Unknown metrics, and labels that none of the expression's metrics carries."""
    known = {**declared, **BUILTIN}
    selectors, grouping = promql_names(expr)
    problems = []
    if not selectors and not re.fullmatch(r"\s*vector\(\s*[\d.$\w]+\s*\)\s*", expr):
        problems.append(f"no metric in {expr!r}")
    carried: set[str] = set(TARGET_LABELS)
    for name, labels in selectors:
        if name not in known:
            problems.append(f"{name} is not declared by streams.worker.metrics.Metrics")
            continue
        allowed = known[name] | TARGET_LABELS
        carried |= allowed
        problems += [f"{name} has no label {lb!r}" for lb in sorted(labels - allowed)]
    problems += [f"no metric of {expr!r} has label {lb!r}"
                 for lb in sorted(grouping - carried - {"le"})]
    if "le" in grouping and not any(n.endswith("_bucket") for n, _ in selectors):
        problems.append(f"'le' grouping without a histogram bucket in {expr!r}")
    return problems


def _walk_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out += _walk_panels(p.get("panels") or [])
    return out


def _dashboard(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def _dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) of every panel target."""
    out = []
    for path in DASHBOARDS:
        for p in _walk_panels(_dashboard(path)["panels"]):
            for t in p.get("targets") or []:
                out.append((path.name, p.get("title", ""), t["expr"]))
    return out


def _variable_queries(d: dict[str, Any]) -> list[str]:
    out = []
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append(q)
    return out


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [r for g in groups for r in g["rules"]]


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


# -- the PromQL checker checks ---------------------------------------------------------------


def test_promql_checker_finds_unknown_metrics_and_labels():
    declared = _declared()
    assert promql_problems('sum by (priority) (increase(kpi_sla_tickets_total'
                           '{outcome="met"}[$__range]))', declared) == []
    assert promql_problems("rate(kpi_nope_total[5m])", declared) == [
        "kpi_nope_total is not declared by streams.worker.metrics.Metrics"]
    assert promql_problems('kpi_events_total{priority="P1"}', declared) == [
        "kpi_events_total has no label 'priority'"]
    assert promql_problems("sum by (reason) (kpi_consumer_lag_messages)", declared) == [
        "no metric of 'sum by (reason) (kpi_consumer_lag_messages)' has label 'reason'"]
    # Counters are exposed with _total, histograms as _bucket/_sum/_count only.
    assert promql_problems("kpi_events", declared)
    assert promql_problems("kpi_event_lag_seconds", declared)
    assert promql_problems("histogram_quantile(0.9, sum by (le) (rate("
                           "kpi_event_lag_seconds_bucket[5m])))", declared) == []
    assert promql_problems("vector($sla_goal)", declared) == []


def test_declared_metrics_cover_the_contract():
    declared = _declared()
    for name in ("kpi_events_total", "kpi_dead_letters_total", "kpi_employee_minutes",
                 "kpi_employee_attainment_ratio", "kpi_sla_tickets_total",
                 "kpi_sla_open_breached_tickets", "kpi_event_lag_seconds_bucket",
                 "kpi_processing_latency_seconds_bucket", "kpi_consumer_lag_messages"):
        assert name in declared, name


# -- docker-compose.yml ----------------------------------------------------------------------


def test_compose_services_and_profiles():
    compose = _load_compose()
    services = compose["services"]
    for name in ("kafka", "topics", "tokens", "prometheus", "grafana", "simulator"):
        assert name in services, f"service {name} missing"
    assert len(_workers(compose)) >= 2, "two or more worker replicas"
    assert services["simulator"].get("profiles") == ["sim"]
    assert services["simulator"]["command"][0] == "simulate"
    assert "--rate" in services["simulator"]["command"]  # a live feed, not a file
    assert services["topics"]["command"] == ["topics", "create"]
    for name, svc in services.items():
        if name != "simulator":
            assert not svc.get("profiles"), f"{name} must start with a plain `up`"


def test_compose_kafka_is_kraft_with_a_persistent_volume():
    compose = _load_compose()
    kafka = compose["services"]["kafka"]
    env = _env(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert "CLUSTER_ID" in env
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    data = [(s, t) for s, t, _ in _mounts(kafka) if t == env["KAFKA_LOG_DIRS"]]
    assert data and not _is_bind(data[0][0]), "Kafka's log dirs on a named volume"
    assert data[0][0] in compose["volumes"]
    assert "kafka-broker-api-versions" in " ".join(kafka["healthcheck"]["test"])


def test_compose_workers_form_one_group_and_reach_each_other(monkeypatch):
    compose = _load_compose()
    workers = _workers(compose)
    hosts, data_volumes, groups = set(), set(), set()
    for name, svc in workers.items():
        env = _env(svc)
        # Every KPI_ variable is a real setting (Settings ignores unknown ones silently).
        for key in env:
            if key.startswith("KPI_"):
                assert key[4:].lower() in Settings.model_fields, f"{name}: unknown {key}"
        for key in [k for k in os.environ if k.startswith("KPI_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        s = Settings()
        # The canonical URL is http://{web_host}:{web_port}: a name the others resolve.
        assert s.web_host == svc["hostname"], f"{name}: KPI_WEB_HOST = its hostname"
        assert s.web_host not in ("0.0.0.0", "127.0.0.1", "localhost")
        hosts.add(s.web_host)
        groups.add((s.app_id, s.topic_prefix, s.brokers))
        assert s.bootstrap_list == ["kafka:9092"]
        mounts = {t: (src, ro) for src, t, ro in _mounts(svc)}
        src, ro = mounts[str(s.data_dir)]
        assert not _is_bind(src) and not ro and src in compose["volumes"]
        data_volumes.add(src)
        src, ro = mounts[str(PurePosixPath(s.tokens_file).parent)]
        assert src == "kpi-auth" and ro, f"{name}: reads the token hashes from kpi-auth"
        deps = svc["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["topics"]["condition"] == "service_completed_successfully"
        assert deps["tokens"]["condition"] == "service_completed_successfully"
        health = " ".join(svc["healthcheck"]["test"])
        assert "/health" in health and "KPI_WEB_HOST" in health
        # The health check's Python must at least compile.
        compile(svc["healthcheck"]["test"][-1], "healthcheck", "exec")
    assert len(hosts) == len(workers), "each worker needs its own canonical host"
    assert len(data_volumes) == len(workers), "RocksDB state is per worker, never shared"
    assert len(groups) == 1, "all workers in one consumer group, on one cluster"


def test_compose_one_shots_and_ordering():
    compose = _load_compose()
    services = compose["services"]
    for name in ("topics", "tokens"):
        assert services[name].get("restart") == "no"
        assert services[name]["healthcheck"] == {"disable": True}
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    sim = services["simulator"]["depends_on"]
    assert sim["topics"]["condition"] == "service_completed_successfully"
    assert services["prometheus"]["depends_on"]["tokens"]["condition"] == \
        "service_completed_successfully"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name in ("kafka", "prometheus", "grafana", *_workers(compose)):
        assert services[name].get("healthcheck", {}).get("test"), f"{name}: health check"


def test_compose_volumes_and_bind_mounts():
    compose = _load_compose()
    declared = set(compose["volumes"])
    used = set()
    for name, svc in compose["services"].items():
        for source, _, _ in _mounts(svc):
            if _is_bind(source):
                assert (ROOT / source).exists(), f"{name}: {source} is not in the repo"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"


def test_compose_ports_are_distinct_and_local():
    compose = _load_compose()
    published = []
    for svc in compose["services"].values():
        for spec in svc.get("ports") or []:
            host_ip, host_port, _ = str(spec).split(":")
            assert host_ip == "127.0.0.1", f"{spec}: publish on loopback only"
            published.append(host_port)
    assert len(published) == len(set(published))


def test_compose_app_image_and_dockerfile():
    compose = _load_compose()
    app = [s for s in compose["services"].values() if "build" in s]
    assert {s["image"] for s in app} == {"kpi-engine:local"}
    assert all(s["build"] == "." for s in app)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", dockerfile, re.M)
    assert "pip install ." in dockerfile
    # the worker's allocator (KPI_ALLOCATOR=auto re-executes on it when present)
    assert re.search(r"apt-get install .*libjemalloc2", dockerfile)
    assert re.search(r'^ENTRYPOINT \["kpi"\]', dockerfile, re.M)
    for path in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (ROOT / path).exists(), path
    ignored = (ROOT / ".dockerignore").read_text().split()
    for heavy in (".git", ".venv", ".kpi"):
        assert heavy in ignored


def test_compose_scrape_token_reaches_prometheus():
    """The tokens one-shot writes the token where Prometheus' credentials_file reads it."""
    compose = _load_compose()
    services = compose["services"]
    script = services["tokens"]["entrypoint"][2]
    assert "kpi tokens add --role metrics" in script
    job = next(j for j in yaml.safe_load(PROM_CONFIG.read_text())["scrape_configs"]
               if j["job_name"] == "kpi-workers")
    cred = PurePosixPath(job["authorization"]["credentials_file"])
    assert job["authorization"].get("type", "Bearer") == "Bearer"
    prom = {t: src for src, t, _ in _mounts(services["prometheus"])}
    volume = prom[str(cred.parent)]
    tokens = {src: t for src, t, _ in _mounts(services["tokens"])}
    written = PurePosixPath(tokens[volume]) / cred.name
    assert f"token={written}" in script
    # Workers check the hash in the tokens file the same one-shot wrote.
    assert _env(services["tokens"])["KPI_TOKENS_FILE"].startswith(tokens["kpi-auth"] + "/")


def test_compose_tokens_script_makes_a_working_scrape_token(tmp_path):
    """Run the tokens one-shot's script here (paths and user moved to tmp_path and us): the
    token it writes authenticates as `metrics` against the hashes it leaves, a second run
    keeps it, and the given command runs after it."""
    svc = _load_compose()["services"]["tokens"]
    assert svc["entrypoint"][:2] == ["sh", "-ec"]
    script = svc["entrypoint"][2]
    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    scrape, auth = tmp_path / "scrape", tmp_path / "auth"
    scrape.mkdir()
    auth.mkdir()
    script = (script.replace("/var/lib/kpi-scrape", str(scrape))
              .replace("/var/lib/kpi-auth", str(auth))
              .replace("kpi:kpi", f"{me}:{group}")
              .replace('getpwnam("kpi")', f'getpwnam("{me}")'))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KPI_")},
           **_env(svc), "KPI_TOKENS_FILE": str(auth / "tokens.json"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-ec", script, svc["entrypoint"][3], *svc["command"]],
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    first = run()
    assert first.returncode == 0, first.stderr
    token = (scrape / "token").read_text().strip()
    principal = TokenStore(auth / "tokens.json").authenticate(token)
    assert principal is not None and principal.may_scrape() and principal.role == "metrics"
    assert (scrape / "token").stat().st_mode & 0o004, "Prometheus (another user) reads it"
    assert "metrics" in first.stdout  # the command (`kpi tokens list`) ran after the setup
    second = run()
    assert second.returncode == 0, second.stderr
    assert (scrape / "token").read_text().strip() == token
    assert len(TokenStore(auth / "tokens.json").list()) == 1


def test_prometheus_scrapes_every_worker():
    compose = _load_compose()
    config = yaml.safe_load(PROM_CONFIG.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "kpi-workers")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{svc['hostname']}:{_env(svc)['KPI_WEB_PORT']}"
                for svc in _workers(compose).values()}
    assert targets == expected
    for rule_file in config["rule_files"]:
        assert (PROM_DIR / rule_file).is_file(), rule_file
    mounts = {t: src for src, t, _ in _mounts(compose["services"]["prometheus"])}
    assert (ROOT / mounts["/etc/prometheus"]).resolve() == PROM_DIR


@pytest.mark.skipif(not (shutil.which("docker-compose") or shutil.which("docker")),
                    reason="neither docker compose nor docker-compose is installed")
def test_compose_config_validates():
    """The compose implementation's own schema validation (works without an engine)."""
    tried = []
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(cmd[0]):
            continue
        probe = _run([*cmd, "version"])
        if probe.returncode != 0:  # `docker` without the compose plugin
            tried.append(" ".join(cmd))
            continue
        for profile in ([], ["--profile", "sim"]):
            res = _run([*cmd, "-f", str(COMPOSE), *profile, "config", "-q"], cwd=ROOT)
            assert res.returncode == 0, res.stderr
        return
    pytest.skip(f"no working compose ({', '.join(tried)} without compose support)")


# -- Grafana ---------------------------------------------------------------------------------


def _datasource_uids() -> set[str]:
    uids = set()
    for f in (GRAFANA / "provisioning" / "datasources").glob("*.yml"):
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            uids.add(ds["uid"])
    return uids


def test_grafana_datasource_points_at_prometheus():
    compose = _load_compose()
    files = list((GRAFANA / "provisioning" / "datasources").glob("*.yml"))
    assert files
    for f in files:
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            assert ds["type"] == "prometheus"
            url = re.fullmatch(r"http://([\w-]+):(\d+)/?", ds["url"])
            assert url, ds["url"]
            host, port = url.groups()
            assert host in compose["services"] and port == "9090"


def test_grafana_provisioning_paths_exist():
    compose = _load_compose()
    grafana = compose["services"]["grafana"]
    prov = _container_to_repo(grafana, "/etc/grafana/provisioning")
    assert prov == (GRAFANA / "provisioning").resolve()
    files = list((GRAFANA / "provisioning" / "dashboards").glob("*.yml"))
    assert files
    for f in files:
        for provider in yaml.safe_load(f.read_text())["providers"]:
            assert provider["type"] == "file"
            repo_dir = _container_to_repo(grafana, provider["options"]["path"])
            assert repo_dir is not None and repo_dir.is_dir(), provider["options"]["path"]
            found = {p.name for p in repo_dir.glob("*.json")}
            assert {"operations.json", "employee.json"} <= found
    home = _env(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        path = _container_to_repo(grafana, home)
        assert path is not None and path.is_file(), home


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path):
    d = _dashboard(path)
    assert d["uid"] and len(d["uid"]) <= 40 and d["title"]
    panels = _walk_panels(d["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    ds_uids = _datasource_uids()
    variables = {v["name"] for v in d["templating"]["list"]}
    grafana_vars = {"__range", "__rate_interval", "__interval", "__url_time_range", "__value",
                    "__data"}
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] in ("row", "text"):
            continue
        assert p["datasource"]["uid"] in ds_uids, p["title"]
        targets = p["targets"]
        assert targets, f"{p['title']} has no query"
        assert len({t["refId"] for t in targets}) == len(targets)
        for t in targets:
            assert t["datasource"]["uid"] in ds_uids, p["title"]
            used = set(GRAFANA_VARS.findall(t["expr"]))
            assert used <= variables | grafana_vars, f"{p['title']}: {used - variables}"
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            assert v["datasource"]["uid"] in ds_uids


def test_dashboard_uids_are_unique():
    uids = [_dashboard(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids)) == len(DASHBOARDS) >= 2


def test_dashboard_promql_uses_declared_metrics_only():
    declared = _declared()
    problems = []
    for name, title, expr in _dashboard_exprs():
        problems += [f"{name} / {title}: {p}" for p in promql_problems(expr, declared)]
    for path in DASHBOARDS:
        for q in _variable_queries(_dashboard(path)):
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
            assert m, f"{path.name}: unexpected variable query {q!r}"
            problems += [f"{path.name} / variable: {p}"
                         for p in promql_problems(m.group(1), declared)]
            selectors, _ = promql_names(m.group(1))
            if m.group(2) not in {lb for n, _ in selectors for lb in declared.get(n, ())}:
                problems.append(f"{path.name}: {q!r} asks for a label the metric lacks")
    assert problems == []


def test_operations_dashboard_shows_what_operations_need():
    d = _dashboard(GRAFANA / "dashboards" / "operations.json")
    exprs = " ".join(t["expr"] for p in _walk_panels(d["panels"]) for t in p.get("targets", []))
    for needed in ("kpi_employee_attainment_ratio", "topk(", "bottomk(",
                   "kpi_sla_tickets_total", "kpi_sla_open_breached_tickets",
                   'outcome="breached"', "kpi_events_total", "kpi_dead_letters_total",
                   "kpi_consumer_lag_messages", "kpi_event_lag_seconds_bucket",
                   "kpi_employee_repeat_contacts", "kpi_employee_cover_minutes"):
        assert needed in exprs, needed


def test_employee_dashboard_has_an_employee_variable():
    d = _dashboard(GRAFANA / "dashboards" / "employee.json")
    var = next(v for v in d["templating"]["list"] if v["name"] == "employee")
    assert var["type"] == "query" and "employee_id" in var["definition"]
    exprs = [t["expr"] for p in _walk_panels(d["panels"]) for t in p.get("targets", [])]
    for metric in ("kpi_employee_minutes", "kpi_employee_attainment_ratio",
                   "kpi_employee_bonus_pct"):
        assert any(metric in e and "$employee" in e for e in exprs), metric


# -- alert rules -----------------------------------------------------------------------------


def test_alert_rules_are_complete_and_use_declared_metrics():
    declared = _declared()
    rules = _alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for needed in ("KpiSlaComplianceUnderGoal", "KpiOpenBreachesRising",
                   "KpiDeadLettersRising", "KpiConsumerLagGrowing", "KpiWorkerDown"):
        assert needed in names
    problems = []
    for r in rules:
        assert r["labels"]["severity"] in ("info", "warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        problems += [f"{r['alert']}: {p}" for p in promql_problems(r["expr"], declared)]
    assert problems == []


# -- promtool --------------------------------------------------------------------------------


@pytest.mark.skipif(not PROMTOOL, reason=NO_PROMTOOL)
def test_promtool_check_config(tmp_path):
    # promtool opens credentials_file: point it at a stand-in token, the rest unchanged.
    config = yaml.safe_load(PROM_CONFIG.read_text())
    token = tmp_path / "token"
    token.write_text("kpi_0000_stand-in\n")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    for rule_file in config["rule_files"]:
        shutil.copy(PROM_DIR / rule_file, tmp_path / rule_file)
    res = _run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(not PROMTOOL, reason=NO_PROMTOOL)
def test_promtool_check_rules():
    res = _run([PROMTOOL, "check", "rules", str(ALERTS)])
    assert res.returncode == 0, res.stdout + res.stderr


_SUBSTITUTES = {"__range": "1h", "__rate_interval": "1m", "__interval": "1m",
                "employee": "e-1", "department": ".*", "sla_goal": "0.95"}


@pytest.mark.skipif(not PROMTOOL, reason=NO_PROMTOOL)
def test_promtool_parses_every_dashboard_query(tmp_path):
    """Each panel query, its Grafana variables filled in, as a recording rule: promtool
    rejects any that does not parse."""
    rules = []
    for i, (_, _, expr) in enumerate(_dashboard_exprs()):
        filled = GRAFANA_VARS.sub(lambda m: _SUBSTITUTES[m.group(1)], expr)
        rules.append({"record": f"dashboard:query:{i}", "expr": filled})
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    res = _run([PROMTOOL, "check", "rules", str(path)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(rules)} rules found" in res.stdout


def _firing(*alertnames: str) -> list[dict[str, Any]]:
    return [{"labels": f'{{alertname="{a}"}}', "value": 1} for a in alertnames]


@pytest.mark.skipif(not PROMTOOL, reason=NO_PROMTOOL)
def test_promtool_alerts_fire_on_synthetic_series(tmp_path):
    """Each alert fires on the trouble it names and stays quiet otherwise."""
    w1 = 'job="kpi-workers", instance="worker-1:6066"'
    w2 = 'job="kpi-workers", instance="worker-2:6066"'
    trouble = [
        {"series": f"up{{{w1}}}", "values": "1x60"},
        {"series": f"up{{{w2}}}", "values": "1 1 0x58"},
        {"series": f'kpi_dead_letters_total{{{w1}, topic="calls", reason="invalid"}}',
         "values": "0 0 0+1x58"},
        {"series": f'kpi_sla_tickets_total{{{w1}, priority="P1", outcome="met"}}',
         "values": "0+1x60"},
        {"series": f'kpi_sla_tickets_total{{{w1}, priority="P1", outcome="breached"}}',
         "values": "0+1x60"},
        {"series": f'kpi_sla_tickets_total{{{w1}, priority="P2", outcome="met"}}',
         "values": "0+10x60"},
        {"series": f'kpi_sla_tickets_total{{{w1}, priority="P2", outcome="breached"}}',
         "values": "0x60"},
        {"series": f'kpi_sla_open_breached_tickets{{{w1}, priority="P1"}}',
         "values": "0+1x60"},
        {"series": f'kpi_sla_open_breached_tickets{{{w1}, priority="P2"}}', "values": "3x60"},
        {"series": f'kpi_consumer_lag_messages{{{w1}, topic="tickets"}}',
         "values": "1000+100x60"},
        {"series": f'kpi_consumer_lag_messages{{{w1}, topic="calls"}}', "values": "5x60"},
        {"series": f'kpi_event_lag_seconds_bucket{{{w1}, le="60"}}', "values": "0x60"},
        {"series": f'kpi_event_lag_seconds_bucket{{{w1}, le="300"}}', "values": "0+10x60"},
        {"series": f'kpi_event_lag_seconds_bucket{{{w1}, le="+Inf"}}', "values": "0+10x60"},
        {"series": f"kpi_event_lag_seconds_count{{{w1}}}", "values": "0+10x60"},
    ]
    count = 'count by (alertname) (ALERTS{alertstate="firing"})'
    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": trouble, "promql_expr_test": [
                {"expr": count, "eval_time": "1m", "exp_samples": []},
                {"expr": count, "eval_time": "50m", "exp_samples": _firing(
                    "KpiConsumerLagGrowing", "KpiDeadLettersRising", "KpiEventLagHigh",
                    "KpiOpenBreachesRising", "KpiSlaComplianceUnderGoal", "KpiWorkerDown")},
                # Only the troubled label sets fire.
                {"expr": 'ALERTS{alertstate="firing", alertname=~"KpiSla.*|KpiOpen.*"}',
                 "eval_time": "50m", "exp_samples": [
                     {"labels": 'ALERTS{alertname="KpiOpenBreachesRising", '
                                'alertstate="firing", priority="P1", severity="warning"}',
                      "value": 1},
                     {"labels": 'ALERTS{alertname="KpiSlaComplianceUnderGoal", '
                                'alertstate="firing", priority="P1", severity="warning"}',
                      "value": 1}]},
            ]},
            {"interval": "1m", "input_series": [
                {"series": f"up{{{w1}}}", "values": "0x10"},
                {"series": f"up{{{w2}}}", "values": "0x10"}],
             "promql_expr_test": [{"expr": count, "eval_time": "5m", "exp_samples": [
                 {"labels": '{alertname="KpiNoWorkerUp"}', "value": 1},
                 {"labels": '{alertname="KpiWorkerDown"}', "value": 2}]}]},
        ],
    }
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(tests))
    res = _run([PROMTOOL, "test", "rules", str(path)])
    assert res.returncode == 0, res.stdout + res.stderr
