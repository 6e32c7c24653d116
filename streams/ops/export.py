"""`kpi export`: the payroll file of a month, read from a worker's API.

Reading through the API (not the state files) gives the numbers exactly as the API
answers them, from the generation the workers serve, under the same token scopes. The
file names its generation (a column of every row; a field of the JSON); figures of two
generations in one export (a switch while it ran) stop it with a message to run it again.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.api.export_format import generation_of, to_csv, to_json

PAGE = 500


class ExportError(Exception):
    """One readable line for the user."""


def _get(base: str, path: str, token: str | None) -> Any:
    req = urllib.request.Request(base.rstrip("/") + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except ValueError:
            detail = ""
        hint = {401: " (set KPI_TOKEN to a manager or operations token)"}.get(exc.code, "")
        raise ExportError(f"{path}: {exc.code} {detail}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ExportError(f"cannot reach the API at {base}: {reason}") from None


def departments(base: str, token: str | None) -> list[str]:
    """Every department the token may read, following the list's pages."""
    out: list[str] = []
    path: str | None = f"/kpi/departments?limit={PAGE}"
    while path:
        body = _get(base, path, token)
        out.extend(d["department_id"] for d in body["items"])
        path = body["next"]
    return out


def export(base: str, token: str | None, month: str, department: str | None, fmt: str,
           out: Path | None, progress: Callable[[int, int, int], None]) -> tuple[int, str]:
    """Write the file (stdout when `out` is None); returns (rows, text or file name)."""
    depts = [department] if department else departments(base, token)
    rows: list[dict[str, Any]] = []
    for i, d in enumerate(depts, 1):
        rows.extend(_get(base, f"/kpi/departments/{d}?month={month}", token)["employees"])
        progress(i, len(depts), len(rows))
    try:
        generation_of(rows)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    text = to_csv(rows) if fmt == "csv" else to_json(rows, month, depts)
    if out is None:
        return len(rows), text
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, out)  # a reader never sees half a file
    return len(rows), str(out)
