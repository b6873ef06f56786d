"""report.html: the one self-contained page data stewards work from, rendered from a RunResult.

Everything is inline, so the file opens without a network: CSS, the page's script and the trend
chart (SVG drawn here). Findings travel as JSON inside the page and the script renders one page
of rows at a time, so 100,000 findings stay usable. Data is escaped by Jinja2's autoescaping and
by `sanitize.script_json`; on top of that a Content-Security-Policy lets only the page's own
script run (by its hash), so an injected tag could not run even if escaping ever failed.

Stable hooks for tests and scripts: `#metric-<asset type>-<metric>` (headline figures, with
`data-value` = the rate as in summary.json), `td[data-org][data-metric]` (per org),
`#count-open|new|reopened|resolved|waived`, `#findings-count[data-count]` (rows matching the
filters) and `tr[data-finding-id]` rows. The filters follow the URL fragment, e.g.
`report.html#rule=UNLINKED&state=all`.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from ..checks.findings import FINDING_FIELDS
from ..checks.result import ALL, OPEN_STATES, RunResult, tallies
from ..checks.settings import RULES
from ..connectors.mapping import ASSET_TYPES
from .labels import Labels, labels, org_tree
from .sanitize import clean_frame, script_json

TEMPLATES = Path(__file__).with_name("templates")
# metric -> (numerator, denominator) columns of result.metrics
METRICS = {
    "linkage_rate": ("linked", "pms_assets"),
    "consistency_rate": ("consistent_pairs", "pairs"),
    "timeliness_rate": ("on_time", "due"),
}
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#7f7f7f"]  # fmt: skip
TREND_RUNS = 60  # more points than this no longer read as a trend on one screen
# Low-cardinality columns travel as an index into a list of their values: a much smaller page.
CODED = ["rule_id", "severity", "state", "asset_type", "org_code", "field", "owner"]
WAIVER_FIELDS = ["waiver_reason", "waived_by", "waiver_expires"]  # shown when the run has them


def render_html(result: RunResult, lang: str = "zh") -> str:
    t = labels(lang)
    names, parents = org_tree(result.orgs)
    script = _asset("report.js")
    present = [a for a in ASSET_TYPES if a in set(result.metrics["asset_type"])]
    by_rule, _ = tallies(result.findings)
    context = {
        "t": t,
        "lang": lang,
        "result": result,
        "asset_types": present,
        "metrics": list(METRICS),
        "headline": _headline(result.metrics),
        "counters": _changed(by_rule, ALL),
        "org_rows": _org_rows(result.metrics, names, parents),
        "changes": _changes(result.findings, by_rule),
        "trend": _trend(result, t),
        "sources": list(result.sources.values()),
        "data": script_json(_table_data(result, t, names, parents)),
        "style": Markup(_asset("report.css")),
        "script": Markup(script),
        "script_hash": base64.b64encode(hashlib.sha256(script.encode()).digest()).decode(),
    }
    return _environment().get_template("report.html.j2").render(context)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value is escaped unless marked safe here, in Python
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = percent
    env.filters["num"] = lambda n: f"{int(n):,}"
    return env


@lru_cache(maxsize=4)
def _asset(name: str) -> str:
    # Read as plain text, not as a template: the script may contain "{%" or "{{".
    return (TEMPLATES / name).read_text(encoding="utf-8")


def percent(rate: Any) -> str:
    """0.9964 -> "99.64%"; no rate (nothing counted) -> "—"."""
    if _no_value(rate):
        return "—"
    return f"{float(rate) * 100:.2f}%"


def grade(rate: Any) -> str:
    if _no_value(rate):
        return "none"
    return "good" if rate >= 0.99 else "fair" if rate >= 0.95 else "poor"


def _figures(row: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    figures = {}
    for metric, (part, whole) in METRICS.items():
        if row is None:
            figures[metric] = {"value": None, "part": 0, "whole": 0, "grade": "none"}
            continue
        value = row[metric]
        value = None if _no_value(value) else float(value)
        figures[metric] = {
            "value": value,
            "part": int(row[part]),
            "whole": int(row[whole]),
            "grade": grade(value),
        }
    return figures


def _no_value(value: Any) -> bool:
    """No rate (nothing counted). Not pd.isna: asked of every figure of every org, that was most
    of the per-org table's time."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _headline(metrics: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    total = metrics[metrics["scope"] == "all"].set_index("asset_type")
    return {a: _figures(total.loc[a]) for a in total.index}


