"""Sync plans on the planted sample: what a plan corrects and how, what it leaves to a person,
its files, its filters, and what `plan apply` refuses — each refusal an exit 2 with one line.

The planted facts are those of sample_data/README.md; the loop through a staging database and
the marketing system's interface is tests/test_plan_loop.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
from conftest import SAMPLE, run_cli

from gridrecon import api
from gridrecon.core.config import load_config
from gridrecon.plans import build_plan
from gridrecon.plans.apply import same_database
from gridrecon.sample_data import AS_OF

CONFIG = """\
[pms]
url = "sqlite:///pms.sqlite"
[marketing]
url = "sqlite:///marketing.sqlite"
[state]
url = "sqlite:///state.sqlite"
[report]
dir = "reports"
"""
CAPACITY = "9cd1ae14f9e6942135fd1c90e853c49a"  # planted #11: PMS 400 kVA, marketing 315 kVA
OVERDUE_TRANSFORMER = "73afe6e0447e33938decb16e06855284"  # planted #1, under 10kV王庄线
OVERDUE_LINE = "6c3ef7109d46d9a78031116b85f6efa7"  # planted #2, from 110kV城东变电站
TWIN = "8053da095d37b882c181e3366cb6184f"  # planted #3: its unlinked twin is 9400000008


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A folder with copies of the sample, a config and one completed run as of AS_OF."""
    folder = tmp_path_factory.mktemp("base")
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, folder / name)
    (folder / "gridrecon.toml").write_text(CONFIG, encoding="utf-8")
    api.run(load_config(folder / "gridrecon.toml"), as_of=AS_OF)
    return folder


@pytest.fixture
def sample(base: Path, tmp_path: Path) -> Path:
    """A private copy of `base`: each test may change its databases and state store."""
    folder = tmp_path / "sample"
    shutil.copytree(base, folder, symlinks=True)
    return folder


def cli(folder: Path, *args: str):
    return run_cli(*args, "--config", str(folder / "gridrecon.toml"), cwd=folder)


def ok(folder: Path, *args: str) -> str:
    result = cli(folder, *args)
    assert result.code == 0, (args, result.stdout, result.stderr)
    return result.stdout


def refused(folder: Path, *args: str) -> str:
    result = cli(folder, *args)
    assert result.code == 2, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridrecon: error: "), result.stderr
    return lines[0]


def plan_of(folder: Path, name: str = "plan") -> dict:
    return json.loads((folder / name / "plan.json").read_text("utf-8"))


def by_finding(plan: dict) -> dict[tuple, dict]:
    return {(c["asset_type"], c["pms_id"], c["field"]): c for c in plan["changes"]}


