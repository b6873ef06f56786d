"""Seeded generator of the sample PMS2.0 and SG186 databases, with a fixed set of planted defects.

The data has two layers:

* **Background** (random, from the seed): an org tree of 16 city companies and their counties,
  substations, 10kV feeders and transformers that are *clean* — every in-scope record produces no
  finding under SPEC §6 at ``AS_OF``. Records are archived in both systems within four calendar
  days of commissioning, which is on time whatever the holidays: the 5th working day after day D
  is never earlier than D + 5.
* **Planted cases** (hand-picked constants, identical at every scale and seed): each a small,
  isolated asset that must produce exactly the finding(s) in the manifest, or — for the
  ``expect=none`` cases — must not produce the named finding. ``sample_data/README.md`` documents
  every one of them.

Rows are computed in Python and only then inserted, so the same seed and scale give the same rows
on every engine. The background is drawn and written in province-sized blocks (``national`` is ten
of them), so memory stays that of one block at any scale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ..core.errors import ConfigError, SourceError
from .schema import marketing_metadata, pms_metadata

SCALES: dict[str, tuple[int, int, int]] = {
    "small": (30, 300, 3000),
    "city": (100, 1500, 30000),
    "province": (1500, 25000, 500000),
    "national": (15000, 250000, 5000000),
}
# The background is drawn and written in blocks of at most these counts (a province's), so the
# memory a scale needs is that of one block.
BLOCK_SIZE: tuple[int, int, int] = SCALES["province"]
DEFAULT_SEED = 20261120
AS_OF = date(2026, 11, 20)

MANIFEST_COLUMNS = ["expect", "rule_id", "asset_type", "pms_id", "marketing_id", "field", "case"]

# Rows per executemany: large enough to amortise round trips, small enough to keep MariaDB
# statements under max_allowed_packet and the row tuples of one chunk small.
CHUNK_ROWS = 5000

# ---------------------------------------------------------------------------------------------
# Code lists (SPEC §3)

PMS_VOLT = {10: "22", 20: "24", 35: "25", 110: "32", 220: "33", 500: "35"}
MKT_VOLT = {
    10: "AC00101",
    20: "AC00201",
    35: "AC00351",
    110: "AC01101",
    220: "AC02201",
    500: "AC05001",
}
PUBLISHED, UNPUBLISHED = "发布", "未发布"
PUBLIC, PRIVATE_PMS = "03", "04"  # PMS SYXZ; anything but '03' is out of scope
MKT_PUBLIC, MKT_PRIVATE = "01", "02"  # marketing PUB_PRIV_FLAG

TRANSFORMER_KVA = (50, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800)

# ---------------------------------------------------------------------------------------------
# The org tree: province 37101, cities 37401..37416, counties <city>01.. (Shandong-like)

PROVINCE = ("37101", "国网山东省电力公司")
CITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("济南", ("章丘区", "平阴县", "济阳区", "商河县", "长清区")),
    ("青岛", ("胶州市", "平度市", "莱西市", "即墨区", "黄岛区")),
    ("淄博", ("桓台县", "高青县", "沂源县", "临淄区")),
    ("枣庄", ("滕州市", "山亭区", "峄城区", "台儿庄区")),
    ("东营", ("广饶县", "利津县", "垦利区")),
    ("烟台", ("龙口市", "莱阳市", "莱州市", "招远市", "蓬莱区", "海阳市", "栖霞市")),
    ("潍坊", ("青州市", "诸城市", "寿光市", "安丘市", "高密市", "昌邑市", "临朐县", "昌乐县")),
    ("济宁", ("曲阜市", "邹城市", "兖州区", "微山县", "鱼台县", "金乡县", "嘉祥县", "汶上县")),
    ("泰安", ("新泰市", "肥城市", "宁阳县", "东平县")),
    ("威海", ("荣成市", "乳山市", "文登区")),
    ("日照", ("五莲县", "莒县", "岚山区")),
    ("滨州", ("惠民县", "阳信县", "无棣县", "沾化区", "博兴县", "邹平市")),
    ("德州", ("乐陵市", "禹城市", "宁津县", "庆云县", "临邑县", "齐河县", "平原县", "夏津县")),
    ("聊城", ("临清市", "阳谷县", "莘县", "茌平区", "东阿县", "冠县", "高唐县")),
    ("临沂", ("沂南县", "郯城县", "沂水县", "兰陵县", "费县", "平邑县", "莒南县", "蒙阴县")),
    ("菏泽", ("曹县", "单县", "成武县", "巨野县", "郓城县", "鄄城县", "东明县", "定陶区")),
)
# Bigger cities get more equipment; purely cosmetic.
CITY_WEIGHTS = (1.6, 1.6, 1.0, 0.8, 0.8, 1.3, 1.5, 1.3, 0.9, 0.7, 0.7, 0.9, 1.0, 1.0, 1.5, 1.2)


def _guid(key: str) -> str:
    """A fixed 32-hex GUID for a hand-picked key (org units and planted cases)."""
    return hashlib.md5(f"gridrecon-sample:{key}".encode()).hexdigest()


@functools.cache
def _unit(org_no: str) -> str:
    """The PMS unit GUID (YWDW) that ST_PMS_YX_DW maps to marketing ORG_NO ``org_no``."""
    return _guid(f"org:{org_no}")


def org_rows() -> tuple[list[dict], list[dict]]:
    """O_ORG rows and ST_PMS_YX_DW rows: the same tree in both systems."""
    o_org = [{"ORG_NO": PROVINCE[0], "ORG_NAME": PROVINCE[1], "P_ORG_NO": None, "ORG_TYPE": "02"}]
    for i, (city, counties) in enumerate(CITIES, start=1):
        city_no = f"374{i:02d}"
        o_org.append(
            {
                "ORG_NO": city_no,
                "ORG_NAME": f"国网{city}供电公司",
                "P_ORG_NO": PROVINCE[0],
                "ORG_TYPE": "03",
            }
        )
        for j, county in enumerate(counties, start=1):
            o_org.append(
                {
                    "ORG_NO": f"{city_no}{j:02d}",
                    # County-level cities drop the prefecture: 国网胶州市供电公司,
                    # districts and counties keep it: 国网济南市章丘区供电公司.
                    "ORG_NAME": f"国网{county}供电公司"
                    if county.endswith("市")
                    else f"国网{city}市{county}供电公司",
                    "P_ORG_NO": city_no,
                    "ORG_TYPE": "04",
                }
            )
    org_map = [{"PMS_DWID": _unit(r["ORG_NO"]), "YX_ORG_NO": r["ORG_NO"]} for r in o_org]
    return o_org, org_map


# ---------------------------------------------------------------------------------------------
# Name pools. Places used by planted cases are kept out of the background so that a planted
# name (and the UNLINKED candidate search) never meets an accidental twin.

PLANTED_WORDS = {"城东", "王庄", "高新", "科创", "春晖", "开元", "鹊华", "新港"}
PLANTED_PLACES = {
    "城东小区",
    "明湖小区",
    "春晖花园",
    "锦绣花园",
    "东关社区",
    "西关社区",
    "南关社区",
    "王庄村",
    "李家庄村",
    "张庄村",
    "赵家村",
    "孙家村",
    "周庄村",
}

_WORDS = [
    "城西",
    "城南",
    "城北",
    "东风",
    "红旗",
    "建设",
    "人民",
    "胜利",
    "光明",
    "工业",
    "开发",
    "新华",
    "幸福",
    "和平",
    "振兴",
    "富民",
    "兴业",
    "创业",
    "科技",
    "园区",
    "港湾",
    "滨河",
    "龙泉",
    "凤鸣",
    "青龙",
    "金山",
    "银山",
    "泉水",
    "柳林",
    "杨庄",
    "石门",
    "白马",
    "黄河",
    "大明",
    "北园",
    "南郊",
    "东郊",
    "西郊",
    "工业园",
    "马山",
    "双山",
    "鲁中",
    "泰山",
    "沂河",
    "汶河",
    "小清河",
    "玉符",
    "文昌",
    "武城",
    "崇文",
    "尚德",
    "孝里",
    "归德",
    "桃园",
    "杏林",
    "梨园",
    "枣林",
    "槐荫",
    "松山",
    "竹园",
    "梅岭",
    "兰亭",
    "菊园",
    "金桥",
    "银河",
    "紫荆",
    "丰收",
    "前进",
    "团结",
    "友谊",
    "长城",
    "长江",
    "黄海",
    "渤海",
    "昆仑",
    "华山",
    "嵩山",
    "衡山",
    "恒山",
    "峨眉",
    "清河",
    "济水",
    "泺源",
    "趵突",
    "千佛",
    "历山",
    "舜耕",
    "经十",
    "燕山",
    "奥体",
    "汉峪",
    "孙村",
    "彩石",
    "港沟",
    "郭店",
    "遥墙",
    "临港",
    "唐冶",
    "华山湖",
    "洪楼",
    "北湖",
    "西营",
    "仲宫",
    "柳埠",
    "万德",
    "张夏",
    "崮山",
    "马岭",
    "双泉",
    "灵岩",
]
SUB_WORDS = tuple(w for w in _WORDS if w not in PLANTED_WORDS)
LINE_WORDS = SUB_WORDS

_SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严"
)
_VILLAGE_PREFIX = ("", "东", "西", "南", "北", "前", "后", "大", "小")
_VILLAGE_SUFFIX = (
    "庄",
    "家庄",
    "家村",
    "屯",
    "集",
    "营",
    "家寨",
    "家洼",
    "楼",
    "店",
    "官庄",
    "家峪",
    "家沟",
    "家岭",
    "家桥",
    "家埠",
    "家疃",
    "家套",
    "家河",
    "家坡",
)
VILLAGES = tuple(
    p
    for p in (
        f"{pre}{s}{suf}" + ("" if suf.endswith("村") else "村")
        for pre in _VILLAGE_PREFIX
        for s in _SURNAMES
        for suf in _VILLAGE_SUFFIX
    )
    if p not in PLANTED_PLACES
)
_ESTATE_WORDS = [
    "城西",
    "城南",
    "城北",
    "新华",
    "幸福",
    "和平",
    "阳光",
    "锦华",
    "金色",
    "翠园",
    "丽景",
    "华苑",
    "泉城",
    "明珠",
    "东方",
    "世纪",
    "盛世",
    "滨河",
    "银座",
    "绿城",
    "书香",
    "文化",
    "建设",
    "胜利",
    "振兴",
    "龙山",
    "凤凰",
    "银河",
    "紫薇",
    "海棠",
    "玉兰",
    "桂花",
    "枫林",
    "御景",
    "雅苑",
    "公园",
    "湖畔",
    "金域",
    "万象",
    "鲁能",
    "舜华",
    "恒大",
    "中海",
    "保利",
    "绿地",
    "融创",
    "碧桂",
    "华润",
    "龙湖",
    "万科",
    "招商",
    "远洋",
    "金科",
    "旭辉",
]
_ESTATE_KIND = (
    "小区",
    "花园",
    "家园",
    "社区",
    "新村",
    "公寓",
    "苑",
    "名苑",
    "雅居",
    "嘉园",
    "佳苑",
    "城",
)
ESTATES = tuple(
    p for p in (f"{w}{k}" for w in _ESTATE_WORDS for k in _ESTATE_KIND) if p not in PLANTED_PLACES
)
_FIRMS = [
    "鲁丰机械厂",
    "齐鲁纺织厂",
    "泰和食品公司",
    "华信化工厂",
    "顺达物流园",
    "人民医院",
    "第一中学",
    "自来水厂",
    "污水处理厂",
    "中石化加油站",
    "银座商城",
    "舜耕酒店",
    "绿源养殖场",
    "金穗面粉厂",
    "宏达建材厂",
    "永盛铸造厂",
    "鑫源钢构厂",
    "通达汽修厂",
    "恒通冷库",
    "联华超市",
    "大润发",
    "汇泉酒店",
    "鲁中矿业",
    "宏图印刷厂",
    "新兴砖厂",
    "万家乐家具厂",
    "三和化纤厂",
    "金诺电子厂",
]
ROMAN = "ⅡⅢⅣⅤⅥⅦⅧⅨⅩⅪⅫ"


# ---------------------------------------------------------------------------------------------
# Dates. Background commissioning days run 2024-01-01 … 2026-11-18 and archive times stop at
# 2026-11-19, the evening before AS_OF, so nothing in the background lies in AS_OF's future.

EPOCH = date(2024, 1, 1)
LAST_COMMISSION = date(2026, 11, 18)
LAST_RECORD = date(2026, 11, 19)
_END = (LAST_COMMISSION - EPOCH).days
_LAST_REC = (LAST_RECORD - EPOCH).days
# Clusters: projects rush to commission before Spring Festival (春节) and National Day (国庆).
_SPRING_FESTIVALS = [
    (date(y, m, d) - EPOCH).days for y, m, d in ((2024, 2, 10), (2025, 1, 29), (2026, 2, 17))
]
_NATIONAL_DAYS = [(date(y, 10, 1) - EPOCH).days for y in (2024, 2025, 2026)]


def _commission_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Commissioning days (offsets from EPOCH): mostly uniform, 30% clustered around holidays."""
    kind = rng.random(n)
    uniform = rng.integers(0, _END + 1, n)
    spring = rng.choice(_SPRING_FESTIVALS, n) + rng.integers(-14, 4, n)
    national = rng.choice(_NATIONAL_DAYS, n) + rng.integers(-12, 3, n)
    days = np.where(kind < 0.70, uniform, np.where(kind < 0.85, spring, national))
    return np.clip(days, 0, _END)


