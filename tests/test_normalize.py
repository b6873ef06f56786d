"""Converting once per distinct value gives what converting every value gives.

connectors/normalize.py converts names (and their comparison keys) and parent ids once per
distinct value where values repeat, and puts the results back on every row; text names get their
keys from Arrow's string kernels where a name allows. Either way: the same values as the
row-by-row conversion.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridrecon.connectors.normalize import (
    _on_distinct,
    clean_text,
    name_key,
    names_and_keys,
    normalize_ids,
)

AWKWARD_NAMES = [
    "河口村1号公变",
    "河口村１号 公变",  # full-width digit, a space: the same key as the first
    "HeKou  Village",
    "hekou village",
    "   ",  # blank: no name
    "",
    None,
    float("nan"),
    b"\xe6\xb2\xb3\xe5\x8f\xa3",  # bytes: decoded
    "ǅ号",  # a character whose case-folding differs from lower-casing
]


@pytest.mark.parametrize("repeats", [1, 40])  # 1: mostly distinct, converted row by row
def test_names_and_keys_are_those_of_every_row(repeats: int) -> None:
    raw = pd.Series(AWKWARD_NAMES * repeats, dtype=object, index=range(7, 7 + 10 * repeats))
    names, keys = names_and_keys(raw)
    expected_names = clean_text(raw)
    pd.testing.assert_series_equal(names, expected_names)
    pd.testing.assert_series_equal(keys, name_key(expected_names))


# Names as a driver hands them over: CJK, ASCII, whitespace of every kind (ideographic, tab,
# the separators Python splits on), full-width forms, letters whose case folding is not their
# lower case, a combining accent, control characters; and any character at all.
_NAME_CHARACTERS = list(
    "河口村号公变线路ABCabc019 -#()\t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u3000１Ａ号ǅßΣİ\u0301"
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.none()
        | st.text(st.sampled_from(_NAME_CHARACTERS), max_size=8)
        | st.text(st.characters(codec="utf-8"), max_size=8),
        min_size=1,
        max_size=20,
    )
)
def test_names_and_keys_of_text_are_those_of_every_row(names: list[str | None]) -> None:
    for raw in (pd.Series(names, dtype=object), pd.Series(names, dtype="str")):
        got_names, got_keys = names_and_keys(raw)
        expected_names = clean_text(raw)
        pd.testing.assert_series_equal(got_names, expected_names)
        pd.testing.assert_series_equal(got_keys, name_key(expected_names))


def test_parent_ids_converted_once_per_distinct_value_are_those_of_every_row() -> None:
    raw = pd.Series([" L1 ", "L1", None, "", "  ", "L2", "L1 "] * 20, dtype=object)
    pd.testing.assert_series_equal(_on_distinct(raw, normalize_ids), normalize_ids(raw))
    numbers = pd.Series([101, 101, 102, None] * 20, dtype=object)
    pd.testing.assert_series_equal(
        _on_distinct(numbers, normalize_ids).astype("str"), normalize_ids(numbers).astype("str")
    )


def test_normalising_a_chunk_frees_each_raw_column_and_keeps_the_values() -> None:
    from zoneinfo import ZoneInfo

    from gridrecon.connectors.mapping import load_mapping
    from gridrecon.connectors.normalize import normalize_chunk

    mapping = load_mapping("sg186", "marketing")
    asset = mapping.assets["transformer"]
    table = asset.tables[0]
    row = {
        "source_id": " 9001 ",
        "pms_id": "PD-1",
        "name": "河口村1号公变",
        "voltage_kv": next(iter(mapping.codes[table.field("voltage_kv").codes])),
        "capacity_kva": 400,
        "org_code": "33401",
        "status": next(iter(mapping.codes[table.field("status").codes])),
        "commissioned_on": "2026-03-02",
        "recorded_at": "2026-03-04 10:00:00",
        "updated_at": "2026-03-04 10:00:00",
        "_parent_start": "TG-7",
    }
    mapped = [f.name for f in table.fields if f.name in row] + ["_parent_start"]
    raw = pd.DataFrame([{k: row[k] for k in mapped}] * 3, dtype=object)
    zone = ZoneInfo("Asia/Shanghai")
    out = normalize_chunk("marketing", raw, table, asset, mapping.codes, None, zone)
    # used up: a whole table's raw text is not kept while the rest is converted
    assert list(raw.columns) == []
    assert out["source_id"].tolist() == ["9001"] * 3
    assert out["name_key"].tolist() == ["河口村1#公变"] * 3
    assert out["parent_source_id"].tolist() == ["TG-7"] * 3
    assert out["commissioned_on"].iloc[0] == pd.Timestamp("2026-03-02")
    assert out["recorded_at"].iloc[0] == pd.Timestamp("2026-03-04 10:00", tz=zone)