def test_the_sample_plan_creates_two_records_and_corrects_seven_fields(sample: Path) -> None:
    plan = build_plan(load_config(sample / "gridrecon.toml"))
    changes = by_finding(plan.__dict__)
    assert [(c["change_no"], c["action"], c["asset_type"]) for c in plan.changes] == [
        (1, "update", "substation"),
        (2, "create", "line"),
        (3, "update", "line"),
        (4, "create", "transformer"),
        *((n, "update", "transformer") for n in range(5, 10)),
    ]
    line = changes[("line", OVERDUE_LINE, None)]
    assert line["rule_id"] == "ARCHIVE_OVERDUE" and line["marketing_id"] is None
    assert line["row"] == {
        "LINE_ID": None,  # the interface assigns the id
        "SUBS_ID": "9100000001",  # 110kV城东变电站 in marketing
        "SUBS_PMS_EQUIP_ID": "960d2dd147bbabf225d1803659f82622",
        "PMS_EQUIP_ID": OVERDUE_LINE,
        "LINE_NAME": "10kV科创线",
        "VOLT_CODE": "AC00101",
        "ORG_NO": "3740101",
        "RUN_STATUS_CODE": "01",
    }
    transformer = changes[("transformer", OVERDUE_TRANSFORMER, None)]
    assert transformer["row"] == {
        "EQUIP_ID": None,
        "LINE_ID": "9200000003",  # 10kV王庄线
        "LINE_PMS_EQUIP_ID": "7c0ee7426896c50d1286e17cba6c22bf",
        "PMS_EQUIP_ID": OVERDUE_TRANSFORMER,
        "TRAN_NAME": "王庄村1号公变",
        "FRSTSIDE_VOLT_CODE": "AC00101",
        "PLATE_CAP": 200.0,
        "ORG_NO": "3740101",
        "RUN_STATUS_CODE": "01",
        "FRST_RUN_DATE": "2026-11-05",
        "PUB_PRIV_FLAG": "01",
    }
    assert transformer["pms_values"]["source_table"] == "T_SB_ZWYC_ZSBYQ"
    assert transformer["pms_values"]["commissioned_on"] == "2026-11-05"

    def changed(asset_type: str, pms_id: str, field: str) -> dict:
        change = changes[(asset_type, pms_id, field)]
        assert change["rule_id"] == "ATTR_MISMATCH" and change["action"] == "update"
        return {k: v for k, v in change["row"].items() if v is not None}

    assert changed("substation", "38b5ad49bbf46cfb034371ed6a901d7d", "capacity_kva") == {
        "SUBS_ID": "9100000003",
        "MT_CAP": 100000.0,
    }
    assert changed("line", "c06e87a19098888f42a1ef746db223f3", "parent") == {
        "LINE_ID": "9200000005",
        "SUBS_ID": "9100000001",
        "SUBS_PMS_EQUIP_ID": "960d2dd147bbabf225d1803659f82622",
    }
    assert changed("transformer", "9f0a1c0da7ebbda5ebd259fbc997a45f", "name") == {
        "EQUIP_ID": "9400000011",
        "TRAN_NAME": "城东小区1#公变",
    }
    assert changed("transformer", "2a47ea7029ef832e7fc427fa051db8ec", "voltage_kv") == {
        "EQUIP_ID": "9400000013",
        "FRSTSIDE_VOLT_CODE": "AC00101",  # 10 kV back to its code
    }
    assert changed("transformer", CAPACITY, "capacity_kva") == {
        "EQUIP_ID": "9400000014",
        "PLATE_CAP": 400.0,
    }
    assert changed("transformer", "97db0004c2ccfd74319bc4b6aeca7ded", "status") == {
        "EQUIP_ID": "9400000016",
        "RUN_STATUS_CODE": "01",  # in_service back to 运行
    }
    assert changed("transformer", "3e19578bd3c762e5e3cce07e326b0069", "parent") == {
        "EQUIP_ID": "9400000017",
        "LINE_ID": "9200000001",  # 10kV城东Ⅰ线, PMS's parent
        "LINE_PMS_EQUIP_ID": "9655724cef87b443a05496c99f036dde",
    }
    assert changes[("transformer", CAPACITY, "capacity_kva")]["marketing_value"] == "315"

    manual = {}
    for item in plan.manual:
        manual.setdefault(item["rule_id"], []).append(item)
    assert {rule: len(items) for rule, items in manual.items()} == {
        "ARCHIVE_OVERDUE": 1,
        "ATTR_MISMATCH": 1,
        "DUPLICATE_ID": 1,
        "DUPLICATE_LINK": 2,
        "INVALID_VALUE": 9,
        "MISSING_IN_PMS": 2,
        "PARENT_MISSING": 2,
        "UNLINKED": 2,
    }
    twin = manual["ARCHIVE_OVERDUE"][0]
    assert twin["pms_id"] == TWIN and "9400000008" in twin["why"]  # link it, do not duplicate it
    assert manual["ATTR_MISMATCH"][0]["field"] == "org_code"
    unlinked = {item["marketing_id"]: item["candidates"] for item in manual["UNLINKED"]}
    assert unlinked["9400000008"][0] == {"pms_id": TWIN, "already_linked": False, "score": 1.0}
    assert unlinked["9400000010"][0] == {
        "pms_id": "53b580d9219a4462a8d243e6ed18c845",
        "already_linked": True,
        "score": 1.0,
    }
    left_out = sorted(item["rule_id"] for item in plan.not_planned)
    assert left_out == ["ARCHIVE_LATE"] * 3 + ["ARCHIVE_PENDING"] * 2
    # Every open finding of the run is in exactly one list.
    ids = [c["finding_id"] for c in plan.changes]
    ids += [m["finding_id"] for m in plan.manual] + [n["finding_id"] for n in plan.not_planned]
    assert len(ids) == len(set(ids)) == 34
    assert plan.expected["resolved"] == sorted(c["finding_id"] for c in plan.changes)
    assert [(e["asset_type"], e["pms_id"], e["deadline"]) for e in plan.expected["new"]] == [
        ("line", OVERDUE_LINE, "2026-10-12"),
        ("transformer", OVERDUE_TRANSFORMER, "2026-11-12"),
    ]


