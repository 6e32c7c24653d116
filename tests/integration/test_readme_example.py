"""The README's API example is true: its events, fed with its command, give its response.

The README shows `kpi produce <file>`, then a `curl` of one URL and the JSON it answers.
This test runs that produce command against a real worker on the embedded broker, GETs the
same URL and compares the answer with the README's. A day object holds no volatile field
(no timestamps, no ids), so the comparison is exact.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.admin import create_topics
from streams.devtools.broker import EmbeddedBroker
from tests.integration.workers import WorkerProc, settings_for, unique_prefix, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

_PRODUCE = re.compile(r"^kpi produce (\S+\.jsonl)$", re.MULTILINE)
_CURL = re.compile(r"^curl -s '(http://127\.0\.0\.1:6066)(/[^']+)'$", re.MULTILINE)
_JSON_BLOCK = re.compile(r"```json\n(.*?)\n```", re.DOTALL)


def readme_example() -> tuple[Path, str, Any]:
    """(events file, URL path, expected body) as the README shows them."""
    text = README.read_text(encoding="utf-8")
    produce, curl = _PRODUCE.search(text), _CURL.search(text)
    assert produce and curl, "the README lost its `kpi produce` or `curl -s '...'` line"
    block = _JSON_BLOCK.search(text, curl.end())
    assert block, "no ```json block follows the README's curl command"
    return ROOT / produce.group(1), curl.group(2), json.loads(block.group(1))


@pytest.fixture
def worker(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[WorkerProc]:
    prefix = unique_prefix()
    create_topics(settings_for(broker, prefix))
    w = WorkerProc(broker, prefix, tmp_path / "state", log_path=tmp_path / "worker.log")
    w.start()
    try:
        yield w
    finally:
        w.stop()


def test_the_readme_curl_example_answers_what_the_readme_shows(
        worker: WorkerProc, broker: EmbeddedBroker) -> None:
    events, path, expected = readme_example()
    assert events.is_file(), events
    env = {**os.environ, "KPI_BROKERS": broker.bootstrap, "KPI_TOPIC_PREFIX": worker.prefix}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "produce", str(events)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    last: dict[str, Any] = {}

    def matches() -> bool:
        r = worker.get(path)
        last["body"] = r.body
        return r.status == 200 and r.body == expected

    try:
        wait_for(matches, timeout=90, what=f"GET {path} to answer the README's response")
    except AssertionError:
        got = json.dumps(last.get("body"), indent=1, sort_keys=True)
        pytest.fail(f"GET {path} answered, instead of the README's response:\n{got}")
