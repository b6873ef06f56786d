"""Headline metrics per asset type and org: 贯通率, 一致率, 及时率.

- linkage (贯通率): in-service PMS assets that some marketing record links to / in-service PMS
  assets (records with a duplicated id excluded).
- consistency (一致率): linked pairs without an ATTR_MISMATCH / linked pairs that were compared.
- timeliness (及时率): in-service PMS assets commissioned in the period whose deadline has passed
  by as_of and that were recorded in both systems by their deadline / those assets. An asset whose
  creation time is unknown on either side is left out of both counts.
The org of a PMS asset is its (translated) org_code; rows with org_code "*" are the totals.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ..connectors.normalize import local_day, lookup
from ..sync.matching import AssetMatch

METRIC_COLUMNS = [
    "asset_type",
    "org_code",
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
) -> pd.DataFrame:
    start = period_start(as_of, period)
    mismatched = findings.loc[findings["rule_id"] == "ATTR_MISMATCH", ["pms_id", "marketing_id"]]
    mismatched_keys = set(zip(mismatched["pms_id"], mismatched["marketing_id"], strict=True))
    rows = []
    for asset_type, match in matches.items():
        pms = match.pms[~match.pms["duplicate_id"] & (match.pms["status"] == "in_service")].copy()
        pms["org"] = pms["org_code"].fillna("?")

        pairs = match.pairs.copy()
        pairs["org"] = pairs["org_code_pms"].fillna("?")
        pairs["consistent"] = [
            (p, m) not in mismatched_keys
            for p, m in zip(pairs["source_id_pms"], pairs["source_id_mkt"], strict=True)
        ]

        due = deadlines.get(asset_type, pd.Series(dtype="datetime64[us]"))
        judged = pms.loc[pms.index.intersection(due.index)].copy()
        judged["deadline"] = due[judged.index]
        judged = judged[judged["deadline"] < pd.Timestamp(as_of)]
        if start is not None:
            judged = judged[judged["commissioned_on"] >= pd.Timestamp(start)]
        first_marketing = (
            match.marketing[~match.marketing["duplicate_id"]]
            .groupby("pms_id")["recorded_at"]
            .min()
        )
        pms_day = local_day(judged["recorded_at"])
        mkt_day = local_day(lookup(judged["source_id"], first_marketing))
        known = pms_day.notna() & (mkt_day.notna() | ~judged["linked"])
        judged = judged[known]
        judged["on_time"] = (
            judged["linked"]
            & (pms_day[judged.index] <= judged["deadline"])
            & (mkt_day[judged.index] <= judged["deadline"])
        )

        for org, frame in [*pms.groupby("org"), (ALL_ORGS, pms)]:
            org_pairs = pairs if org == ALL_ORGS else pairs[pairs["org"] == org]
            org_judged = judged if org == ALL_ORGS else judged[judged["org"] == org]
            rows.append(
                {
                    "asset_type": asset_type,
                    "org_code": org,
                    "pms_assets": len(frame),
                    "linked": int(frame["linked"].sum()),
                    "pairs": len(org_pairs),
                    "consistent_pairs": int(org_pairs["consistent"].sum()),
                    "due": len(org_judged),
                    "on_time": int(org_judged["on_time"].sum()),
                }
            )
    metrics = pd.DataFrame(rows, columns=[c for c in METRIC_COLUMNS if not c.endswith("_rate")])
    metrics["linkage_rate"] = _rate(metrics["linked"], metrics["pms_assets"])
    metrics["consistency_rate"] = _rate(metrics["consistent_pairs"], metrics["pairs"])
    metrics["timeliness_rate"] = _rate(metrics["on_time"], metrics["due"])
    return metrics[METRIC_COLUMNS].sort_values(["asset_type", "org_code"]).reset_index(drop=True)


def _rate(part: pd.Series, whole: pd.Series) -> pd.Series:
    """A share rounded to 4 places; None where nothing was counted."""
    return (part / whole.where(whole > 0)).round(4).astype("object").where(whole > 0, None)
