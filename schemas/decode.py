"""Decoding at the edge: bytes in, a typed event or a rejection with its dead-letter reason.

Never raises. Reasons, in their order of precedence (docs/events.md): not_utf8, invalid_json,
unknown_type, wrong_topic, unsupported_version, missing_field, wrong_type, invalid_value,
naive_timestamp (and too_late, decided later by the ticket projection).
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic_core
from pydantic import ValidationError

from schemas.events import EVENT_MODELS, Event
from schemas.topics import TOPICS
from schemas.upcast import DEFAULT, Upcasters

DEAD_LETTER_REASONS: tuple[str, ...] = (
    "not_utf8", "invalid_json", "unknown_type", "wrong_topic", "unsupported_version",
    "missing_field", "wrong_type", "invalid_value", "naive_timestamp", "too_late",
)
_RANK = {r: i for i, r in enumerate(DEAD_LETTER_REASONS)}
_DL_NAMESPACE = uuid.UUID("6b1d3c8e-2f0a-4d55-9a3e-1f2b7c9d0e41")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record is not an event: the reason a dead letter carries (the first in the
    contract's order) and, in `problems`, every problem found, in that order, so a
    person fixing a file sees them all at once."""

    reason: str
    detail: str
    problems: tuple[tuple[str, str], ...] = dataclasses.field(default=(), compare=False)


def _decimal_paths(model: type[Any]) -> list[tuple[str, ...]]:
    """Paths of fields that must be JSON numbers; '*' stands for any dict key."""
    paths: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        ann = str(field.annotation)
        if "Decimal" in ann and "dict" in ann:
            paths.append((name, "*"))
        elif "Decimal" in ann:
            paths.append((name,))
        elif "SlaTarget" in ann:
            paths += [(name, "*", "first_response_minutes"), (name, "*", "resolution_minutes")]
    return paths


_NUMBER_PATHS = {t: _decimal_paths(m) for t, m in EVENT_MODELS.items()}


def _strings_for_numbers(obj: Any, path: tuple[str, ...]) -> str | None:
    """The first location on `path` where a string stands in for a number."""
    if not path:
        return "" if isinstance(obj, str) else None
    if not isinstance(obj, dict):
        return None
    head, rest = path[0], path[1:]
    keys = list(obj) if head == "*" else [head]
    for k in keys:
        if k in obj:
            found = _strings_for_numbers(obj[k], rest)
            if found is not None:
                return f"{k}.{found}".rstrip(".")
    return None


def _classify(err: Any) -> str:
    typ = err["type"]
    if typ == "missing":
        return "missing_field"
    if typ == "timezone_aware":
        return "naive_timestamp"
    if typ.endswith("_type") or typ in ("is_instance_of", "none_required", "model_attributes_type"):
        return "wrong_type"
    if typ == "literal_error":
        expected = str((err.get("ctx") or {}).get("expected", ""))
        value = err.get("input")
        if value is None:
            return "wrong_type"
        wants_str = "'" in expected
        if wants_str != isinstance(value, str) or isinstance(value, bool):
            return "wrong_type"
    return "invalid_value"


def _loc(err: Any) -> str:
    return ".".join(str(p) for p in err.get("loc", ())) or "(event)"


def decode(topic: str, key: bytes | None, value: bytes | None, *,
           upcasters: Upcasters = DEFAULT) -> Event | Rejection:
    """Validate one record of an (unprefixed) input topic."""
    try:
        return _decode(topic, key, value, upcasters)
    except Exception as exc:  # nothing invalid may stop the worker
        return Rejection("invalid_value", f"undecodable: {exc.__class__.__name__}: {exc}")


def _decode(topic: str, key: bytes | None, value: bytes | None,
            upcasters: Upcasters) -> Event | Rejection:
    if value is None:
        return Rejection("invalid_json", "empty value (a tombstone is not an event)")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        obj = orjson.loads(value)  # also rejects NaN and Infinity
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", f"not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return Rejection("invalid_json", f"JSON {type(obj).__name__}, not an object")
    t = obj.get("type")
    if not isinstance(t, str):
        return Rejection("unknown_type", "missing or non-string 'type'")
    model = EVENT_MODELS.get(t)
    if model is None:
        return Rejection("unknown_type", f"unknown type {t[:80]!r}")
    spec = TOPICS.get(topic)
    if spec is None or t not in spec.types:
        return Rejection("wrong_topic", f"{t} does not belong on topic {topic!r}")
    ver = obj.get("schema_version")
    if isinstance(ver, float):  # orjson reads integers beyond 64 bits as floats
        ver = pydantic_core.from_json(value).get("schema_version")
    current = upcasters.version_of(t)
    raw = value
    if isinstance(ver, int) and not isinstance(ver, bool):
        if ver > current:
            return Rejection("unsupported_version",
                             f"{t} schema_version {ver} is newer than supported {current}")
        if 1 <= ver < current:
            obj = upcasters.upcast(obj)
            raw = orjson.dumps(obj)
    found: list[tuple[str, str]] = []
    for path in _NUMBER_PATHS[t]:
        where = _strings_for_numbers(obj, path)
        if where is not None:
            found.append(("wrong_type", f"{where}: a string is not a number"))
    event: Event | None = None
    try:
        event = model.model_validate_json(raw)
    except ValidationError as exc:
        found += [(_classify(e), f"{_loc(e)}: {e['msg']}") for e in exc.errors()]
    # The key is checked with the fields, so that it ranks as invalid_value (reason order).
    key_field = spec.key_field
    expected = obj.get(key_field) if key_field else None
    if key is None:
        found.append(("invalid_value", "record has no key"))
    elif isinstance(expected, str) and key != expected.encode():
        found.append(("invalid_value",
                      f"key {key[:80]!r} differs from {key_field} {expected[:80]!r}"))
    if found:
        ranked = tuple(sorted(found, key=lambda f: _RANK[f[0]]))  # stable: field order kept
        return Rejection(ranked[0][0], ranked[0][1], ranked)
    assert event is not None
    return event


def dead_letter_value(topic: str, partition: int, offset: int, key: bytes | None,
                      value: bytes | None, rejection: Rejection) -> bytes:
    """The dead-letter record (docs/events.md); its event_id is derived from the source position."""
    if value is None:
        text, encoding = None, "text"
    else:
        try:
            text, encoding = value.decode("utf-8"), "text"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(value).decode(), "base64"
    return orjson.dumps({
        "event_id": str(uuid.uuid5(_DL_NAMESPACE, f"{topic}/{partition}/{offset}")),
        "type": "dead_letter",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        # A key that is not UTF-8 is shown with replacement characters: it is only a label.
        "key": key.decode("utf-8", errors="replace") if key is not None else None,
        "value": text,
        "value_encoding": encoding,
        "reason": rejection.reason,
        "detail": rejection.detail,
    })
