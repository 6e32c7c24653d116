"""HTML of the pages, from the API's own objects (so a page shows the API's numbers).

Values are printed as the API gives them; each carries `data-field` with its path in
the API object, which is also what the browser tests compare. Everything interpolated
is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

NONE = "–"  # a figure the API gives as null (no data yet, or no plan)


def num(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


def get(obj: Mapping[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, Mapping) else None
    return cur


def field(obj: Mapping[str, Any], path: str, unit: str = "") -> str:
    value = get(obj, path)
    suffix = f" {unit}" if unit and value is not None else ""
    return f'<span data-field="{escape(path)}">{num(value)}</span>{suffix}'


def shell(*, title: str, auth: bool, content: str, poll: float) -> str:
    """The page around a fragment: sign-in and refusal panels, and the script that signs
    in, refreshes and sorts. With authentication on, `content` is a note; the script
    fetches the figures with the token."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><link rel="stylesheet" href="/ui/static/ui.css"></head>
<body data-auth="{'on' if auth else 'off'}" data-poll="{poll}">
<header><a href="/ui/">KPI</a><span id="status" role="status"></span>
<button type="button" id="signout" hidden>Sign out</button></header>
<main>
<section id="signin" hidden aria-labelledby="signin-h"><h1 id="signin-h">Sign in</h1>
<form id="signin-form"><label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required>
<button type="submit">Sign in</button></form>
<p>Paste the token you were given, once: this browser tab keeps it until it closes and
sends it with each request; it never appears in an address.</p></section>
<section id="refused" hidden role="alert" aria-labelledby="refused-h">
<h1 id="refused-h">Access refused</h1><p id="refused-detail"></p>
<button type="button" id="again">Sign in with another token</button></section>
<div id="content">{content}</div>
</main>
<script src="/ui/static/ui.js"></script>
</body></html>
"""


def no_script_note() -> str:
    return ("<noscript><p>Signing in sends your token from the page itself, which needs "
            "JavaScript. Without it the pages are readable where authentication is "
            "off.</p></noscript>")


def error_note(status: int, detail: str) -> str:
    return f'<section role="alert"><h1>Not available ({status})</h1><p>{escape(detail)}</p>' \
           "</section>"


def picker(kind: str, value: str, label: str) -> str:
    return (f'<form class="picker" method="get" data-picker>'
            f'<label for="pick-{kind}">{label}</label>'
            f'<input type="{kind}" id="pick-{kind}" name="{kind}" value="{escape(value)}">'
            f'<button type="submit">Show</button></form>')


def bonus_words(b: Mapping[str, Any]) -> str:
    """Which step of the bonus rule decided it, in words."""
    prod, quality = b.get("productivity_pct"), b.get("quality_score")
    ded, points, pct = b.get("deduction"), b.get("points"), b.get("bonus_pct")
    reason = b.get("reason")
    if reason == "no_productivity":
        return "No productivity figure yet (no plan or no calls-per-hour target): no bonus."
    if reason == "productivity_below_90":
        return f"Productivity {num(prod)} % is below 90 %: no bonus."
    if reason == "no_quality":
        return f"Productivity {num(prod)} % reaches 90 %, but no quality evaluation yet."
    steps = (f"productivity {num(prod)} % reaches 90 %; quality {num(quality)} "
             f"− deduction {num(ded)} = points {num(points)}")
    if reason == "points_below_85":
        return f"{steps.capitalize()}, below 85: no bonus."
    if reason == "no_scale_step":
        return f"{steps.capitalize()}: no step of the bonus scale applies."
    return f"{steps.capitalize()} → bonus {num(pct)} %."


def day_chart(days: Sequence[Mapping[str, Any]], month_days: int) -> str:
    """Minutes against the day's plan, one bar per day, as an SVG (no script needed),
    with the same figures as a table for screen readers and small screens."""
    top = max([1.0] + [float(d["kpi_minutes"]) for d in days]
              + [float(d["plan_minutes"]) for d in days])
    w, h = 24, 120
    bars = []
    for i, d in enumerate(days):
        m, p = float(d["kpi_minutes"]), float(d["plan_minutes"])
        bh, ph = h * m / top, h * p / top
        cls = "bar below" if p and m < p else "bar"
        tip = f"{d['period']}: {d['kpi_minutes']} of {d['plan_minutes']} minutes"
        bars.append(f'<g><title>{escape(tip)}</title>'
                    f'<rect class="{cls}" x="{i * w + 3}" y="{h - bh:.1f}" width="{w - 6}" '
                    f'height="{bh:.1f}"></rect>'
                    f'<line class="plan" x1="{i * w + 1}" x2="{i * w + w - 1}" '
                    f'y1="{h - ph:.1f}" y2="{h - ph:.1f}"></line>'
                    f'<text x="{i * w + w / 2}" y="{h + 14}">{escape(d["period"][8:])}</text></g>')
    rows = "".join(f'<tr><th scope="row">{escape(d["period"])}</th><td>{num(d["kpi_minutes"])}'
                   f'</td><td>{num(d["plan_minutes"])}</td><td>{num(d["attainment_pct"])}</td>'
                   "</tr>" for d in days)
    return (f'<figure class="chart"><svg viewBox="0 0 {max(1, month_days, len(days)) * w} '
            f'{h + 18}" '
            f'role="img" aria-label="KPI minutes per day against the day\'s plan">'
            f'{"".join(bars)}</svg><figcaption>Minutes per day (bars) against the day\'s plan '
            f'(lines); bars below plan are marked.</figcaption></figure>'
            f'<details><summary>The days as a table</summary><table><thead><tr>'
            f'<th scope="col">Day</th><th scope="col">KPI minutes</th>'
            f'<th scope="col">Plan</th><th scope="col">Attainment %</th></tr></thead>'
            f'<tbody>{rows}</tbody></table></details>')


def _fig_row(label: str, value: str, note: str = "") -> str:
    return f'<tr><th scope="row">{label}</th><td>{value}</td><td>{note}</td></tr>'


def employee_fragment(m: Mapping[str, Any], days: Sequence[Mapping[str, Any]],
                      month_days: int, goal: Any, target: Any) -> str:
    """The employee page: the month so far, day by day, and the bonus explained."""
    att = m.get("attainment_pct")
    plan = float(m["plan_minutes"]) or 1.0
    goal_met = get(m, "sla.goal_met")
    missed = ' <strong class="mark">(not met)</strong>'
    sla_note = "" if goal is None else (
        f"goal {num(goal)} %" + ("" if goal_met is None else " (met)" if goal_met else missed))
    cph_note = "" if target is None else (
        f"target {num(target)}; productivity {field(m, 'calls.productivity_pct', '%')}")
    rows = "".join([
        _fig_row("SLA compliance", field(m, "sla.compliance_pct", "%"), sla_note),
        _fig_row("SLA met / breached",
                 f'{field(m, "sla.met")} / {field(m, "sla.breached")}'),
        _fig_row("First-contact resolution", field(m, "fcr_pct", "%"),
                 f'of {field(m, "resolved")} resolved'),
        _fig_row("Reopens", field(m, "reopened"), field(m, "reopen_rate_pct", "%")),
        _fig_row("Escalations", field(m, "escalated"), field(m, "escalation_rate_pct", "%")),
        _fig_row("Bounce-backs", field(m, "escalations_returned"),
                 field(m, "bounce_back_pct", "%")),
        _fig_row("Calls per hour", field(m, "calls.calls_per_hour"), cph_note),
        _fig_row("Calls answered", field(m, "calls.answered")),
        _fig_row("Average handle time", field(m, "calls.aht_seconds", "s")),
        _fig_row("CSAT", field(m, "csat_avg")),
        _fig_row("Quality score", field(m, "quality_score")),
        _fig_row("Tickets handled", field(m, "tickets_handled")),
        _fig_row("Repeat contacts", field(m, "repeat_contacts"),
                 f'{field(m, "repeat_contact_rate_pct", "%")} of resolved'),
        _fig_row("Cover for absent colleagues", field(m, "cover_minutes", "min")),
    ])
    b = m.get("bonus") or {}
    bonus_rows = "".join(_fig_row(escape(k), field(m, f"bonus.{k}")) for k in b)
    below = ' <strong class="mark">below plan</strong>' if att is not None and att < 100 else ""
    return f"""<h1>Employee {escape(m["employee_id"])}
