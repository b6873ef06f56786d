"""SQL in mapping names and filter values, on SQLite, PostgreSQL and MariaDB: a table, column or
schema name that carries SQL is looked up in the database's catalogue and refused (exit 2, the key
named) or, when the database really has an object of that name, quoted; a filter value carrying
SQL is bound, never pasted. Every table of both sources is still there afterwards, with the same
rows.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import MARIADB_URL, PG_URL, _scratch_database
from in_process import gridrecon, toml_document, toml_value
from tiny_grid import AS_OF, LINE, Grid

from gridrecon.sample_data.schema import marketing_metadata, pms_metadata

BUILTIN = resources.files("gridrecon.connectors.mappings")
SERVERS = {"postgresql": PG_URL, "mariadb": MARIADB_URL}

DROP = 'x; DROP TABLE "T_SB_ZNYC_DZ"; --'
# Tables and columns that really exist under names made of SQL: they must be read, quoted.
SQL_TABLE = "dz\"; DROP TABLE G_TRAN; --'"
SQL_COLUMN = "name`); DELETE FROM G_LINE; /*"
SQL_FILTERS = [
    "x') OR ('1'='1",  # pasted into IN (...), this would keep every row
    "' OR '1'='1",
    'x\'); DROP TABLE "G_TRAN"; --',
    "\\') OR ('1'='1') -- ",  # a backslash escape, for servers that honour them in literals
    "发布' /*",
]
DRAFT = "c" * 31 + "0"  # a transformer out of scope (FBZT 草稿): no filter value may bring it in


@dataclass
class Sources:
    engine: str
    folder: Path
    url: str

    def snapshot(self) -> dict[str, int]:
        """Every table in the database and its row count."""
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as connection:
                names = sa.inspect(connection).get_table_names()
                table = engine.dialect.identifier_preparer.quote
                return {
                    name: connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table(name)}").scalar()
                    for name in names
                }
        finally:
            engine.dispose()

    def config(self, name: str, pms: dict | None = None, **source: Any) -> Path:
        """A config over these sources, with the PMS mapping given (default: pms2)."""
        mapping = "pms2"
        if pms is not None:
            (self.folder / f"{name}-pms.toml").write_text(toml_document(pms), encoding="utf-8")
            mapping = f"{name}-pms.toml"
        extra = "".join(f"{key} = {toml_value(value)}\n" for key, value in source.items())
        path = self.folder / f"{name}.toml"
        path.write_text(
            f'[pms]\nurl = "{self.url}"\nmapping = "{mapping}"\n{extra}'
            f'[marketing]\nurl = "{self.url}"\n'
            f'[state]\nurl = "sqlite:///{name}.sqlite"\n[report]\ndir = "{name}"\n',
            encoding="utf-8",
        )
        return path

    def findings(self, name: str) -> list[dict[str, Any]]:
        path = self.folder / name / "latest" / "findings.json"
        return json.loads(path.read_text(encoding="utf-8"))

    def rows_read(self, name: str) -> dict[str, int]:
        summary = json.loads((self.folder / name / "latest" / "summary.json").read_text("utf-8"))
        return summary["sources"]["pms"]["rows"]


def _pms2() -> dict[str, Any]:
    return tomllib.loads((BUILTIN / "pms2.toml").read_text(encoding="utf-8"))


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def sources(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Sources]:
    """The tiny clean grid, both systems in one database, plus a draft transformer and a copy of
    the substation table under a name made of SQL."""
    engine_name = request.param
    folder = tmp_path_factory.mktemp(f"injection-{engine_name}")
    scratch = None
    if engine_name == "sqlite":
        url = f"sqlite:///{folder / 'grid.sqlite'}"
    else:
        scratch = _scratch_database(SERVERS[engine_name])
        url = next(scratch) + ("?charset=utf8mb4" if engine_name == "mariadb" else "")
    try:
        grid = Grid(folder)
        grid.pms["T_SB_ZNYC_PDBYQ"].append(
            grid._pms(DRAFT, SBMC="草稿公变", EDRL=100, SSDKX=LINE, SYXZ="03", FBZT="草稿")
        )
        engine = sa.create_engine(url)
        for metadata, rows in ((pms_metadata(), grid.pms), (marketing_metadata(), grid.marketing)):
            metadata.create_all(engine)
            with engine.begin() as connection:
                for table, records in rows.items():
                    if records:
                        connection.execute(metadata.tables[table].insert(), records)
        # the substation table again, under a name and with a name column made of SQL (created
        # through SQLAlchemy, which quotes them), holding a name of its own
        copy = sa.Table(
            SQL_TABLE,
            sa.MetaData(),
            *(
                sa.Column(SQL_COLUMN if c.name == "BDZMC" else c.name, c.type)
                for c in pms_metadata().tables["T_SB_ZNYC_DZ"].columns
            ),
            mysql_charset="utf8mb4",
        )
        copy.create(engine)
        with engine.begin() as connection:
            row = dict(grid.pms["T_SB_ZNYC_DZ"][0])
            row[SQL_COLUMN] = row.pop("BDZMC") + "（引号表）"
            connection.execute(copy.insert(), [row])
        engine.dispose()
        yield Sources(engine_name, folder, url)
    finally:
        if scratch is not None:
            next(scratch, None)


def _refused(outcome, *needles: str) -> None:
    assert outcome.code == 2, outcome
    assert outcome.stderr.count("\n") == 1 and "Traceback" not in outcome.stderr, outcome
    for needle in needles:
        assert needle in outcome.stderr, (needle, outcome.stderr)


def _with(doc: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return doc


NAMES = [
    (("substation", "tables", 0, "table"), DROP, "substation.tables[0].table"),
    (
        ("transformer", "tables", 1, "table"),
        "T_SB_ZWYC_ZSBYQ; DELETE FROM T_SB_ZNYC_DZ",
        "transformer.tables[1].table",
    ),
    (
        ("substation", "columns", "source_id"),
        'OBJ_ID" FROM "T_SB_ZNYC_DZ"; DROP TABLE "T_SB_ZWYC_XL"; --',
        "substation.columns.source_id",
    ),
    (("line", "columns", "name"), "XLMC`; DROP TABLE `G_TRAN`; -- ", "line.columns.name"),
    (("line", "columns", "name"), "XLMC /* */, (SELECT 1) AS x", "line.columns.name"),
    (("line", "parent", "column"), "QSDZ' OR '1'='1", "line.parent.column"),
    (
        ("transformer", "tables", 0, "where"),
        {"FBZT') OR 1=1; --": "发布"},
        "transformer.tables[0].where.FBZT') OR 1=1; --",
    ),
    (("org_map", "table"), "ST_PMS_YX_DW UNION SELECT 1, 2", "org_map.table"),
    (("org_map", "value"), "YX_ORG_NO); DROP TABLE G_SUBS; --", "org_map.value"),
]


def test_the_grid_reads_clean_before_anything_hostile(sources: Sources) -> None:
    outcome = gridrecon("run", "--config", str(sources.config("clean")), "--as-of", str(AS_OF))
    assert outcome.code == 0, outcome
    assert sources.findings("clean") == []
    assert sources.rows_read("clean") == {"substation": 1, "line": 1, "transformer": 1}


@pytest.mark.parametrize(("path", "name", "key"), NAMES)
def test_a_name_carrying_sql_is_refused_and_nothing_is_executed(
    sources: Sources, path: tuple, name: Any, key: str
) -> None:
    before = sources.snapshot()
    config = sources.config("names", _with(_pms2(), path, name))
    mapping = sources.folder / "names-pms.toml"
    _refused(
        gridrecon("run", "--config", str(config), "--as-of", str(AS_OF)),
        str(mapping),
        key,
        "does not exist",
    )
    validated = gridrecon("validate", "--config", str(config))
    assert validated.code == 2 and key in validated.stdout, validated
    assert sources.snapshot() == before


def test_a_schema_name_carrying_sql_is_refused(sources: Sources) -> None:
    before = sources.snapshot()
    config = sources.config("schema", schema='public; DROP TABLE "T_SB_ZNYC_DZ"; --')
    _refused(
        gridrecon("run", "--config", str(config), "--as-of", str(AS_OF)),
        "schema 'public; DROP TABLE",
        "does not exist",
    )
    assert sources.snapshot() == before


def test_a_table_and_column_really_named_with_sql_are_quoted_and_read(sources: Sources) -> None:
    before = sources.snapshot()
    mapping = _with(_pms2(), ("substation", "tables", 0, "table"), SQL_TABLE)
    mapping = _with(mapping, ("substation", "columns", "name"), SQL_COLUMN)
    outcome = gridrecon(
        "run", "--config", str(sources.config("quoted", mapping)), "--as-of", str(AS_OF)
    )
    assert outcome.code == 0, outcome
    # read from there: its name differs from marketing's
    [finding] = sources.findings("quoted")
    assert (finding["rule_id"], finding["field"]) == ("ATTR_MISMATCH", "name")
    assert finding["pms_value"] == "35kV河口变电站（引号表）"
    assert sources.snapshot() == before


@pytest.mark.parametrize("reader", ["auto", "generic"])
def test_filter_values_carrying_sql_are_bound_not_executed(sources: Sources, reader: str) -> None:
    before = sources.snapshot()
    mapping = _pms2()
    for table in mapping["transformer"]["tables"]:
        table["where"]["FBZT"] = ["发布", *SQL_FILTERS]
    mapping["org_map"]["where"] = {"PMS_DWID": ["U1", *SQL_FILTERS]}
    name = f"filters-{reader}"
    outcome = gridrecon(
        "run", "--config", str(sources.config(name, mapping, reader=reader)), "--as-of", str(AS_OF)
    )
    assert outcome.code == 0, outcome
    # an injected OR would have brought the draft in; the values matched nothing, as text
    assert sources.rows_read(name) == {"substation": 1, "line": 1, "transformer": 1}
    assert sources.findings(name) == []
    assert sources.snapshot() == before


def test_ids_and_org_codes_given_on_the_command_line_are_bound(sources: Sources) -> None:
    before = sources.snapshot()
    config = str(sources.config("adhoc"))
    for text in [*SQL_FILTERS, DROP]:
        asked = gridrecon("check", "asset", text, "--config", config, "--as-of", str(AS_OF))
        assert asked.code == 2 and "no asset matches" in asked.stderr, asked
        diffed = gridrecon(
            "diff",
            "--type",
            "transformer",
            "--org",
            text,
            "--config",
            config,
            "--as-of",
            str(AS_OF),
        )
        assert diffed.code == 0 and "0 findings" in diffed.stdout, diffed
    assert sources.snapshot() == before
