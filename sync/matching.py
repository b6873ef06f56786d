"""Match marketing records to PMS records (SPEC §4).

A marketing record is linked to a PMS record when its pms_id equals the PMS source_id. Parents are
compared across systems by translating the marketing parent's key to that parent's own pms_id.
This module only classifies and pairs records; judging them is the job of checks/.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..connectors.normalize import lookup

# What a marketing record's stored pms_id points at.
LINK_NONE = "none"  # null or blank pms_id: no link
LINK_OK = "linked"  # a PMS record with that id exists (possibly a duplicated one)
LINK_DANGLING = "dangling"  # no PMS record has that id

PARENT_TYPE = {"line": "substation", "transformer": "line"}


@dataclass
class AssetMatch:
    """One asset type's records from both systems, classified and paired.

    pms / marketing: the in-scope records, each with
      duplicate_id   its source_id occurs more than once in its own system
      parent_found   its parent_source_id names a record of the parent type in its own system
      parent_pms_id  the parent's PMS id (PMS: the parent id itself, where that parent exists;
                     marketing: the stored pms_id of its marketing parent, where unambiguous)
    and on pms: linked (some marketing record carries its id);
    on marketing: link (none / linked / dangling) and duplicate_link (its pms_id is shared).
    pairs: the linked pairs that can be compared, one row per marketing record, the PAIR_COLUMNS
    of both sides suffixed _pms and _mkt, plus row_pms / row_mkt (the records' index labels).
    """

    asset_type: str
    pms: pd.DataFrame
    marketing: pd.DataFrame
    pairs: pd.DataFrame


# What the rules read of a pair: the compared fields, and what a finding about a pair shows. Only
# these are joined: a province has half a million pairs, and every column more is copied twice.
PAIR_COLUMNS = [
    "source_id",
    "pms_id",
    "name",
    "name_key",
    "voltage_kv",
    "capacity_kva",
    "org_code",
    "status",
    "parent_source_id",
    "parent_pms_id",
    "commissioned_on",
    "recorded_at",
]


def duplicated_ids(ids: pd.Series) -> pd.Series:
    """Ids that more than one record of the same system holds (null is no id)."""
    return ids.notna() & ids.duplicated(keep=False)


def _parent_lookup(parents: pd.DataFrame) -> pd.Series:
    """source_id -> pms_id for parents whose id is unique in their system (else ambiguous)."""
    unique = parents[~duplicated_ids(parents["source_id"]) & parents["source_id"].notna()]
    return unique.set_index("source_id")["pms_id"]


def match_asset(
    asset_type: str,
    pms: pd.DataFrame,
    marketing: pd.DataFrame,
    pms_parents: pd.DataFrame | None = None,
    marketing_parents: pd.DataFrame | None = None,
) -> AssetMatch:
    pms = pms.copy(deep=False)  # new columns only: the caller's frames stay as they were
    marketing = marketing.copy(deep=False)
    pms["duplicate_id"] = duplicated_ids(pms["source_id"])
    marketing["duplicate_id"] = duplicated_ids(marketing["source_id"])

    # isin() takes the other side as it is (repeats and all): collecting its distinct values
    # first is a second pass over half a million strings. Nulls out: a null is no id.
    stored = marketing["pms_id"]
    marketing["link"] = np.select(
        [stored.isna(), stored.isin(pms["source_id"].dropna())], [LINK_NONE, LINK_OK], LINK_DANGLING
    )
    marketing["duplicate_link"] = duplicated_ids(stored)
    pms["linked"] = pms["source_id"].isin(stored.dropna())

    for frame, parents in ((pms, pms_parents), (marketing, marketing_parents)):
        if parents is None:
            frame["parent_found"] = False
            frame["parent_pms_id"] = pd.Series(np.nan, index=frame.index, dtype="str")
            continue
        # A duplicated parent id still exists for its children (SPEC §6).
        frame["parent_found"] = frame["parent_source_id"].isin(parents["source_id"].dropna())
        frame["parent_pms_id"] = lookup(frame["parent_source_id"], _parent_lookup(parents)).astype(
            "str"
        )

    comparable_mkt = marketing[
        (marketing["link"] == LINK_OK) & ~marketing["duplicate_id"] & ~marketing["duplicate_link"]
    ]
    comparable_pms = pms[~pms["duplicate_id"]]
    pairs = (
        comparable_mkt[PAIR_COLUMNS]
        .rename_axis("row_mkt")
        .reset_index()
        .merge(
            comparable_pms[PAIR_COLUMNS].rename_axis("row_pms").reset_index(),
            left_on="pms_id",
            right_on="source_id",
            suffixes=("_mkt", "_pms"),
            how="inner",
        )
    )
    return AssetMatch(asset_type=asset_type, pms=pms, marketing=marketing, pairs=pairs)


def match_all(
    pms: dict[str, pd.DataFrame], marketing: dict[str, pd.DataFrame]
) -> dict[str, AssetMatch]:
    """Match every asset type; parents come from the same system's parent-type records."""
    matches = {}
    for asset_type in pms:
        parent_type = PARENT_TYPE.get(asset_type)
        matches[asset_type] = match_asset(
            asset_type,
            pms[asset_type],
            marketing[asset_type],
            pms.get(parent_type) if parent_type else None,
            marketing.get(parent_type) if parent_type else None,
        )
    return matches