<small>department {num(m.get("department_id"))}</small></h1>
{picker("month", m["period"], "Month")}
<section aria-labelledby="h-min"><h2 id="h-min">KPI minutes, {escape(m["period"])}</h2>
<p class="big">{field(m, "kpi_minutes")} of {field(m, "plan_minutes")} planned minutes:
attainment {field(m, "attainment_pct", "%")}{below}</p>
<meter min="0" max="{plan}" value="{float(m["kpi_minutes"])}" low="{plan * 0.9}"
optimum="{plan}" aria-label="KPI minutes against plan">{num(att)} %</meter>
{day_chart(days, month_days)}</section>
<section aria-labelledby="h-fig"><h2 id="h-fig">Figures</h2>
<table class="figures"><thead><tr><th scope="col">Figure</th><th scope="col">Value</th>
<th scope="col">Against</th></tr></thead><tbody>{rows}</tbody></table></section>
<section aria-labelledby="h-bonus"><h2 id="h-bonus">Bonus</h2>
<p class="big">{field(m, "bonus.bonus_pct", "%")}</p><p class="explain">{bonus_words(b)}</p>
<table class="figures"><tbody>{bonus_rows}</tbody></table></section>"""


EMP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kpi_minutes", "KPI minutes"), ("plan_minutes", "Plan"),
    ("attainment_pct", "Attainment %"), ("sla.compliance_pct", "SLA %"),
    ("fcr_pct", "FCR %"), ("calls.calls_per_hour", "Calls/h"),
    ("calls.aht_seconds", "AHT s"), ("csat_avg", "CSAT"),
    ("repeat_contact_rate_pct", "Repeat %"), ("cover_minutes", "Cover min"),
)
MONTH_COLUMNS = (("quality_score", "Quality"), ("bonus.bonus_pct", "Bonus %"))


def _cell(obj: Mapping[str, Any], path: str) -> str:
    value = get(obj, path)
    sort = "" if value is None or isinstance(value, bool) else f' data-v="{escape(str(value))}"'
    mark = ""
    if path == "attainment_pct" and value is not None and value < 100:
        mark = ' class="below"><span class="mark" title="below plan">▼</span'
    elif path == "sla.compliance_pct" and get(obj, "sla.goal_met") is False:
        mark = ' class="below"><span class="mark" title="below the SLA goal">▼</span'
    return f'<td{sort}{mark}>{field(obj, path)}</td>'


def department_fragment(d: Mapping[str, Any], at_risk: Sequence[Mapping[str, Any]],
                        is_month: bool) -> str:
    cols = EMP_COLUMNS + (MONTH_COLUMNS if is_month else ())
    month = d["period"][:7]
    head = "".join(f'<th scope="col" aria-sort="none"><button type="button" data-sort="{i + 1}">'
                   f'{label}</button></th>' for i, (_, label) in enumerate(cols))
    body = "".join(
        f'<tr data-employee="{escape(e["employee_id"])}"><th scope="row" data-v="'
        f'{escape(e["employee_id"])}"><a href="/ui/employees/{escape(e["employee_id"])}'
        f'?month={escape(month)}">{escape(e["employee_id"])}</a></th>'
        + "".join(_cell(e, p) for p, _ in cols) + "</tr>"
        for e in d["employees"])
    tot = d["totals"]
    foot = "".join(f"<td>{field(tot, p)}</td>" for p, _ in cols)
    return f"""<h1>Department {escape(d["department_id"])} <small>{escape(d["period"])}</small></h1>
