"""Headline metrics per asset type and org: 贯通率, 一致率, 及时率.

- linkage (贯通率): in-service PMS assets that some marketing record links to / in-service PMS
  assets (records with a duplicated id excluded).
- consistency (一致率): linked pairs without an ATTR_MISMATCH / linked pairs that were compared.
- timeliness (及时率): in-service PMS assets commissioned in the period whose deadline has passed
  by as_of and that were recorded in both systems by their deadline / those assets. An asset whose
  creation time is unknown on either side is left out of both counts.
The org of a PMS asset is its (translated) org_code. Rows of scope "org" count an org's own
assets; "rollup" rows count everything below an org in the org tree (a city company over its
counties); the "all" row (org_code "*") is the total.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ..connectors.normalize import local_day
from ..sync.matching import AssetMatch

COUNT_COLUMNS = ["pms_assets", "linked", "pairs", "consistent_pairs", "due", "on_time"]
METRIC_COLUMNS = [
    "asset_type",
    "org_code",
    "scope",
    "pms_assets",
    "linked",
    "linkage_rate",
    "pairs",
    "consistent_pairs",
    "consistency_rate",
    "due",
    "on_time",
    "timeliness_rate",
]
ALL_ORGS = "*"


def period_start(as_of: dt.date, period: str) -> dt.date | None:
    if period == "year":
        return as_of.replace(month=1, day=1)
    if period == "month":
        return as_of.replace(day=1)
    return None


def compute_metrics(
    matches: dict[str, AssetMatch],
    findings: pd.DataFrame,
    deadlines: dict[str, pd.Series],
    as_of: dt.date,
    period: str,
    parents: dict[str, str] | None = None,
) -> pd.DataFrame:
    return metrics_as_of(metric_counts(matches, findings, deadlines), as_of, period, parents)


def metric_counts(
    matches: dict[str, AssetMatch], findings: pd.DataFrame, deadlines: dict[str, pd.Series]
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """What the metrics count, before as_of picks what is due: per asset type, the counts per
    org that hold whatever the date, and the assets with a deadline, counted by (org,
    deadline, commissioning day, on time). Small: a night without changes keeps them."""
    return {
        asset_type: asset_counts(match, findings, deadlines.get(asset_type))
        for asset_type, match in matches.items()
    }


def asset_counts(
    match: AssetMatch, findings: pd.DataFrame, due: pd.Series | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """metric_counts of one asset type, or of one partition of it (merge_counts adds them up).
    findings: at least its ATTR_MISMATCH findings; due: its ARCHIVE_OVERDUE deadlines."""
    mismatched = findings.loc[findings["rule_id"] == "ATTR_MISMATCH", ["pms_id", "marketing_id"]]
    mismatched_keys = set(zip(mismatched["pms_id"], mismatched["marketing_id"]))
    pms = match.pms
    in_service = (~pms["duplicate_id"] & (pms["status"] == "in_service")).to_numpy()
    # The orgs as numbers, ranked as their codes sort: counted with arrays, where a group-by on
    # the codes' text copied that text for every grouping.
    orgs, org_codes = _org_ranks(pms["org_code"])

    # few pairs mismatch: test the exact (pms, marketing) key only where the PMS id is one
    # (asked of the PMS records, then looked up by the pairs' rows: no pair's id is copied)
    mismatched_pms = pms["source_id"].isin(mismatched["pms_id"].unique()).to_numpy()
    suspect = np.flatnonzero(mismatched_pms[match.pairs.rows("pms")])
    suspects = match.pairs.frame(["source_id_pms", "source_id_mkt"], suspect)
    consistent = np.ones(len(match.pairs), dtype=bool)
    consistent[suspect] = [
        key not in mismatched_keys
        for key in zip(suspects["source_id_pms"], suspects["source_id_mkt"])
    ]
    counted, paired = orgs[in_service], orgs[match.pairs.rows("pms")]
    undated = pd.DataFrame(
        {
            "pms_assets": _per_org(org_codes, counted),
            "linked": _per_org(org_codes, counted, pms["linked"].to_numpy()[in_service]),
            "pairs": _per_org(org_codes, paired),
            "consistent_pairs": _per_org(org_codes, paired, consistent),
        }
    )

    due = due if due is not None else pd.Series(dtype="datetime64[us]")
    rows = np.flatnonzero(in_service & pms.index.isin(due.index))
    judged = pd.DataFrame(
        {
            "org": orgs[rows],
            "deadline": due[pms.index[rows]].to_numpy(),
            "commissioned_on": pms["commissioned_on"].to_numpy()[rows],
        }
    )
    linked = pms["linked"].to_numpy()[rows]
    pms_day = local_day(pms["recorded_at"].iloc[rows]).to_numpy()
    mkt_day = local_day(_first_recorded(match.marketing, pms["id_code"].iloc[rows])).to_numpy()
    known = ~np.isnat(pms_day) & (~np.isnat(mkt_day) | ~linked)
    deadline = judged["deadline"].to_numpy()
    judged["on_time"] = linked & (pms_day <= deadline) & (mkt_day <= deadline)
    with_deadline = judged[known].groupby(_DEADLINE_KEYS).size().rename("assets").reset_index()
    with_deadline["org"] = org_codes[with_deadline["org"].to_numpy()]
    return undated, with_deadline


def _org_ranks(org_codes: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Each record's org as the rank of its code among the codes held ("?" for none: no org
    known), and those codes, sorted."""
    numbers, codes = pd.factorize(org_codes.fillna("?"), sort=True)
    return numbers, pd.Index(codes, dtype="str", name="org")


