"""The finding record (SPEC §7) and how rule outputs become findings.

Rules build findings as DataFrames, vectorised, so a province's half-million records stay cheap.
A finding's identity is a hash of rule, asset type, the record it is about and the field: stable
across runs, so history can follow it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

# Every machine-readable output carries exactly these fields, in this order (SPEC §7).
FINDING_FIELDS = [
    "finding_id",
    "rule_id",
    "severity",
    "state",
    "asset_type",
    "pms_id",
    "marketing_id",
    "asset_name",
    "org_code",
    "field",
    "pms_value",
    "marketing_value",
    "detail",
    "owner",
    "first_seen",
    "last_seen",
    "waived",
]
# Kept internally next to them: which system the finding is about, and its identity key.
INTERNAL_FIELDS = ["side", "subject"]
BUILT_FIELDS = [
    f
    for f in FINDING_FIELDS
    if f not in ("finding_id", "state", "first_seen", "last_seen", "waived")
]


def finding_id(rule_id: str, asset_type: str, subject: str, field: Any) -> str:
    field_text = "" if field is None or (isinstance(field, float) and np.isnan(field)) else field
    digest = hashlib.sha1(f"{rule_id}|{asset_type}|{subject}|{field_text}".encode()).hexdigest()
    return digest[:16]


def as_text(values: pd.Series) -> pd.Series:
    """Values as the text a steward reads: 400 not 400.0, dates as YYYY-MM-DD."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.strftime("%Y-%m-%d %H:%M:%S").astype("str")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.strftime("%Y-%m-%d").astype("str")
    if pd.api.types.is_float_dtype(values.dtype):
        return values.map(_number_text, na_action="ignore").astype("str")
    return values.astype("str")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def build(
    rule_id: str,
    asset_type: str,
    side: str,
    index: pd.Index,
    *,
    pms_id: Any = None,
    marketing_id: Any = None,
    asset_name: Any = None,
    org_code: Any = None,
    field: Any = None,
    pms_value: Any = None,
    marketing_value: Any = None,
    detail: Any = None,
) -> pd.DataFrame:
    """A frame of findings of one rule; Series arguments must share `index`.

    side: "pms" (about a PMS record), "marketing" (about a marketing record) or "pair".
    """
    frame = pd.DataFrame(
        {
            "rule_id": rule_id,
            "asset_type": asset_type,
            "pms_id": pms_id,
            "marketing_id": marketing_id,
            "asset_name": asset_name,
            "org_code": org_code,
            "field": field,
            "pms_value": pms_value,
            "marketing_value": marketing_value,
            "detail": detail,
            "side": side,
        },
        index=index,
    )
    for column in frame.columns:
        frame[column] = frame[column].astype("str")
    # A record without an id (itself an INVALID_VALUE) is known by its name instead.
    unnamed = "?" + frame["asset_name"].fillna("")
    pms_key = frame["pms_id"].fillna(unnamed)
    marketing_key = frame["marketing_id"].fillna(unnamed)
    if side == "pms":
        frame["subject"] = "pms:" + pms_key
    elif side == "marketing":
        frame["subject"] = "marketing:" + marketing_key
    else:
        frame["subject"] = "pair:" + pms_key + "/" + marketing_key
    return frame.reset_index(drop=True)


def empty() -> pd.DataFrame:
    """No findings, with every column: a copy of one made once (built column by column it took
    several milliseconds, and most rules find nothing in most asset types)."""
    return _EMPTY.copy()


_EMPTY = pd.DataFrame({c: pd.Series(dtype="str") for c in FINDING_FIELDS + INTERNAL_FIELDS})


def finalize(parts: list[pd.DataFrame], severity: dict[str, str], owner) -> pd.DataFrame:
    """Concatenate rule outputs, add identity, severity and owner, sort deterministically."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty()
    frame = pd.concat(parts, ignore_index=True)
    frame["severity"] = frame["rule_id"].map(severity).astype("str")
    frame["owner"] = [
        owner(rule, side) for rule, side in zip(frame["rule_id"], frame["side"], strict=True)
    ]
    frame["owner"] = frame["owner"].astype("str")
    frame["finding_id"] = [
        finding_id(r, a, s, f)
        for r, a, s, f in zip(
            frame["rule_id"], frame["asset_type"], frame["subject"], frame["field"], strict=True
        )
    ]
    frame["finding_id"] = frame["finding_id"].astype("str")
    # Two id-less records with the same name are one finding: their identity cannot tell them apart.
    frame = frame.drop_duplicates("finding_id")
    frame["state"] = "new"
    frame["first_seen"] = None
    frame["last_seen"] = None
    frame["waived"] = False
    frame = frame.sort_values(
        ["rule_id", "asset_type", "pms_id", "marketing_id", "field", "finding_id"],
        na_position="first",
        kind="stable",
    )
    return frame[FINDING_FIELDS + INTERNAL_FIELDS].reset_index(drop=True)
