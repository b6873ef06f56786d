"""SQLAlchemy Core definitions of the two sample schemas (SPEC §3): PMS2.0 and SG186 marketing.

The tables mirror what real exports look like, not what a tidy design would be: no foreign keys
(the sample plants dangling references on purpose) and no primary key on PMS ``OBJ_ID`` (real PMS
exports carry duplicate ids, and the sample plants one). Marketing ids are numeric primary keys,
as in SG186.

Every column gets ``key`` = its upper-case SPEC name, whatever case the database name has, so the
generator fills both the upper-case default and the ``lowercase=True`` variant (an Oracle schema
copied to PostgreSQL) with the same row dictionaries.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, DateTime, Index, MetaData, Numeric, String, Table
from sqlalchemy.types import TypeEngine

# Table options applied on every dialect that understands them: Chinese text needs utf8mb4 on
# MariaDB/MySQL whatever the database's default character set is. Other dialects ignore them.
_TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mariadb_charset": "utf8mb4"}

# Capacities: NUMBER(12,2) in the source systems. asdecimal=False hands back floats on every
# engine (SQLite has no decimal type), so values read back compare equal across engines.
CAPACITY = Numeric(12, 2, asdecimal=False)

PMS_TABLES = ("T_SB_ZNYC_DZ", "T_SB_ZWYC_XL", "T_SB_ZNYC_PDBYQ", "T_SB_ZWYC_ZSBYQ", "ST_PMS_YX_DW")
MARKETING_TABLES = (
    "G_SUBS",
    "G_LINE",
    "G_SUBS_LINE_RELA",
    "G_TG",
    "G_LINE_TG_RELA",
    "G_TRAN",
    "O_ORG",
)


def _col(name: str, type_: TypeEngine, lowercase: bool, **kw) -> Column:
    return Column(name.lower() if lowercase else name, type_, key=name, **kw)


def _table(
    metadata: MetaData,
    name: str,
    lowercase: bool,
    columns: list[tuple],
    indexes: tuple[str, ...] = (),
) -> Table:
    cols = [
        _col(spec[0], spec[1], lowercase, **(spec[2] if len(spec) > 2 else {})) for spec in columns
    ]
    table = Table(name.lower() if lowercase else name, metadata, *cols, **_TABLE_OPTIONS)
    for col_key in indexes:
        # Index names are schema-wide on PostgreSQL, so they carry the table name.
        ix_name = f"IX_{name}_{col_key}"
        Index(ix_name.lower() if lowercase else ix_name, table.c[col_key])
    return table


def _pms_asset_columns(name_col: str, extra: list[tuple]) -> list[tuple]:
    # OBJ_ID is deliberately nullable and not a key: see the module docstring.
    return [
        ("OBJ_ID", String(32)),
        (name_col, String(100)),
        ("DYDJ", String(8)),
        *extra,
        ("YWDW", String(32)),
        ("YXZT", String(8)),
        ("TYRQ", Date),
        ("DJSJ", DateTime(timezone=False)),
        ("GXSJ", DateTime(timezone=False)),
        ("FBZT", String(16)),
    ]


def pms_metadata(lowercase: bool = False) -> MetaData:
    """The PMS2.0 sample tables: substations, lines, two transformer tables and the org map."""
    md = MetaData()
    _table(
        md,
        "T_SB_ZNYC_DZ",
        lowercase,
        _pms_asset_columns("BDZMC", [("ZBRL", CAPACITY)]),
        indexes=("OBJ_ID",),
    )
    _table(
        md,
        "T_SB_ZWYC_XL",
        lowercase,
        _pms_asset_columns("XLMC", [("QSDZ", String(32))]),
        indexes=("OBJ_ID", "QSDZ"),
    )
    transformer_extra = [("EDRL", CAPACITY), ("SSDKX", String(32))]
    for name in ("T_SB_ZNYC_PDBYQ", "T_SB_ZWYC_ZSBYQ"):
        cols = _pms_asset_columns("SBMC", transformer_extra)
        # SYXZ (使用性质, '03' = public) sits after YXZT, as in the SPEC's column list.
        at = next(i for i, spec in enumerate(cols) if spec[0] == "YXZT") + 1
        cols.insert(at, ("SYXZ", String(8)))
        _table(md, name, lowercase, cols, indexes=("OBJ_ID", "SSDKX"))
    _table(
        md,
        "ST_PMS_YX_DW",
        lowercase,
        [("PMS_DWID", String(32), {"primary_key": True}), ("YX_ORG_NO", String(16))],
    )
    return md


def _bigint_pk(name: str) -> tuple:
    # autoincrement=False: ids come from the data (SG186 sequences), not SERIAL/AUTO_INCREMENT.
    return (name, BigInteger, {"primary_key": True, "autoincrement": False})


def marketing_metadata(lowercase: bool = False) -> MetaData:
    """The SG186 sample tables: substations, lines, 台区, transformers, relations, orgs."""
    md = MetaData()
    audit = [("PMS_EQUIP_ID", String(32)), ("CREATE_DATE", DateTime), ("CHG_DATE", DateTime)]
    _table(
        md,
        "G_SUBS",
        lowercase,
        [
            _bigint_pk("SUBS_ID"),
            ("SUBS_NO", String(32)),
            ("SUBS_NAME", String(100)),
            ("VOLT_CODE", String(8)),
            ("MT_CAP", CAPACITY),
            ("ORG_NO", String(16)),
            ("RUN_STATUS_CODE", String(8)),
            *audit,
        ],
        indexes=("PMS_EQUIP_ID",),
    )
    _table(
        md,
        "G_LINE",
        lowercase,
        [
            _bigint_pk("LINE_ID"),
            ("LINE_NO", String(32)),
            ("LINE_NAME", String(100)),
            ("VOLT_CODE", String(8)),
            ("ORG_NO", String(16)),
            ("RUN_STATUS_CODE", String(8)),
            *audit,
        ],
        indexes=("PMS_EQUIP_ID",),
    )
    _table(
        md,
        "G_SUBS_LINE_RELA",
        lowercase,
        [_bigint_pk("RELA_ID"), ("SUBS_ID", BigInteger), ("LINE_ID", BigInteger)],
        indexes=("LINE_ID",),
    )
    _table(
        md,
        "G_TG",
        lowercase,
        [
            _bigint_pk("TG_ID"),
            ("TG_NO", String(32)),
            ("TG_NAME", String(100)),
            ("ORG_NO", String(16)),
            ("PUB_PRIV_FLAG", String(8)),
            ("RUN_STATUS_CODE", String(8)),
        ],
    )
    _table(
        md,
        "G_LINE_TG_RELA",
        lowercase,
        [_bigint_pk("LINE_TQ_ID"), ("LINE_ID", BigInteger), ("TG_ID", BigInteger)],
        indexes=("TG_ID",),
    )
    _table(
        md,
        "G_TRAN",
        lowercase,
        [
            _bigint_pk("EQUIP_ID"),
            ("TG_ID", BigInteger),
            ("TRAN_NAME", String(100)),
            ("PLATE_CAP", CAPACITY),
            ("FRSTSIDE_VOLT_CODE", String(8)),
            ("ORG_NO", String(16)),
            ("RUN_STATUS_CODE", String(8)),
            ("PUB_PRIV_FLAG", String(8)),
            ("FRST_RUN_DATE", Date),
            *audit,
        ],
        indexes=("TG_ID", "PMS_EQUIP_ID"),
    )
    _table(
        md,
        "O_ORG",
        lowercase,
        [
            ("ORG_NO", String(16), {"primary_key": True}),
            ("ORG_NAME", String(64)),
            ("P_ORG_NO", String(16)),
            ("ORG_TYPE", String(8)),
        ],
    )
    return md