def _per_org(org_codes: pd.Index, orgs: np.ndarray, true: np.ndarray | None = None) -> pd.Series:
    """Per org code: how many records there are (`orgs`: each record's org number), or how
    many of them `true` marks; an org without records is left out, as a group-by leaves it."""
    held = np.bincount(orgs, minlength=len(org_codes))
    counts = held if true is None else np.bincount(orgs[true], minlength=len(org_codes))
    return pd.Series(counts[held > 0], index=org_codes[held > 0])


_DEADLINE_KEYS = ["org", "deadline", "commissioned_on", "on_time"]


def merge_counts(
    pieces: list[tuple[pd.DataFrame, pd.DataFrame]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """asset_counts of the partitions of one asset type, as those of all its records."""
    if len(pieces) == 1:
        return pieces[0]
    undated = pd.concat([u for u, _ in pieces]).fillna(0).groupby(level=0).sum()
    with_deadline = (
        pd.concat([w for _, w in pieces], ignore_index=True)
        .groupby(_DEADLINE_KEYS)["assets"]
        .sum()
        .reset_index()
    )
    return undated, with_deadline


def metrics_as_of(
    counted: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    as_of: dt.date,
    period: str,
    parents: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The metrics table as of as_of, from metric_counts."""
    parents = parents or {}
    start = period_start(as_of, period)
    parts = []
    for asset_type, (undated, with_deadline) in counted.items():
        due = with_deadline[with_deadline["deadline"] < pd.Timestamp(as_of)]
        if start is not None:
            due = due[due["commissioned_on"] >= pd.Timestamp(start)]
        counts = (
            undated.assign(
                due=due.groupby("org")["assets"].sum(),
                on_time=due[due["on_time"]].groupby("org")["assets"].sum(),
            )
            .fillna(0)
            .astype("int64")
        )
        total = counts.sum().to_frame(ALL_ORGS).T
        for scope, table in (
            ("org", counts),
            ("rollup", _roll_up(counts, parents)),
            ("all", total),
        ):
            table = table[COUNT_COLUMNS].astype("int64").rename_axis("org_code").reset_index()
            parts.append(table.assign(asset_type=asset_type, scope=scope))
    columns = [c for c in METRIC_COLUMNS if not c.endswith("_rate")]
    metrics = (
        pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    )
    metrics["org_code"] = metrics["org_code"].astype("str")
    for column in COUNT_COLUMNS:
        metrics[column] = metrics[column].astype("int64")
    metrics["linkage_rate"] = _rate(metrics["linked"], metrics["pms_assets"])
    metrics["consistency_rate"] = _rate(metrics["consistent_pairs"], metrics["pairs"])
    metrics["timeliness_rate"] = _rate(metrics["on_time"], metrics["due"])
    order = metrics["scope"].map({"all": 0, "rollup": 1, "org": 2})
    metrics = metrics.assign(_order=order).sort_values(["asset_type", "_order", "org_code"])
    return metrics[METRIC_COLUMNS].reset_index(drop=True)


def _first_recorded(marketing: pd.DataFrame, id_codes: pd.Series) -> pd.Series:
    """For each PMS id (by its IdCodes code): the earliest recorded_at of the marketing records
    carrying it, those with a duplicated id aside (NaT where none is known). On the codes: a
    group-by on the ids as text outgrows the processor's caches at national scale."""
    stamps = marketing["recorded_at"]
    not_a_time = np.iinfo(np.int64).min  # NaT, as microseconds
    unknown = np.iinfo(np.int64).max  # later than any time: min() passes it over
    micros = stamps.to_numpy(dtype="datetime64[us]").view("int64")  # UTC
    micros = np.where(micros == not_a_time, unknown, micros)
    codes, links = id_codes.to_numpy(), marketing["link_code"].to_numpy()
    carried = (links >= 0) & ~marketing["duplicate_id"].to_numpy()
    earliest = np.full(max(codes.max(initial=-1), links.max(initial=-1)) + 1, unknown)
    np.minimum.at(earliest, links[carried], micros[carried])
    found = np.where(codes >= 0, earliest[codes], unknown)
    found = np.where(found == unknown, not_a_time, found).view("datetime64[us]")
    utc = pd.Series(found, index=id_codes.index).dt.tz_localize("UTC")
    zone = getattr(stamps.dtype, "tz", None)
    return utc.dt.tz_convert(zone) if zone is not None else utc


def _roll_up(counts: pd.DataFrame, parents: dict[str, str]) -> pd.DataFrame:
    """Each ancestor's counts: its own plus the orgs' below it (a city and its counties)."""
    links = []  # (org, each of its ancestors)
    for org in counts.index:
        seen = {org}
        ancestor = parents.get(org)
        while ancestor and ancestor not in seen:  # a cycle in a hand-kept org table ends here
            links.append((org, ancestor))
            seen.add(ancestor)
            ancestor = parents.get(ancestor)
    if not links:
        return counts.iloc[0:0]
    orgs, ancestors = zip(*links, strict=True)
    below = counts.loc[list(orgs)].set_axis(list(ancestors)).groupby(level=0).sum()
    own = counts.reindex(below.index, fill_value=0)  # a city company's own assets count too
    return (below + own).astype("int64").sort_index()


def _rate(part: pd.Series, whole: pd.Series) -> pd.Series:
    """A share rounded to 4 places; None where nothing was counted."""
    return (part / whole.where(whole > 0)).round(4).astype("object").where(whole > 0, None)