def listed_apart(findings: pd.DataFrame) -> pd.Series:
    """Waived findings that would otherwise be open: counted and listed on their own."""
    return findings["waived"].astype(bool) & findings["state"].isin(OPEN_STATES)


def _changed(by_rule: Counter, rule: Any) -> dict[str, int]:
    """New, reopened and resolved since the previous run; open; waived (tallies' by rule)."""
    return {
        "open": by_rule[rule, "open"],
        "new": by_rule[rule, "state", "new"],
        "reopened": by_rule[rule, "state", "reopened"],
        "resolved": by_rule[rule, "state", "resolved"],
        "waived": by_rule[rule, "waived"],
    }


def _org_rows(
    metrics: pd.DataFrame, names: dict[str, str], parents: dict[str, str]
) -> list[dict[str, Any]]:
    """The per-org table, top down: total, then each org's rollup, own assets, children."""
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in metrics.to_dict(orient="records"):
        by_key.setdefault((row["org_code"], row["scope"]), {})[row["asset_type"]] = row
    children: dict[str, list[str]] = {}
    for child, parent in sorted(parents.items()):
        children.setdefault(parent, []).append(child)
    known = set(names) | set(parents) | set(parents.values())
    rows: list[dict[str, Any]] = []

    def add(code: str, scope: str, level: int, parent: str | None, kind: str) -> None:
        per_type = by_key.get((code, scope), {})
        rows.append(
            {
                "code": code,
                "name": names.get(code, code),
                "scope": scope,
                "level": level,
                "parent": parent,
                "kind": kind,  # total | group | own | org
                "figures": {a: _figures(per_type.get(a)) for a in ASSET_TYPES},
            }
        )

    def walk(code: str, level: int, parent: str | None) -> None:
        if (code, "rollup") in by_key:
            add(code, "rollup", level, parent, "group")
            if (code, "org") in by_key:
                add(code, "org", level + 1, code, "own")
            for child in children.get(code, []):
                walk(child, level + 1, code)
        elif (code, "org") in by_key:
            add(code, "org", level, parent, "org")

    if any(scope == "all" for _, scope in by_key):
        add("*", "all", 0, None, "total")
    roots = sorted(c for c in known if c not in parents)
    for root in roots:
        walk(root, 1, None)
    placed = {(row["code"], row["scope"]) for row in rows}
    for code, scope in sorted(by_key):  # orgs outside the tree, e.g. "?" (no org)
        if (code, scope) not in placed:
            add(code, scope, 1, None, "org")
    return rows


def _rule_order(findings: pd.DataFrame) -> list[str]:
    extra = sorted(set(findings["rule_id"].dropna()) - set(RULES))
    return [*RULES, *extra]


def _changes(findings: pd.DataFrame, by_rule: Counter) -> list[dict[str, Any]]:
    """Per rule: new, reopened and resolved since the previous run; open; waived."""
    return [{"rule_id": rule, **_changed(by_rule, rule)} for rule in _rule_order(findings)]


