"""Matching by id codes gives what pandas' duplicated / isin / merge give on the ids as text.

The reference below is matching as it is defined (SPEC §4), written with pandas on the text ids;
sync/matching.py computes the same through integer codes. Both are run on the shipped sample and
on records built to hold every awkward case at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import sample_config

from gridrecon.connectors.mapping import ASSET_TYPES
from gridrecon.connectors.reader import read_all
from gridrecon.core.config import load_config
from gridrecon.sync.matching import (
    LINK_DANGLING,
    LINK_NONE,
    LINK_OK,
    PAIR_COLUMNS,
    PARENT_TYPE,
    IdCodes,
    match_asset,
    numbered,
)


def reference(pms: pd.DataFrame, marketing: pd.DataFrame) -> dict:
    def repeated(ids: pd.Series) -> pd.Series:
        return ids.notna() & ids.duplicated(keep=False)

    stored = marketing["pms_id"]
    link = np.select(
        [stored.isna(), stored.isin(pms["source_id"].dropna())], [LINK_NONE, LINK_OK], LINK_DANGLING
    )
    duplicate_link = repeated(stored)
    pms_duplicate = repeated(pms["source_id"])
    marketing_duplicate = repeated(marketing["source_id"])
    comparable_mkt = marketing[(link == LINK_OK) & ~marketing_duplicate & ~duplicate_link]
    comparable_pms = pms[~pms_duplicate]
    every = [*dict.fromkeys(["pms_id", *PAIR_COLUMNS["pms"], *PAIR_COLUMNS["marketing"]])]
    pairs = (
        comparable_mkt[every]
        .rename_axis("row_mkt")
        .reset_index()
        .merge(
            comparable_pms[every].rename_axis("row_pms").reset_index(),
            left_on="pms_id",
            right_on="source_id",
            suffixes=("_mkt", "_pms"),
            how="inner",
        )
    )
    # each side's columns, as matching keeps them
    kept = ["row_mkt", *(f"{c}_mkt" for c in PAIR_COLUMNS["marketing"])]
    kept += ["row_pms", *(f"{c}_pms" for c in PAIR_COLUMNS["pms"])]
    pairs = pairs[kept]
    return {
        "pms duplicate_id": pms_duplicate.tolist(),
        "pms linked": pms["source_id"].isin(stored.dropna()).tolist(),
        "marketing duplicate_id": marketing_duplicate.tolist(),
        "marketing link": list(link),
        "marketing duplicate_link": duplicate_link.tolist(),
        "pairs": pairs,
    }


def parent_reference(wanted: pd.Series, parents: pd.DataFrame) -> tuple[list, list]:
    """Whether some parent has the id; that parent's pms_id where exactly one has it."""
    unique = parents[
        parents["source_id"].notna() & ~parents["source_id"].duplicated(keep=False)
    ].set_index("source_id")["pms_id"]
    found = unique.reindex(wanted.to_numpy()).astype("str")
    return wanted.isin(parents["source_id"].dropna()).tolist(), found.tolist()


def compare(pms: pd.DataFrame, marketing: pd.DataFrame, **parents) -> None:
    """match_asset against the reference (on the matched frames: they add the parents)."""
    match = match_asset("transformer", pms, marketing, **parents)
    for system, frame in (("pms", match.pms), ("marketing", match.marketing)):
        given = parents.get(f"{system}_parents")
        if given is not None:
            expected = parent_reference(frame["parent_source_id"], given)
            got = frame["parent_found"].tolist(), frame["parent_pms_id"].tolist()
            assert str(got) == str(expected), system  # str: NaN equals NaN
    got = {
        "pms duplicate_id": match.pms["duplicate_id"].tolist(),
        "pms linked": match.pms["linked"].tolist(),
        "marketing duplicate_id": match.marketing["duplicate_id"].tolist(),
        "marketing link": match.marketing["link"].tolist(),
        "marketing duplicate_link": match.marketing["duplicate_link"].tolist(),
        "pairs": match.pairs.frame(),
    }
    expected = reference(match.pms, match.marketing)
    pd.testing.assert_frame_equal(got.pop("pairs"), expected.pop("pairs"))
    assert got == expected


