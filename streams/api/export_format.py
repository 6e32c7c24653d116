"""The payroll file: one row per employee-month, every figure and every bonus field.

Rows are the API's month objects flattened (`sla.compliance_pct`, `bonus.points`, ...),
values exactly as the API gives them, so the file and the API never disagree. Both the
API (`Accept: text/csv` on a department's month) and `kpi export` write it from here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

# Columns first in every file; the rest follow in the object's own order.
LEAD = ("employee_id", "department_id", "period", "generation")


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(LEAD)
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _cell(value: Any) -> str:
    # JSON's spelling (null, true), so a value reads the same in the file as in the API
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def generation_of(objects: Iterable[dict[str, Any]]) -> int | None:
    """The one generation the objects were computed by; ValueError if they differ (a
    generation switch during the export: run it again)."""
    gens = {o["generation"] for o in objects}
    if len(gens) > 1:
        raise ValueError(f"the figures come from several generations {sorted(gens)}: "
                         "a switch happened during the export; run it again")
    return next(iter(gens), None)


def to_csv(objects: list[dict[str, Any]]) -> str:
    rows = [flatten(o) for o in objects]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = columns(rows)
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])
    return buf.getvalue()


def to_json(objects: list[dict[str, Any]], month: str, departments: list[str]) -> str:
    doc = {"month": month, "departments": departments,
           "generation": generation_of(objects), "employees": objects}
    return json.dumps(doc, indent=1) + "\n"


def filename(month: str, generation: int | None, department: str | None, ext: str) -> str:
    scope = f"-{department}" if department else ""
    return f"kpi-{month}{scope}-generation-{generation}.{ext}"
