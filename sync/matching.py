"""Match marketing records to PMS records (SPEC §4).

A marketing record is linked to a PMS record when its pms_id equals the PMS source_id. Parents are
compared across systems by translating the marketing parent's key to that parent's own pms_id.
This module only classifies and pairs records; judging them is the job of checks/.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# What a marketing record's stored pms_id points at.
LINK_NONE = "none"  # null or blank pms_id: no link
LINK_OK = "linked"  # a PMS record with that id exists (possibly a duplicated one)
LINK_DANGLING = "dangling"  # no PMS record has that id
LINK_KINDS = [LINK_NONE, LINK_OK, LINK_DANGLING]

PARENT_TYPE = {"line": "substation", "transformer": "line"}


@dataclass
class AssetMatch:
    """One asset type's records from both systems, classified and paired.

    pms / marketing: the in-scope records, each with
      duplicate_id   its source_id occurs more than once in its own system
      parent_found   its parent_source_id names a record of the parent type in its own system
      parent_pms_id  the parent's PMS id (PMS: the parent id itself, where that parent exists;
                     marketing: the stored pms_id of its marketing parent, where unambiguous)
    and on pms: linked (some marketing record carries its id), id_code (IdCodes.pms);
    on marketing: link (none / linked / dangling), duplicate_link (its pms_id is shared) and
    link_code (IdCodes.link).
    pairs: the linked pairs that can be compared, one per marketing record (Pairs).
    """

    asset_type: str
    pms: pd.DataFrame
    marketing: pd.DataFrame
    pairs: Pairs


# What the rules read of a pair, per side: the compared fields, what a finding about a pair shows,
# and what the timeliness rule reads. Only these are taken: a province has half a million pairs,
# and every column more is another pass over half a million Python strings.
COMPARED_COLUMNS = [
    "name",
    "name_key",
    "voltage_kv",
    "capacity_kva",
    "org_code",
    "status",
    "parent_pms_id",
]
PAIR_COLUMNS = {
    "pms": ["source_id", *COMPARED_COLUMNS, "commissioned_on"],
    "marketing": ["source_id", *COMPARED_COLUMNS, "parent_source_id", "recorded_at"],
}


class Pairs:
    """The linked pairs that can be compared, by the positions of their two records. A pair
    column is each side's PAIR_COLUMNS suffixed _pms and _mkt, or row_pms / row_mkt (the
    records' index labels); pair i is the i-th pair, in marketing's order.

    A column is taken from its records when asked for, not kept: half a million pairs' text is
    170 MB, and the rules compare one field at a time and read the rest only for the few pairs
    they find. Taking it each time costs milliseconds; holding them all made a province run's
    peak memory.
    """

    def __init__(
        self,
        pms: pd.DataFrame,
        marketing: pd.DataFrame,
        pms_rows: np.ndarray,
        mkt_rows: np.ndarray,
    ):
        self._sides = {"pms": (pms, pms_rows), "mkt": (marketing, mkt_rows)}

    def __len__(self) -> int:
        return len(self._sides["mkt"][1])

    @property
    def empty(self) -> bool:
        return len(self) == 0

    @property
    def columns(self) -> list[str]:
        return [
            "row_mkt",
            *(f"{c}_mkt" for c in PAIR_COLUMNS["marketing"]),
            "row_pms",
            *(f"{c}_pms" for c in PAIR_COLUMNS["pms"]),
        ]

    def rows(self, side: str) -> np.ndarray:
        """The positions of the pairs' records of one side ("pms" or "mkt") in its records."""
        return self._sides[side][1]

    def __getitem__(self, column: str) -> pd.Series:
        """One pair column, indexed by pair."""
        return pd.Series(self._values(column, None), name=column, copy=False)

    def frame(self, columns: list[str] | None = None, at: np.ndarray | None = None) -> pd.DataFrame:
        """The pairs at positions `at` (every pair by default), indexed by position, with the
        columns asked for (every pair column by default)."""
        index = pd.RangeIndex(len(self)) if at is None else pd.Index(at)
        columns = self.columns if columns is None else columns
        return pd.DataFrame(
            {column: self._values(column, at) for column in columns},
            index=index,
            copy=False,
        )

    def _values(self, column: str, at: np.ndarray | None) -> Any:
        name, _, side = column.rpartition("_")
        if side not in self._sides or (
            name not in PAIR_COLUMNS["pms" if side == "pms" else "marketing"] and name != "row"
        ):
            raise KeyError(column)
        records, rows = self._sides[side]
        rows = rows if at is None else rows[at]
        if name == "row":  # the labels as arrays: a frame built from an Index checks it at length
            return records.index.to_numpy()[rows]
        return records[name].array.take(rows)


