"""Judge a large asset type a partition at a time, so a run's working memory stays bounded.

Matching and the rules add columns and build pairs for every record they look at; over five
million transformers at once that is gigabytes beyond the records themselves. Judged a partition
at a time, only one partition's share is alive at once.

A partition must hold everything one rule looks at together, and the ids alone decide it:
- a PMS record and every marketing record carrying its id: the pair, the marketing record's link,
  a PMS id shared by several marketing records (DUPLICATE_LINK names them all), the earliest
  marketing record of an asset (the timeliness metric). All go by the PMS id's code.
- records repeating an id: a PMS id's records go by that id already; marketing records repeating
  their own id go by that id's code (they are judged only by DUPLICATE_ID, which counts them).
- everything else spreads evenly, by its own id's code.
Whether an id is repeated, linked or shared is decided over all records first (IdCodes counts),
so a partition judges its records as the whole would. One thing looks beyond a partition: the
candidate PMS records of an UNLINKED marketing record (any PMS record of its org and voltage);
those are searched once over all PMS records (Judge.unlinked_details).
"""

from __future__ import annotations

import math

import numpy as np

from .matching import IdCodes


def partition_count(rows: int, partition_rows: int) -> int:
    """How many partitions keep each about `partition_rows` records per system, for an asset
    type whose larger system has `rows` records."""
    return max(1, math.ceil(rows / partition_rows))


def assign(codes: IdCodes, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each PMS record's and each marketing record's partition number, 0 .. count-1."""
    pms = np.where(codes.pms >= 0, codes.pms, np.arange(len(codes.pms))) % count
    own = np.where(codes.marketing >= 0, codes.marketing, np.arange(len(codes.marketing)))
    by_link = (codes.link >= 0) & ~codes.duplicated("marketing")
    marketing = np.where(by_link, codes.link, own) % count
    return pms, marketing


def partitions(codes: IdCodes, partition_rows: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per partition: the positions of its PMS records and of its marketing records, in the
    records' own order."""
    count = partition_count(max(len(codes.pms), len(codes.link)), partition_rows)
    if count == 1:
        return [(np.arange(len(codes.pms)), np.arange(len(codes.link)))]
    pms, marketing = assign(codes, count)
    return list(zip(_members(pms, count), _members(marketing, count), strict=True))


def _members(numbers: np.ndarray, count: int) -> list[np.ndarray]:
    """Per partition number 0 .. count-1: the positions holding it, in order."""
    order = np.argsort(numbers, kind="stable")
    bounds = np.searchsorted(numbers[order], np.arange(count + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(count)]