def _parents_first(days: np.ndarray, parent: np.ndarray, child_days: np.ndarray) -> np.ndarray:
    """Move a parent's commissioning day back to its earliest child's: a feeder is in service
    before the transformers on it. Children keep their own (clustered) days."""
    out = days.copy()
    np.minimum.at(out, parent, child_days)
    return out


def _archive_times(
    rng: np.random.Generator, days: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seconds since EPOCH for (PMS DJSJ, marketing CREATE_DATE, GXSJ, CHG_DATE).

    DJSJ falls on the commissioning day or up to 4 calendar days later, CREATE_DATE at or after
    it in the same window (synchronised from PMS): always within the 5-working-day deadline.
    """
    n = len(days)
    max_off = np.minimum(4, _LAST_REC - days)
    a = np.floor(rng.random(n) * (max_off + 1)).astype(np.int64)
    b = a + np.floor(rng.random(n) * (max_off - a + 1)).astype(np.int64)
    t1 = rng.integers(8 * 3600, 17 * 3600, n)
    t2 = np.where(b > a, rng.integers(8 * 3600, 20 * 3600, n), t1 + rng.integers(600, 3 * 3600, n))
    djsj = (days + a) * 86400 + t1
    create = (days + b) * 86400 + t2
    return djsj, create, _later(rng, djsj), _later(rng, create)


def _later(rng: np.random.Generator, seconds: np.ndarray) -> np.ndarray:
    """An update time: 60% never updated (= creation), else some time up to LAST_RECORD 18:00."""
    last = _LAST_REC * 86400 + 18 * 3600
    updated = seconds + np.floor(rng.random(len(seconds)) * np.maximum(last - seconds, 0)).astype(
        np.int64
    )
    return np.where(rng.random(len(seconds)) < 0.6, seconds, updated)


def _as_dates(days: np.ndarray) -> np.ndarray:
    """Day offsets (negative = null) → numpy dates with NaT for null."""
    out = np.datetime64(EPOCH, "D") + days.astype("timedelta64[D]")
    return np.where(days < 0, np.datetime64("NaT", "D"), out)


def _as_datetimes(seconds: np.ndarray) -> np.ndarray:
    return np.datetime64(datetime.combine(EPOCH, time()), "s") + seconds.astype("timedelta64[s]")


# ---------------------------------------------------------------------------------------------
# Random helpers


def _guids(rng: np.random.Generator, n: int) -> list[str]:
    """n 32-hex lowercase GUIDs from the seeded generator (PMS OBJ_IDs)."""
    h = rng.bytes(16 * n).hex()
    return [h[i : i + 32] for i in range(0, 32 * n, 32)]


def _unique_labels(
    rng: np.random.Generator,
    groups: np.ndarray,
    n_words: int,
    max_per_word: int,
    used_by_group: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """For members of each group (org), distinct (word index, number) pairs.

    Words are drawn in a random order and each gets 1..max_per_word consecutive numbers, so names
    like 王庄村1号公变, 王庄村2号公变 cluster as they do in reality; a second pass over the words
    continues their numbering, so uniqueness never depends on the pool being large enough.
    ``used_by_group`` (numbers used so far per group and word) is updated, so a later block of
    the background continues the numbering instead of repeating names.
    """
    word = np.empty(len(groups), dtype=np.int64)
    num = np.empty(len(groups), dtype=np.int64)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        need = len(idx)
        used = used_by_group.setdefault(g, np.zeros(n_words, dtype=np.int64))
        words, nums = [], []
        while need > 0:
            perm = rng.permutation(n_words)
            m = rng.integers(1, max_per_word + 1, n_words)
            w = np.repeat(perm, m)
            k = used[w] + np.arange(len(w)) - np.repeat(np.cumsum(m) - m, m)
            used[perm] += m
            words.append(w[:need])
            nums.append(k[:need])
            need -= len(w[:need])
        word[idx] = np.concatenate(words)
        num[idx] = np.concatenate(nums)
    return word, num


# Background record kinds and their shares. "retired" and "other" assets are in both systems,
# "*_pms_only" / "*_mkt_only" in one; not-commissioned and unpublished ones only in PMS.
_SUB_KINDS = {"in_service": 0.92, "retired": 0.03, "not_commissioned": 0.03, "unpublished": 0.02}
_LINE_KINDS = {
    "in_service": 0.94,
    "retired": 0.02,
    "retired_pms_only": 0.01,
    "not_commissioned": 0.015,
    "unpublished": 0.015,
}
_TR_KINDS = {
    "in_service": 0.855,
    "retired": 0.02,
    "other": 0.01,
    "retired_pms_only": 0.01,
    "not_commissioned": 0.01,
    "unpublished": 0.01,
    "private": 0.065,
    "private_mkt_only": 0.02,
}
# Which kinds appear in which system, and their status codes.
_IN_PMS = {
    "in_service",
    "retired",
    "other",
    "retired_pms_only",
    "not_commissioned",
    "unpublished",
    "private",
}
_IN_MKT = {"in_service", "retired", "other", "private", "private_mkt_only"}
_MKT_STATUS = {
    "in_service": "01",
    "retired": "02",
    "other": "00",
    "private": "01",
    "private_mkt_only": "01",
}


def _kinds(rng: np.random.Generator, n: int, shares: dict[str, float]) -> np.ndarray:
    """A kind (see _TR_KINDS) per drawn asset."""
    names = list(shares)
    k = rng.choice(len(names), n, p=np.array(list(shares.values())) / sum(shares.values()))
    out = np.array(names, dtype=object)[k]
    if n and not (out == "in_service").any():
        out[0] = "in_service"  # children need at least one in-service parent
    return out


def _pms_status(rng: np.random.Generator, kinds: np.ndarray) -> np.ndarray:
    """PMS YXZT per kind: 20 in service (also private/unpublished), 30/40, 31/32/33, 10."""
    n = len(kinds)
    retired = np.array(["30", "40"], dtype=object)[rng.integers(0, 2, n)]
    other = np.array(["31", "32", "33"], dtype=object)[rng.integers(0, 3, n)]
    status = np.full(n, "20", dtype=object)
    is_retired = np.isin(kinds, ["retired", "retired_pms_only"])
    status[is_retired] = retired[is_retired]
    status[kinds == "other"] = other[kinds == "other"]
    status[kinds == "not_commissioned"] = "10"
    return status


# ---------------------------------------------------------------------------------------------
# Background

Columns = dict[str, Sequence]


def _lifecycle(
    rng: np.random.Generator, kinds: np.ndarray, days: np.ndarray
) -> dict[str, np.ndarray]:
    """TYRQ day (-1 = null) and the four archive timestamps of every drawn asset."""
    not_commissioned = kinds == "not_commissioned"
    # A not-yet-commissioned asset has no TYRQ; it was registered some time in the last years.
    registered = np.where(not_commissioned, rng.integers(365, _LAST_REC + 1, len(kinds)), days)
    djsj, create, gxsj, chg = _archive_times(rng, registered)
    return {
        "tyrq": np.where(not_commissioned, -1, days),
        "djsj": djsj,
        "create": create,
        "gxsj": gxsj,
        "chg": chg,
        "pms_status": _pms_status(rng, kinds),
    }


def _pms_rows(
    kinds: np.ndarray, obj_ids: Sequence, life: dict, org: np.ndarray, cols: Columns
) -> Columns:
    """PMS rows of the drawn assets that live in PMS (all columns but the type-specific ones)."""
    keep = np.isin(kinds, list(_IN_PMS))
    out: Columns = {"OBJ_ID": _take(obj_ids, keep)}
    out |= {c: _take(v, keep) for c, v in cols.items()}
    out |= {
        "YWDW": [_unit(o) for o in org[keep]],
        "YXZT": life["pms_status"][keep],
        "TYRQ": _as_dates(life["tyrq"][keep]),
        "DJSJ": _as_datetimes(life["djsj"][keep]),
        "GXSJ": _as_datetimes(life["gxsj"][keep]),
        "FBZT": np.where(kinds[keep] == "unpublished", UNPUBLISHED, PUBLISHED).astype(object),
    }
    return out


def _mkt_rows(
    kinds: np.ndarray, pms_ids: Sequence, life: dict, org: np.ndarray, cols: Columns
) -> Columns:
    """Marketing rows of the drawn assets that live in marketing (ids are added by the caller)."""
    keep = np.isin(kinds, list(_IN_MKT))
    out: Columns = {c: _take(v, keep) for c, v in cols.items()}
    out |= {
        "ORG_NO": org[keep],
        "RUN_STATUS_CODE": np.array([_MKT_STATUS[k] for k in kinds[keep]], dtype=object),
        "PMS_EQUIP_ID": _take(pms_ids, keep),
        "CREATE_DATE": _as_datetimes(life["create"][keep]),
        "CHG_DATE": _as_datetimes(life["chg"][keep]),
    }
    return out


def _take(values: Sequence, mask: np.ndarray) -> Sequence:
    if isinstance(values, np.ndarray):
        return values[mask]
    return [v for v, keep in zip(values, mask) if keep]


def _roman(k: int) -> str:
    """Feeder numbering: 东风线, 东风Ⅱ线, 东风Ⅲ线 … then plain digits beyond Ⅻ."""
    if k == 0:
        return ""
    return ROMAN[k - 1] if k <= len(ROMAN) else str(k + 1)


def _tg_name(name: str) -> str:
    """台区 name from its transformer's: 王庄村2号公变 → 王庄村2号台区."""
    return name[:-2] + "台区" if name.endswith("公变") else name + "台区"


# Background marketing ids: one numeric range per table (planted rows use 9xxxxxxxxx).
_BG_IDS = {
    "SUBS_ID": 1_100_000_000,
    "LINE_ID": 1_200_000_000,
    "TG_ID": 1_300_000_000,
    "EQUIP_ID": 1_400_000_000,
    "RELA_ID": 1_500_000_000,
    "LINE_TQ_ID": 1_600_000_000,
}


@dataclasses.dataclass
class _Sequences:
    """What a block of the background continues from the blocks before it: the marketing id
    sequences and the numbering of names per org, so ids and names stay unique at any scale."""

    ids: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(_BG_IDS, 0))
    labels: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)

    def next_ids(self, key: str, n: int) -> np.ndarray:
        """The next n ids of sequence ``key``."""
        start = _BG_IDS[key] + self.ids[key]
        self.ids[key] += n
        return np.arange(start, start + n)

    def ids_where(self, key: str, keep: np.ndarray) -> np.ndarray:
        """Marketing id per drawn row (-1 where the asset is not in marketing)."""
        out = np.full(len(keep), -1, dtype=np.int64)
        out[keep] = self.next_ids(key, int(keep.sum()))
        return out

    def used(self, pool: str) -> dict[str, np.ndarray]:
        return self.labels.setdefault(pool, {})


