"""Hostile source data, end to end: whole runs (`gridrecon run`, a real process) on SQLite,
PostgreSQL and MariaDB sources holding HTML and script in names, formula prefixes, control
characters, 10,000-character names, emoji, NULL in every column, duplicate keys, MariaDB's zero
dates and GBK bytes stored in a latin1 column. Each becomes a finding or is read correctly, the
run ends normally, and every report it writes parses, shows the text as text and runs nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import html.parser
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import MARIADB_URL, PG_URL, _scratch_database, run_cli
from test_reports_golden import CLEANED, HOSTILE
from tiny_grid import AS_OF, LINE, Grid

from gridrecon.connectors.normalize import redecode
from gridrecon.reports.sanitize import looks_like_formula
from gridrecon.sample_data.schema import marketing_metadata, pms_metadata

# Name columns as wide as real ones (Oracle VARCHAR2(4000), CLOB): a 10,000-character name fits.
NAME_COLUMNS = {
    "T_SB_ZNYC_DZ": "BDZMC",
    "T_SB_ZWYC_XL": "XLMC",
    "T_SB_ZNYC_PDBYQ": "SBMC",
    "T_SB_ZWYC_ZSBYQ": "SBMC",
    "G_SUBS": "SUBS_NAME",
    "G_LINE": "LINE_NAME",
    "G_TRAN": "TRAN_NAME",
    "O_ORG": "ORG_NAME",
}
COMMISSIONED = dt.date(2026, 11, 2)  # its deadline, 2026-11-09, is past on AS_OF
NULL_ROW_ID = "00000000000000000000000000000000"  # the id of nothing: the all-NULL rows have none
DUPLICATE = "d" * 32
DOUBLY_LINKED = "e" * 32
ZERO_DATE = "f" * 32
ZERO_DAY = "9" * 32
GBK_NAME = "35kV河口变电站"  # the substation's name, as GBK bytes in a latin1 column on MariaDB
BUILTIN_SG186 = resources.files("gridrecon.connectors.mappings") / "sg186.toml"


def pms_id(number: int) -> str:
    return f"{number:032x}"  # hex, like PMS GUIDs


def build(folder: Path, engine: str) -> Grid:
    """The tiny clean grid plus the hostile records; `engine` drops what it cannot store."""
    grid = Grid(folder)
    pole = grid.pms["T_SB_ZNYC_PDBYQ"]
    tran = grid.marketing["G_TRAN"]
    for number, name in enumerate(HOSTILE.values(), start=1):
        if engine == "postgresql":
            name = name.replace("\x00", "")  # PostgreSQL text cannot hold NUL
        # a PMS transformer named so, and no marketing record: ARCHIVE_OVERDUE names it
        pole.append(grid._pms(pms_id(number), SBMC=name, EDRL=400, SSDKX=LINE, SYXZ="03"))
        # a PMS transformer with a plain name, linked from a marketing record named so:
        # ATTR_MISMATCH on name shows it as the marketing value
        plain = pms_id(100 + number)
        pole.append(grid._pms(plain, SBMC=f"城东{number}号公变", EDRL=400, SSDKX=LINE, SYXZ="03"))
        tran.append(_tran(1000 + number, name, plain))
    # NULL in every column: out of scope (no FBZT / PUB_PRIV_FLAG) it does not exist; in scope,
    # every missing value is an INVALID_VALUE
    columns = [c.key for c in pms_metadata().tables["T_SB_ZNYC_PDBYQ"].columns]
    pole.append(dict.fromkeys(columns))
    pole.append({**dict.fromkeys(columns), "FBZT": "发布", "SYXZ": "03"})
    pole.append({**dict.fromkeys(columns), "FBZT": "发布", "SYXZ": "03"})  # twice: no id, no key
    columns = [c.key for c in marketing_metadata().tables["G_TRAN"].columns]
    tran.append({**dict.fromkeys(columns), "EQUIP_ID": 2001})  # ids are primary keys there
    tran.append({**dict.fromkeys(columns), "EQUIP_ID": 2002, "PUB_PRIV_FLAG": "01"})
    grid.marketing["G_SUBS"].append(
        {
            **dict.fromkeys(c.key for c in marketing_metadata().tables["G_SUBS"].columns),
            "SUBS_ID": 9,
        }
    )
    grid.marketing["G_LINE_TG_RELA"].append({"LINE_TQ_ID": 9, "LINE_ID": None, "TG_ID": None})
    grid.marketing["G_SUBS_LINE_RELA"].append({"RELA_ID": 9, "SUBS_ID": None, "LINE_ID": None})
    grid.pms["ST_PMS_YX_DW"].append({"PMS_DWID": "U9", "YX_ORG_NO": None})
    # duplicate keys: one PMS id in both transformer tables and twice in one; two marketing
    # records carrying the same PMS id
    for table in ("T_SB_ZNYC_PDBYQ", "T_SB_ZNYC_PDBYQ", "T_SB_ZWYC_ZSBYQ"):
        grid.pms[table].append(grid._pms(DUPLICATE, SBMC="dup", EDRL=200, SSDKX=LINE, SYXZ="03"))
    pole.append(grid._pms(DOUBLY_LINKED, SBMC="城西公变", EDRL=200, SSDKX=LINE, SYXZ="03"))
    tran.append(_tran(3001, "城西公变", DOUBLY_LINKED))
    tran.append(_tran(3002, "城西公变", DOUBLY_LINKED))
    # hostile org names: in the report's org tree and, with --by org, in sheet names
    grid.marketing["O_ORG"] = [
        {"ORG_NO": "374", "ORG_NAME": "<b>省公司</b>", "P_ORG_NO": None, "ORG_TYPE": "02"},
        {"ORG_NO": "37401", "ORG_NAME": HOSTILE["script"], "P_ORG_NO": "374", "ORG_TYPE": "03"},
        {"ORG_NO": "3740101", "ORG_NAME": "=1+1 [县]:*?/", "P_ORG_NO": "37401", "ORG_TYPE": "04"},
    ]
    return grid


def _tran(equip_id: int, name: str, linked: str) -> dict[str, Any]:
    return {
        "EQUIP_ID": equip_id,
        "TG_ID": 7,
        "TRAN_NAME": name,
        "PLATE_CAP": 400,
        "FRSTSIDE_VOLT_CODE": "AC00101",
        "PUB_PRIV_FLAG": "01",
        "FRST_RUN_DATE": COMMISSIONED,
        "PMS_EQUIP_ID": linked,
        "ORG_NO": "3740101",
        "RUN_STATUS_CODE": "01",
        "CREATE_DATE": dt.datetime(2026, 11, 3, 9, 0),
    }


def _metadata(which: str) -> sa.MetaData:
    metadata = pms_metadata() if which == "pms" else marketing_metadata()
    for table, column in NAME_COLUMNS.items():
        if table in metadata.tables:
            metadata.tables[table].c[column].type = sa.Text()
    return metadata


def write(grid: Grid, pms_url: str, marketing_url: str) -> None:
    for which, url, rows in (
        ("pms", pms_url, grid.pms),
        ("marketing", marketing_url, grid.marketing),
    ):
        metadata = _metadata(which)
        engine = sa.create_engine(url)
        metadata.create_all(engine)
        with engine.begin() as connection:
            for table, records in rows.items():
                if records:
                    connection.execute(metadata.tables[table].insert(), records)
        engine.dispose()


def add_mariadb_faults(url: str) -> None:
    """What only MariaDB holds: zero dates, and GBK bytes in a latin1 column."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        # zero dates are refused by the default sql_mode (NO_ZERO_DATE, NO_ZERO_IN_DATE,
        # strict); old installs ran without it
        connection.exec_driver_sql("SET SESSION sql_mode = ''")
        grid = Grid(Path("."))
        for obj_id, day in ((ZERO_DATE, "0000-00-00"), (ZERO_DAY, "2026-11-00")):
            row = grid._pms(obj_id, SBMC="零日期公变", EDRL=400, SSDKX=LINE, SYXZ="03")
            connection.execute(_metadata("pms").tables["T_SB_ZNYC_PDBYQ"].insert(), [row])
            connection.exec_driver_sql(
                "UPDATE T_SB_ZNYC_PDBYQ SET TYRQ = %s, DJSJ = '0000-00-00 00:00:00' "
                "WHERE OBJ_ID = %s",
                (day, obj_id),
            )
        connection.exec_driver_sql(
            "UPDATE G_TRAN SET FRST_RUN_DATE = '0000-00-00', CREATE_DATE = '0000-00-00 00:00:00' "
            "WHERE EQUIP_ID = 1001"
        )
        # the old SG186 way: GBK text written through a latin1 connection into latin1 columns
        connection.exec_driver_sql("ALTER TABLE G_SUBS MODIFY SUBS_NAME TEXT CHARACTER SET latin1")
        connection.exec_driver_sql(
            "UPDATE G_SUBS SET SUBS_NAME = CONVERT(UNHEX(%s) USING latin1) WHERE SUBS_ID = 1",
            (GBK_NAME.encode("gbk").hex(),),
        )
    engine.dispose()