def _trend(result: RunResult, t: Labels) -> dict[str, Any]:
    """The trend chart's geometry: one line per rule, open findings over the recent runs."""
    trend = result.trend[["run_id", "started_at", "rule_id", "open"]].copy()
    if result.run_id not in set(trend["run_id"]):
        # The trend is history; the current run is shown with it.
        current = result.counts()["by_rule"]
        trend = pd.concat(
            [
                trend,
                pd.DataFrame(
                    {
                        "run_id": result.run_id,
                        "started_at": result.started_at,
                        "rule_id": list(current) or [None],
                        "open": list(current.values()) or [0],
                    }
                ),
            ],
            ignore_index=True,
        )
    trend["started_at"] = pd.to_datetime(trend["started_at"], utc=True, format="ISO8601")
    runs = trend.groupby("run_id")["started_at"].min().sort_values().tail(TREND_RUNS)
    table = (
        trend.dropna(subset=["rule_id"])
        .pivot_table(index="run_id", columns="rule_id", values="open", aggfunc="sum")
        .reindex(runs.index)
        .fillna(0)
        .astype(int)
    )
    width, height, left, right, top, bottom = 720, 240, 44, 24, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = int(table.to_numpy().max()) if table.size else 0
    step = _nice_step(peak)
    y_max = max(step * 4, 1)

    shown = len(runs)

    def x(i: int) -> float:
        return round(left + (plot_w / 2 if shown == 1 else plot_w * i / (shown - 1)), 1)

    def y(v: float) -> float:
        return round(top + plot_h * (1 - v / y_max), 1)

    zone = result.started_at.tzinfo
    days = [ts.tz_convert(zone).strftime("%m-%d") if zone else ts.strftime("%m-%d") for ts in runs]
    every = max(1, math.ceil(len(runs) / 8))
    order = _rule_order(result.findings)
    series = []
    for rule in [r for r in order if r in table.columns] + sorted(set(table.columns) - set(order)):
        values = table[rule].tolist()
        series.append(
            {
                "rule_id": rule,
                "label": t.rule(rule),
                "colour": PALETTE[order.index(rule) % len(PALETTE)] if rule in order else "#333",
                "points": " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values)),
                "dots": [
                    {"x": x(i), "y": y(v), "v": v, "day": days[i]} for i, v in enumerate(values)
                ],
                "last": values[-1] if values else 0,
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "bottom": top + plot_h,
        "runs": len(runs),
        "y_ticks": [{"y": y(v), "v": v} for v in range(0, y_max + 1, max(step, 1))],
        "x_ticks": [{"x": x(i), "label": d} for i, d in enumerate(days) if i % every == 0],
        "series": series,
    }


def _nice_step(peak: int) -> int:
    """A round tick step such that four steps cover `peak`."""
    raw = max(peak, 1) / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw and float(factor * magnitude).is_integer():
            return int(factor * magnitude)
    return int(10 * magnitude)


def _table_data(
    result: RunResult, t: Labels, names: dict[str, str], parents: dict[str, str]
) -> dict[str, Any]:
    """The findings for the page's script: columns of values, coded columns as indexes."""
    fields = [*FINDING_FIELDS, *[f for f in WAIVER_FIELDS if f in result.findings.columns]]
    frame = clean_frame(result.findings[fields])
    status = frame["field"] == "status"
    for side in ("pms_value", "marketing_value"):  # status codes as words
        values = frame.loc[status, side]
        # only where there is a value: mapping nothing but nulls gives a float column, which
        # pandas refuses to write into a text column
        if values.notna().any():
            frame.loc[status, side] = values.map(lambda v: t.value("status", v))
    columns: dict[str, list[Any]] = {}
    codes: dict[str, list[Any]] = {}
    for name in fields:
        column = frame[name]
        if name in CODED:
            index, values = pd.factorize(column, sort=True)
            columns[name] = [None if i < 0 else int(i) for i in index]
            codes[name] = [str(v) for v in values]
        elif name == "waived":
            columns[name] = [1 if w else 0 for w in column.astype(bool)]
            columns["apart"] = [1 if a else 0 for a in listed_apart(frame)]
        else:
            columns[name] = column.astype(object).where(column.notna(), None).tolist()
    org_codes = set(codes.get("org_code", []))
    for code in list(org_codes):  # the filter offers every ancestor (a city over its counties)
        seen = {code}
        while code in parents and parents[code] not in seen:
            code = parents[code]
            seen.add(code)
            org_codes.add(code)
    return {
        "count": len(frame),
        "columns": columns,
        "codes": codes,
        "rule_order": _rule_order(result.findings),
        "asset_type_order": list(ASSET_TYPES),
        "orgs": {c: {"name": names.get(c, c), "parent": parents.get(c)} for c in sorted(org_codes)},
        "labels": t.for_script(),
    }
