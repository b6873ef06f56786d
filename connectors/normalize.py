"""The one normalisation step: raw source values become canonical values (SPEC §2, §4).

Everything that differs between engines and code lists is settled here and nowhere else: ids as
text, codes decoded through the mapping's code lists, numbers as floats in canonical units, dates
as dates, timestamps in the configured zone, names kept as read plus a comparison key. A value that
cannot be decoded becomes null and its raw text is kept in `raw_<field>`, so the rules can report
it as INVALID_VALUE instead of the read crashing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from .mapping import AssetMapping, FieldSpec, TableSpec

# Canonical record columns (SPEC §2), then the helper columns every frame carries.
CANONICAL_COLUMNS = [
    "asset_type",
    "source_id",
    "pms_id",
    "name",
    "voltage_kv",
    "capacity_kva",
    "parent_source_id",
    "org_code",
    "status",
    "commissioned_on",
    "recorded_at",
    "updated_at",
]
# Fields whose raw value can fail to decode; their raw text is kept for the finding's detail.
DECODED_FIELDS = ("voltage_kv", "capacity_kva", "org_code", "status", "commissioned_on")
RAW_COLUMNS = [f"raw_{f}" for f in DECODED_FIELDS]
HELPER_COLUMNS = ["name_key", "source_table", *RAW_COLUMNS]
FRAME_COLUMNS = CANONICAL_COLUMNS + HELPER_COLUMNS

DATE_DTYPE = "datetime64[us]"


def timestamp_dtype(zone: ZoneInfo) -> pd.DatetimeTZDtype:
    return pd.DatetimeTZDtype(unit="us", tz=zone)


def empty_frame(zone: ZoneInfo) -> pd.DataFrame:
    """No records, with every column and its type: a copy of one made once (building one column
    by column took 10 ms, six times a night without changes)."""
    return _empty_frame(zone).copy()


@lru_cache(maxsize=8)
def _empty_frame(zone: ZoneInfo) -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype="str") for column in FRAME_COLUMNS})
    return _apply_dtypes(frame, zone)


def _apply_dtypes(frame: pd.DataFrame, zone: ZoneInfo) -> pd.DataFrame:
    frame["voltage_kv"] = frame["voltage_kv"].astype("float64")
    frame["capacity_kva"] = frame["capacity_kva"].astype("float64")
    frame["commissioned_on"] = frame["commissioned_on"].astype(DATE_DTYPE)
    for column in ("recorded_at", "updated_at"):
        if not isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = pd.to_datetime(frame[column]).dt.tz_localize(zone)
        frame[column] = frame[column].astype(timestamp_dtype(zone))
    return frame


def _id_text(value: Any) -> Any:
    """One key's canonical text: numbers without a fraction lose '.0', text loses padding."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating, Decimal)):
        return str(int(value)) if value == int(value) else str(value)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip()  # CHAR columns arrive blank-padded
    return text or None


def normalize_ids(values: pd.Series) -> pd.Series:
    """Keys as text. A null, empty or blank key is null: for pms_id that means 'no link'."""
    if values.dtype.kind in "iu":
        return values.astype("str")
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "string":  # the common case, done by vectorised string methods
        return _stripped_ids(values)
    if kind == "integer":
        present = values.notna()
        text = pd.Series(np.nan, index=values.index, dtype="str")
        text[present] = values[present].astype("int64").astype("str")
        return text
    return _map_distinct(values, _id_text).astype("str")


def _stripped_ids(values: pd.Series) -> pd.Series:
    text = values.astype("str").str.strip()  # CHAR columns arrive blank-padded
    return text.where(text.str.len() > 0)


def _map_distinct(values: pd.Series, function: Any) -> pd.Series:
    """function(value) for every non-null value (null stays None), as objects, computed once per
    distinct value (_on_distinct)."""

    def mapped(part: pd.Series) -> pd.Series:
        present = part.notna().to_numpy()
        out = np.full(len(part), None, dtype=object)
        found = (function(v) for v in part.to_numpy(dtype=object)[present])
        out[present] = np.fromiter(found, dtype=object, count=int(present.sum()))
        return pd.Series(out, index=part.index, dtype=object)

    return _on_distinct(values, mapped)


