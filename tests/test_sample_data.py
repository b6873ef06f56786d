"""The sample-data generator: deterministic, engine-independent, and exactly as documented.

The reference checks in this file re-implement SPEC §5/§6 in a few lines of pandas, independently
of the generator (and of the product's rule engine), to prove that the background is clean and
that every planted case produces exactly the finding its manifest row names.
"""

from __future__ import annotations

import functools
import math
import os
import unicodedata
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from gridrecon.core.errors import ConfigError
from gridrecon.sample_data import SCALES, generate, planted_manifest, write_sqlite_pair
from gridrecon.sample_data.schema import (
    MARKETING_TABLES,
    PMS_TABLES,
    marketing_metadata,
    pms_metadata,
)

REPO_SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
AS_OF = date(2026, 11, 20)
SCRATCH_DB = "gr_sample_test"


# ---------------------------------------------------------------------------------------------
# Server helpers (to move into conftest.py): skip when a server is unreachable, unless
# GRIDRECON_REQUIRE_SERVERS=1 says the run must cover it.


def _server_url(kind: str) -> str:
    if kind == "postgres":
        return os.environ.get(
            "GRIDRECON_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    return os.environ.get("GRIDRECON_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _unreachable(kind: str, exc: Exception) -> None:
    first_line = str(exc).splitlines()[0]
    reason = f"{kind} server unreachable at {_server_url(kind)}: {first_line}"
    if os.environ.get("GRIDRECON_REQUIRE_SERVERS") == "1":
        pytest.fail(f"GRIDRECON_REQUIRE_SERVERS=1 but {reason}")
    pytest.skip(reason)


def _scratch_database(kind: str) -> Iterator[str]:
    """Create database SCRATCH_DB on the server, yield its URL, drop it afterwards."""
    admin = sa.create_engine(_server_url(kind), isolation_level="AUTOCOMMIT")
    name = admin.dialect.identifier_preparer.quote_identifier(SCRATCH_DB)
    # Server-level DDL has no SQLAlchemy construct; the name is a quoted constant.
    if kind == "postgres":
        drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        create = f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"
    else:
        drop = f"DROP DATABASE IF EXISTS {name}"
        create = f"CREATE DATABASE {name} CHARACTER SET utf8mb4"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(drop)
            conn.exec_driver_sql(create)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        admin.dispose()
        _unreachable(kind, exc)
    url = make_url(_server_url(kind)).set(database=SCRATCH_DB)
    if kind == "mariadb":
        url = url.update_query_dict({"charset": "utf8mb4"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(drop)
        admin.dispose()


@pytest.fixture(scope="module")
def pg_url():
    """A scratch PostgreSQL database for this module."""
    yield from _scratch_database("postgres")


@pytest.fixture(scope="module")
def mariadb_url():
    """A scratch MariaDB database for this module."""
    yield from _scratch_database("mariadb")


# ---------------------------------------------------------------------------------------------
# Reading a sample back


def _read_tables(url: str, metadata: sa.MetaData) -> dict[str, pd.DataFrame]:
    """Every table of ``metadata`` at ``url`` as a DataFrame with SPEC (upper-case) column names,
    rows sorted; only driver types are normalised (Decimal/int in capacity columns → float)."""
    engine = sa.create_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for table in metadata.tables.values():
                keys = [c.key for c in table.columns]
                df = pd.DataFrame(
                    [tuple(r) for r in conn.execute(sa.select(table))], columns=keys, dtype=object
                )
                for col in table.columns:
                    if isinstance(col.type, sa.Numeric) and not isinstance(col.type, sa.Integer):
                        df[col.key] = [None if v is None else float(v) for v in df[col.key]]
                df = df.sort_values(keys, key=lambda s: s.map(repr), ignore_index=True)
                out[table.name.upper()] = df
    finally:
        engine.dispose()
    return out


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path.resolve().as_posix()}"


def _read_pair(pms_url: str, mkt_url: str, lowercase: bool = False) -> dict[str, pd.DataFrame]:
    return _read_tables(pms_url, pms_metadata(lowercase)) | _read_tables(
        mkt_url, marketing_metadata(lowercase)
    )


def _assert_same_tables(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    assert sorted(left) == sorted(right)
    for name, frame in left.items():
        pd.testing.assert_frame_equal(frame, right[name], check_dtype=False, obj=name)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small sample written to SQLite: (folder, manifest, tables)."""
    out = tmp_path_factory.mktemp("small")
    manifest = write_sqlite_pair(out)
    return out, manifest, _read_pair(_sqlite(out / "pms.sqlite"), _sqlite(out / "marketing.sqlite"))


# ---------------------------------------------------------------------------------------------
# An independent reference of SPEC §5 and §6


@functools.cache
def _deadline(commissioned: date, n: int = 5) -> date:
    """SPEC §5: the n-th chinese_calendar working day strictly after the commissioning day."""
    day, count = commissioned, 0
    while count < n:
        day += timedelta(days=1)
        count += chinese_calendar.is_workday(day)
    return day


def _working_days_between(start: date, end: date) -> int:
    """Working days d with start < d <= end."""
    return sum(
        chinese_calendar.is_workday(start + timedelta(days=i))
        for i in range(1, (end - start).days + 1)
    )


def _as_str(value) -> str | None:
    return None if value is None else str(value)


def _positive(value) -> float | None:
    return value if value is not None and value > 0 else None


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _norm_name(name) -> str | None:
    if name is None or not str(name).strip():
        return None
    return "".join(unicodedata.normalize("NFKC", name).split()).casefold().replace("号", "#")


PMS_KV = {"22": 10.0, "24": 20.0, "25": 35.0, "32": 110.0, "33": 220.0, "35": 500.0}
MKT_KV = {
    "AC00101": 10.0,
    "AC00201": 20.0,
    "AC00351": 35.0,
    "AC01101": 110.0,
    "AC02201": 220.0,
    "AC05001": 500.0,
}
PMS_STATUS = {"10": "not_commissioned", "20": "in_service", "30": "retired", "40": "retired"}
PMS_STATUS |= {"31": "other", "32": "other", "33": "other"}
MKT_STATUS = {"01": "in_service", "00": "other", "02": "retired"}


def _canonical(t: dict[str, pd.DataFrame]) -> dict[tuple[str, str], pd.DataFrame]:
    """(system, asset type) → canonical frame of in-scope records (SPEC §2), invalid values None."""
    org_map = dict(zip(t["ST_PMS_YX_DW"]["PMS_DWID"], t["ST_PMS_YX_DW"]["YX_ORG_NO"]))
    orgs = set(t["O_ORG"]["ORG_NO"])

    def pms(df, name, cap, parent):
        df = df[df["FBZT"] == "发布"]
        return pd.DataFrame(
            {
                "source_id": df["OBJ_ID"],
                "pms_id": df["OBJ_ID"],
                "name": df[name].map(_norm_name),
                "voltage": df["DYDJ"].map(PMS_KV.get),
                "capacity": df[cap].map(_positive) if cap else None,
                "has_capacity": cap is not None,
                "parent": df[parent] if parent else None,
                "org": df["YWDW"].map(org_map.get),
                "status": df["YXZT"].map(PMS_STATUS.get),
                "commissioned": df["TYRQ"],
                "recorded": df["DJSJ"],
            }
        ).reset_index(drop=True)

    transformers = pd.concat([t["T_SB_ZNYC_PDBYQ"], t["T_SB_ZWYC_ZSBYQ"]], ignore_index=True)
    out = {
        ("pms", "substation"): pms(t["T_SB_ZNYC_DZ"], "BDZMC", "ZBRL", None),
        ("pms", "line"): pms(t["T_SB_ZWYC_XL"], "XLMC", None, "QSDZ"),
        ("pms", "transformer"): pms(
            transformers[transformers["SYXZ"] == "03"], "SBMC", "EDRL", "SSDKX"
        ),
    }

    def mkt(df, sid, name, volt, cap, parent, commissioned):
        link = df["PMS_EQUIP_ID"].map(
            lambda v: v.strip() if isinstance(v, str) and v.strip() else None
        )
        return pd.DataFrame(
            {
                "source_id": df[sid].astype(str),
                "pms_id": link,
                "name": df[name].map(_norm_name),
                "voltage": df[volt].map(MKT_KV.get),
                "capacity": df[cap].map(_positive) if cap else None,
                "has_capacity": cap is not None,
                "parent": parent,
                "org": df["ORG_NO"].map(lambda v: v if v in orgs else None),
                "status": df["RUN_STATUS_CODE"].map(MKT_STATUS.get),
                "commissioned": commissioned,
                "recorded": df["CREATE_DATE"],
            }
        ).reset_index(drop=True)

    subs_of_line = dict(zip(t["G_SUBS_LINE_RELA"]["LINE_ID"], t["G_SUBS_LINE_RELA"]["SUBS_ID"]))
    line_of_tg = dict(zip(t["G_LINE_TG_RELA"]["TG_ID"], t["G_LINE_TG_RELA"]["LINE_ID"]))
    lines = t["G_LINE"]
    trans = t["G_TRAN"][t["G_TRAN"]["PUB_PRIV_FLAG"] == "01"]
    out[("mkt", "substation")] = mkt(
        t["G_SUBS"], "SUBS_ID", "SUBS_NAME", "VOLT_CODE", "MT_CAP", None, None
    )
    out[("mkt", "line")] = mkt(
        lines,
        "LINE_ID",
        "LINE_NAME",
        "VOLT_CODE",
        None,
        [_as_str(subs_of_line.get(i)) for i in lines["LINE_ID"]],
        None,
    )
    out[("mkt", "transformer")] = mkt(
        trans,
        "EQUIP_ID",
        "TRAN_NAME",
        "FRSTSIDE_VOLT_CODE",
        "PLATE_CAP",
        [_as_str(line_of_tg.get(i)) for i in trans["TG_ID"]],
        list(trans["FRST_RUN_DATE"]),
    )
    # Plain Python values with None for missing, whatever pandas inferred on the way.
    return {k: df.astype(object).where(df.notna(), None) for k, df in out.items()}


PARENT_TYPE = {"line": "substation", "transformer": "line"}
FIELD = {
    "name": "name",
    "voltage": "voltage_kv",
    "capacity": "capacity_kva",
    "org": "org_code",
    "status": "status",
    "parent": "parent",
    "commissioned": "commissioned_on",
}
Finding = tuple[str, str, str, str, str]  # rule_id, asset_type, pms_id, marketing_id, field


def _invalid(r, asset: str, has_commissioned: bool, as_of: date) -> set[str]:
    """Canonical fields of record ``r`` that fail validation (SPEC §6 INVALID_VALUE)."""
    bad = {f for f in ("name", "voltage", "status", "org") if _missing(getattr(r, f))}
    if r.has_capacity and _missing(r.capacity):
        bad.add("capacity")
    in_service = r.status == "in_service"
    if in_service and asset in PARENT_TYPE and _missing(r.parent):
        bad.add("parent")
    if in_service and has_commissioned and (_missing(r.commissioned) or r.commissioned > as_of):
        bad.add("commissioned")
    return bad


def _reference_findings(t: dict[str, pd.DataFrame], as_of: date = AS_OF) -> set[Finding]:
    """SPEC §6 findings of a whole sample."""
    c = _canonical(t)
    found: set[Finding] = set()
    for asset in ("substation", "line", "transformer"):
        found |= _asset_findings(asset, c, as_of)
    return found


def _asset_findings(asset: str, c: dict, as_of: date) -> set[Finding]:
    p, m = c[("pms", asset)], c[("mkt", asset)]
    found: set[Finding] = set()

    def add(rule, pms_id=None, mkt_id=None, field=None):
        found.add((rule, asset, pms_id or "", mkt_id or "", field or ""))

    counts = p["source_id"].value_counts()
    dup = set(counts[counts > 1].index)
    for d in dup:
        add("DUPLICATE_ID", d)
    pms_ids = set(p["source_id"])  # duplicated ids still exist for links and parents
    pms_by_id = {r.source_id: r for r in p.itertuples() if r.source_id not in dup}
    parent_type = PARENT_TYPE.get(asset)
    pms_parents = set(c[("pms", parent_type)]["source_id"]) if parent_type else set()
    mkt_parent_frame = c[("mkt", parent_type)] if parent_type else None
    mkt_parents = set(mkt_parent_frame["source_id"]) if parent_type else set()
    mkt_parent_pms = (
        dict(zip(mkt_parent_frame["source_id"], mkt_parent_frame["pms_id"])) if parent_type else {}
    )

    # INVALID_VALUE and PARENT_MISSING, each system on its own.
    p_invalid = {
        r.source_id: _invalid(r, asset, True, as_of)
        for r in p.itertuples()
        if r.source_id not in dup
    }
    for sid, bad in p_invalid.items():
        for f in bad:
            add("INVALID_VALUE", sid, None, FIELD[f])
    # SG186 keeps no commissioning date for substations and lines.
    m_invalid = {
        r.source_id: _invalid(r, asset, asset == "transformer", as_of) for r in m.itertuples()
    }
    for r in m.itertuples():
        for f in m_invalid[r.source_id]:
            add("INVALID_VALUE", r.pms_id, r.source_id, FIELD[f])
    for r in p.itertuples():
        if (
            parent_type
            and r.source_id not in dup
            and not _missing(r.parent)
            and r.parent not in pms_parents
        ):
            add("PARENT_MISSING", r.source_id, None, "pms")
    for r in m.itertuples():
        if parent_type and not _missing(r.parent) and r.parent not in mkt_parents:
            add("PARENT_MISSING", r.pms_id, r.source_id, "marketing")

    # Links: MISSING_IN_PMS, UNLINKED, DUPLICATE_LINK, ATTR_MISMATCH, marketing ARCHIVE_LATE.
    links = m[m["pms_id"].notna()]["pms_id"].value_counts()
    for r in m.itertuples():
        if r.pms_id is None:
            if r.status == "in_service":
                add("UNLINKED", None, r.source_id)
            continue
        if links[r.pms_id] > 1:
            add("DUPLICATE_LINK", r.pms_id, r.source_id)
        if r.pms_id not in pms_ids:
            if r.status == "in_service":
                add("MISSING_IN_PMS", r.pms_id, r.source_id)
            continue
        pr = pms_by_id.get(r.pms_id)
        if pr is None:  # linked to a duplicated PMS id: linked, never compared
            continue
        skip = p_invalid[pr.source_id] | m_invalid[r.source_id]
        compared = (
            ("name", "voltage", "capacity", "org", "status")
            if pr.has_capacity
            else ("name", "voltage", "org", "status")
        )
        for f in compared:
            if f not in skip and getattr(pr, f) != getattr(r, f):
                add("ATTR_MISMATCH", pr.source_id, r.source_id, FIELD[f])
        if parent_type and "parent" not in skip:
            mp = mkt_parent_pms.get(r.parent)
            if pr.parent in pms_parents and mp is not None and mp != pr.parent:
                add("ATTR_MISMATCH", pr.source_id, r.source_id, "parent")
        on_time = (
            "commissioned" in p_invalid[pr.source_id]
            or pr.commissioned is None
            or r.recorded.date() <= _deadline(pr.commissioned)
        )
        if not on_time:
            add("ARCHIVE_LATE", r.pms_id, r.source_id, "marketing")

    # PMS timeliness: ARCHIVE_LATE (pms), ARCHIVE_OVERDUE / ARCHIVE_PENDING.
    linked_ids = set(links.index) & pms_ids
    for r in p.itertuples():
        if r.source_id in dup or "commissioned" in p_invalid[r.source_id] or r.commissioned is None:
            continue
        deadline = _deadline(r.commissioned)
        if r.recorded.date() > deadline:
            add("ARCHIVE_LATE", r.source_id, None, "pms")
        if r.status == "in_service" and r.source_id not in linked_ids:
            add("ARCHIVE_OVERDUE" if as_of > deadline else "ARCHIVE_PENDING", r.source_id)
    return found


def _expected(manifest: pd.DataFrame, expect: str) -> set[tuple[str, str, str, str, str]]:
    rows = manifest[manifest["expect"] == expect]
    return set(
        zip(
            rows["rule_id"], rows["asset_type"], rows["pms_id"], rows["marketing_id"], rows["field"]
        )
    )


def _assert_exactly_the_manifest(tables, manifest) -> None:
    found = _reference_findings(tables)
    expected = _expected(manifest, "finding")
    assert found - expected == set(), "findings the manifest does not list"
    assert expected - found == set(), "manifest findings the data does not produce"
    for rule, asset, pms_id, mkt_id, field in _expected(manifest, "none"):
        hits = {
            f
            for f in found
            if f[:2] == (rule, asset)
            and (not pms_id or f[2] == pms_id)
            and (not mkt_id or f[3] == mkt_id)
            and (not field or f[4] == field)
        }
        assert hits == set(), f"{rule} must not fire for {pms_id or mkt_id}"


# ---------------------------------------------------------------------------------------------
# SPEC §5 facts the planted calendar cases rely on, checked against chinese_calendar itself


def test_spec_calendar_examples_hold_in_chinese_calendar():
    # Saturday make-up days (调休): after National Day, and on both sides of Spring Festival.
    assert chinese_calendar.is_workday(date(2026, 10, 10))
    assert chinese_calendar.is_workday(date(2026, 2, 14))
    assert chinese_calendar.is_workday(date(2026, 2, 28))
    assert not chinese_calendar.is_workday(date(2026, 2, 23))
    assert _deadline(date(2026, 9, 29)) == date(2026, 10, 12)
    assert _deadline(date(2026, 11, 7)) == date(2026, 11, 13)
    # SPEC §5's warning: find_workday counts differently from a non-working day.
    assert chinese_calendar.find_workday(5, date(2026, 11, 7)) == date(2026, 11, 16)


def test_planted_deadlines_are_the_ones_the_manifest_states():
    assert _deadline(date(2026, 11, 5)) == date(2026, 11, 12)
    assert _deadline(date(2026, 11, 17)) == date(2026, 11, 24)
    assert _working_days_between(AS_OF, date(2026, 11, 24)) == 2
    assert _deadline(date(2026, 11, 13)) == AS_OF
    assert _deadline(date(2026, 2, 13)) == date(2026, 2, 27)
    assert _deadline(date(2026, 8, 18)) == date(2026, 8, 25)
    # The last background commissioning day's deadline is still inside chinesecalendar's range.
    assert _deadline(date(2026, 11, 18)) == date(2026, 11, 25)


# ---------------------------------------------------------------------------------------------
# The API


def test_an_unknown_scale_is_a_config_error_listing_the_valid_scales(tmp_path):
    with pytest.raises(ConfigError) as err:
        write_sqlite_pair(tmp_path, scale="county")
    assert all(name in str(err.value) for name in SCALES)
    assert not list(tmp_path.iterdir())


def test_the_manifest_has_the_documented_columns_and_is_sorted(small):
    _, manifest, _ = small
    key = ["expect", "rule_id", "asset_type", "pms_id", "marketing_id", "field", "case"]
    assert list(manifest.columns) == key
    assert set(manifest["expect"]) == {"finding", "none"}
    assert manifest.equals(manifest.sort_values(key, ignore_index=True))
    assert not manifest[key[:-1]].duplicated().any()


def test_planted_csv_is_utf8_with_bom_and_equals_the_manifest(small):
    out, manifest, _ = small
    raw = (out / "planted.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(out / "planted.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(back, manifest.astype(str), check_dtype=False)


def test_small_scale_counts_are_roughly_right(small):
    _, _, t = small
    n_sub, n_line, n_tr = SCALES["small"]
    assert len(t["T_SB_ZNYC_DZ"]) == n_sub
    assert len(t["T_SB_ZWYC_XL"]) == n_line
    assert len(t["T_SB_ZNYC_PDBYQ"]) + len(t["T_SB_ZWYC_ZSBYQ"]) == pytest.approx(n_tr, rel=0.05)
    assert len(t["G_SUBS"]) == pytest.approx(n_sub, rel=0.15)
    assert len(t["G_LINE"]) == pytest.approx(n_line, rel=0.1)
    assert len(t["G_TRAN"]) == pytest.approx(n_tr, rel=0.1)
    assert len(t["G_TG"]) == len(t["G_TRAN"]) == len(t["G_LINE_TG_RELA"])
    assert len(t["O_ORG"]) == len(t["ST_PMS_YX_DW"]) > 1 + 16 * 3


def test_the_org_tree_is_a_province_sixteen_cities_and_their_counties(small):
    org = small[2]["O_ORG"]
    assert org[org["ORG_TYPE"] == "02"]["ORG_NO"].tolist() == ["37101"]
    cities = org[org["ORG_TYPE"] == "03"]
    assert sorted(cities["ORG_NO"]) == [f"374{i:02d}" for i in range(1, 17)]
    assert set(cities["P_ORG_NO"]) == {"37101"}
    counties = org[org["ORG_TYPE"] == "04"]
    assert all(c[:5] == p for c, p in zip(counties["ORG_NO"], counties["P_ORG_NO"]))
    assert "国网济南供电公司" in set(cities["ORG_NAME"])


def test_pms_ids_are_32_lowercase_hex(small):
    t = small[2]
    for name in ("T_SB_ZNYC_DZ", "T_SB_ZWYC_XL", "T_SB_ZNYC_PDBYQ", "T_SB_ZWYC_ZSBYQ"):
        assert t[name]["OBJ_ID"].str.fullmatch(r"[0-9a-f]{32}").all(), name


def test_same_seed_gives_the_same_rows_and_another_seed_different_ones(small, tmp_path):
    _, manifest, first = small
    again = write_sqlite_pair(tmp_path / "again")
    _assert_same_tables(
        first,
        _read_pair(
            _sqlite(tmp_path / "again/pms.sqlite"), _sqlite(tmp_path / "again/marketing.sqlite")
        ),
    )
    pd.testing.assert_frame_equal(manifest, again)
    other = write_sqlite_pair(tmp_path / "other", seed=7)
    other_t = _read_pair(
        _sqlite(tmp_path / "other/pms.sqlite"), _sqlite(tmp_path / "other/marketing.sqlite")
    )
    assert not first["T_SB_ZWYC_ZSBYQ"].equals(other_t["T_SB_ZWYC_ZSBYQ"])
    assert set(first["G_TRAN"]["PMS_EQUIP_ID"].dropna()) != set(
        other_t["G_TRAN"]["PMS_EQUIP_ID"].dropna()
    )
    # The planted cases are constants: same manifest whatever the seed.
    pd.testing.assert_frame_equal(manifest, other)


def test_the_shipped_sample_equals_a_fresh_generation(small):
    out, _, fresh = small
    shipped = _read_pair(
        _sqlite(REPO_SAMPLE / "pms.sqlite"), _sqlite(REPO_SAMPLE / "marketing.sqlite")
    )
    _assert_same_tables(shipped, fresh)
    assert (REPO_SAMPLE / "planted.csv").read_bytes() == (out / "planted.csv").read_bytes()


def test_the_readme_documents_every_planted_case():
    readme = (REPO_SAMPLE / "README.md").read_text(encoding="utf-8")
    findings = readme.split("### Expected findings")[1].split("### Must produce nothing")[0]
    nothing = readme.split("### Must produce nothing")[1].split("## The manifest")[0]
    manifest = planted_manifest()
    for section, expect in ((findings, "finding"), (nothing, "none")):
        rows = [
            line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()
        ]
        wanted = manifest[manifest["expect"] == expect]
        assert len(rows) == len(wanted), f"README lists {len(rows)} {expect} rows"
        for m in wanted.itertuples():
            field = f"| {m.field} |" if m.field else "| |"
            cells = (f"| {m.rule_id} |", field, f"| {m.asset_type} |")
            ids = (f"`{m.pms_id}`" if m.pms_id else "", m.marketing_id)
            assert any(all(c in row for c in cells + ids) for row in rows), m.case


# ---------------------------------------------------------------------------------------------
# Clean background, exact planted findings (reference implementation above)


def test_the_small_sample_produces_exactly_the_manifest_findings(small):
    _, manifest, tables = small
    _assert_exactly_the_manifest(tables, manifest)


def test_the_reference_check_notices_a_dirty_background(small):
    """Guards the guard: one unlinked background transformer must show up as a finding."""
    _, manifest, tables = small
    dirty = dict(tables)
    g_tran = tables["G_TRAN"].copy()
    row = g_tran.index[(g_tran["PUB_PRIV_FLAG"] == "01") & (g_tran["RUN_STATUS_CODE"] == "01")][0]
    g_tran.loc[row, "PMS_EQUIP_ID"] = None
    dirty["G_TRAN"] = g_tran
    with pytest.raises(AssertionError):
        _assert_exactly_the_manifest(dirty, manifest)


def test_planted_cases_are_the_same_at_city_scale(tmp_path):
    manifest = write_sqlite_pair(tmp_path, scale="city")
    tables = _read_pair(_sqlite(tmp_path / "pms.sqlite"), _sqlite(tmp_path / "marketing.sqlite"))
    n_sub, _, n_tr = SCALES["city"]
    assert len(tables["T_SB_ZNYC_DZ"]) == n_sub
    assert len(tables["T_SB_ZNYC_PDBYQ"]) + len(tables["T_SB_ZWYC_ZSBYQ"]) == pytest.approx(
        n_tr, rel=0.05
    )
    _assert_exactly_the_manifest(tables, manifest)


def test_a_scale_drawn_in_several_blocks_is_clean_with_unique_ids_and_names(tmp_path, monkeypatch):
    """national is ten province-sized blocks; the same path, shrunk: small's counts in 3 blocks."""
    from gridrecon.sample_data import generator

    monkeypatch.setitem(generator.SCALES, "three-blocks", SCALES["small"])
    monkeypatch.setattr(generator, "BLOCK_SIZE", tuple(n // 3 for n in SCALES["small"]))
    manifest = write_sqlite_pair(tmp_path, scale="three-blocks")
    tables = _read_pair(_sqlite(tmp_path / "pms.sqlite"), _sqlite(tmp_path / "marketing.sqlite"))
    n_sub, n_line, _ = SCALES["small"]
    assert len(tables["T_SB_ZNYC_DZ"]) == n_sub
    assert len(tables["T_SB_ZWYC_XL"]) == n_line
    _assert_exactly_the_manifest(tables, manifest)
    # Later blocks continue the id sequences and the numbering of names within each org.
    for table, name in (("G_SUBS", "SUBS_NAME"), ("G_LINE", "LINE_NAME"), ("G_TG", "TG_NAME")):
        t = tables[table]
        background = t[(t.iloc[:, 0] < 9_000_000_000) & (t.get("PUB_PRIV_FLAG", "01") == "01")]
        assert not background.duplicated(["ORG_NO", name]).any(), table


def test_the_documented_name_normalisation_case_is_in_the_data(small):
    t = small[2]
    assert "城东小区３#公变 " in set(t["G_TRAN"]["TRAN_NAME"])
    assert "城东小区3号公变" in set(t["T_SB_ZNYC_PDBYQ"]["SBMC"])
    assert "   " in set(t["G_TRAN"]["PMS_EQUIP_ID"].dropna())


# ---------------------------------------------------------------------------------------------
# Real servers


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("pg_url", marks=pytest.mark.postgres, id="postgres"),
        pytest.param("mariadb_url", marks=pytest.mark.mariadb, id="mariadb"),
    ],
)
def test_a_server_returns_the_same_rows_as_sqlite(small, server, request):
    _, manifest, sqlite_tables = small
    url = request.getfixturevalue(server)
    pd.testing.assert_frame_equal(generate(url, url, "small"), manifest)
    _assert_same_tables(sqlite_tables, _read_pair(url, url))


@pytest.mark.postgres
def test_upper_case_names_are_exactly_the_spec_names_on_postgres(pg_url):
    generate(pg_url, pg_url, "small")
    engine = sa.create_engine(pg_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert set(PMS_TABLES) | set(MARKETING_TABLES) <= names
        cols = [c["name"] for c in sa.inspect(engine).get_columns("T_SB_ZWYC_XL")]
        assert cols == [
            "OBJ_ID",
            "XLMC",
            "DYDJ",
            "QSDZ",
            "YWDW",
            "YXZT",
            "TYRQ",
            "DJSJ",
            "GXSJ",
            "FBZT",
        ]
        pk = sa.inspect(engine).get_pk_constraint("T_SB_ZNYC_PDBYQ")
        assert pk["constrained_columns"] == []  # duplicate OBJ_IDs must be insertable
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_lowercase_gives_lower_case_identifiers_on_postgres(pg_url, small):
    generate(pg_url, pg_url, "small", lowercase=True)
    engine = sa.create_engine(pg_url)
    try:
        inspector = sa.inspect(engine)
        lower = {n.lower() for n in PMS_TABLES + MARKETING_TABLES}
        assert lower <= set(inspector.get_table_names())
        for name in lower:
            assert all(c["name"] == c["name"].lower() for c in inspector.get_columns(name)), name
        # Unquoted SQL, as a user of a lower-cased Oracle copy would write it, finds the rows.
        with engine.connect() as conn:
            n = conn.execute(
                sa.text("SELECT count(*) FROM g_tran WHERE pub_priv_flag = '01'")
            ).scalar()
    finally:
        engine.dispose()
    assert n == (small[2]["G_TRAN"]["PUB_PRIV_FLAG"] == "01").sum()
    _assert_same_tables(small[2], _read_pair(pg_url, pg_url, lowercase=True))


def test_lowercase_gives_lower_case_identifiers_on_sqlite(tmp_path):
    url = _sqlite(tmp_path / "lower.sqlite")
    generate(url, url, "small", lowercase=True)
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_table_names()) == {
            n.lower() for n in PMS_TABLES + MARKETING_TABLES
        }
        assert [c["name"] for c in inspector.get_columns("g_subs")][:3] == [
            "subs_id",
            "subs_no",
            "subs_name",
        ]
    finally:
        engine.dispose()