def _background(
    rng: np.random.Generator, n_sub: int, n_line: int, n_tr: int, seq: _Sequences
) -> tuple[dict, dict]:
    """One block of clean background rows: (PMS columns per table, marketing columns per table)."""
    o_org, _ = org_rows()
    cities = [r["ORG_NO"] for r in o_org if r["ORG_TYPE"] == "03"]
    counties_of = {c: [r["ORG_NO"] for r in o_org if r["P_ORG_NO"] == c] for c in cities}

    # -- 1. the network: who owns what, who feeds whom ---------------------------------------
    # Substations: 220kV owned by cities, 35kV by counties, 110kV by either.
    city_i = rng.choice(len(cities), n_sub, p=np.array(CITY_WEIGHTS) / sum(CITY_WEIGHTS))
    kv = np.array([35, 110, 220])[rng.choice(3, n_sub, p=[0.5, 0.4, 0.1])]
    to_county = (kv == 35) | ((kv == 110) & (rng.random(n_sub) < 0.6))
    pick = rng.random(n_sub)
    sub_org = np.array(
        [
            counties_of[cities[c]][int(p * len(counties_of[cities[c]]))] if tc else cities[c]
            for c, tc, p in zip(city_i, to_county, pick)
        ],
        dtype=object,
    )
    sub_kind = _kinds(rng, n_sub, _SUB_KINDS)
    # 10kV feeders leave in-service substations (mostly 35/110kV ones) and belong to counties.
    eligible = np.flatnonzero(sub_kind == "in_service")
    weight = np.array([{35: 1.0, 110: 2.0, 220: 0.3}[v] for v in kv[eligible]])
    line_parent = eligible[rng.choice(len(eligible), n_line, p=weight / weight.sum())]
    pick = rng.random(n_line)
    line_org = np.array(
        [
            o if len(o) == 7 else counties_of[o][int(q * len(counties_of[o]))]
            for o, q in zip(sub_org[line_parent], pick)
        ],
        dtype=object,
    )
    line_kind = _kinds(rng, n_line, _LINE_KINDS)
    # Transformers hang under in-service feeders and belong to the feeder's county.
    eligible = np.flatnonzero(line_kind == "in_service")
    tr_parent = eligible[rng.integers(0, len(eligible), n_tr)]
    tr_org = line_org[tr_parent]
    tr_kind = _kinds(rng, n_tr, _TR_KINDS)

    # -- 2. commissioning days: transformers keep the holiday clusters; parents move back -----
    tr_days = _commission_days(rng, n_tr)
    line_days = _parents_first(_commission_days(rng, n_line), tr_parent, tr_days)
    sub_days = _parents_first(_commission_days(rng, n_sub), line_parent, line_days)

    # -- 3. substations ------------------------------------------------------------------------
    pms: dict[str, Columns] = {}
    mkt: dict[str, Columns] = {}
    word, num = _unique_labels(rng, sub_org, len(SUB_WORDS), 1, seq.used("substation"))
    sub_name = np.array(
        [f"{v}kV{SUB_WORDS[w]}{'' if k == 0 else k + 1}变电站" for v, w, k in zip(kv, word, num)],
        dtype=object,
    )
    # Capacity = 1–3 main transformers of one standard size for the voltage class (kVA).
    units = {
        35: (6300, 8000, 10000, 20000),
        110: (31500, 40000, 50000, 63000),
        220: (150000, 180000, 240000),
    }
    unit_kva = np.array([units[v][int(p * len(units[v]))] for v, p in zip(kv, rng.random(n_sub))])
    sub_cap = (unit_kva * rng.choice([1, 2, 3], n_sub, p=[0.15, 0.7, 0.15])).astype(float)
    sub_id = np.array(_guids(rng, n_sub), dtype=object)
    life = _lifecycle(rng, sub_kind, sub_days)
    pms["T_SB_ZNYC_DZ"] = _pms_rows(
        sub_kind,
        sub_id,
        life,
        sub_org,
        {
            "BDZMC": sub_name,
            "DYDJ": np.array([PMS_VOLT[v] for v in kv], dtype=object),
            "ZBRL": sub_cap,
        },
    )
    sub_mkt = seq.ids_where("SUBS_ID", np.isin(sub_kind, list(_IN_MKT)))
    mkt["G_SUBS"] = _mkt_rows(
        sub_kind,
        sub_id,
        life,
        sub_org,
        {
            "SUBS_ID": sub_mkt,
            "SUBS_NO": _numbers(sub_org, sub_mkt - _BG_IDS["SUBS_ID"], 5),
            "SUBS_NAME": sub_name,
            "VOLT_CODE": np.array([MKT_VOLT[v] for v in kv], dtype=object),
            "MT_CAP": sub_cap,
        },
    )

    # -- 4. feeders ------------------------------------------------------------------------------
    word, num = _unique_labels(rng, line_org, len(LINE_WORDS), 3, seq.used("line"))
    line_name = np.array(
        [f"10kV{LINE_WORDS[w]}{_roman(k)}线" for w, k in zip(word, num)], dtype=object
    )
    line_id = np.array(_guids(rng, n_line), dtype=object)
    life = _lifecycle(rng, line_kind, line_days)
    pms["T_SB_ZWYC_XL"] = _pms_rows(
        line_kind,
        line_id,
        life,
        line_org,
        {
            "XLMC": line_name,
            "DYDJ": np.full(n_line, PMS_VOLT[10], dtype=object),
            "QSDZ": sub_id[line_parent],
        },
    )
    line_in_mkt = np.isin(line_kind, list(_IN_MKT))
    line_mkt = seq.ids_where("LINE_ID", line_in_mkt)
    mkt["G_LINE"] = _mkt_rows(
        line_kind,
        line_id,
        life,
        line_org,
        {
            "LINE_ID": line_mkt,
            "LINE_NO": _numbers(line_org, line_mkt - _BG_IDS["LINE_ID"], 5),
            "LINE_NAME": line_name,
            "VOLT_CODE": np.full(n_line, MKT_VOLT[10], dtype=object),
        },
    )
    n_rela = int(line_in_mkt.sum())
    mkt["G_SUBS_LINE_RELA"] = {
        "RELA_ID": seq.next_ids("RELA_ID", n_rela),
        "SUBS_ID": sub_mkt[line_parent[line_in_mkt]],
        "LINE_ID": line_mkt[line_in_mkt],
    }

    # -- 5. transformers: estates indoor (配电室, PDBYQ), villages pole-mounted (ZSBYQ) ------------
    private = np.isin(tr_kind, ["private", "private_mkt_only"])
    indoor = rng.random(n_tr) < 0.3
    names = np.empty(n_tr, dtype=object)
    for is_indoor, places, per_place in ((True, ESTATES, 8), (False, VILLAGES, 3)):
        sel = np.flatnonzero(~private & (indoor == is_indoor))
        used = seq.used("indoor" if is_indoor else "pole")
        word, num = _unique_labels(rng, tr_org[sel], len(places), per_place, used)
        marks = np.where(rng.random(len(sel)) < 0.5, "#", "号")
        names[sel] = [f"{places[w]}{k + 1}{m}公变" for w, k, m in zip(word, num, marks)]
    sel = np.flatnonzero(private)
    firm, place, k = (
        rng.integers(0, len(pool), len(sel)) for pool in (_FIRMS, SUB_WORDS, range(3))
    )
    names[sel] = [f"{SUB_WORDS[p]}{_FIRMS[f]}{n + 1}#专变" for p, f, n in zip(place, firm, k)]
    pub_kva = np.where(
        indoor,
        rng.choice([315, 400, 500, 630, 800], n_tr, p=[0.15, 0.3, 0.2, 0.3, 0.05]),
        rng.choice(
            [50, 80, 100, 125, 160, 200, 250, 315, 400],
            n_tr,
            p=[0.03, 0.05, 0.1, 0.05, 0.12, 0.2, 0.15, 0.2, 0.1],
        ),
    )
    kva = np.where(private, rng.choice(TRANSFORMER_KVA, n_tr), pub_kva).astype(float)
    tr_id = np.array(_guids(rng, n_tr), dtype=object)
    life = _lifecycle(rng, tr_kind, tr_days)
    tr_cols = {
        "SBMC": names,
        "DYDJ": np.full(n_tr, PMS_VOLT[10], dtype=object),
        "EDRL": kva,
        "SSDKX": line_id[tr_parent],
        "SYXZ": np.where(tr_kind == "private", PRIVATE_PMS, PUBLIC).astype(object),
    }
    # Both PMS tables are cut from one draw, so the random stream does not depend on the split.
    for table, mask in (("T_SB_ZNYC_PDBYQ", indoor), ("T_SB_ZWYC_ZSBYQ", ~indoor)):
        cols = {c: v[mask] for c, v in tr_cols.items()}
        pms[table] = _pms_rows(
            tr_kind[mask], tr_id[mask], {c: v[mask] for c, v in life.items()}, tr_org[mask], cols
        )

    tr_in_mkt = np.isin(tr_kind, list(_IN_MKT))
    m = int(tr_in_mkt.sum())
    link = tr_id.copy()
    link[tr_kind == "private_mkt_only"] = None  # a 专变 PMS never had: out of scope, unlinked
    flag = np.where(private, MKT_PRIVATE, MKT_PUBLIC).astype(object)
    tg_id = seq.ids_where("TG_ID", tr_in_mkt)
    g_tran = _mkt_rows(
        tr_kind,
        link,
        life,
        tr_org,
        {
            "EQUIP_ID": seq.ids_where("EQUIP_ID", tr_in_mkt),
            "TG_ID": tg_id,
            "TRAN_NAME": names,
            "PLATE_CAP": kva,
            "FRSTSIDE_VOLT_CODE": np.full(n_tr, MKT_VOLT[10], dtype=object),
            "PUB_PRIV_FLAG": flag,
            "FRST_RUN_DATE": _as_dates(tr_days),
        },
    )
    mkt["G_TRAN"] = g_tran
    mkt["G_TG"] = {
        "TG_ID": tg_id[tr_in_mkt],
        "TG_NO": _numbers(tr_org[tr_in_mkt], tg_id[tr_in_mkt] - _BG_IDS["TG_ID"], 7),
        "TG_NAME": np.array([_tg_name(n) for n in names[tr_in_mkt]], dtype=object),
        "ORG_NO": tr_org[tr_in_mkt],
        "PUB_PRIV_FLAG": flag[tr_in_mkt],
        "RUN_STATUS_CODE": g_tran["RUN_STATUS_CODE"],
    }
    mkt["G_LINE_TG_RELA"] = {
        "LINE_TQ_ID": seq.next_ids("LINE_TQ_ID", m),
        "LINE_ID": line_mkt[tr_parent[tr_in_mkt]],
        "TG_ID": tg_id[tr_in_mkt],
    }
    return pms, mkt


