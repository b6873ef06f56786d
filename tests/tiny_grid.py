"""A tiny substation -> line -> transformer chain written into empty SQLite copies of the sample
schemas, clean unless a test changes it: the fixture behind the rule and history tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from gridrecon import api
from gridrecon.core.config import load_config
from gridrecon.sample_data.schema import marketing_metadata, pms_metadata

AS_OF = dt.date(2026, 11, 20)
SUB, LINE, TRAN = "a" * 32, "b" * 32, "c" * 32


class Grid:
    """A tiny substation -> line -> transformer chain in both systems, clean unless changed."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pms = {
            "T_SB_ZNYC_DZ": [self._pms(SUB, BDZMC="35kV河口变电站", DYDJ="25", ZBRL=20000)],
            "T_SB_ZWYC_XL": [self._pms(LINE, XLMC="10kV河口一线", QSDZ=SUB)],
            "T_SB_ZNYC_PDBYQ": [
                self._pms(TRAN, SBMC="河口村1号公变", EDRL=400, SSDKX=LINE, SYXZ="03")
            ],
            "T_SB_ZWYC_ZSBYQ": [],
            "ST_PMS_YX_DW": [{"PMS_DWID": "U1", "YX_ORG_NO": "3740101"}],
        }
        created = dt.datetime(2026, 11, 3, 9, 0)
        audit = {"ORG_NO": "3740101", "RUN_STATUS_CODE": "01", "CREATE_DATE": created}
        self.marketing = {
            "G_SUBS": [
                {
                    "SUBS_ID": 1,
                    "SUBS_NAME": "35kV河口变电站",
                    "VOLT_CODE": "AC00351",
                    "MT_CAP": 20000,
                    "PMS_EQUIP_ID": SUB,
                    **audit,
                }
            ],
            "G_LINE": [
                {
                    "LINE_ID": 2,
                    "LINE_NAME": "10kV河口一线",
                    "VOLT_CODE": "AC00101",
                    "PMS_EQUIP_ID": LINE,
                    **audit,
                }
            ],
            "G_SUBS_LINE_RELA": [{"RELA_ID": 1, "SUBS_ID": 1, "LINE_ID": 2}],
            "G_TG": [
                {
                    "TG_ID": 7,
                    "TG_NAME": "河口村1号台区",
                    "ORG_NO": "3740101",
                    "PUB_PRIV_FLAG": "01",
                    "RUN_STATUS_CODE": "01",
                }
            ],
            "G_LINE_TG_RELA": [{"LINE_TQ_ID": 1, "LINE_ID": 2, "TG_ID": 7}],
            "G_TRAN": [
                {
                    "EQUIP_ID": 3,
                    "TG_ID": 7,
                    "TRAN_NAME": "河口村1号公变",
                    "PLATE_CAP": 400,
                    "FRSTSIDE_VOLT_CODE": "AC00101",
                    "PUB_PRIV_FLAG": "01",
                    "FRST_RUN_DATE": dt.date(2026, 11, 2),
                    "PMS_EQUIP_ID": TRAN,
                    **audit,
                }
            ],
            "O_ORG": [],
        }

    @staticmethod
    def _pms(obj_id: str, **values) -> dict:
        return {
            "OBJ_ID": obj_id,
            "DYDJ": "22",
            "YWDW": "U1",
            "YXZT": "20",
            "TYRQ": dt.date(2026, 11, 2),
            "DJSJ": dt.datetime(2026, 11, 2, 10, 0),
            "FBZT": "发布",
            **values,
        }

    def write(self, extra_config: str = "") -> Path:
        """Write both databases and a config; returns the config's path."""
        for name, metadata, rows in (
            ("pms", pms_metadata(), self.pms),
            ("marketing", marketing_metadata(), self.marketing),
        ):
            path = self.folder / f"{name}.sqlite"
            path.unlink(missing_ok=True)
            engine = sa.create_engine(f"sqlite:///{path}")
            metadata.create_all(engine)
            with engine.begin() as connection:
                for table, records in rows.items():
                    if records:
                        connection.execute(metadata.tables[table].insert(), records)
            engine.dispose()
        config = self.folder / "gridrecon.toml"
        config.write_text(
            '[pms]\nurl = "sqlite:///pms.sqlite"\n[marketing]\nurl = "sqlite:///marketing.sqlite"\n'
            + extra_config,
            encoding="utf-8",
        )
        return config

    def run(self, rules: str = "", as_of: dt.date = AS_OF) -> pd.DataFrame:
        """A reconciliation without the state store; its findings."""
        return api.reconcile(load_config(self.write(rules)), as_of=as_of).findings