def _csv_rows(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel shows the Chinese text
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_the_plan_folder_holds_the_review_files_the_import_sheets_and_sql(sample: Path) -> None:
    out = ok(sample, "plan", "--out", "plan")
    assert "9 changes, 20 for manual handling (manual.csv), 5 left out" in out
    assert "9 resolved and 2 new" in out
    folder = sample / "plan"
    assert sorted(p.name for p in folder.iterdir()) == [
        "changes.csv",
        "changes.sql",
        "changes.xlsx",
        "import-line.csv",
        "import-substation.csv",
        "import-transformer.csv",
        "manual.csv",
        "plan.json",
    ]
    plan = plan_of(sample)
    assert plan["sources"]["marketing"] == f"sqlite:///{sample / 'marketing.sqlite'}"
    assert plan["template"]["name"] == "sg186" and plan["template"]["origin"] == "built-in"
    assert (
        plan["run_id"] == json.loads((sample / "reports/latest/summary.json").read_text())["run_id"]
    )
    changes = _csv_rows(folder / "changes.csv")
    assert [int(r["change_no"]) for r in changes] == list(range(1, 10))
    assert {r["finding_id"] for r in changes} == set(plan["expected"]["resolved"])
    capacity = next(r for r in changes if r["pms_id"] == CAPACITY)
    assert (capacity["marketing_value"], capacity["new_value"]) == ("315", "400")
    assert json.loads(capacity["pms_values"])["capacity_kva"] == "400"
    transformers = _csv_rows(folder / "import-transformer.csv")
    assert list(transformers[0])[:9] == [
        "PLAN_ID",
        "FINDING_ID",
        "CHANGE_NO",
        "RUN_ID",
        "OP",
        "CHG_FIELD",
        "EQUIP_ID",
        "LINE_ID",
        "LINE_PMS_EQUIP_ID",
    ]
    created = next(r for r in transformers if r["OP"] == "INSERT")
    assert (created["TRAN_NAME"], created["PLATE_CAP"], created["FRST_RUN_DATE"]) == (
        "王庄村1号公变",
        "200",
        "2026-11-05",
    )
    assert len(_csv_rows(folder / "import-substation.csv")) == 1
    manual = _csv_rows(folder / "manual.csv")
    assert len(manual) == 20
    unlinked = next(r for r in manual if r["marketing_id"] == "9400000008")
    assert unlinked["candidates"].startswith(f"{TWIN} (1.00)")

    book = openpyxl.load_workbook(folder / "changes.xlsx")
    assert book.sheetnames == ["概要", "变更清单", "变电站", "线路", "公变", "人工处理", "未纳入"]
    sheet = book["公变"]
    header = [c.value for c in sheet[1]]
    inserted = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[4] == "INSERT")
    assert inserted[header.index("TRAN_NAME")] == "王庄村1号公变"
    assert inserted[header.index("PLATE_CAP")] == 200
    assert book["人工处理"].max_row == 21 and book["未纳入"].max_row == 6

    sql = (folder / "changes.sql").read_text("utf-8")
    assert sql.count('CREATE TABLE IF NOT EXISTS "GR_STAGE_') == 3
    assert sql.count('INSERT INTO "GR_STAGE_') == 9 and "NOT (EXISTS" in sql


def test_filters_narrow_the_plan_to_a_rule_an_asset_type_or_an_org(sample: Path) -> None:
    config = load_config(sample / "gridrecon.toml")
    lines = build_plan(config, asset_type="line")
    assert {(c["action"], c["asset_type"]) for c in lines.changes} == {
        ("create", "line"),
        ("update", "line"),
    }
    assert len(lines.manual) == 1  # PARENT_MISSING of 10kV鹊华线
    mismatches = build_plan(config, rule="ATTR_MISMATCH")
    assert len(mismatches.changes) == 7 and [m["field"] for m in mismatches.manual] == ["org_code"]
    elsewhere = build_plan(config, org="37402")  # 青岛: nothing planted there
    assert not elsewhere.changes and not elsewhere.manual and not elsewhere.not_planned
    county = build_plan(config, org="37401")  # 济南 and its counties: every planted case
    assert len(county.changes) == 9