def duplicated_ids(ids: pd.Series) -> pd.Series:
    """Ids that more than one record of the same system holds (null is no id)."""
    return ids.notna() & ids.duplicated(keep=False)


@dataclass
class IdCodes:
    """One asset type's ids as integers, equal ids equal codes, null -1: the PMS ids (PMS
    source_id and marketing pms_id share one numbering) and marketing's own source_id.

    Matching asks the same few questions of the ids many times over (is it repeated, does the
    other side have it, which record holds it). Asked of text, each is another pass through a
    hash table of half a million strings; asked of codes, each is an array lookup. At ten times a
    province, the hash tables outgrow the processor's caches and the text way grows faster than
    the rows do.
    """

    pms: np.ndarray  # per PMS record: the code of its source_id
    link: np.ndarray  # per marketing record: the code of its pms_id
    marketing: np.ndarray  # per marketing record: the code of its source_id (its own numbering)
    pms_count: np.ndarray  # per PMS-id code: how many PMS records hold it
    link_count: np.ndarray  # per PMS-id code: how many marketing records carry it
    marketing_count: np.ndarray  # per marketing-id code: how many marketing records hold it

    @classmethod
    def of(cls, pms: pd.DataFrame, marketing: pd.DataFrame) -> IdCodes:
        both, pms_ids = numbered(
            pd.concat([pms["source_id"], marketing["pms_id"]], ignore_index=True)
        )
        codes, link = both[: len(pms)], both[len(pms) :]
        own, marketing_ids = numbered(marketing["source_id"])
        return cls(
            pms=codes,
            link=link,
            marketing=own,
            pms_count=_counts(codes, pms_ids),
            link_count=_counts(link, pms_ids),
            marketing_count=_counts(own, marketing_ids),
        )

    def take(self, pms_rows: np.ndarray, marketing_rows: np.ndarray) -> IdCodes:
        """The codes of some records (a partition's, by position); the counts stay those of all
        records, so a repeated id is repeated wherever its records are."""
        return dataclasses.replace(
            self,
            pms=self.pms[pms_rows],
            link=self.link[marketing_rows],
            marketing=self.marketing[marketing_rows],
        )

    def with_repeated_marketing(self, repeated: np.ndarray) -> IdCodes:
        """These codes, with the marketing records marked in `repeated` counted as repeating
        their own id: where the records are a partition of a read spilled to disk
        (sync/spill.py), an id may repeat in another partition."""
        counts = self.marketing_count.copy()
        marked = repeated & (self.marketing >= 0)
        counts[self.marketing[marked]] = np.maximum(counts[self.marketing[marked]], 2)
        return dataclasses.replace(self, marketing_count=counts)

    def duplicated(self, system: str) -> np.ndarray:
        """Per record of `system`: its id is held by another record of that system too."""
        codes, counts = (
            (self.pms, self.pms_count)
            if system == "pms"
            else (self.marketing, self.marketing_count)
        )
        return _at(counts, codes) > 1


def numbered(ids: pd.Series) -> tuple[np.ndarray, int]:
    """pd.factorize(ids): each id's number in order of first appearance (null: -1), and how
    many distinct ids there are. Records hold their ids in Arrow, numbered by Arrow's hash table
    over their bytes (a million ids in about 0.15 s)."""
    found, distinct = pd.factorize(ids, use_na_sentinel=True)
    return found.astype(np.intp, copy=False), len(distinct)