# -- the runs ---------------------------------------------------------------------------------

FINDING_FIELDS = [
    "finding_id", "rule_id", "severity", "state", "asset_type", "pms_id", "marketing_id",
    "asset_name", "org_code", "field", "pms_value", "marketing_value", "detail", "owner",
    "first_seen", "last_seen", "waived",
]  # fmt: skip
SERVERS = {"postgresql": PG_URL, "mariadb": MARIADB_URL}


@dataclass
class HostileRun:
    engine: str
    folder: Path  # the test's folder: databases (SQLite), config, reports
    url: str  # both systems' database
    outcome: Any

    @property
    def run_folder(self) -> Path:
        return self.folder / "reports" / "latest"

    def findings(self, run_folder: Path | None = None) -> list[dict[str, Any]]:
        path = (run_folder or self.run_folder) / "findings.json"
        return json.loads(path.read_text(encoding="utf-8"))

    def run(self, name: str, reader: str = "auto", marketing_mapping: str = "sg186") -> Any:
        """Another whole run over the same sources, with its own store and reports."""
        config = self.folder / f"{name}.toml"
        config.write_text(
            f'[pms]\nurl = "{self.url}"\nreader = "{reader}"\n'
            f'[marketing]\nurl = "{self.url}"\nreader = "{reader}"\n'
            f'mapping = "{marketing_mapping}"\n'
            f'[state]\nurl = "sqlite:///{name}.sqlite"\n[report]\ndir = "{name}"\n',
            encoding="utf-8",
        )
        return run_cli("run", "--config", str(config), "--as-of", AS_OF.isoformat())


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def hostile(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[HostileRun]:
    engine = request.param
    folder = tmp_path_factory.mktemp(f"hostile-{engine}")
    scratch = None
    if engine == "sqlite":
        url = f"sqlite:///{folder / 'grid.sqlite'}"
    else:
        scratch = _scratch_database(SERVERS[engine])
        url = next(scratch)
        if engine == "mariadb":
            url += "?charset=utf8mb4"
    try:
        write(build(folder, engine), url, url)
        if engine == "mariadb":
            add_mariadb_faults(url)
        made = HostileRun(engine, folder, url, None)
        made.outcome = made.run("reports")
        yield made
    finally:
        if scratch is not None:
            next(scratch, None)  # drops the database


def by_rule(findings: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["rule_id"] == rule]


def test_a_run_over_hostile_sources_ends_normally(hostile: HostileRun) -> None:
    outcome = hostile.outcome
    assert outcome.code == 0, outcome.stderr
    assert "Traceback" not in outcome.stderr
    summary = json.loads((hostile.run_folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed"


def test_each_hostile_name_is_a_finding_that_keeps_its_text(hostile: HostileRun) -> None:
    findings = hostile.findings()
    overdue = {f["pms_id"]: f for f in by_rule(findings, "ARCHIVE_OVERDUE")}
    mismatch = {f["pms_id"]: f for f in by_rule(findings, "ATTR_MISMATCH") if f["field"] == "name"}
    for number, key in enumerate(HOSTILE, start=1):
        # exactly as the source has it, but without control characters (in every format)
        shown = CLEANED.get(key, HOSTILE[key])
        assert overdue[pms_id(number)]["asset_name"] == shown, key
        assert mismatch[pms_id(100 + number)]["marketing_value"] == shown, key
    assert len(overdue[pms_id(list(HOSTILE).index("long") + 1)]["asset_name"]) == 10_000


def test_null_in_every_column_is_invalid_values_and_out_of_scope_rows_do_not_exist(
    hostile: HostileRun,
) -> None:
    invalid = by_rule(hostile.findings(), "INVALID_VALUE")
    pms_nulls = {f["field"] for f in invalid if f["pms_id"] is None and f["marketing_id"] is None}
    assert {"source_id", "name", "voltage_kv", "status", "org_code"} <= pms_nulls
    for marketing_id in ("2002", "9"):  # a transformer in scope, a substation (no filter)
        fields = {f["field"] for f in invalid if f["marketing_id"] == marketing_id}
        assert {"name", "voltage_kv", "status", "org_code"} <= fields, marketing_id
    # the rows whose scope columns are NULL too are out of scope: nothing is said about them
    assert not [f for f in hostile.findings() if f["marketing_id"] == "2001"]
    summary = json.loads((hostile.run_folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["sources"]["marketing"]["rows"]["transformer"] == 1 + 13 + 1 + 2


def test_duplicate_keys_are_duplicate_id_and_duplicate_link(hostile: HostileRun) -> None:
    findings = hostile.findings()
    duplicate = [f for f in by_rule(findings, "DUPLICATE_ID") if f["pms_id"] == DUPLICATE]
    assert len(duplicate) == 1 and "3 times" in duplicate[0]["detail"]
    linked = {f["marketing_id"] for f in by_rule(findings, "DUPLICATE_LINK")}
    assert linked == {"3001", "3002"}


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)


def test_every_report_parses_and_shows_hostile_text_as_text(hostile: HostileRun) -> None:
    folder = hostile.run_folder
    findings = hostile.findings()
    assert json.loads((folder / "summary.json").read_text(encoding="utf-8"))["run_id"]

    # findings.csv: UTF-8 with BOM, the same rows, nothing Excel would run
    text = (folder / "findings.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == FINDING_FIELDS and len(rows) == len(findings)
    for row in rows:
        assert not any(looks_like_formula(value) for value in row.values()), row
    names = {row["asset_name"] for row in rows}
    assert "'" + HOSTILE["formula_eq"] in names and HOSTILE["number"] in names

    # findings.xlsx: text cells only, formula-like ones quote-prefixed, long names whole
    book = openpyxl.load_workbook(folder / "findings.xlsx")
    seen: set[str] = set()
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    seen.add(cell.value)
                    if looks_like_formula(cell.value):
                        assert cell.quotePrefix, (sheet.title, cell.coordinate, cell.value)
    assert {HOSTILE["formula_eq"], HOSTILE["long"], HOSTILE["emoji"], CLEANED["control"]} <= seen

    # report.html: the page's own two scripts and no other element from the data
    page = (folder / "report.html").read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    assert parser.tags.count("script") == 2 and "img" not in parser.tags
    assert HOSTILE["script"] not in page and HOSTILE["img"] not in page
    data = page.split('<script type="application/json" id="report-data">', 1)[1]
    data = data.split("</script>", 1)[0]
    assert "<" not in data and ">" not in data
    shown = json.loads(data)["columns"]["asset_name"]
    assert HOSTILE["script"] in shown and HOSTILE["close"] in shown

    # hostile org names become valid, distinct sheet names in a report per org
    out = hostile.folder / "per-org.xlsx"
    config = hostile.folder / "reports.toml"
    again = run_cli("report", "latest", "--config", str(config), "--format", "xlsx",
                    "--by", "org", "--out", str(out))  # fmt: skip
    assert again.code == 0, again.stderr
    titles = openpyxl.load_workbook(out).sheetnames
    assert len(titles) == len({t.casefold() for t in titles})
    assert not [t for t in titles if set(t) & set("[]:*?/\\") or len(t) > 31]
    assert [t for t in titles if "县" in t]  # the county whose name holds "=1+1 [县]:*?/"


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
    indirect=True,
)
def test_the_fast_and_the_generic_reader_read_hostile_data_alike(hostile: HostileRun) -> None:
    generic = hostile.run("generic", reader="generic")
    assert generic.code == 0, generic.stderr

    def seen(findings: list[dict[str, Any]]) -> set[tuple]:
        keys = ("finding_id", "field", "asset_name", "pms_value", "marketing_value", "detail")
        return {tuple(f[k] for k in keys) for f in findings}

    assert seen(hostile.findings(hostile.folder / "generic" / "latest")) == seen(hostile.findings())


# -- what only MariaDB holds ------------------------------------------------------------------


ONLY_MARIADB = pytest.mark.parametrize(
    "hostile", [pytest.param("mariadb", marks=pytest.mark.mariadb)], indirect=True
)


@ONLY_MARIADB
def test_mariadb_zero_dates_are_invalid_values_and_zero_timestamps_unknown(
    hostile: HostileRun,
) -> None:
    findings = hostile.findings()
    dates = {
        (f["pms_id"], f["marketing_id"]): f
        for f in by_rule(findings, "INVALID_VALUE")
        if f["field"] == "commissioned_on"
    }
    assert dates[(ZERO_DATE, None)]["pms_value"] == "0000-00-00"
    assert dates[(ZERO_DAY, None)]["pms_value"] == "2026-11-00"
    assert "T_SB_ZNYC_PDBYQ.TYRQ" in dates[(ZERO_DATE, None)]["detail"]
    marketing = dates[(pms_id(101), "1001")]
    assert marketing["marketing_value"] == "0000-00-00" and "FRST_RUN_DATE" in marketing["detail"]
    # a zero creation time is MariaDB's "no time": unknown, so nothing is judged late on it
    late = {(f["pms_id"], f["marketing_id"]) for f in by_rule(findings, "ARCHIVE_LATE")}
    assert not late & {(ZERO_DATE, None), (ZERO_DAY, None), (pms_id(101), "1001")}


@ONLY_MARIADB
def test_gbk_bytes_in_a_latin1_column_are_a_name_mismatch_until_the_mapping_says_gbk(
    hostile: HostileRun,
) -> None:
    # as the database hands it over: one Latin-1 character per GBK byte
    mojibake = "".join(
        bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in GBK_NAME.encode("gbk")
    )
    names = [
        f
        for f in by_rule(hostile.findings(), "ATTR_MISMATCH")
        if f["field"] == "name" and f["marketing_id"] == "1"
    ]
    assert [(f["pms_value"], f["marketing_value"]) for f in names] == [(GBK_NAME, mojibake)]

    # a copy of the built-in mapping that says the column holds GBK reads it correctly
    mapping = BUILTIN_SG186.read_text(encoding="utf-8").replace(
        'name = "SUBS_NAME"', 'name = { column = "SUBS_NAME", encoding = "gbk" }'
    )
    (hostile.folder / "sg186-gbk.toml").write_text(mapping, encoding="utf-8")
    outcome = hostile.run("gbk", marketing_mapping="sg186-gbk.toml")
    assert outcome.code == 0, outcome.stderr
    findings = hostile.findings(hostile.folder / "gbk" / "latest")
    assert not [f for f in findings if f["marketing_id"] == "1" and f["rule_id"] == "ATTR_MISMATCH"]
    # and nothing else changes
    assert len(findings) == len(hostile.findings()) - 1


def test_gbk_read_through_either_latin1_convention_decodes_back() -> None:
    # MariaDB's latin1 is Windows-1252 with its five unassigned bytes (0x81 ...) passed through;
    # PostgreSQL's LATIN1 is ISO-8859-1. "亐" is GBK 81 80: both conventions' odd corners.
    text = "35kV亐河口变电站"
    raw = text.encode("gbk")
    as_mariadb = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in raw)
    as_postgresql = raw.decode("latin-1")
    read = pd.Series([as_mariadb, as_postgresql, raw, text, "plain", None], dtype=object)
    assert redecode(read, "gbk").tolist()[:5] == [text, text, text, text, "plain"]
    # text that cannot be latin1-decoded GBK stays as read
    assert redecode(pd.Series(["ÿ"], dtype=object), "gbk").tolist() == ["ÿ"]