def test_a_transformer_under_a_line_the_plan_creates_depends_on_it(sample: Path) -> None:
    """PMS moved the overdue transformer under the overdue line after the run: the transformer's
    parent is not in marketing, so it waits for the line's create (and with --type transformer,
    where the line is not planned, it goes to a person)."""
    with closing(sqlite3.connect(sample / "pms.sqlite")) as connection, connection:
        connection.execute(
            'UPDATE "T_SB_ZWYC_ZSBYQ" SET "SSDKX" = ? WHERE "OBJ_ID" = ?',
            (OVERDUE_LINE, OVERDUE_TRANSFORMER),
        )
    config = load_config(sample / "gridrecon.toml")
    plan = build_plan(config)
    changes = by_finding(plan.__dict__)
    line = changes[("line", OVERDUE_LINE, None)]
    transformer = changes[("transformer", OVERDUE_TRANSFORMER, None)]
    assert transformer["depends_on"] == line["finding_id"]
    assert transformer["change_no"] > line["change_no"]
    assert transformer["row"]["LINE_ID"] is None
    assert transformer["row"]["LINE_PMS_EQUIP_ID"] == OVERDUE_LINE

    alone = build_plan(config, asset_type="transformer")
    assert ("transformer", OVERDUE_TRANSFORMER, None) not in by_finding(alone.__dict__)
    why = next(m["why"] for m in alone.manual if m["pms_id"] == OVERDUE_TRANSFORMER)
    assert f"its parent line {OVERDUE_LINE} is not in marketing" in why


def test_what_changed_since_the_run_is_left_out_of_the_plan(sample: Path) -> None:
    """PMS capacity changed after the run; a marketing record for the overdue line appeared."""
    with closing(sqlite3.connect(sample / "pms.sqlite")) as connection, connection:
        for table in ("T_SB_ZNYC_PDBYQ", "T_SB_ZWYC_ZSBYQ"):
            connection.execute(f'UPDATE "{table}" SET "EDRL" = 500 WHERE "OBJ_ID" = ?', (CAPACITY,))
    with closing(sqlite3.connect(sample / "marketing.sqlite")) as connection, connection:
        connection.execute(
            'INSERT INTO "G_LINE" ("LINE_ID", "LINE_NAME", "VOLT_CODE", "ORG_NO", '
            '"RUN_STATUS_CODE", "PMS_EQUIP_ID") VALUES (9299990001, ?, ?, ?, ?, ?)',
            ("10kV科创线", "AC00101", "3740101", "01", OVERDUE_LINE),
        )
    plan = build_plan(load_config(sample / "gridrecon.toml"))
    assert len(plan.changes) == 7
    why = {(n["pms_id"], n["rule_id"]): n["why"] for n in plan.not_planned}
    assert "changed since the run (400 then, 500 now)" in why[(CAPACITY, "ATTR_MISMATCH")]
    assert "9299990001 links to it now" in why[(OVERDUE_LINE, "ARCHIVE_OVERDUE")]


def test_a_hostile_pms_name_is_data_in_every_file(tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, folder / name)
    (folder / "gridrecon.toml").write_text(CONFIG, encoding="utf-8")
    name = "=HYPERLINK(\"http://x\",'王庄村1号公变')"
    with closing(sqlite3.connect(folder / "pms.sqlite")) as connection, connection:
        connection.execute(
            'UPDATE "T_SB_ZWYC_ZSBYQ" SET "SBMC" = ? WHERE "OBJ_ID" = ?',
            (name, OVERDUE_TRANSFORMER),
        )
    api.run(load_config(folder / "gridrecon.toml"), as_of=AS_OF)
    ok(folder, "plan", "--out", "plan")
    plan = folder / "plan"
    review = next(r for r in _csv_rows(plan / "changes.csv") if r["pms_id"] == OVERDUE_TRANSFORMER)
    assert review["asset_name"] == "'" + name  # neutralised for Excel
    staged = next(r for r in _csv_rows(plan / "import-transformer.csv") if r["OP"] == "INSERT")
    assert staged["TRAN_NAME"] == name  # the import gets the value exactly
    sheet = openpyxl.load_workbook(plan / "changes.xlsx")["公变"]
    header = [c.value for c in sheet[1]]
    cell = next(r for r in sheet.iter_rows(min_row=2) if r[4].value == "INSERT")
    cell = cell[header.index("TRAN_NAME")]
    assert cell.value == name and cell.data_type == "s"  # a string, never a formula
    ok(folder, "plan", "apply", "plan", "--target", "sqlite:///staging.sqlite", "--apply")
    with closing(sqlite3.connect(folder / "staging.sqlite")) as connection:
        assert connection.execute('SELECT "TRAN_NAME" FROM "GR_STAGE_TRAN" WHERE "OP" = ?', ("INSERT",)).fetchone() == (name,)  # fmt: skip


