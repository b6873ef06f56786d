"""Following a relation table from child to parent (a parent path's hop) on the id numbering
gives what sorting and indexing the relation by its text keys gives."""

from __future__ import annotations

import pandas as pd
import pytest

from gridrecon.connectors.reader import follow_pairs


def reference(pairs: pd.DataFrame, starts: pd.Series) -> pd.Series:
    table = pairs.sort_values(["key", "value"]).drop_duplicates("key").set_index("key")["value"]
    found = table.reindex(starts.to_numpy())
    found.index = starts.index
    return found.astype("str")


def text(values: list) -> pd.Series:
    return pd.Series(values, dtype="str")


CASES = {
    # one parent each; a key with three parents (the smallest is taken, in text order); a
    # start no pair has; a null start; Chinese keys
    "awkward": (
        pd.DataFrame(
            {
                "key": text(["t1", "t2", "t3", "t3", "t3", "台区-1", "t9"]),
                "value": text(["L1", "L2", "L30", "L4", "L300", "线路-1", "L9"]),
            }
        ),
        text(["t3", "t1", None, "t404", "台区-1", "t2", "t3"]),
    ),
    "no relation rows": (pd.DataFrame({"key": text([]), "value": text([])}), text(["t1", None])),
    "no starts": (pd.DataFrame({"key": text(["t1"]), "value": text(["L1"])}), text([])),
}


@pytest.mark.parametrize("case", CASES)
def test_following_a_hop_is_sorting_and_indexing_the_relation(case: str) -> None:
    pairs, starts = CASES[case]
    starts.index = starts.index * 3 + 1  # labels that are not positions
    got = follow_pairs(pairs, starts)
    pd.testing.assert_series_equal(got, reference(pairs, starts), check_names=False)
    if case == "awkward":
        assert got.tolist()[:2] == ["L30", "L1"]
