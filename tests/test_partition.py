"""Judging in partitions finds exactly what judging every record at once finds.

sync/partition.py splits an asset type's records so that whatever a rule compares lies in one
partition; the tests below check that rule of placement on records holding every awkward id case,
then run the whole conclusion (matching, every rule, metrics) on the shipped sample both ways,
with partitions so small that every pair, repeat and candidate search crosses them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, sample_config
from test_matching import records

from gridrecon import api
from gridrecon.checks.calendar import WorkingCalendar
from gridrecon.checks.settings import RuleSettings
from gridrecon.checks.validity import stop_worker
from gridrecon.core.config import load_config
from gridrecon.core.errors import ConfigError
from gridrecon.sync.matching import IdCodes
from gridrecon.sync.partition import assign, partitions

AS_OF = dt.date(2026, 11, 20)


def awkward() -> IdCodes:
    """Null ids, repeated ids on both sides, links to a repeated PMS id, shared and dangling
    links, marketing records repeating their own id while linking to different PMS ids."""
    pms = records(["a", "b", "b", None, "c", "d", "e", "f", "g", None, "h"], label="p")
    marketing = records(
        ["m1", "m2", "m3", "m3", "m4", "m5", "m6", "m7", None, "m8", "m8", "m9"],
        ["a", "b", "c", "d", "e", "e", "zz", "zz", "f", None, "g", "h"],
    )
    return IdCodes.of(pms, marketing)


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_records_compared_together_share_a_partition(count: int) -> None:
    codes = awkward()
    pms, marketing = assign(codes, count)
    assert set(pms) | set(marketing) <= set(range(count))
    for code in np.unique(codes.pms[codes.pms >= 0]):  # a PMS id's records: together
        assert len(set(pms[codes.pms == code])) == 1
    repeated = codes.duplicated("marketing")
    for code in np.unique(codes.marketing[repeated]):  # a repeated marketing id: together
        assert len(set(marketing[codes.marketing == code])) == 1
    for row in np.flatnonzero((codes.link >= 0) & ~repeated):  # a link: with its PMS records
        holders = pms[codes.pms == codes.link[row]]
        assert set(holders) <= {marketing[row]}
        sharing = marketing[(codes.link == codes.link[row]) & ~repeated]
        assert set(sharing) == {marketing[row]}  # a shared PMS id: its carriers together


def test_partitions_hold_every_record_once_in_order() -> None:
    codes = awkward()
    pieces = partitions(codes, partition_rows=3)
    assert len(pieces) == 4  # 12 marketing records, 3 a partition
    pms = np.concatenate([p for p, _ in pieces])
    marketing = np.concatenate([m for _, m in pieces])
    assert sorted(pms) == list(range(len(codes.pms)))
    assert sorted(marketing) == list(range(len(codes.link)))
    for p, m in pieces:
        assert list(p) == sorted(p) and list(m) == sorted(m)
    whole = partitions(codes, partition_rows=12)
    assert len(whole) == 1 and list(whole[0][1]) == list(range(12))


def conclude(config_path: Path, partition_rows: int, pulled: api.Pulled | None = None):
    config = dataclasses.replace(load_config(config_path), partition_rows=partition_rows)
    settings = RuleSettings.parse(config.rules, config.path)
    calendar = WorkingCalendar.load(config.calendar_overrides)
    pulled = pulled or api.pull(config)
    started = dt.datetime(2026, 11, 20, 2, 0, tzinfo=config.timezone)
    keep: dict = {}
    result = api.conclude(config, settings, calendar, pulled, AS_OF, started, None, keep)
    return result, keep, pulled


@pytest.mark.parametrize("partition_rows", [17, 150])
def test_a_sample_judged_in_partitions_finds_what_the_whole_finds(
    tmp_path: Path, partition_rows: int
) -> None:
    config = sample_config(tmp_path)
    whole, whole_kept, pulled = conclude(config, 10**9)
    parted, parted_kept, _ = conclude(config, partition_rows, pulled)

    assert not whole.notes
    assert any(n.startswith("transformer judged in ") for n in parted.notes)
    assert_same_conclusion(whole, whole_kept, parted, parted_kept)


def assert_same_conclusion(whole, whole_kept: dict, parted, parted_kept: dict) -> None:
    """Two conclusions of the sample (whole and in partitions) and what each keeps for the next
    night are the same."""
    # every rule the sample plants fires, and the same findings come out, in the same order
    rules = set(whole.findings["rule_id"])
    assert {"DUPLICATE_ID", "DUPLICATE_LINK", "MISSING_IN_PMS", "UNLINKED"} <= rules
    assert {"ATTR_MISMATCH", "ARCHIVE_LATE", "ARCHIVE_OVERDUE", "INVALID_VALUE"} <= rules
    pd.testing.assert_frame_equal(parted.findings, whole.findings)
    pd.testing.assert_frame_equal(parted.metrics, whole.metrics)
    # the candidates of an UNLINKED record are searched among all PMS records, not its partition's
    unlinked = whole.findings[whole.findings["rule_id"] == "UNLINKED"]
    assert unlinked["detail"].str.startswith("candidates: ").any()
    # what the next incremental night builds on: the same too
    undated = [k["carried"].undated for k in (whole_kept, parted_kept)]
    ordered = [f.sort_values(list(f.columns)).reset_index(drop=True) for f in undated]
    pd.testing.assert_frame_equal(*ordered)
    for asset_type, frame in whole_kept["carried"].unarchived.items():
        pd.testing.assert_frame_equal(
            parted_kept["carried"].unarchived[asset_type].sort_index(), frame.sort_index()
        )
    assert parted_kept["carried"].future_from == whole_kept["carried"].future_from
    for key, memory in whole_kept["validity"].items():
        assert np.array_equal(parted_kept["validity"][key].validated, memory.validated)
        columns = list(memory.failures.columns)
        pd.testing.assert_frame_equal(
            parted_kept["validity"][key].failures.sort_values(columns, ignore_index=True),
            memory.failures.sort_values(columns, ignore_index=True),
        )


def test_partition_rows_is_read_from_the_run_section(tmp_path: Path) -> None:
    config = load_config(sample_config(tmp_path, extra="[run]\npartition_rows = 40\n"))
    assert config.partition_rows == 40
    assert load_config(sample_config(tmp_path)).partition_rows == 500_000
    for bad, named in (("partition_rows = 0", "partition_rows"), ("rows = 5", "rows")):
        with pytest.raises(ConfigError, match=named):
            load_config(sample_config(tmp_path, extra=f"[run]\n{bad}\n"))


def test_a_partitioned_run_says_so_and_finds_the_same(tmp_path: Path) -> None:
    whole_dir, parted_dir = tmp_path / "whole", tmp_path / "parted"
    codes = []
    for folder, extra in ((whole_dir, ""), (parted_dir, "[run]\npartition_rows = 50\n")):
        folder.mkdir()
        sample_config(folder, extra=f'[state]\nurl = "sqlite:///state.sqlite"\n{extra}')
        done = run_cli("run", "--as-of", AS_OF.isoformat(), cwd=folder)
        assert done.code in (0, 1), done.stderr
        codes.append(done.code)
    assert codes[0] == codes[1]

    summaries = [
        json.loads((f / "reports" / "latest" / "summary.json").read_text(encoding="utf-8"))
        for f in (whole_dir, parted_dir)
    ]
    assert not any("partitions" in n for n in summaries[0]["notes"])
    assert any("transformer judged in " in n for n in summaries[1]["notes"])
    findings = [
        pd.read_csv(f / "reports" / "latest" / "findings.csv").drop(
            columns=["first_seen", "last_seen"]
        )
        for f in (whole_dir, parted_dir)
    ]
    pd.testing.assert_frame_equal(findings[1], findings[0])


def test_only_a_read_judged_in_partitions_gives_its_freed_memory_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run bound by memory (judged in partitions) returns what its read freed to the system; any
    # other keeps it for matching and the rules to reuse, which costs less than fresh memory.
    released = []
    real = api.release_freed_memory
    monkeypatch.setattr(api, "release_freed_memory", lambda: released.append(real()))
    config = load_config(sample_config(tmp_path))
    try:
        api.pull(config)
        assert released == []
        api.pull(dataclasses.replace(config, partition_rows=50))
        assert len(released) == 1
    finally:
        stop_worker()  # each pull started a validity worker; nothing is validated here