# -- what apply refuses ------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_apply_refuses_the_configured_sources_as_target(sample: Path) -> None:
    ok(sample, "plan", "--out", "plan")
    before = {n: _digest(sample / n) for n in ("pms.sqlite", "marketing.sqlite")}
    message = refused(sample, "plan", "apply", "plan", "--target", "sqlite:///marketing.sqlite", "--apply")  # fmt: skip
    assert "is the configured [marketing] database" in message
    message = refused(sample, "plan", "apply", "plan", "--target", f"sqlite:///{sample}/./pms.sqlite", "--apply")  # fmt: skip
    assert "is the configured [pms] database" in message
    config = sample / "gridrecon.toml"
    config.write_text(CONFIG + '[plan]\nstaging_url = "sqlite:///marketing.sqlite"\n', "utf-8")
    assert "[marketing]" in refused(sample, "plan", "apply", "plan", "--apply")
    assert {n: _digest(sample / n) for n in before} == before


def test_the_same_database_is_recognised_however_its_url_is_spelled() -> None:
    same = sa.make_url
    assert same_database(
        same("postgresql+psycopg://steward:pw@localhost/sg186"),
        same("postgresql://reader@127.0.0.1:5432/sg186"),
    )
    assert same_database(
        same("mariadb+pymysql://a@db.example:3306/yx"), same("mysql+pymysql://b@DB.example/yx")
    )
    assert not same_database(
        same("postgresql+psycopg://u@localhost/sg186"),
        same("postgresql+psycopg://u@localhost/staging"),
    )
    assert not same_database(
        same("postgresql+psycopg://u@localhost:5433/sg186"),
        same("postgresql+psycopg://u@localhost/sg186"),
    )


def test_apply_refuses_a_plan_whose_findings_were_resolved_since(sample: Path) -> None:
    ok(sample, "plan", "--out", "plan")
    capacity = next(c["finding_id"] for c in plan_of(sample)["changes"] if c["pms_id"] == CAPACITY)
    with closing(sqlite3.connect(sample / "marketing.sqlite")) as connection, connection:
        connection.execute('UPDATE "G_TRAN" SET "PLATE_CAP" = 400 WHERE "EQUIP_ID" = 9400000014')
    api.run(load_config(sample / "gridrecon.toml"), as_of=AS_OF)
    message = refused(sample, "plan", "apply", "plan", "--target", "sqlite:///staging.sqlite")
    assert f"1 of the 9 changes of plan {plan_of(sample)['plan_id']}" in message
    assert f"{capacity} (resolved by run" in message
    assert not (sample / "staging.sqlite").exists()
    ok(sample, "plan", "--out", "plan2")  # a new plan from the latest run does without it
    assert len(plan_of(sample, "plan2")["changes"]) == 8


def test_apply_refuses_a_finding_waived_since_the_plan(sample: Path) -> None:
    ok(sample, "plan", "--out", "plan")
    capacity = next(c["finding_id"] for c in plan_of(sample)["changes"] if c["pms_id"] == CAPACITY)
    ok(sample, "findings", "waive", capacity, "--reason", "铭牌待核实")
    message = refused(sample, "plan", "apply", "plan", "--target", "sqlite:///staging.sqlite")
    assert f"{capacity} (waived)" in message
    plan = build_plan(load_config(sample / "gridrecon.toml"))
    assert capacity not in {c["finding_id"] for c in plan.changes}
    assert {"finding_id": capacity, "why": "waived since the run"}.items() <= next(
        n for n in plan.not_planned if n["finding_id"] == capacity
    ).items()


def test_apply_refuses_a_plan_whose_run_is_older_than_the_configured_age(sample: Path) -> None:
    ok(sample, "plan", "--out", "plan")
    with closing(sqlite3.connect(sample / "state.sqlite")) as connection, connection:
        started = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=10)
        connection.execute('UPDATE "gr_runs" SET "started_at" = ?', (started.isoformat(" "),))
    message = refused(sample, "plan", "apply", "plan", "--target", "sqlite:///staging.sqlite")
    assert "10.0 days ago; [plan] max_run_age_days is 3" in message
    config = sample / "gridrecon.toml"
    config.write_text(CONFIG + "[plan]\nmax_run_age_days = 14\n", encoding="utf-8")
    out = ok(sample, "plan", "apply", "plan", "--target", "sqlite:///staging.sqlite")
    assert "would write" in out and not (sample / "staging.sqlite").exists()  # a dry run