def _numbers(org: np.ndarray, seq: np.ndarray, width: int) -> np.ndarray:
    """Marketing business numbers (SUBS_NO, LINE_NO, TG_NO): the owning org, then a sequence."""
    return np.array([f"{o}{max(int(i), 0) + 1:0{width}d}" for o, i in zip(org, seq)], dtype=object)


# ---------------------------------------------------------------------------------------------
# Planted cases: fixed ids, fixed dates, identical at every scale and seed.

COUNTY_A = "3740101"  # 国网济南市章丘区供电公司: home of every planted asset
COUNTY_B = "3740102"  # 国网济南市平阴县供电公司: the "wrong" org of the org_code mismatch
_PLANTED_BASE = {
    "SUBS_ID": 9_100_000_000,
    "LINE_ID": 9_200_000_000,
    "TG_ID": 9_300_000_000,
    "EQUIP_ID": 9_400_000_000,
    "RELA_ID": 9_500_000_000,
    "LINE_TQ_ID": 9_600_000_000,
}
# Ids nobody has: the ghosts planted defects point at.
GHOST_SUBSTATION = _guid("planted:ghost-substation")
GHOST_TRANSFORMER = _guid("planted:ghost-transformer")
GHOST_UNIT = _guid("planted:ghost-unit")
GHOST_LINE_ID = 9_299_999_999