def _on_distinct(values: pd.Series, convert: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """convert(values), for a conversion of each value on its own, done once per distinct value.

    For columns that repeat their values: a dozen capacities, a thousand commissioning days, a
    few hundred units over half a million transformers. (Ids and update times are mostly
    distinct: there, finding the distinct values costs as much as it saves.) A null stays null.
    Where most values turn out distinct, converting them all directly costs less. Equal values
    come out as one object, not one per row.
    """
    found = _distinct(values)
    if found is None:
        return convert(values)
    codes, uniques = found
    return _spread(convert(pd.Series(uniques)), codes, values.index)


def _distinct(values: pd.Series, share: float = 0.5) -> tuple[np.ndarray, Any] | None:
    """(codes, distinct values) of values, where converting only the distinct ones pays: where
    at most `share` of the values are distinct (higher for a costlier conversion)."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # an unhashable value (a list from an array column): no shortcut
        return None
    if len(uniques) > share * len(values):
        return None
    return codes, uniques


def _spread(distinct: pd.Series, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """The converted distinct values back on every row (codes: _distinct's; -1 is null). Text
    comes out as a `str` column: made so once per distinct value, not once per row."""
    distinct = distinct.reset_index(drop=True)
    if distinct.dtype == object and pd.api.types.infer_dtype(distinct, skipna=True) == "string":
        distinct = distinct.astype("str")
    with_null = pd.concat([distinct, pd.Series([None], dtype=distinct.dtype)], ignore_index=True)
    spread = with_null.take(np.where(codes < 0, len(distinct), codes))
    spread.index = index
    return spread


def normalize_codes(values: pd.Series) -> pd.Series:
    """Code values as text, the same whether the column is VARCHAR '22' or NUMBER 22."""
    return normalize_ids(values)


def name_key(names: pd.Series) -> pd.Series:
    """The comparison key of SPEC §4: NFKC, no whitespace, case-folded, 号 ≡ #."""

    normalize = unicodedata.normalize

    def key(name: Any) -> Any:
        if not isinstance(name, str):
            return None
        # str.split() without arguments splits on exactly the characters str.isspace() knows
        folded = "".join(normalize("NFKC", name).split()).casefold().replace("号", "#")
        return name if folded == name else folded  # most names are their own key: one string

    keys = [key(name) for name in names.to_numpy(dtype=object, na_value=None)]
    return pd.Series(keys, index=names.index, dtype="str")


# Names made only of printable ASCII, ASCII whitespace and the common CJK ideographs are their
# own NFKC form, and their case fold is their ASCII lower case: their keys are computed by
# Arrow's string kernels. Most names hold no whitespace at all (_BARE_NAME): their key is their
# lower case with 号 as #, and only the others are searched for whitespace. Any other name
# (full-width forms, accented letters, control characters) takes name_key's Python path.
_BARE_NAME = "[\x21-\x7e\u4e00-\u9fff]*"
_PLAIN_NAME = "[\x21-\x7e \t\n\r\f\v\u4e00-\u9fff]*"


def names_and_keys(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """clean_text(values) and its name_key: for text, by Arrow's string kernels where a name
    allows (_PLAIN_NAME); otherwise once per distinct name (a name's key costs ten times what
    finding the distinct names does)."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        import pyarrow as pa
        import pyarrow.compute as pc

        names = values.astype("str")
        names = names.where(names.str.strip().str.len() > 0)
        keys = _plain_keys(arrow_text(names))
        other = names.notna().to_numpy() & ~names.str.fullmatch(_BARE_NAME).to_numpy(dtype=bool)
        if other.any():
            keys = pc.replace_with_mask(keys, pa.array(other), _other_keys(names[other]))
        return names, pd.Series(keys, index=names.index, dtype="str", name=names.name)
    found = _distinct(values, share=0.9)
    if found is None:
        names = clean_text(values)
        return names, name_key(names)
    codes, uniques = found
    names = clean_text(pd.Series(uniques))
    return _spread(names, codes, values.index), _spread(name_key(names), codes, values.index)


def arrow_text(values: pd.Series) -> Any:
    """A column's text as one Arrow array (`str` columns hold it in Arrow already)."""
    import pyarrow as pa

    text = values.astype("str").array.__arrow_array__()
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def _plain_keys(text: Any) -> Any:
    """The keys of names in _PLAIN_NAME without whitespace, an Arrow array of them: lower case
    (ASCII's: CJK has none), 号 as #."""
    import pyarrow.compute as pc

    return pc.replace_substring(pc.ascii_lower(text), "号", "#")


def _other_keys(names: pd.Series) -> Any:
    """The keys of names (none null) that hold whitespace or are not _PLAIN_NAME at all."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = arrow_text(names)
    keys = _plain_keys(pc.replace_substring_regex(text, r"[ \t\n\r\f\v]", ""))
    odd = ~names.str.fullmatch(_PLAIN_NAME).to_numpy(dtype=bool)
    if odd.any():
        python_keys = pa.array(name_key(names[odd]).to_numpy(dtype=object), type=keys.type)
        keys = pc.replace_with_mask(keys, pa.array(odd), python_keys)
    return keys


def clean_text(values: pd.Series) -> pd.Series:
    """Names as read; bytes are decoded; an empty name is null (it is invalid, not a name)."""

    def text(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray)):
            value = value.decode("utf-8", errors="replace")
        value = str(value)
        return value if value.strip() else None

    return values.map(text, na_action="ignore").astype("str")


def _latin1_bytes() -> dict[str, int]:
    """Character -> byte of a latin1 column as databases hand it over: MySQL/MariaDB's latin1 is
    Windows-1252 (its five unassigned bytes pass through as U+0081...), PostgreSQL's LATIN1 is
    ISO-8859-1 (0x80-0x9F as U+0080-U+009F)."""
    table: dict[str, int] = {}
    for byte in range(256):
        try:
            table[bytes([byte]).decode("cp1252")] = byte
        except UnicodeDecodeError:
            pass
    for byte in range(256):
        table.setdefault(chr(byte), byte)
    return table


_LATIN1_BYTES = _latin1_bytes()


def redecode(values: pd.Series, encoding: str) -> pd.Series:
    """Text of a latin1 column that really holds bytes of `encoding`, decoded properly.

    Old SG186 installs wrote GBK bytes through a latin1 connection into latin1 columns, so the
    database hands over one Latin-1 character per byte ("ºÓ¿Ú" for "河口"). The characters are
    turned back into those bytes and decoded as `encoding`; bytes (a BLOB) are decoded directly.
    A value that cannot be such bytes (it holds a character beyond Latin-1, as correct text
    does) or that is not valid `encoding` stays as read.
    """

    def fix(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            raw = bytes(value)
        elif isinstance(value, str):
            if value.isascii():  # ASCII is the same in every encoding concerned
                return value
            try:
                raw = bytes(_LATIN1_BYTES[ch] for ch in value)
            except KeyError:
                return value
        else:
            return value
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            return value

    return _on_distinct(values, lambda v: v.map(fix))


def decode_codes(values: pd.Series, code_list: dict[str, Any]) -> pd.Series:
    return _map_distinct(values, lambda value: code_list.get(_id_text(value)))


def to_number(values: pd.Series, scale: float | None) -> pd.Series:
    if _textual(values):
        numbers = _on_distinct(values, _numbers)
    else:
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return numbers * scale if scale else numbers


def _numbers(values: pd.Series) -> pd.Series:
    values = values.map(lambda v: v.strip() if isinstance(v, str) else v, na_action="ignore")
    return pd.to_numeric(values.infer_objects(), errors="coerce").astype("float64")


def _textual(values: pd.Series) -> bool:
    return values.dtype == object or pd.api.types.is_string_dtype(values.dtype)


def to_dates(values: pd.Series, fmt: str | None, zone: ZoneInfo) -> pd.Series:
    """Dates (midnight, no zone). A zone-aware timestamp is first put into the configured zone."""
    if _textual(values):
        return _on_distinct(values, lambda v: _dates(v, fmt, zone))
    return _dates(values, fmt, zone)


def _dates(values: pd.Series, fmt: str | None, zone: ZoneInfo) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(zone).dt.tz_localize(None).dt.normalize().astype(DATE_DTYPE)
    if values.dtype == object and values.map(_is_aware, na_action="ignore").fillna(False).any():
        converted = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_convert(zone)
        return converted.dt.tz_localize(None).dt.normalize().astype(DATE_DTYPE)
    parsed = pd.to_datetime(values, errors="coerce", format=fmt or "ISO8601")
    return parsed.dt.normalize().astype(DATE_DTYPE)


def to_timestamps(values: pd.Series, fmt: str | None, zone: ZoneInfo) -> pd.Series:
    """Instants in the configured zone; a value stored without a zone is local time there."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(zone).astype(timestamp_dtype(zone))
    if values.dtype == object and values.map(_is_aware, na_action="ignore").fillna(False).any():
        parsed = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_convert(zone)
        return parsed.astype(timestamp_dtype(zone))
    parsed = _arrow_timestamps(values) if fmt is None else None
    if parsed is None:
        parsed = pd.to_datetime(values, errors="coerce", format=fmt or "ISO8601")
    # Wall-clock times that do not exist or repeat at a DST change (not in China, but a user's
    # zone may have them) resolve forward / to NaT instead of raising.
    localized = parsed.dt.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")
    return localized.astype(timestamp_dtype(zone))


def _arrow_timestamps(values: pd.Series) -> pd.Series | None:
    """Arrow-backed text parsed by Arrow's ISO 8601 cast, which is ten times pandas' parser;
    None where the column is not such text, or where any value is not plain ISO 8601 without a
    zone (MariaDB's zero dates, an offset): pandas' parser then decides each value."""
    if getattr(values.dtype, "storage", None) != "pyarrow":
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        parsed = pc.cast(values.array.__arrow_array__(), pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=values.index, dtype=DATE_DTYPE)


def record_keys(records: pd.DataFrame) -> pd.Series:
    """A record's identity within one system and asset type: its table and its id."""
    return records["source_table"].astype("str") + "\x1f" + records["source_id"]


def record_key_hashes(records: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each record's key (table and id), without building the keys' text:
    half a million of them cost 4 MB to keep, not 50."""
    # The values of pandas.util.hash_pandas_object(frame of both, index=False), computed with
    # less work: the table, a handful of names, is hashed once per name, and the ids (nearly
    # all distinct) are hashed without pandas' first step of collecting the distinct ones.
    tables, names = pd.factorize(records["source_table"].astype("str"))
    table_hashes = np.append(pd.util.hash_array(names.to_numpy(dtype=object)), NULL_HASH)
    return _combined_hashes([table_hashes[tables], _pandas_hashes(records["source_id"])])


def id_hashes(ids: pd.Series) -> np.ndarray:
    """A 64-bit hash of each id's text, NULL_HASH for null: equal ids hash equal in either
    system's records. Computed over Arrow's bytes with numpy, a slice of ids at a time (a
    polynomial of the bytes, then mixed), without a Python string per id: 0.31 s for two million
    ids against 0.45 s for pandas' hash, and a national read hashes tens of millions; a slice of
    ids of one width (GUIDs, numbered ids; nulls among them) as a grid of bytes, three to five
    times faster (300,000 GUIDs: 0.06 s instead of 0.33 s). Not pandas' hash:
    record_key_hashes keeps that, for the snapshot."""
    import pyarrow as pa

    values = pa.array(ids.astype("str"), type=pa.large_string())
    if isinstance(values, pa.ChunkedArray):  # a series concatenated from chunks
        values = values.combine_chunks()
    out = np.empty(len(values), dtype=np.uint64)
    for start in range(0, len(values), _BYTE_HASHED_AT_ONCE):
        part = values.slice(start, _BYTE_HASHED_AT_ONCE)
        out[start : start + len(part)] = _byte_hashes(part)
    return out


_BYTE_HASHED_AT_ONCE = 100_000  # ids: their bytes' temporaries, some 50 MB


def _byte_hashes(values: Any) -> np.ndarray:
    """id_hashes of one slice of an Arrow large_string array."""
    validity, offsets, data = values.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)[values.offset : values.offset + len(values) + 1]
    first = ends[0]
    ends = ends - first
    lengths = np.diff(ends)
    raw = (
        np.frombuffer(data, dtype=np.uint8)[first : first + ends[-1]]
        if data is not None
        else np.empty(0, dtype=np.uint8)
    )
    # each byte weighted by P to the power of its distance from its string's end, summed per
    # string (mod 2**64): a Horner polynomial, computed for every byte at once
    sums = np.zeros(len(lengths), dtype=np.uint64)  # an empty string's (and a null's) is 0
    nonempty = lengths > 0
    widths = lengths[nonempty]
    width = int(widths[0]) if len(widths) else 0
    if width and (widths == width).all():
        # ids of one width (GUIDs, numbered ids; nulls and empty ones hold no bytes), the
        # common case: their bytes are a grid, one row per id, one weight per column. Summed a
        # column at a time, each (byte + 1) * weight as byte * weight plus the weights' sum:
        # the grid made 64-bit and weighted whole took two to four times as long, more while
        # another thread touched new memory
        grid = raw.reshape(-1, width)
        weights = _powers(width)[:width][::-1]
        row_sums = np.full(len(grid), weights.sum(dtype=np.uint64), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for column in range(width):
                row_sums += grid[:, column] * weights[column]
        sums[nonempty] = row_sums
    elif width:
        owner = np.repeat(np.arange(len(lengths)), lengths)
        from_end = ends[1:][owner] - 1 - np.arange(len(raw))
        with np.errstate(over="ignore"):
            weighted = (raw.astype(np.uint64) + np.uint64(1)) * _powers(int(widths.max()))[from_end]
        sums[nonempty] = np.add.reduceat(weighted, ends[:-1][nonempty])
    hashes = _mixed(sums ^ (lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
    hashes[hashes == NULL_HASH] -= np.uint64(1)  # NULL_HASH means null only
    if validity is not None:
        hashes[np.asarray(values.is_null())] = NULL_HASH
    return hashes


_POWERS = np.ones(1, dtype=np.uint64)
_BASE = np.uint64(0x100000001B3)  # the 64-bit FNV prime


def _powers(length: int) -> np.ndarray:
    """_BASE ** k mod 2**64 for k < length (at least one)."""
    global _POWERS
    if len(_POWERS) < length:
        powers = np.empty(max(length, 2 * len(_POWERS)), dtype=np.uint64)
        powers[0] = 1
        with np.errstate(over="ignore"):
            for k in range(1, len(powers)):
                powers[k] = powers[k - 1] * _BASE
        _POWERS = powers
    return _POWERS


def _mixed(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def _pandas_hashes(ids: pd.Series) -> np.ndarray:
    """pandas' hash of each id's text as a Python string; NULL_HASH for null."""
    ids = ids.astype("str")
    # pandas hashes Python strings: made a slice at a time, not five million at once
    hashes = np.concatenate(
        [
            pd.util.hash_array(
                ids.iloc[start : start + _HASHED_AT_ONCE].to_numpy(dtype=object, na_value=""),
                categorize=False,
            )
            for start in range(0, len(ids), _HASHED_AT_ONCE)
        ]
        or [np.empty(0, dtype=np.uint64)]
    )
    hashes[ids.isna().to_numpy()] = NULL_HASH
    return hashes


NULL_HASH = np.iinfo(np.uint64).max  # what pandas gives a null
_HASHED_AT_ONCE = 500_000


def _combined_hashes(arrays: list[np.ndarray]) -> np.ndarray:
    """pandas' way of combining column hashes into row hashes (combine_hash_arrays)."""
    multiplier = np.uint64(1000003)
    out = np.zeros_like(arrays[0]) + np.uint64(0x345678)
    for i, hashes in enumerate(arrays):
        remaining = len(arrays) - i
        out ^= hashes
        out *= multiplier
        multiplier += np.uint64(82520 + remaining + remaining)
    out += np.uint64(97531)
    return out


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique(values) for a numeric array, by a sort: numpy 2.4's np.unique takes seconds on
    a province's 64-bit hashes where sorting them takes milliseconds."""
    ordered = np.sort(values)
    if not len(ordered):
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """values.isin(sorted_values) by binary search (np.isin sorts both sides every time)."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_values, values).clip(max=len(sorted_values) - 1)
    return sorted_values[at] == values


def local_day(stamps: pd.Series) -> pd.Series:
    """The calendar day of zone-aware timestamps, in their zone (the configured one)."""
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        if stamps.isna().all():  # e.g. a lookup that matched nothing: float NaN, not datetimes
            return pd.Series(pd.NaT, index=stamps.index, dtype=DATE_DTYPE)
        stamps = pd.to_datetime(stamps, utc=True)
    return stamps.dt.tz_localize(None).dt.normalize().astype(DATE_DTYPE)


def _is_aware(value: Any) -> bool:
    return getattr(value, "tzinfo", None) is not None


def _raw_text(values: pd.Series) -> pd.Series:
    return values.map(lambda v: str(v) if not isinstance(v, str) else v, na_action="ignore")


def normalize_chunk(
    system: str,
    raw: pd.DataFrame,
    table: TableSpec,
    asset: AssetMapping,
    codes: dict[str, dict[str, Any]],
    org_map: dict[str, str] | None,
    zone: ZoneInfo,
) -> pd.DataFrame:
    """Turn raw rows of one source table (columns named by canonical field) into canonical rows.

    `raw` has one column per mapped field plus `_parent_start` where the asset has a parent path;
    the parent itself is resolved by the caller (it may need relation tables). `raw` is used up:
    each column is taken out of it once converted, so that its values (a whole table's dates and
    codes as text, gigabytes at national scale) are freed while the rest is converted.
    """
    recoded = [spec for spec in table.fields if spec.encoding and spec.name in raw]
    if recoded:
        raw = raw.copy()
        for spec in recoded:
            raw[spec.name] = redecode(raw[spec.name], spec.encoding)
    index = raw.index
    out = pd.DataFrame(index=index)
    out["asset_type"] = asset.asset_type
    out["source_id"] = normalize_ids(raw.pop("source_id"))
    if system == "pms":
        out["pms_id"] = out["source_id"]  # in PMS the equipment id is the record's own id
    else:
        out["pms_id"] = normalize_ids(raw.pop("pms_id")) if "pms_id" in raw else None
    out["name"], out["name_key"] = names_and_keys(raw.pop("name"))
    for field_name in ("voltage_kv", "capacity_kva", "org_code", "status", "commissioned_on"):
        spec = table.field(field_name)
        if spec is None:
            out[field_name] = None
            out[f"raw_{field_name}"] = None
            continue
        values = raw.pop(field_name)
        decoded = _decode(values, spec, codes, org_map, zone)
        out[field_name] = decoded
        # keep the raw value only where decoding failed: it names the bad value in a finding
        failed = decoded.isna() & values.notna()
        out[f"raw_{field_name}"] = (
            _raw_text(values[failed]).reindex(index)
            if failed.any()
            else pd.Series(np.nan, index=index, dtype="str")
        )
        del values, decoded
    for field_name in ("recorded_at", "updated_at"):
        spec = table.field(field_name)
        if spec is None:
            out[field_name] = pd.Series(pd.NaT, index=index, dtype=timestamp_dtype(zone))
        else:
            out[field_name] = to_timestamps(raw.pop(field_name), spec.format, zone)
    out["parent_source_id"] = (  # many children share a parent
        _on_distinct(raw.pop("_parent_start"), normalize_ids) if "_parent_start" in raw else None
    )
    out["source_table"] = table.table
    for column in ("pms_id", "org_code", "status", "parent_source_id", *RAW_COLUMNS):
        out[column] = out[column].astype("str")
    return _apply_dtypes(out[FRAME_COLUMNS], zone)


def _decode(
    values: pd.Series,
    spec: FieldSpec,
    codes: dict[str, dict[str, Any]],
    org_map: dict[str, str] | None,
    zone: ZoneInfo,
) -> pd.Series:
    if spec.name == "commissioned_on":
        return to_dates(values, spec.format, zone)
    if spec.name == "org_code":
        if spec.org_map:  # a few hundred units over every row
            return _on_distinct(values, lambda v: normalize_ids(v).map(org_map or {}))
        return _on_distinct(values, normalize_ids)
    if spec.codes is not None:
        decoded = decode_codes(values, codes[spec.codes])
        if spec.name in ("voltage_kv", "capacity_kva"):
            decoded = decoded.astype("float64")
            return decoded * spec.scale if spec.scale else decoded
        return decoded
    return to_number(values, spec.scale)