def test_apply_refuses_a_plan_made_with_another_template(sample: Path) -> None:
    ok(sample, "plan", "--out", "plan")
    from gridrecon.plans.template import load_template

    custom = sample / "my-template.toml"
    custom.write_text(load_template("sg186").path.read_text("utf-8") + "\n# edited\n", "utf-8")
    (sample / "gridrecon.toml").write_text(
        CONFIG + '[plan]\ntemplate = "my-template.toml"\n', encoding="utf-8"
    )
    message = refused(sample, "plan", "apply", "plan", "--target", "sqlite:///staging.sqlite")
    assert (
        "was laid out by template sg186 (built-in)" in message and "make the plan again" in message
    )


def test_a_staging_table_made_for_another_layout_is_refused(sample: Path) -> None:
    ok(sample, "plan", "--out", "plan")
    with closing(sqlite3.connect(sample / "staging.sqlite")) as connection, connection:
        connection.execute('CREATE TABLE "gr_stage_subs" ("PLAN_ID" TEXT, "FINDING_ID" TEXT)')
    message = refused(sample, "plan", "apply", "plan", "--target", "sqlite:///staging.sqlite", "--apply")  # fmt: skip
    assert "the staging table gr_stage_subs" in message and "has no column CHANGE_NO" in message
    with closing(sqlite3.connect(sample / "staging.sqlite")) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    assert tables == {"gr_stage_subs"}  # nothing else was created


def test_a_plan_from_another_state_store_is_refused(sample: Path, tmp_path: Path) -> None:
    ok(sample, "plan", "--out", "plan")
    (sample / "gridrecon.toml").write_text(
        CONFIG.replace("state.sqlite", "other-state.sqlite"), encoding="utf-8"
    )
    message = refused(sample, "plan", "apply", "plan", "--target", "sqlite:///staging.sqlite")
    assert f"run {plan_of(sample)['run_id']} is not in the state store" in message


def test_bad_plan_input_exits_two_naming_the_thing(sample: Path) -> None:
    (sample / "full").mkdir()
    (sample / "full" / "x.txt").write_text("x")
    assert "give --out a new folder" in refused(sample, "plan", "--out", "full")
    assert "give --out DIR" in refused(sample, "plan", "--type", "line")
    assert "no stored run 'nope'" in refused(sample, "plan", "--out", "p", "--run", "nope")
    assert "--type must be one of" in refused(sample, "plan", "--out", "p", "--type", "feeder")
    assert "--rule must be one of" in refused(sample, "plan", "--out", "p", "--rule", "LATE")
    assert "--dialect must be one of" in refused(sample, "plan", "--out", "p", "--dialect", "db2")
    assert "not a plan folder" in refused(sample, "plan", "apply", "full")
    ok(sample, "plan", "--out", "plan")
    assert "--target is not a database URL" in refused(sample, "plan", "apply", "plan", "--target", "nonsense")  # fmt: skip
    assert "give --target URL or set [plan] staging_url" in refused(sample, "plan", "apply", "plan")
    assert not (sample / "p").exists()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('[plan]\ncolour = "red"\n', "unknown key 'plan.colour'"),
        ("[plan]\nmax_run_age_days = 0\n", "'plan.max_run_age_days' must be more than 0"),
        ('[plan]\ntemplate = "missing.toml"\n', "is neither a built-in template (sg186)"),
        ('[plan]\nstaging_url = "not a url"\n', "'plan.staging_url' is not a database URL"),
    ],
)
def test_plan_config_errors_exit_two_naming_the_key(
    sample: Path, section: str, expected: str
) -> None:
    (sample / "gridrecon.toml").write_text(CONFIG + section, encoding="utf-8")
    assert expected in refused(sample, "plan", "--out", "plan")


TEMPLATE_LINE = """
[line]
sheet = "线路"
staging_table = "GR_STAGE_LINE"
key = "LINE_ID"
parent_key = "SUBS_ID"
parent_pms_id = "SUBS_PMS_EQUIP_ID"
[line.columns]
PMS_EQUIP_ID = "pms_id"
LINE_NAME = "name"
"""
TEMPLATE_TRANSFORMER = """
[transformer]
staging_table = "GR_STAGE_TRAN"
key = "EQUIP_ID"
parent_key = "LINE_ID"
parent_pms_id = "LINE_PMS_EQUIP_ID"
[transformer.columns]
PMS_EQUIP_ID = "pms_id"
"""