def _day(iso: str | None) -> date | None:
    return None if iso is None else date.fromisoformat(iso)


def _ts(iso: str) -> datetime:
    """A naive local (Asia/Shanghai wall-clock) timestamp, as both systems store them."""
    return datetime.fromisoformat(iso)


class _Planter:
    """Builds planted rows and their manifest lines. Dates are ISO strings to keep cases short;
    a PMS record's DJSJ defaults to 10:00 the day after TYRQ (on time)."""

    def __init__(self) -> None:
        self.pms: dict[str, list[dict]] = {}
        self.mkt: dict[str, list[dict]] = {}
        self.manifest: list[dict] = []
        self._seq = dict.fromkeys(_PLANTED_BASE, 0)

    def _next(self, key: str) -> int:
        self._seq[key] += 1
        return _PLANTED_BASE[key] + self._seq[key]

    def _add(self, side: dict, table: str, row: dict) -> None:
        side.setdefault(table, []).append(row)

    # -- PMS: each returns the OBJ_ID -----------------------------------------------------------
    def _pms(self, table: str, key: str, tyrq: str | None, djsj: str | None, row: dict) -> str:
        registered = (
            _ts(djsj) if djsj else datetime.combine(_day(tyrq) + timedelta(days=1), time(10))
        )
        row = {
            "OBJ_ID": _guid(f"planted:{key}"),
            "DYDJ": PMS_VOLT[10],
            "YWDW": _unit(COUNTY_A),
            "YXZT": "20",
            "TYRQ": _day(tyrq),
            "DJSJ": registered,
            "GXSJ": registered,
            "FBZT": PUBLISHED,
        } | row
        self._add(self.pms, table, row)
        return row["OBJ_ID"]

    def substation(self, key: str, name: str, kv: int, kva: float, tyrq: str) -> str:
        row = {"BDZMC": name, "DYDJ": PMS_VOLT[kv], "ZBRL": kva}
        return self._pms("T_SB_ZNYC_DZ", key, tyrq, None, row)

    def line(
        self, key: str, name: str, qsdz: str, tyrq: str | None, djsj: str | None = None, **over
    ) -> str:
        return self._pms("T_SB_ZWYC_XL", key, tyrq, djsj, {"XLMC": name, "QSDZ": qsdz} | over)

    def _transformer(
        self,
        table: str,
        key: str,
        name: str | None,
        ssdkx: str | None,
        tyrq: str | None,
        kva: float,
        djsj: str | None = None,
        **over,
    ) -> str:
        row = {"SBMC": name, "EDRL": kva, "SSDKX": ssdkx, "SYXZ": PUBLIC} | over
        return self._pms(table, key, tyrq, djsj, row)

    def indoor(self, *args, **over) -> str:
        """Indoor transformer (配电室, T_SB_ZNYC_PDBYQ): key, name, SSDKX, TYRQ, kVA[, DJSJ]."""
        return self._transformer("T_SB_ZNYC_PDBYQ", *args, **over)

    def pole(self, *args, **over) -> str:
        """Pole-mounted transformer (柱上, T_SB_ZWYC_ZSBYQ): key, name, SSDKX, TYRQ, kVA[, DJSJ]."""
        return self._transformer("T_SB_ZWYC_ZSBYQ", *args, **over)

    # -- marketing: each returns the marketing id -----------------------------------------------
    def _mkt(
        self,
        table: str,
        id_key: str,
        no_key: str | None,
        pms_id: str | None,
        created: str,
        row: dict,
    ) -> int:
        new_id = self._next(id_key)
        number = {no_key: f"{COUNTY_A}9{new_id % 1_000_000:06d}"} if no_key else {}
        row = {
            id_key: new_id,
            **number,
            "ORG_NO": COUNTY_A,
            "RUN_STATUS_CODE": "01",
            "PMS_EQUIP_ID": pms_id,
            "CREATE_DATE": _ts(created),
            "CHG_DATE": _ts(created),
        } | row
        self._add(self.mkt, table, row)
        return new_id

    def g_subs(self, pms_id: str, name: str, kv: int, kva: float, created: str) -> int:
        row = {"SUBS_NAME": name, "VOLT_CODE": MKT_VOLT[kv], "MT_CAP": kva}
        return self._mkt("G_SUBS", "SUBS_ID", "SUBS_NO", pms_id, created, row)

    def g_line(self, pms_id: str, name: str, subs_id: int, created: str) -> int:
        row = {"LINE_NAME": name, "VOLT_CODE": MKT_VOLT[10]}
        line_id = self._mkt("G_LINE", "LINE_ID", "LINE_NO", pms_id, created, row)
        rela = {"RELA_ID": self._next("RELA_ID"), "SUBS_ID": subs_id, "LINE_ID": line_id}
        self._add(self.mkt, "G_SUBS_LINE_RELA", rela)
        return line_id

    def g_tran(
        self,
        pms_id: str | None,
        name: str,
        line_id: int,
        frst_run: str,
        created: str,
        kva: float,
        **over,
    ) -> int:
        """A public transformer with its own 台区, hanging under marketing line ``line_id``."""
        tg_id = self._next("TG_ID")
        row = {
            "TG_ID": tg_id,
            "TRAN_NAME": name,
            "PLATE_CAP": kva,
            "FRSTSIDE_VOLT_CODE": MKT_VOLT[10],
            "PUB_PRIV_FLAG": MKT_PUBLIC,
            "FRST_RUN_DATE": _day(frst_run),
        } | over
        equip_id = self._mkt("G_TRAN", "EQUIP_ID", None, pms_id, created, row)
        tran = self.mkt["G_TRAN"][-1]
        tg = {
            "TG_ID": tg_id,
            "TG_NO": f"{COUNTY_A}9{tg_id % 1_000_000:06d}",
            "TG_NAME": _tg_name(name.strip()),
            "ORG_NO": tran["ORG_NO"],
            "PUB_PRIV_FLAG": MKT_PUBLIC,
            "RUN_STATUS_CODE": tran["RUN_STATUS_CODE"],
        }
        self._add(self.mkt, "G_TG", tg)
        rela = {"LINE_TQ_ID": self._next("LINE_TQ_ID"), "LINE_ID": line_id, "TG_ID": tg_id}
        self._add(self.mkt, "G_LINE_TG_RELA", rela)
        return equip_id

    # -- manifest -------------------------------------------------------------------------------
    def expect(self, rule: str, asset: str, case: str, pms_id="", mkt_id="", field="") -> None:
        """An expected finding (ids as SPEC §6 "Ids on a finding" puts them on it)."""
        self._manifest("finding", rule, asset, case, pms_id, mkt_id, field)

    def expect_none(self, rule: str, asset: str, case: str, pms_id="", mkt_id="", field="") -> None:
        """A rule that must not fire for this record (field empty = on no field)."""
        self._manifest("none", rule, asset, case, pms_id, mkt_id, field)

    def _manifest(self, expect, rule, asset, case, pms_id, mkt_id, field) -> None:
        row = {
            "expect": expect,
            "rule_id": rule,
            "asset_type": asset,
            "pms_id": pms_id,
            "marketing_id": str(mkt_id),
            "field": field,
            "case": case,
        }
        self.manifest.append(row)


