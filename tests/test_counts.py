"""The counts every report shows (RunResult.counts, tallies), counted in one pass over the
findings: checked against the figures written out by hand, findings with missing values among
them (a finding read back from an older store may lack its org or asset type)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from gridrecon.checks.result import ALL, RunResult, tallies

FINDINGS = pd.DataFrame(
    [
        # rule_id, state, waived, severity, asset_type, org_code
        ("ARCHIVE_LATE", "new", False, "warning", "line", "3740101"),
        ("ARCHIVE_LATE", "open", False, "warning", "transformer", "3740101"),
        ("ARCHIVE_LATE", "open", True, "warning", "transformer", "3740102"),  # waived
        ("ARCHIVE_LATE", "resolved", True, "warning", "line", "3740102"),  # closed: not apart
        ("MISSING_IN_PMS", "reopened", False, "error", "transformer", None),
        ("MISSING_IN_PMS", "resolved", False, "error", "substation", "3740101"),
        (None, "open", False, "info", None, "3740102"),  # no rule, no asset type
        ("UNLINKED", None, False, "warning", "line", "3740101"),  # no state: not open
    ],
    columns=["rule_id", "state", "waived", "severity", "asset_type", "org_code"],
).astype({"rule_id": "str", "state": "str", "asset_type": "str", "org_code": "str"})


def result(findings: pd.DataFrame) -> RunResult:
    started = dt.datetime(2026, 11, 20, 6, 0, tzinfo=dt.UTC)
    return RunResult(
        run_id="20261120-060000-0000",
        as_of=dt.date(2026, 11, 20),
        started_at=started,
        finished_at=started,
        config_path="gridrecon.toml",
        config_fingerprint="0" * 16,
        settings={},
        sources={},
        findings=findings,
        metrics=pd.DataFrame(),
    )


def test_counts_per_rule_severity_type_org_and_state() -> None:
    assert result(FINDINGS).counts() == {
        "open": 4,
        "waived": 1,
        "resolved": 2,
        "new": 1,
        "by_state": {"?": 1, "new": 1, "open": 3, "reopened": 1, "resolved": 2},
        "by_rule": {"?": 1, "ARCHIVE_LATE": 2, "MISSING_IN_PMS": 1},
        "by_severity": {"error": 1, "info": 1, "warning": 2},
        "by_asset_type": {"?": 1, "line": 1, "transformer": 2},
        "by_org": {"3740101": 2, "3740102": 1, "?": 1},
        "by_rule_and_asset_type": {
            "ARCHIVE_LATE": {"line": 1, "transformer": 1},
            "MISSING_IN_PMS": {"transformer": 1},
        },
    }


def test_counts_of_no_findings_are_zero() -> None:
    counts = result(FINDINGS.iloc[:0]).counts()
    assert counts["open"] == counts["waived"] == counts["resolved"] == 0
    assert counts["by_rule"] == counts["by_rule_and_asset_type"] == {}


def test_tallies_per_rule_and_per_org() -> None:
    by_rule, by_org = tallies(FINDINGS)
    late = {
        "open": by_rule["ARCHIVE_LATE", "open"],
        "new": by_rule["ARCHIVE_LATE", "state", "new"],
        "resolved": by_rule["ARCHIVE_LATE", "state", "resolved"],
        "waived": by_rule["ARCHIVE_LATE", "waived"],
        "transformer": by_rule["ARCHIVE_LATE", "type", "transformer"],
    }
    assert late == {"open": 2, "new": 1, "resolved": 1, "waived": 1, "transformer": 1}
    # every rule together, the finding without a rule among them
    assert by_rule[ALL, "open"] == 4 and by_rule[ALL, "waived"] == 1
    assert by_rule[ALL, "state", "reopened"] == 1 and by_rule[ALL, "state", "resolved"] == 2
    # per org: the open, unwaived findings; no org is ""
    assert {key: n for key, n in by_org.items() if key[1] == "open"} == {
        ("3740101", "open"): 2,
        ("3740102", "open"): 1,
        ("", "open"): 1,
    }
    assert by_org["", "error"] == 1 and by_org["3740101", "warning"] == 2