@pytest.mark.parametrize(
    ("substation", "expected"),
    [
        (
            '[substation]\nstaging_table = "S"\nkey = "SUBS_ID"\ncolour = 1\n'
            '[substation.columns]\nPMS_EQUIP_ID = "pms_id"\n',
            "unknown key 'substation.colour'",
        ),
        (
            '[substation]\nstaging_table = "S"\nkey = "SUBS_ID"\n[substation.columns]\nN = "name"\n',
            "needs a column carrying pms_id",
        ),
        (
            '[substation]\nstaging_table = "S"\nkey = "SUBS_ID"\n[substation.columns]\n'
            'PMS_EQUIP_ID = "pms_id"\nSTATE = "status"\n',
            "'substation.columns.STATE' needs a code list",
        ),
        (
            '[substation]\nstaging_table = "S"\nkey = "SUBS_ID"\n[substation.columns]\n'
            'PMS_EQUIP_ID = "pms_id"\nV = { field = "voltage_kv", codes = "kv" }\n',
            "uses code list 'kv', not in [codes]",
        ),
        (
            '[substation]\nstaging_table = "S"\nkey = "PLAN_ID"\n[substation.columns]\n'
            'PMS_EQUIP_ID = "pms_id"\n',
            "column 'PLAN_ID' is one of gridrecon's own staging columns",
        ),
        (
            '[substation]\nstaging_table = "S"\nkey = "SUBS_ID"\n[substation.columns]\n'
            'PMS_EQUIP_ID = "pms_id"\nX = "colour"\n',
            "carries 'colour', which is not a field a template can fill",
        ),
    ],
)
def test_a_bad_template_exits_two_naming_the_file_and_key(
    sample: Path, substation: str, expected: str
) -> None:
    (sample / "bad.toml").write_text(substation + TEMPLATE_LINE + TEMPLATE_TRANSFORMER, "utf-8")
    (sample / "gridrecon.toml").write_text(
        CONFIG + '[plan]\ntemplate = "bad.toml"\n', encoding="utf-8"
    )
    message = refused(sample, "plan", "--out", "plan")
    assert str(sample / "bad.toml") in message and expected in message


def test_a_template_of_its_own_lays_out_the_import_its_own_way(sample: Path) -> None:
    """kV as numbers (no code list), other column and table names, lower-case tables; a value
    the template cannot encode sends the change to a person."""
    (sample / "county.toml").write_text(
        """
[codes.state]
in_service = "A"
[substation]
sheet = "站"
staging_table = "stage_station"
key = "station_id"
[substation.columns]
ledger_ref = "pms_id"
kva = "capacity_kva"
[line]
sheet = "线"
staging_table = "stage_feeder"
key = "feeder_id"
parent_key = "station_id"
parent_pms_id = "station_ledger_ref"
optional = ["org_code"]
[line.columns]
ledger_ref = "pms_id"
title = "name"
kv = "voltage_kv"
state = { field = "status", codes = "state" }
[transformer]
sheet = "变"
staging_table = "stage_xfmr"
key = "xid"
parent_key = "feeder_id"
parent_pms_id = "feeder_ledger_ref"
[transformer.columns]
ledger_ref = "pms_id"
label = "name"
kva = "capacity_kva"
""",
        encoding="utf-8",
    )
    (sample / "gridrecon.toml").write_text(
        CONFIG + '[plan]\ntemplate = "county.toml"\n', encoding="utf-8"
    )
    ok(sample, "plan", "--out", "plan")
    plan = plan_of(sample)
    assert plan["template"] == {
        "name": "county",
        "origin": str(sample / "county.toml"),
        "sha256": hashlib.sha256((sample / "county.toml").read_bytes()).hexdigest(),
    }
    changes = by_finding(plan)
    line = changes[("line", OVERDUE_LINE, None)]["row"]
    assert line == {
        "feeder_id": None,
        "station_id": "9100000001",
        "station_ledger_ref": "960d2dd147bbabf225d1803659f82622",
        "ledger_ref": OVERDUE_LINE,
        "title": "10kV科创线",
        "kv": 10.0,
        "state": "A",
    }
    # No column for voltage or status of a transformer: those corrections go to a person.
    manual = {(m["pms_id"], m["field"]): m["why"] for m in plan["manual"]}
    assert (
        "has no import column for voltage_kv"
        in manual[("2a47ea7029ef832e7fc427fa051db8ec", "voltage_kv")]
    )
    assert (
        "has no import column for status" in manual[("97db0004c2ccfd74319bc4b6aeca7ded", "status")]
    )
    assert len(plan["changes"]) == 7
    ok(sample, "plan", "apply", "plan", "--target", "sqlite:///staging.sqlite", "--apply")
    with closing(sqlite3.connect(sample / "staging.sqlite")) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip
        assert tables == {"stage_station", "stage_feeder", "stage_xfmr", "GR_PLAN_APPLY"}
        assert connection.execute('SELECT "title", "kv", "state" FROM "stage_feeder" WHERE "OP" = ?', ("INSERT",)).fetchall() == [("10kV科创线", 10.0, "A")]  # fmt: skip