def _planted() -> _Planter:
    """Every planted case; sample_data/README.md documents each one. All live in COUNTY_A."""
    p = _Planter()
    TR, LINE, SUB = "transformer", "line", "substation"
    # The cases read as a table, one line per record: keep the formatter from wrapping them.
    # fmt: off

    # Clean anchors: two substations and three feeders the planted assets hang under.
    s1 = p.substation("anchor:sub:chengdong", "110kV城东变电站", 110, 100000, "2024-05-20")
    s1m = p.g_subs(s1, "110kV城东变电站", 110, 100000, "2024-05-22 15:40")
    s2 = p.substation("anchor:sub:wangzhuang", "35kV王庄变电站", 35, 20000, "2024-08-12")
    s2m = p.g_subs(s2, "35kV王庄变电站", 35, 20000, "2024-08-13 09:15")
    l1 = p.line("anchor:line:chengdong1", "10kV城东Ⅰ线", s1, "2024-06-03")
    l1m = p.g_line(l1, "10kV城东Ⅰ线", s1m, "2024-06-05 11:00")
    l2 = p.line("anchor:line:chengdong2", "10kV城东Ⅱ线", s1, "2024-06-03")
    l2m = p.g_line(l2, "10kV城东Ⅱ线", s1m, "2024-06-05 11:20")
    l3 = p.line("anchor:line:wangzhuang", "10kV王庄线", s2, "2024-09-02")
    l3m = p.g_line(l3, "10kV王庄线", s2m, "2024-09-04 16:05")

    # ARCHIVE_OVERDUE / ARCHIVE_PENDING: in service in PMS, nothing in marketing.
    t = p.pole("overdue:transformer", "王庄村1号公变", l3, "2026-11-05", 200, "2026-11-05 16:20")
    p.expect("ARCHIVE_OVERDUE", TR, "commissioned Thu 2026-11-05, deadline 2026-11-12, not in marketing", t)
    t = p.line("overdue:line", "10kV科创线", s1, "2026-09-29", "2026-09-30 09:10")
    p.expect("ARCHIVE_OVERDUE", LINE, "commissioned Tue 2026-09-29, deadline 2026-10-12 (National Day), not in marketing", t)
    t = p.pole("pending:transformer", "王庄村2号公变", l3, "2026-11-17", 200, "2026-11-18 10:05")
    p.expect("ARCHIVE_PENDING", TR, "commissioned Tue 2026-11-17, deadline 2026-11-24: 2 working days left", t)
    t = p.pole("pending:deadline-today", "王庄村3号公变", l3, "2026-11-13", 200, "2026-11-16 09:00")
    p.expect("ARCHIVE_PENDING", TR, "commissioned Fri 2026-11-13, deadline 2026-11-20 = as_of: 0 working days left", t)
    p.expect_none("ARCHIVE_OVERDUE", TR, "deadline day = as_of is not overdue yet", t)

    # ARCHIVE_LATE, and the calendar cases that are on time.
    t = p.indoor("late:marketing", "明湖小区1#公变", l1, "2026-09-29", 400, "2026-09-30 11:00")
    m = p.g_tran(t, "明湖小区1#公变", l1m, "2026-09-29", "2026-10-13 09:00", 400)
    p.expect("ARCHIVE_LATE", TR, "commissioned 2026-09-29, deadline 2026-10-12, marketing created 2026-10-13 09:00", t, m, "marketing")
    t = p.indoor("late:saturday", "明湖小区4#公变", l1, "2026-11-07", 400, "2026-11-09 09:30")
    m = p.g_tran(t, "明湖小区4#公变", l1m, "2026-11-07", "2026-11-16 10:00", 400)
    p.expect("ARCHIVE_LATE", TR, "commissioned Sat 2026-11-07, deadline Fri 2026-11-13, marketing created Mon 2026-11-16 (find_workday(5) would say 11-16)", t, m, "marketing")
    t = p.line("late:pms", "10kV春晖线", s2, "2026-02-13", "2026-02-28 09:30")
    p.g_line(t, "10kV春晖线", s2m, "2026-02-27 16:30")
    p.expect("ARCHIVE_LATE", LINE, "commissioned Fri 2026-02-13, deadline 2026-02-27 (Spring Festival; Sat 02-14 is a make-up day), PMS DJSJ Sat 2026-02-28 09:30", t, field="pms")
    t = p.indoor("ontime:deadline-night", "明湖小区2#公变", l1, "2026-09-29", 400, "2026-10-12 23:30")
    m = p.g_tran(t, "明湖小区2#公变", l1m, "2026-09-29", "2026-10-12 23:30", 400)
    p.expect_none("ARCHIVE_LATE", TR, "commissioned 2026-09-29, DJSJ and CREATE_DATE 2026-10-12 23:30 local = deadline day", t, m)
    t = p.indoor("ontime:saturday", "明湖小区3#公变", l1, "2026-11-07", 400, "2026-11-13 10:00")
    m = p.g_tran(t, "明湖小区3#公变", l1m, "2026-11-07", "2026-11-13 17:45", 400)
    p.expect_none("ARCHIVE_LATE", TR, "commissioned Sat 2026-11-07, archived Fri 2026-11-13 = deadline day", t, m)
    t = p.indoor("ontime:spring-festival", "春晖花园1#公变", l2, "2026-02-13", 630, "2026-02-27 10:00")
    m = p.g_tran(t, "春晖花园1#公变", l2m, "2026-02-13", "2026-02-27 15:00", 630)
    p.expect_none("ARCHIVE_LATE", TR, "commissioned Fri 2026-02-13, archived 2026-02-27 = deadline day (Spring Festival)", t, m)

    # Out of scope, or not in service: nothing to archive.
    t = p.pole("none:retired", "周庄村1号公变", l3, "2024-03-15", 100, "2024-03-16 09:00", YXZT="30")
    p.expect_none("ARCHIVE_OVERDUE", TR, "retired (YXZT 30), never in marketing", t)
    t = p.indoor("none:private", "鲁丰机械厂1#专变", l3, "2026-05-12", 500, SYXZ=PRIVATE_PMS)
    p.expect_none("ARCHIVE_OVERDUE", TR, "private transformer (SYXZ 04), only in PMS: out of scope", t)
    t = p.pole("none:unpublished", "周庄村2号公变", l3, "2026-10-20", 200, FBZT=UNPUBLISHED)
    p.expect_none("ARCHIVE_OVERDUE", TR, "unpublished (FBZT 未发布), not in marketing: out of scope", t)
    t = p.line("none:not-commissioned", "10kV新港线", s2, None, "2026-10-28 14:00", YXZT="10")
    p.expect_none("ARCHIVE_OVERDUE", LINE, "not commissioned (YXZT 10), no TYRQ, not in marketing", t)
    p.expect_none("INVALID_VALUE", LINE, "null TYRQ is valid on a record not in service", t, field="commissioned_on")

    # MISSING_IN_PMS / UNLINKED.
    m = p.g_tran(GHOST_TRANSFORMER, "李家庄村1号公变", l3m, "2026-06-10", "2026-06-11 10:00", 200)
    p.expect("MISSING_IN_PMS", TR, "PMS_EQUIP_ID is a GUID no PMS row has", GHOST_TRANSFORMER, m)
    t = p.pole("missing:unpublished", "李家庄村2号公变", l3, "2026-07-08", 200, FBZT=UNPUBLISHED)
    m = p.g_tran(t, "李家庄村2号公变", l3m, "2026-07-08", "2026-07-09 10:00", 200)
    p.expect("MISSING_IN_PMS", TR, "linked PMS transformer is unpublished (FBZT 未发布), so out of scope", t, m)
    t = p.pole("unlinked:null", "张庄村1号公变", l3, "2026-08-18", 200, "2026-08-18 17:00")
    m = p.g_tran(None, "张庄村1号公变", l3m, "2026-08-18", "2026-08-20 09:30", 200)
    p.expect("UNLINKED", TR, "PMS_EQUIP_ID null; candidate: the PMS twin of the same name, org and voltage", mkt_id=m)
    p.expect("ARCHIVE_OVERDUE", TR, "the UNLINKED record's PMS twin: commissioned 2026-08-18, deadline 2026-08-25, no linked record", t)
    t = p.pole("unlinked:blank-twin", "张庄村2号公变", l3, "2026-08-04", 200)
    p.g_tran(t, "张庄村2号公变", l3m, "2026-08-04", "2026-08-06 10:00", 200)
    m = p.g_tran("   ", "张庄村2号公变", l3m, "2026-08-04", "2026-08-07 15:00", 200)
    p.expect("UNLINKED", TR, "PMS_EQUIP_ID '   ' (whitespace only); its PMS twin is linked to another record", mkt_id=m)

    # ATTR_MISMATCH: one linked pair per field.
    t = p.indoor("mismatch:name", "城东小区1#公变", l1, "2025-06-09", 400)
    m = p.g_tran(t, "城东小区2#公变", l1m, "2025-06-09", "2025-06-11 10:00", 400)
    p.expect("ATTR_MISMATCH", TR, "name 城东小区1#公变 (PMS) vs 城东小区2#公变 (marketing)", t, m, "name")
    t = p.indoor("mismatch:name-normalised", "城东小区3号公变", l1, "2025-06-09", 400)
    m = p.g_tran(t, "城东小区３#公变 ", l1m, "2025-06-09", "2025-06-11 10:30", 400)
    p.expect_none("ATTR_MISMATCH", TR, "name 城东小区3号公变 vs '城东小区３#公变 ': equal once normalised", t, m, "name")
    t = p.indoor("mismatch:voltage", "锦绣花园1#公变", l2, "2025-07-14", 500)
    m = p.g_tran(t, "锦绣花园1#公变", l2m, "2025-07-14", "2025-07-15 10:00", 500, FRSTSIDE_VOLT_CODE=MKT_VOLT[20])
    p.expect("ATTR_MISMATCH", TR, "voltage PMS DYDJ 22 (10kV) vs marketing AC00201 (20kV)", t, m, "voltage_kv")
    t = p.indoor("mismatch:capacity", "锦绣花园2#公变", l2, "2025-07-14", 400)
    m = p.g_tran(t, "锦绣花园2#公变", l2m, "2025-07-14", "2025-07-15 10:20", 315)
    p.expect("ATTR_MISMATCH", TR, "capacity PMS EDRL 400 kVA vs marketing PLATE_CAP 315 kVA", t, m, "capacity_kva")
    t = p.indoor("mismatch:org", "锦绣花园3#公变", l2, "2025-07-14", 630)
    m = p.g_tran(t, "锦绣花园3#公变", l2m, "2025-07-14", "2025-07-15 10:40", 630, ORG_NO=COUNTY_B)
    p.expect("ATTR_MISMATCH", TR, f"org PMS unit of {COUNTY_A} vs marketing ORG_NO {COUNTY_B}", t, m, "org_code")
    t = p.indoor("mismatch:status", "锦绣花园4#公变", l2, "2025-07-14", 630)
    m = p.g_tran(t, "锦绣花园4#公变", l2m, "2025-07-14", "2025-07-15 11:00", 630, RUN_STATUS_CODE="00")
    p.expect("ATTR_MISMATCH", TR, "status PMS 20 (in service) vs marketing 00 (stopped)", t, m, "status")
    t = p.indoor("mismatch:parent", "锦绣花园5#公变", l1, "2025-07-14", 630)
    m = p.g_tran(t, "锦绣花园5#公变", l2m, "2025-07-14", "2025-07-15 11:20", 630)
    p.expect("ATTR_MISMATCH", TR, "parent PMS SSDKX 10kV城东Ⅰ线 vs marketing 台区 under 10kV城东Ⅱ线", t, m, "parent")
    t = p.substation("mismatch:substation-capacity", "110kV高新变电站", 110, 100000, "2025-03-18")
    m = p.g_subs(t, "110kV高新变电站", 110, 80000, "2025-03-19 14:00")
    p.expect("ATTR_MISMATCH", SUB, "capacity PMS ZBRL 2×50000 kVA vs marketing MT_CAP 2×40000 kVA", t, m, "capacity_kva")
    t = p.line("mismatch:line-parent", "10kV开元线", s1, "2025-04-15")
    m = p.g_line(t, "10kV开元线", s2m, "2025-04-16 10:00")
    p.expect("ATTR_MISMATCH", LINE, "parent PMS QSDZ 110kV城东变电站 vs marketing G_SUBS_LINE_RELA 35kV王庄变电站", t, m, "parent")

    # DUPLICATE_LINK / DUPLICATE_ID.
    t = p.indoor("duplicate-link", "东关社区1#公变", l1, "2025-09-22", 500)
    for created in ("2025-09-23 10:00", "2025-09-24 15:00"):
        m = p.g_tran(t, "东关社区1#公变", l1m, "2025-09-22", created, 500)
        p.expect("DUPLICATE_LINK", TR, "two marketing transformers carry the same PMS_EQUIP_ID", t, m)
    t = p.indoor("duplicate-id", "西关社区1#公变", l1, "2025-10-09", 500)
    p.pole("duplicate-id", "西关社区1#公变", l1, "2025-10-09", 500)
    m = p.g_tran(t, "西关社区1#公变", l1m, "2025-10-09", "2025-10-10 10:00", 500)
    p.expect("DUPLICATE_ID", TR, "OBJ_ID in both T_SB_ZNYC_PDBYQ and T_SB_ZWYC_ZSBYQ", t)
    p.expect_none("MISSING_IN_PMS", TR, "marketing record pointing at a duplicated PMS id is linked", t, m)

    # PARENT_MISSING.
    t = p.line("parent-missing:pms", "10kV鹊华线", GHOST_SUBSTATION, "2025-05-20")
    p.g_line(t, "10kV鹊华线", s1m, "2025-05-21 10:00")
    p.expect("PARENT_MISSING", LINE, "PMS QSDZ is a GUID no substation has", t, field="pms")
    t = p.indoor("parent-missing:marketing", "南关社区1#公变", l1, "2025-11-03", 400)
    m = p.g_tran(t, "南关社区1#公变", GHOST_LINE_ID, "2025-11-03", "2025-11-04 10:00", 400)
    p.expect("PARENT_MISSING", TR, f"台区's G_LINE_TG_RELA points at LINE_ID {GHOST_LINE_ID}, not in G_LINE", t, m, "marketing")

    # INVALID_VALUE: each linked to a marketing record that agrees on everything else.
    invalid = [
        ("invalid:voltage", "赵家村1号公变", {"DYDJ": "99"}, "voltage_kv", "PMS DYDJ '99' not in the code list"),
        ("invalid:status", "赵家村2号公变", {"YXZT": "99"}, "status", "PMS YXZT '99' not in the code list"),
        ("invalid:capacity", "赵家村3号公变", {"EDRL": 0}, "capacity_kva", "PMS EDRL 0"),
        ("invalid:name", None, {}, "name", "PMS SBMC null"),
        ("invalid:tyrq-null", "孙家村1号公变", {"TYRQ": None}, "commissioned_on", "in service, PMS TYRQ null"),
        ("invalid:tyrq-future", "孙家村2号公变", {"TYRQ": _day("2026-12-15")}, "commissioned_on", "in service, PMS TYRQ 2026-12-15 after as_of"),
        ("invalid:org", "孙家村3号公变", {"YWDW": GHOST_UNIT}, "org_code", "PMS YWDW not in ST_PMS_YX_DW"),
        ("invalid:parent", "孙家村4号公变", {"SSDKX": None}, "parent", "in service, PMS SSDKX null"),
    ]
    for key, name, over, field, case in invalid:
        t = p.pole(key, name, l3, "2026-11-02", 200, "2026-11-03 10:00", **over)
        p.g_tran(t, name or "赵家村5号公变", l3m, "2026-11-02", "2026-11-04 10:00", 200)
        p.expect("INVALID_VALUE", TR, case, t, field=field)
    t = p.pole("invalid:marketing-capacity", "赵家村4号公变", l3, "2026-11-02", 100, "2026-11-03 10:00")
    m = p.g_tran(t, "赵家村4号公变", l3m, "2026-11-02", "2026-11-04 10:00", -100)
    p.expect("INVALID_VALUE", TR, "marketing PLATE_CAP -100", t, m, "capacity_kva")
    # fmt: on
    return p