def records(ids: list, pms_ids: list | None = None, label: str = "") -> pd.DataFrame:
    """Records with the given ids (and pms_ids), every pair column filled in."""
    n = len(ids)
    frame = pd.DataFrame(
        {
            "source_id": pd.Series(ids, dtype="str"),
            "pms_id": pd.Series(pms_ids if pms_ids is not None else ids, dtype="str"),
            "name": pd.Series([f"{label}{i}" for i in range(n)], dtype="str"),
            "name_key": pd.Series([f"{label}{i}" for i in range(n)], dtype="str"),
            "voltage_kv": np.arange(n, dtype="float64"),
            "capacity_kva": np.full(n, np.nan),
            "org_code": pd.Series(["33401"] * n, dtype="str"),
            "status": pd.Series(["in_service"] * n, dtype="str"),
            "parent_source_id": pd.Series([None] * n, dtype="str"),
            "commissioned_on": pd.Series(pd.NaT, index=range(n), dtype="datetime64[us]"),
            "recorded_at": pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, Asia/Shanghai]"),
        }
    )
    frame.index = frame.index * 10 + 7  # labels that are not positions
    return frame


def test_every_awkward_id_case_matches_as_the_text_reference() -> None:
    pms = records(["a", "b", "b", None, "c", "d", "e", "变压器-1", "x"], label="p")
    marketing = records(
        ["m1", "m2", "m3", "m4", "m4", "m5", "m6", "m7", "m8", None, "m9"],
        # a pair, one to a duplicated PMS id, a dangling one, a duplicated marketing id, no
        # link, two records carrying the same id, a Chinese id, and a null marketing id
        ["a", "b", "zz", "c", None, None, "d", "d", "变压器-1", "x", "e"],
        label="m",
    )
    compare(pms, marketing)


def test_pair_columns_are_taken_for_the_pairs_asked_for() -> None:
    pms = records(["a", "b", "c", "d"], label="p")
    marketing = records(["m1", "m2", "m3", "m4"], ["d", "zz", "b", "a"], label="m")
    pairs = match_asset("transformer", pms, marketing).pairs
    every = pairs.frame()
    assert len(pairs) == 3 and list(every.index) == [0, 1, 2]
    assert every["source_id_pms"].tolist() == ["d", "b", "a"]  # in marketing's order
    assert every["row_mkt"].tolist() == [7, 27, 37]  # the records' labels, not positions
    some = pairs.frame(["name_pms", "row_pms", "source_id_mkt"], np.array([2, 0]))
    pd.testing.assert_frame_equal(some, every.loc[[2, 0], ["name_pms", "row_pms", "source_id_mkt"]])
    pd.testing.assert_series_equal(pairs["name_mkt"], every["name_mkt"])
    for unknown in ("name", "pms_id_pms", "recorded_at_pms", "name_both"):
        with pytest.raises(KeyError):
            pairs[unknown]


def test_parents_are_found_as_the_text_reference_finds_them() -> None:
    # a parent held once, one held twice (found, but no pms_id), a missing one, a null, and a
    # parent id whose record has no pms_id
    lines = records(["L1", "L2", "L2", "L3", None], ["P1", "P2", "P2b", None, "P5"], label="l")
    pms = records(["a", "b", "c", "d", "e", "f"], label="p")
    pms["parent_source_id"] = pd.Series(
        ["L1", "L2", "L404", None, "L3", "L1"], index=pms.index, dtype="str"
    )
    marketing = records(["m1", "m2"], ["a", "b"], label="m")
    marketing["parent_source_id"] = pd.Series(["L2", "L1"], index=marketing.index, dtype="str")
    compare(pms, marketing, pms_parents=lines, marketing_parents=lines.iloc[:0])
    found = match_asset("transformer", pms, marketing, pms_parents=lines).pms
    assert found["parent_found"].tolist() == [True, True, False, False, True, True]
    assert found["parent_pms_id"].iloc[0] == "P1" and pd.isna(found["parent_pms_id"].iloc[1])