def test_a_finding_staged_by_an_earlier_plan_and_not_imported_yet_is_not_staged_twice(
    sample: Path,
) -> None:
    ok(sample, "plan", "--out", "plan1")
    ok(sample, "plan", "apply", "plan1", "--target", "sqlite:///staging.sqlite", "--apply")
    ok(sample, "plan", "--out", "plan2")  # the same findings, still open: the import is pending
    apply = ("plan", "apply", "plan2", "--target", "sqlite:///staging.sqlite", "--apply")
    second = json.loads(ok(sample, *apply, "--format", "json"))
    assert second["rows_written"] == 0 and second["rows"] == {}
    first_id = plan_of(sample, "plan1")["plan_id"]
    assert [i["plan_id"] for i in second["staged_by_other_plans"]] == [first_id] * 9
    assert "not imported yet; left as it is" in ok(sample, *apply)
    capacity = next(c["finding_id"] for c in plan_of(sample, "plan1")["changes"] if c["pms_id"] == CAPACITY)  # fmt: skip
    with closing(sqlite3.connect(sample / "staging.sqlite")) as connection, connection:
        connection.execute(
            'UPDATE "GR_STAGE_TRAN" SET "IMPORT_STATUS" = ? WHERE "FINDING_ID" = ?',
            ("done", capacity),
        )
    third = json.loads(ok(sample, *apply, "--format", "json"))  # imported: no longer pending
    assert third["rows"] == {"GR_STAGE_TRAN": 1}
    with closing(sqlite3.connect(sample / "staging.sqlite")) as connection:
        audit = connection.execute(
            'SELECT "PLAN_ID", "ROWS_WRITTEN", "ROWS_ALREADY_STAGED" FROM "GR_PLAN_APPLY" '
            'ORDER BY "APPLIED_AT"'
        ).fetchall()
    second_id = plan_of(sample, "plan2")["plan_id"]
    assert audit == [(first_id, 9, 0), (second_id, 0, 9), (second_id, 0, 9), (second_id, 1, 8)]


def test_a_substation_missing_in_marketing_is_created_and_its_orphaned_lines_go_to_a_person(
    sample: Path,
) -> None:
    """A background substation (110kV嵩山变电站, 2×40000 kVA, ten lines) deleted from G_SUBS."""
    pms_id = "e6e51dc97cb58adab678468f6d0ca478"
    with closing(sqlite3.connect(sample / "marketing.sqlite")) as connection, connection:
        connection.execute('DELETE FROM "G_SUBS" WHERE "SUBS_ID" = 1100000000')
    config = load_config(sample / "gridrecon.toml")
    api.run(config, as_of=AS_OF)
    plan = build_plan(config)
    created = by_finding(plan.__dict__)[("substation", pms_id, None)]
    assert created["action"] == "create" and created["change_no"] == 1  # substations first
    row = created["row"]
    assert (row["SUBS_ID"], row["PMS_EQUIP_ID"], row["SUBS_NAME"]) == (
        None,
        pms_id,
        "110kV嵩山变电站",
    )
    assert (row["VOLT_CODE"], row["MT_CAP"], row["RUN_STATUS_CODE"]) == ("AC01101", 80000.0, "01")
    assert row["ORG_NO"] == created["pms_values"]["org_code"] and row["ORG_NO"].startswith("374")
    orphans = [
        m for m in plan.manual if m["rule_id"] == "PARENT_MISSING" and m["field"] == "marketing"
    ]
    assert orphans and {m["marketing_value"] for m in orphans} == {"1100000000"} | {"9299999999"}