def _manifest_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return df.sort_values(MANIFEST_COLUMNS, kind="stable", ignore_index=True)


def planted_manifest() -> pd.DataFrame:
    """The manifest of planted cases, sorted; the same at every scale and seed."""
    return _manifest_frame(_planted().manifest)


# ---------------------------------------------------------------------------------------------
# Writing


def _py(values: Sequence) -> list:
    """One chunk of a column as plain Python values (drivers do not all adapt numpy scalars)."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "M":
            return values.astype(object).tolist()  # datetime64 → date/datetime, NaT → None
        return values.tolist()
    return list(values)


def _row_chunks(batch: Columns | list[dict], keys: list[str]) -> Iterator[list[tuple]]:
    """Rows as tuples in the order of ``keys``, CHUNK_ROWS at a time; a missing column is null."""
    if isinstance(batch, list):
        for i in range(0, len(batch), CHUNK_ROWS):
            yield [tuple(row.get(k) for k in keys) for row in batch[i : i + CHUNK_ROWS]]
        return
    n = len(next(iter(batch.values())))
    for i in range(0, n, CHUNK_ROWS):
        cols = [
            _py(batch[k][i : i + CHUNK_ROWS]) if k in batch else [None] * min(CHUNK_ROWS, n - i)
            for k in keys
        ]
        yield list(zip(*cols))


def _insert_rows(conn: sa.Connection, table: sa.Table, chunks: Iterable[list[tuple]]) -> None:
    """Any database: one executemany per chunk."""
    keys = [c.key for c in table.columns]
    for rows in chunks:
        conn.execute(table.insert(), [dict(zip(keys, row)) for row in rows])


def _copy_rows(conn: sa.Connection, table: sa.Table, chunks: Iterable[list[tuple]]) -> None:
    """PostgreSQL with psycopg: COPY … FROM STDIN on the driver's connection, inside the
    SQLAlchemy transaction; several times faster than executemany."""
    prep = conn.dialect.identifier_preparer
    # The names are the schema module's constants, quoted; no value is pasted into the SQL.
    columns = ", ".join(prep.quote(c.name) for c in table.columns)
    statement = f"COPY {prep.format_table(table)} ({columns}) FROM STDIN"
    dbapi = conn.dialect.loaded_dbapi
    try:
        with conn.connection.driver_connection.cursor() as cursor:
            with cursor.copy(statement) as copy:
                for rows in chunks:
                    for row in rows:
                        copy.write_row(row)
    except dbapi.Error as exc:
        # The driver's own error, as SQLAlchemy would have wrapped it had it run the statement.
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


# Bulk writers by (dialect, driver); anything else inserts with executemany.
_BULK_WRITERS = {("postgresql", "psycopg"): _copy_rows}


def _engine(url: str) -> sa.Engine:
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"invalid database URL {_masked(url)}: {exc}") from exc


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


class _Target:
    """One database being filled: its sample tables dropped and created (indexes last, which is
    faster than maintaining them row by row), then rows appended block by block."""

    def __init__(self, url: str, metadata: sa.MetaData) -> None:
        self.url = url
        self.metadata = metadata
        self.tables = {t.name.upper(): t for t in metadata.tables.values()}
        self.engine = _engine(url)
        dialect = self.engine.dialect
        self.write_rows = _BULK_WRITERS.get((dialect.name, dialect.driver), _insert_rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.ProgrammingError) as exc:
            # Unreachable server, missing database, no permission: the user's to fix, not a bug.
            raise SourceError(
                f"cannot write the sample to {_masked(self.url)}: {exc.orig}"
            ) from exc

    def create(self) -> None:
        with self._transaction() as conn:
            self.metadata.drop_all(conn)
            for table in self.metadata.sorted_tables:
                conn.execute(sa.schema.CreateTable(table))

    def append(self, data: dict[str, Columns | list[dict]]) -> None:
        """Insert ``data`` (by SPEC table name) in one transaction."""
        with self._transaction() as conn:
            for name, batch in data.items():
                table = self.tables[name]
                self.write_rows(conn, table, _row_chunks(batch, [c.key for c in table.columns]))

    def finish(self) -> None:
        with self._transaction() as conn:
            for table in self.metadata.sorted_tables:
                for index in sorted(table.indexes, key=lambda ix: ix.name):
                    index.create(conn)

    def dispose(self) -> None:
        self.engine.dispose()


def _check(scale: str, seed: int) -> None:
    if scale not in SCALES:
        raise ConfigError(f"unknown sample scale {scale!r}; valid scales: {', '.join(SCALES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"sample seed must be a non-negative integer, got {seed!r}")


def _blocks(scale: str, seed: int, planted: _Planter) -> Iterator[tuple[dict, dict]]:
    """The background, one block at a time: (PMS columns per table, marketing columns per table).

    A scale larger than BLOCK_SIZE is drawn as several equal blocks, so memory stays that of one
    block whatever the scale. The first block is drawn from ``seed`` itself, block b from
    (seed, b): small, city and province are one draw from ``seed``, and the first block of
    ``national`` is the province's background.
    """
    totals = SCALES[scale]
    n_blocks = max(math.ceil(n / size) for n, size in zip(totals, BLOCK_SIZE))
    # The scale's counts are totals per system; planted rows come on top of a smaller background.
    n_planted = (
        len(planted.pms["T_SB_ZNYC_DZ"]),
        len(planted.pms["T_SB_ZWYC_XL"]),
        len(planted.pms["T_SB_ZNYC_PDBYQ"]) + len(planted.pms["T_SB_ZWYC_ZSBYQ"]),
    )
    seq = _Sequences()
    for b in range(n_blocks):
        counts = [n // n_blocks + (b < n % n_blocks) for n in totals]
        if b == 0:
            counts = [n - p for n, p in zip(counts, n_planted)]
        rng = np.random.default_rng(seed if b == 0 else [seed, b])
        yield _background(rng, *counts, seq)


def generate(
    pms_url: str,
    marketing_url: str,
    scale: str = "small",
    seed: int = DEFAULT_SEED,
    *,
    lowercase: bool = False,
) -> pd.DataFrame:
    """Create (drop-and-recreate) the PMS2.0 sample tables in pms_url and the SG186 tables in
    marketing_url, fill them deterministically from seed, and return the planted-defect manifest.

    ``lowercase=True`` names every table and column in lower case, as an Oracle schema copied to
    PostgreSQL arrives. Raises ConfigError for an unknown scale, SourceError when a database
    cannot be written; a failed generation leaves the tables partly filled, to be generated again.
    """
    _check(scale, seed)
    planted = _planted()
    o_org, org_map = org_rows()
    with contextlib.ExitStack() as stack:
        pms = _Target(pms_url, pms_metadata(lowercase))
        stack.callback(pms.dispose)
        mkt = _Target(marketing_url, marketing_metadata(lowercase))
        stack.callback(mkt.dispose)
        pms.create()
        mkt.create()
        # Each block is written and let go before the next is drawn. Rows are computed in
        # Python, so the same seed and scale give the same rows on every engine.
        for pms_rows, mkt_rows in _blocks(scale, seed, planted):
            pms.append(pms_rows)
            pms_rows.clear()
            mkt.append(mkt_rows)
            del pms_rows, mkt_rows
        pms.append(planted.pms | {"ST_PMS_YX_DW": org_map})
        mkt.append(planted.mkt | {"O_ORG": o_org})
        pms.finish()
        mkt.finish()
    return _manifest_frame(planted.manifest)


def write_manifest_csv(manifest: pd.DataFrame, path: str | os.PathLike) -> None:
    """planted.csv: UTF-8 with BOM (Excel opens the Chinese text), '\\n' line ends, no index."""
    manifest.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\n")


def write_sqlite_pair(
    out_dir: str | os.PathLike, scale: str = "small", seed: int = DEFAULT_SEED
) -> pd.DataFrame:
    """Writes out_dir/pms.sqlite, out_dir/marketing.sqlite and out_dir/planted.csv (UTF-8 with
    BOM), returns the manifest. Existing files are replaced, not merged into."""
    if scale not in SCALES:  # fail before touching any file
        raise ConfigError(f"unknown sample scale {scale!r}; valid scales: {', '.join(SCALES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.sqlite" for name in ("pms", "marketing")}
    for path in paths.values():
        # A fresh file, so the database holds nothing but the sample (and no freelist pages).
        for stale in (path, path.with_name(path.name + "-journal")):
            stale.unlink(missing_ok=True)
    manifest = generate(
        f"sqlite:///{paths['pms'].resolve().as_posix()}",
        f"sqlite:///{paths['marketing'].resolve().as_posix()}",
        scale,
        seed,
    )
    write_manifest_csv(manifest, out / "planted.csv")
    return manifest