@pytest.mark.parametrize("side", ["pms", "marketing"])
def test_empty_records_on_one_side_match_as_the_text_reference(side: str) -> None:
    pms = records(["a", "b"], label="p")
    marketing = records(["m1", "m2"], ["a", None], label="m")
    if side == "pms":
        pms = pms.iloc[:0]
    else:
        marketing = marketing.iloc[:0]
    compare(pms, marketing)


def test_the_sample_matches_as_the_text_reference(tmp_path: Path) -> None:
    read = read_all(load_config(sample_config(tmp_path)))
    pms = {t: read["pms"].records(t) for t in ASSET_TYPES}
    marketing = {t: read["marketing"].records(t) for t in ASSET_TYPES}
    codes = {t: IdCodes.of(pms[t], marketing[t]) for t in ASSET_TYPES}
    matches = {}
    for asset_type in ASSET_TYPES:
        parent = PARENT_TYPE.get(asset_type)
        parents = {"pms_parents": pms.get(parent), "marketing_parents": marketing.get(parent)}
        compare(pms[asset_type], marketing[asset_type], **parents)
        match = matches[asset_type] = match_asset(  # the same, with the codes given
            asset_type, pms[asset_type], marketing[asset_type], **parents, codes=codes[asset_type]
        )
        expected = reference(match.pms, match.marketing)
        pd.testing.assert_frame_equal(match.pairs.frame(), expected["pairs"])
        assert match.pms["duplicate_id"].tolist() == expected["pms duplicate_id"]
    assert len(matches["transformer"].pairs) > 100  # the sample has pairs to compare
    # and the planted repeats: a PMS id in two tables, a PMS id two marketing records carry
    assert matches["transformer"].pms["duplicate_id"].sum() == 2
    assert matches["transformer"].marketing["duplicate_link"].sum() == 2


def test_the_earliest_marketing_record_per_pms_id_is_found_on_the_codes() -> None:
    from gridrecon.checks.metrics import _first_recorded

    pms = records(["a", "b", "c", "d", None], label="p")
    marketing = records(
        ["m1", "m2", "m3", "m4", "m4", "m5", "m6"], ["a", "a", "b", "c", "d", "d", None]
    )
    # a's earliest of two; b's only one unknown; c's and d's (m4) records have a repeated id
    recorded = ["2026-03-02 23:30", "2026-03-01 08:00", None, "2026-01-01", "2026-01-02",
                "2026-05-05 00:10", "2026-01-01"]  # fmt: skip
    zone = "Asia/Shanghai"
    marketing["recorded_at"] = (
        pd.to_datetime(recorded, format="ISO8601").tz_localize(zone).as_unit("us")
    )
    match = match_asset("transformer", pms, marketing)
    found = _first_recorded(match.marketing, match.pms["id_code"])

    carried = match.marketing[~match.marketing["duplicate_id"] & match.marketing["pms_id"].notna()]
    earliest = carried.sort_values("recorded_at", na_position="last").drop_duplicates("pms_id")
    expected = earliest.set_index("pms_id")["recorded_at"].reindex(pms["source_id"].to_numpy())
    assert found.tolist() == pd.Series(expected.to_numpy()).tolist()
    assert str(found.dtype) == f"datetime64[us, {zone}]"
    assert found.iloc[0] == pd.Timestamp("2026-03-01 08:00", tz=zone)
    assert found.iloc[3] == pd.Timestamp("2026-05-05 00:10", tz=zone)  # m5 only: m4 repeats
    assert found.iloc[[1, 2, 4]].isna().all()


@pytest.mark.parametrize("dtype", ["str", object])  # text in Arrow; Python strings
def test_ids_are_numbered_as_factorize_numbers_them(dtype: object) -> None:
    ids = pd.Series(["a", None, "b", "a", "c", None, "b", "河口", "a "] * 3, dtype=dtype)
    expected_codes, expected_ids = pd.factorize(ids.astype(object))
    codes, count = numbered(ids)
    assert codes.tolist() == expected_codes.tolist()
    assert count == len(expected_ids)
