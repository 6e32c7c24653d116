"""docs/quickstart.md, run: its example file through `kpi produce` to a real worker on the
embedded broker, and every answer the page shows compared with what the API answers.

The page pairs each request with its answer: a ```sh block whose last line is a curl of
`http://localhost:6066/...`, then a ```json block. Requests name their dates, so the
answers do not depend on the day the test runs; the only volatile field is the one listed
in VOLATILE (none of the shown objects depends on the clock, but the generation is the
worker's and a page written against generation 1 should not break on a replayed stack).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streams.admin import create_topics
from streams.cli import cli
from streams.devtools.broker import EmbeddedBroker
from tests.integration.workers import WorkerProc, settings_for, unique_prefix, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "quickstart.md"
EXAMPLE = ROOT / "examples" / "events.jsonl"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
URL = re.compile(r"http://localhost:6066(/\S+?)['\"]?$")
VOLATILE = frozenset({"generation"})


def shown_answers() -> list[tuple[str, Any]]:
    """(path, answer) for every request the page shows with its answer."""
    blocks = BLOCK.findall(PAGE.read_text())
    pairs = []
    for (lang, body), (next_lang, answer) in itertools.pairwise(blocks):
        last = body.strip().splitlines()[-1] if body.strip() else ""
        m = URL.search(last)
        if lang == "sh" and m and next_lang == "json":
            pairs.append((m.group(1), json.loads(answer)))
    return pairs


def normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<volatile>" if k in VOLATILE else normalised(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def shown_produce_output() -> str:
    """The output the page shows under `kpi produce examples/events.jsonl`."""
    blocks = BLOCK.findall(PAGE.read_text())
    for lang, body in blocks:
        lines = body.strip().splitlines()
        if lang == "sh" and lines and lines[0].startswith("$ kpi produce examples/events.jsonl"):
            return "\n".join(lines[1:])
    raise AssertionError("the page shows no `$ kpi produce examples/events.jsonl`")


def test_the_page_shows_requests_with_answers() -> None:
    paths = [p for p, _ in shown_answers()]
    assert any(p.startswith("/kpi/employees/") for p in paths)
    assert any(p.startswith("/tickets/") for p in paths)


def test_the_quickstart_answers_what_its_page_shows(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    prefix = unique_prefix()
    create_topics(settings_for(broker, prefix))
    worker = WorkerProc(broker, prefix, tmp_path / "state", log_path=tmp_path / "worker.log")
    worker.start()
    try:
        result = CliRunner().invoke(
            cli, ["--brokers", broker.bootstrap, "--prefix", prefix, "produce", str(EXAMPLE)])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == shown_produce_output()

        pairs = shown_answers()
        got: dict[str, Any] = {}

        def all_shown() -> bool:
            for path, _ in pairs:
                r = worker.get(path)
                got[path] = r.body if r.status == 200 else (r.status, r.body)
            return all(normalised(got[p]) == normalised(want) for p, want in pairs)

        try:
            wait_for(all_shown, timeout=60, what="the page's answers")
        except AssertionError:
            for path, want in pairs:  # the first difference, with both sides
                assert normalised(got[path]) == normalised(want), path
            raise
    finally:
        worker.stop()