def _counts(codes: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(codes[codes >= 0], minlength=size)


def _at(per_code: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """per_code[code] for each code; 0 (none) for a null (-1)."""
    if not len(per_code):
        return np.zeros(len(codes), dtype=per_code.dtype)
    return np.where(codes >= 0, per_code[codes], 0)


def match_asset(
    asset_type: str,
    pms: pd.DataFrame,
    marketing: pd.DataFrame,
    pms_parents: pd.DataFrame | None = None,
    marketing_parents: pd.DataFrame | None = None,
    codes: IdCodes | None = None,
) -> AssetMatch:
    """codes: IdCodes.of(pms, marketing), where the caller has it already."""
    codes = codes if codes is not None else IdCodes.of(pms, marketing)
    pms, marketing = matched_records(pms, marketing, codes, pms_parents, marketing_parents)
    return paired(asset_type, pms, marketing, codes)


def matched_records(
    pms: pd.DataFrame,
    marketing: pd.DataFrame,
    codes: IdCodes,
    pms_parents: pd.DataFrame | None = None,
    marketing_parents: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both sides with the columns AssetMatch describes, everything but the pairs."""
    pms, marketing = _classified(pms, marketing, codes)
    for frame, parents in ((pms, pms_parents), (marketing, marketing_parents)):
        if parents is None:
            frame["parent_found"] = False
            frame["parent_pms_id"] = pd.Series(np.nan, index=frame.index, dtype="str")
            continue
        frame["parent_found"], frame["parent_pms_id"] = _parents(frame["parent_source_id"], parents)
    return pms, marketing


def paired(
    asset_type: str, pms: pd.DataFrame, marketing: pd.DataFrame, codes: IdCodes
) -> AssetMatch:
    """The AssetMatch of records matched_records gave, or of a partition of them (see
    sync/partition.py) with the partition's share of the codes (IdCodes.take)."""
    return AssetMatch(asset_type, pms, marketing, _pairs(pms, marketing, codes))


def _classified(
    pms: pd.DataFrame, marketing: pd.DataFrame, codes: IdCodes
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both sides with what their ids say (AssetMatch: duplicate_id, linked, id_code; link,
    duplicate_link, link_code); new columns only, the caller's frames stay as they were."""
    pms = pms.copy(deep=False)
    marketing = marketing.copy(deep=False)
    pms["duplicate_id"] = codes.duplicated("pms")
    marketing["duplicate_id"] = codes.duplicated("marketing")
    # a categorical: the rules compare it with a kind on every record, a comparison of one-byte
    # codes instead of millions of strings
    kind = np.select(  # positions in LINK_KINDS
        [codes.link < 0, _at(codes.pms_count, codes.link) > 0], [0, 1], 2
    )
    marketing["link"] = pd.Categorical.from_codes(kind.astype(np.int8), categories=LINK_KINDS)
    marketing["duplicate_link"] = _at(codes.link_count, codes.link) > 1
    pms["linked"] = _at(codes.link_count, codes.pms) > 0
    pms["id_code"] = codes.pms  # for questions the rules and metrics ask of the ids later
    marketing["link_code"] = codes.link
    return pms, marketing


def _parents(wanted: pd.Series, parents: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """For each parent id in `wanted`: whether a record of `parents` has it (a duplicated parent
    id still exists for its children, SPEC §6), and that parent's pms_id where exactly one
    has it (null where none or several do). One numbering of both sides' ids, then arrays."""
    numbers, distinct = pd.factorize(pd.concat([parents["source_id"], wanted], ignore_index=True))
    own, asked = numbers[: len(parents)], numbers[len(parents) :]
    count = _counts(own, len(distinct))
    holder = np.full(len(distinct) + 1, -1)  # per id number: the one parent holding it; last: null
    alone = (own >= 0) & (_at(count, own) == 1)
    holder[own[alone]] = np.flatnonzero(alone)
    rows = holder[asked]  # a null wanted id is number -1: the last entry, -1
    found = parents["pms_id"].astype("str").array.take(rows, allow_fill=True)
    return _at(count, asked) > 0, pd.Series(found, index=wanted.index, dtype="str")


def _pairs(pms: pd.DataFrame, marketing: pd.DataFrame, codes: IdCodes) -> Pairs:
    """The comparable linked pairs, in marketing's order: a marketing record linked to a PMS
    id, neither id duplicated in its system, the id carried by no other marketing record."""
    comparable = (
        (marketing["link"] == LINK_OK) & ~marketing["duplicate_id"] & ~marketing["duplicate_link"]
    ).to_numpy()
    # per PMS-id code: the position of the one PMS record holding it (-1: none, or repeated)
    holder = np.full(len(codes.pms_count), -1)
    unique = (codes.pms >= 0) & ~pms["duplicate_id"].to_numpy()
    holder[codes.pms[unique]] = np.flatnonzero(unique)
    mkt_rows = np.flatnonzero(comparable)
    pms_rows = holder[codes.link[mkt_rows]]
    found = pms_rows >= 0
    return Pairs(pms, marketing, pms_rows[found], mkt_rows[found])
