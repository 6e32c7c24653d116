"""The generated reference agrees with the code: the settings table in docs/settings.md, the
JSON Schemas `kpi schema` writes, and every example in docs/events.md and docs/examples/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from schemas.decode import Rejection, decode
from schemas.events import EVENT_MODELS, CalendarSpec, SlaTarget
from schemas.outputs import DeadLetter, SlaAlert
from schemas.topics import TOPICS, topic_for_type
from streams.cli import cli
from streams.ops.reference import (
    OUTPUT_MODELS,
    SETTINGS_BEGIN,
    SETTINGS_END,
    EmployeeSnapshot,
    all_schemas,
    committed_settings_table,
    replace_settings_table,
    settings_markdown,
)
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
EVENTS_MD = ROOT / "docs" / "events.md"
SETTINGS_MD = ROOT / "docs" / "settings.md"
FIRST_EVENTS = ROOT / "docs" / "examples" / "first-events.jsonl"

# The output objects with a `type` of their own, as the examples in docs/events.md carry it.
OUTPUT_BY_TYPE: dict[str, type[BaseModel]] = {
    "kpi.employee_snapshot": EmployeeSnapshot,
    "sla.warning": SlaAlert,
    "sla.breached": SlaAlert,
    "dead_letter": DeadLetter,
}


def _json_blocks(text: str) -> list[dict[str, Any]]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", text, re.DOTALL)]


def _decoded(payload: dict[str, Any]) -> Any:
    """The event the worker's decoder makes of `payload`, sent as a producer would."""
    spec = topic_for_type(payload["type"])
    assert spec.key_field is not None
    return decode(spec.name, str(payload[spec.key_field]).encode(),
                  json.dumps(payload).encode())


# -- settings ---------------------------------------------------------------------------


def test_the_committed_settings_table_is_the_settings_object() -> None:
    committed = committed_settings_table(SETTINGS_MD.read_text(encoding="utf-8"))
    assert committed == settings_markdown(), (
        "docs/settings.md drifted from streams/settings.py: run "
        "`kpi settings --write docs/settings.md`")


def test_every_setting_has_a_row_with_a_meaning() -> None:
    table = settings_markdown()
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"| `KPI_{name.upper()}` |" in table


def test_a_drifted_table_is_seen_and_rewritten() -> None:
    doc = f"# x\n{SETTINGS_BEGIN}\n| variable |\n|---|\n| `KPI_GONE` |\n{SETTINGS_END}\ntail\n"
    assert committed_settings_table(doc) != settings_markdown()
    fixed = replace_settings_table(doc)
    assert committed_settings_table(fixed) == settings_markdown()
    assert fixed.startswith("# x\n") and fixed.endswith(f"{SETTINGS_END}\ntail\n")
    with pytest.raises(ValueError, match="markers"):
        replace_settings_table("no markers here")


def test_kpi_settings_write_updates_a_document(tmp_path: Path) -> None:
    doc = tmp_path / "s.md"
    doc.write_text(f"{SETTINGS_BEGIN}\nold\n{SETTINGS_END}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["settings", "--write", str(doc)])
    assert result.exit_code == 0, result.output
    assert committed_settings_table(doc.read_text(encoding="utf-8")) == settings_markdown()
    bad = tmp_path / "bad.md"
    bad.write_text("nothing to replace\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["settings", "--write", str(bad)])
    assert result.exit_code == 1 and "markers" in result.output


# -- JSON Schema ------------------------------------------------------------------------


def test_kpi_schema_writes_one_file_per_event_type_and_output(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["schema", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    names = {p.name for p in (tmp_path / "s").iterdir()}
    assert names == {f"{n}.schema.json" for n in [*EVENT_MODELS, *OUTPUT_MODELS]}
    opened = json.loads((tmp_path / "s" / "ticket.opened.schema.json").read_text())
    assert opened["properties"]["type"]["const"] == "ticket.opened"
    assert opened["x-kafka-topic"] == "tickets" and opened["x-kafka-key"] == "ticket_id"
    assert set(opened["required"]) >= {"event_id", "type", "schema_version", "occurred_at"}


def test_decimals_are_numbers_only_in_the_schemas() -> None:
    """The decoder rejects a number sent as a string; the schemas must say so too."""
    order = all_schemas()["norm_order.issued"]
    assert order["properties"]["decision_weights"]["additionalProperties"] == {
        "type": "number", "minimum": 0.0}
    target = order["$defs"]["SlaTarget"]["properties"]["first_response_minutes"]
    assert target["type"] == "number" and target["exclusiveMinimum"] == 0.0
    validator = jsonschema_rs.validator_for(order)
    example = next(b for b in _json_blocks(EVENTS_MD.read_text(encoding="utf-8"))
                   if b["type"] == "norm_order.issued")
    assert validator.is_valid(example)
    assert not validator.is_valid({**example, "daily_plan_minutes": "480"})


# -- docs/events.md and docs/examples ----------------------------------------------------


def test_every_example_in_events_md_is_accepted() -> None:
    """Inputs through the worker's own decoder; outputs through their models and schemas."""
    schemas = all_schemas()
    by_output = {"kpi.employee_snapshot": "kpi.employee_snapshot", "sla.warning": "sla_alert",
                 "sla.breached": "sla_alert", "dead_letter": "dead_letter"}
    blocks = _json_blocks(EVENTS_MD.read_text(encoding="utf-8"))
    assert blocks
    for block in blocks:
        kind = block["type"]
        if kind in EVENT_MODELS:
            event = _decoded(block)
            assert not isinstance(event, Rejection), (kind, event)
            assert isinstance(event, EVENT_MODELS[kind])
            schema = schemas[kind]
        else:
            assert kind in OUTPUT_BY_TYPE, f"an example of an unknown type {kind!r}"
            OUTPUT_BY_TYPE[kind].model_validate_json(json.dumps(block))
            schema = schemas[by_output[kind]]
        assert jsonschema_rs.validator_for(schema).is_valid(block), kind


def test_events_md_has_an_example_of_every_type_and_names_every_field() -> None:
    text = EVENTS_MD.read_text(encoding="utf-8")
    types = {b["type"] for b in _json_blocks(text)}
    assert set(EVENT_MODELS) <= types
    assert {"kpi.employee_snapshot", "dead_letter"} <= types and types & {"sla.warning",
                                                                            "sla.breached"}
    for topic in TOPICS:
        assert f"`{topic}`" in text, topic
    models: list[type[BaseModel]] = [*EVENT_MODELS.values(), CalendarSpec, SlaTarget,
                                     *(m for m, _ in OUTPUT_MODELS.values())]
    for model in models:
        for name in model.model_fields:
            assert f"`{name}`" in text, f"docs/events.md does not describe {model.__name__}.{name}"


def test_the_first_events_example_file_is_valid() -> None:
    lines = FIRST_EVENTS.read_text(encoding="utf-8").splitlines()
    assert lines
    for line in lines:
        event = _decoded(json.loads(line))
        assert not isinstance(event, Rejection), (line, event)


def test_no_document_points_outside_the_repository() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        assert "../shared" not in text and "CONTRACT.md" not in text, doc
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if target.startswith(("http://", "https://")):
                continue
            assert (doc.parent / target).resolve().exists(), f"{doc.name}: {target}"