<div class="pickers">{picker("month", month, "Month")}
{picker("date", d["period"] if not is_month else "", "Day")}</div>
<div class="cols"><section aria-labelledby="h-emp"><h2 id="h-emp">Employees</h2>
<p class="hint">▼ marks a figure below plan or below the SLA goal. Sort by a column's
heading; a row opens that employee's page.</p>
<div class="scroll"><table class="sortable" id="employees"><thead><tr>
<th scope="col" aria-sort="none"><button type="button" data-sort="0">Employee</button></th>
{head}</tr></thead><tbody>{body}</tbody>
<tfoot><tr><th scope="row">Department</th>{foot}</tr></tfoot></table></div></section>
<section aria-labelledby="h-risk" class="risk"><h2 id="h-risk">Open tickets at risk</h2>
{risk_table(at_risk)}</section></div>"""


def risk_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return '<p id="no-risk">No open ticket has reached its SLA warning.</p>'
    body = "".join(
        f'<tr class="{escape(r["sla_state"])}" data-ticket="{escape(r["ticket_id"])}">'
        f'<th scope="row">{escape(r["ticket_id"])}</th><td>{num(r["priority"])}</td>'
        f'<td>{escape(r["sla_state"])}</td><td>{_left(r["minutes_left"])}</td>'
        f'<td>{_owner(r["owner"])}</td></tr>' for r in rows)
    return ('<div class="scroll"><table id="at-risk"><thead><tr><th scope="col">Ticket</th>'
            '<th scope="col">Priority</th><th scope="col">SLA</th>'
            '<th scope="col">Minutes</th><th scope="col">Employee</th></tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _left(minutes: float | None) -> str:
    if minutes is None:
        return NONE
    if minutes < 0:
        return f'<strong class="mark">{-minutes:g} overdue</strong>'
    return f"{minutes:g} left"


def _owner(owner: str | None) -> str:
    if owner is None:
        return NONE
    return f'<a href="/ui/employees/{escape(owner)}">{escape(owner)}</a>'


def home_fragment(departments: Sequence[tuple[str, int]], self_link: str | None) -> str:
    own = (f'<p><a href="/ui/employees/{escape(self_link)}">Your page</a></p>'
           if self_link else "")
    if not departments:
        listing = "<p>No department is visible to this token.</p>" if not own else ""
    else:
        items = "".join(f'<tr><th scope="row"><a href="/ui/departments/{escape(d)}">'
                        f'{escape(d)}</a></th><td>{n}</td></tr>' for d, n in departments)
        listing = ('<table id="departments"><thead><tr><th scope="col">Department</th>'
                   f'<th scope="col">Employees</th></tr></thead><tbody>{items}</tbody></table>')
    return f"<h1>Departments</h1>{own}{listing}"
