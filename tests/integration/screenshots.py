"""Screenshots of the pages on simulated data, for the documentation.

    python -m tests.integration.screenshots docs/

An embedded broker, last month and this month so far of a simulated centre (12 employees),
one worker with authentication off, and headless Chromium at 1280 px and at phone width.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from streams.admin import create_topics
from streams.devtools.broker import EmbeddedBroker
from streams.ops import simulate as sim
from tests import factory as f
from tests.integration.test_pages import CHROMIUM, DRIVER
from tests.integration.workers import WorkerProc, settings_for, unique_prefix, wait_for


def feed(broker: EmbeddedBroker, prefix: str) -> tuple[str, str]:
    today = datetime.now(UTC).date()
    start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
    emp = dept = ""
    for ev in sim.historical(employees=12, start=start, days=(today - start).days, seed=7):
        topic, key, value = sim.to_record(ev, prefix)
        producer.send(topic, key=key, value=value)
        if ev["type"] == "employee.registered" and not emp:
            emp, dept = ev["employee_id"], ev["department_id"]
    # a few tickets left open for hours, so that the manager's page has tickets at risk
    for i, (hours, priority) in enumerate(((30, "P2"), (6, "P1"), (3, "P3"))):
        at = (datetime.now(UTC) - timedelta(hours=hours)).isoformat()
        ev = f.opened(f"open-{i}", at, f"e-00{i + 2}", dept=dept, priority=priority)
        producer.send(f"{prefix}tickets", key=ev["ticket_id"].encode(),
                      value=json.dumps(ev).encode())
    producer.flush()
    producer.close()
    return emp, dept


def browser(width: int, height: int, profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def shoot(base: str, out: Path, tmp: Path, pages: dict[str, str]) -> None:
    for (width, height, suffix) in ((1280, 1500, ""), (390, 2200, "-phone")):
        drv = browser(width, height, tmp / f"profile{suffix}")
        try:
            for name, path in pages.items():
                drv.get(base + path)
                wait_for(partial(drv.find_elements, "css selector", "#content h1"), 30)
                drv.save_screenshot(str(out / f"{name}{suffix}.png"))
        finally:
            drv.quit()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t, EmbeddedBroker() as broker:
        tmp = Path(t)
        prefix = unique_prefix()
        create_topics(settings_for(broker, prefix))
        emp, dept = feed(broker, prefix)
        w = WorkerProc(broker, prefix, tmp / "state", log_path=tmp / "worker.log").start()
        try:
            month = datetime.now(UTC).strftime("%Y-%m")
            wait_for(lambda: w.get(f"/kpi/departments/{dept}?month={month}").status == 200
                     and w.get(f"/kpi/employees/{emp}?month={month}").body["kpi_minutes"] > 0,
                     120, what="the simulated month in the API")
            shoot(w.base, out, tmp, {"page-employee": f"/ui/employees/{emp}",
                                     "page-manager": f"/ui/departments/{dept}"})
        finally:
            w.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
