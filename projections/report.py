"""The change report of a replay: whose figures differ between two generations."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The figures payroll reads first; any other difference still puts a row in the report.
_HEADLINE = ("kpi_minutes", "attainment_pct", "compliance_pct", "bonus_pct", "repeat_contacts",
             "cover_minutes")


def _headline(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    if obj is None:
        return dict.fromkeys(_HEADLINE)
    bonus = obj.get("bonus") or {}
    return {
        "kpi_minutes": obj["kpi_minutes"],
        "attainment_pct": obj["attainment_pct"],
        "compliance_pct": obj["sla"]["compliance_pct"],
        "bonus_pct": bonus.get("bonus_pct"),
        "repeat_contacts": obj.get("repeat_contacts"),
        "cover_minutes": obj.get("cover_minutes"),
    }


def _triple(old: Mapping[str, Any], new: Mapping[str, Any],
            name: str) -> tuple[Any, Any, float | None]:
    return old[name], new[name], _minus(new[name], old[name])


def _minus(a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    return round(float(a) - float(b), 2)


@dataclass(frozen=True)
class ChangeRow:
    employee_id: str
    period: str
    old_kpi_minutes: float | None
    new_kpi_minutes: float | None
    diff_kpi_minutes: float | None
    old_attainment_pct: float | None
    new_attainment_pct: float | None
    diff_attainment_pct: float | None
    old_compliance_pct: float | None
    new_compliance_pct: float | None
    diff_compliance_pct: float | None
    old_bonus_pct: float | None
    new_bonus_pct: float | None
    diff_bonus_pct: float | None
    old_repeat_contacts: float | None
    new_repeat_contacts: float | None
    diff_repeat_contacts: float | None
    old_cover_minutes: float | None
    new_cover_minutes: float | None
    diff_cover_minutes: float | None
    changed_fields: str


def _strip(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """An object without what always differs between generations."""
    if obj is None:
        return {}
    return {k: v for k, v in obj.items() if k not in ("generation",)}


def _changed_fields(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _changed_fields(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(prefix + k)
    return out


def diff(old: Mapping[tuple[str, str], Mapping[str, Any]],
         new: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[ChangeRow]:
    """One row per (employee, period) whose figures differ, in a stable order."""
    rows = []
    for key in sorted(set(old) | set(new)):
        o, n = _strip(old.get(key)), _strip(new.get(key))
        changed = _changed_fields(o, n)
        if not changed:
            continue
        ho, hn = _headline(old.get(key)), _headline(new.get(key))
        rows.append(ChangeRow(
            key[0], key[1],
            ho["kpi_minutes"], hn["kpi_minutes"], _minus(hn["kpi_minutes"], ho["kpi_minutes"]),
            ho["attainment_pct"], hn["attainment_pct"],
            _minus(hn["attainment_pct"], ho["attainment_pct"]),
            ho["compliance_pct"], hn["compliance_pct"],
            _minus(hn["compliance_pct"], ho["compliance_pct"]),
            ho["bonus_pct"], hn["bonus_pct"], _minus(hn["bonus_pct"], ho["bonus_pct"]),
            *_triple(ho, hn, "repeat_contacts"), *_triple(ho, hn, "cover_minutes"),
            " ".join(changed),
        ))
    return rows


def write_report(rows: list[ChangeRow], directory: Path, *, old_gen: int,
                 new_gen: int) -> tuple[Path, Path]:
    """change-report-g<old>-g<new>.csv and .json in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"change-report-g{old_gen}-g{new_gen}"
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    names = list(ChangeRow.__dataclass_fields__)
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=names)
        w.writeheader()
        for r in rows:
            w.writerow(asdict(r))
    json_path.write_text(json.dumps({
        "old_generation": old_gen, "new_generation": new_gen,
        "employees_changed": sorted({r.employee_id for r in rows}),
        "rows": [asdict(r) for r in rows],
    }, indent=2))
    return csv_path, json_path
