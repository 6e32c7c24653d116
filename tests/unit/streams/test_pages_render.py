"""The payroll file's shape and the pages' words for the bonus rule."""

from __future__ import annotations

import csv
import io

import pytest

from streams.api.export_format import flatten, generation_of, to_csv
from streams.api.listing import merge, page
from streams.api.ui.render import bonus_words, field


def test_csv_has_every_field_flattened_with_json_spellings() -> None:
    obj = {"employee_id": "e-1", "department_id": "d-1", "period": "2026-11",
           "generation": 3, "kpi_minutes": 12.5, "sla": {"met": 1, "goal_met": None},
           "bonus": {"eligible": False, "reason": "no_quality", "points": None}}
    rows = list(csv.DictReader(io.StringIO(to_csv([obj]))))
    assert rows == [{"employee_id": "e-1", "department_id": "d-1", "period": "2026-11",
                     "generation": "3", "kpi_minutes": "12.5", "sla.met": "1",
                     "sla.goal_met": "null", "bonus.eligible": "false",
                     "bonus.reason": "no_quality", "bonus.points": "null"}]
    assert set(flatten(obj)) == set(rows[0])


def test_two_generations_in_one_file_are_refused() -> None:
    with pytest.raises(ValueError, match="several generations"):
        generation_of([{"generation": 1}, {"generation": 2}])


@pytest.mark.parametrize(("bonus", "words"), [
    ({"reason": "productivity_below_90", "productivity_pct": 87.0},
     "Productivity 87.0 % is below 90 %"),
    ({"reason": None, "eligible": True, "productivity_pct": 95.0, "quality_score": 96.0,
      "deduction": 3, "points": 93.0, "bonus_pct": 20.0}, "points 93.0 → bonus 20.0 %"),
    ({"reason": "points_below_85", "productivity_pct": 91.0, "quality_score": 80.0,
      "deduction": 5, "points": 75.0}, "points 75.0, below 85"),
])
def test_bonus_explained_in_words(bonus: dict[str, object], words: str) -> None:
    assert words in bonus_words(bonus)


def test_values_are_escaped() -> None:
    assert "<b>" not in field({"x": "<b>"}, "x")


def test_lists_are_exact_or_refused_and_sorted_open_first() -> None:
    rows = [
        {"ticket_id": "a", "open": False, "at_risk": False, "sla_state": "ok",
         "minutes_left": None, "opened_at": "2026-11-01T10:00:00+03:00"},
        {"ticket_id": "b", "open": True, "at_risk": True, "sla_state": "warning",
         "minutes_left": 5.0, "opened_at": None},
        {"ticket_id": "c", "open": True, "at_risk": True, "sla_state": "breached",
         "minutes_left": -3.0, "opened_at": None},
    ]
    got = merge([{"partitions": [0], "items": rows[:2]}, {"partitions": [1], "items": rows[2:]}],
                2, "all")
    assert [r["ticket_id"] for r in got] == ["c", "b", "a"]
    from streams.api.listing import Incomplete
    with pytest.raises(Incomplete):
        merge([{"partitions": [0], "items": rows}], 2, "all")
    p = page(got, 0, 2, "/x?status=all")
    assert p["next"] == "/x?status=all&offset=2&limit=2" and p["total"] == 3
