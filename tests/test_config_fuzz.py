"""Malformed config, mapping and calendar files, generated (hypothesis): broken TOML, unknown keys,
wrong types, out-of-range values. Every one exits 2 with one line on stderr that names the file
and the key, never a traceback, and no run is written.

The CLI is called in-process (in_process.py: the console entry point itself), so a few hundred
cases take seconds. Each generated file starts from a valid one (checked by the first test) and
changes exactly one thing.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import re
import shutil
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from in_process import Outcome, gridrecon, toml_document
from sqlalchemy.engine import make_url
from tiny_grid import AS_OF, Grid

from gridrecon.checks.validity import CHECK_NAMES
from gridrecon.sample_data.schema import marketing_metadata, pms_metadata

FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)
RUN = ("run", "--as-of", AS_OF.isoformat())
VALIDATE = ("validate",)
SCHEDULE_STATUS = ("schedule", "status")
CALENDAR = ("calendar", "--year", "2026")


def escaped(key: str) -> str:
    """A key as a one-line message must show it: unprintable characters as escapes."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in key)


def assert_refused(outcome: Outcome, file: Path, *needles: str) -> None:
    """Exit 2, one line on stderr, naming the file and every needle; nothing on stdout."""
    seen = (outcome.code, outcome.stdout[-300:], outcome.stderr[-600:])
    assert outcome.code == 2, seen
    assert "Traceback" not in outcome.stderr and outcome.stdout == "", seen
    assert outcome.stderr.endswith("\n") and outcome.stderr.count("\n") == 1, seen
    assert outcome.stderr.startswith("gridrecon: error: "), seen
    assert str(file) in outcome.stderr, seen
    assert "s3cr3t" not in outcome.stderr + outcome.stdout, seen  # a URL's password
    for needle in needles:
        assert needle in outcome.stderr, (needle, seen)


def write_document(path: Path, doc: dict[str, Any]) -> None:
    text = toml_document(doc)
    # the file says exactly what the test means (nan compares unequal, so compare as JSON)
    as_json = json.dumps(tomllib.loads(text), default=str, sort_keys=True)
    assert as_json == json.dumps(doc, default=str, sort_keys=True), text
    path.write_text(text, encoding="utf-8")


Path_ = tuple[str | int, ...]


def shown_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += (
            f"[{part}]"
            if isinstance(part, int)
            else (f".{escaped(part)}" if out else escaped(part))
        )
    return out


def changed(doc: dict[str, Any], path: Path_, value: Any = ..., delete: bool = False) -> dict:
    doc = copy.deepcopy(doc)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


# -- values -----------------------------------------------------------------------------------

characters = st.characters(blacklist_categories=("Cs",))  # no lone surrogates: files are UTF-8
texts = st.text(characters, max_size=24)
keys = st.text(characters, min_size=1, max_size=24)
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
    texts,
    st.dates(),
    st.datetimes(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)


def outside(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=-(2**63), max_value=low - 1) | st.integers(
        min_value=high + 1, max_value=2**63 - 1
    )


def _is_zone(text: str) -> bool:
    try:
        ZoneInfo(text)
    except Exception:  # noqa: BLE001  (any refusal: not a zone)
        return False
    return True


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_database_url(text: str) -> bool:
    try:
        make_url(text).get_dialect()
    except Exception:  # noqa: BLE001
        return False
    return True


def not_in(*allowed: str) -> st.SearchStrategy[str]:
    return texts.filter(lambda t: t not in allowed)


# names that are no file, including what the file system itself refuses
missing_files = st.one_of(
    st.sampled_from(["nowhere.toml", "~nobody-here/x.toml", "x" * 300 + ".toml", "dir/", "a\x00b"]),
    texts.filter(lambda t: t.strip() and t not in ("pms2", "sg186")).map(lambda t: f"no-{t}"),
)
zones = st.one_of(
    st.sampled_from(["Asia", "Asia/", "x" * 300, "../etc", "/etc/localtime", "Mars/Olympus"]),
    texts,
).filter(lambda t: not _is_zone(t))
severities = not_in("info", "warning", "error")
unset_variables = texts.map(lambda t: t.replace("$", "") + "${GRIDRECON_FUZZ_UNSET}")

_CRON_BAD_FIELD = [
    st.sampled_from(["60", "99", "-1", "*/0", "a", "1-", "5-1"]),  # minute
    st.sampled_from(["24", "25", "-1", "x"]),  # hour
    st.sampled_from(["0", "32", "L1", "?"]).filter(lambda v: v != "?"),  # day of month
    st.sampled_from(["0", "13", "jan-", "x"]),  # month
    st.sampled_from(["8", "9", "sunday-", "mon-sun/0", "x"]),  # weekday
]


@st.composite
def bad_crons(draw) -> str:
    kind = draw(st.sampled_from(["count", "field", "both days"]))
    if kind == "count":
        count = draw(st.sampled_from([1, 2, 3, 4, 7, 8]))
        return " ".join(draw(st.sampled_from(["*", "0", "1", "*/5"])) for _ in range(count))
    if kind == "both days":  # crontab runs on either, the scheduler would need both: refused
        return "0 2 1 * 1"
    fields = ["0", "2", "*", "*", "*"]
    index = draw(st.integers(0, 4))
    fields[index] = draw(_CRON_BAD_FIELD[index])
    return " ".join(fields)


# -- the valid world every case changes one thing of ------------------------------------------

BUILTIN = resources.files("gridrecon.connectors.mappings")
HOLIDAYS = {
    "2027": {
        "holidays": ["2027-01-01", "2027-02-06..2027-02-12"],
        "workdays": ["2027-02-14"],  # a Sunday
    }
}


@dataclass(repr=False)  # a falsifying example prints the generated value, not the world
class World:
    folder: Path
    config: Path
    config_doc: dict[str, Any]
    pms: Path
    pms_doc: dict[str, Any]
    marketing: Path
    marketing_doc: dict[str, Any]
    holidays: Path

    def __repr__(self) -> str:
        return f"World({self.folder})"

    def reset(self) -> None:
        write_document(self.config, self.config_doc)
        write_document(self.pms, self.pms_doc)
        write_document(self.marketing, self.marketing_doc)
        write_document(self.holidays, HOLIDAYS)

    def runs_written(self) -> list[str]:
        reports = self.folder / "reports"
        return sorted(p.name for p in reports.iterdir()) if reports.exists() else []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("fuzz")
    Grid(folder).write()
    pms_doc = tomllib.loads((BUILTIN / "pms2.toml").read_text(encoding="utf-8"))
    marketing_doc = tomllib.loads((BUILTIN / "sg186.toml").read_text(encoding="utf-8"))
    # every field option in use somewhere, so each can be broken
    columns = pms_doc["substation"]["columns"]
    columns["name"] = {"column": "BDZMC", "encoding": "gbk"}
    columns["capacity_kva"] = {"column": "ZBRL", "scale": 1}
    columns["commissioned_on"] = {"column": "TYRQ", "format": "%Y-%m-%d"}
    config_doc = {
        "timezone": "Asia/Shanghai",
        "pms": {
            "url": "sqlite:///pms.sqlite",
            "mapping": "pms.toml",
            "chunk_size": 1000,
            "reader": "auto",
            "statement_timeout": 600,
            "retries": 2,
            "retry_delay": 0.5,
        },
        "marketing": {"url": "sqlite:///marketing.sqlite", "mapping": "marketing.toml"},
        "state": {"url": "sqlite:///state.sqlite", "min_row_share": 0.5},
        "report": {"dir": "reports"},
        "calendar": {"overrides": "holidays.toml"},
        "rules": {
            "deadline_working_days": 5,
            "timeliness_since": "2024-01-01",
            "metrics_period": "year",
            "unlinked_candidates": 3,
            "owners": {"pms": "运检", "marketing": "营销"},
            "tolerance": {"capacity_kva": 0.5},
            "validity": {"checks": list(CHECK_NAMES), "future_tolerance_days": 0},
            "ARCHIVE_LATE": {
                "enabled": True,
                "severity": "warning",
                "owner": "营销",
                "deadline_working_days": 5,
            },
            "UNLINKED": {"severity": "info"},
        },
        "plan": {"max_run_age_days": 3},
        "incremental": {"enabled": False, "lag_minutes": 60, "full_sweep_days": 7},
        "schedule": {
            "cron": "0 2 * * *",
            "timezone": "Asia/Shanghai",
            "misfire_grace_seconds": 3600,
            "log_file": "gridrecon.log",
            "log_max_bytes": 1_048_576,
            "log_backups": 3,
            "on_failure": [shutil.which("true") or "/bin/true"],
            "on_findings": [shutil.which("true") or "/bin/true", "--quiet"],
            "on_findings_min_severity": "error",
            "hook_timeout_seconds": 60,
        },
    }
    made = World(
        folder=folder,
        config=folder / "gridrecon.toml",
        config_doc=config_doc,
        pms=folder / "pms.toml",
        pms_doc=pms_doc,
        marketing=folder / "marketing.toml",
        marketing_doc=marketing_doc,
        holidays=folder / "holidays.toml",
    )
    made.reset()
    return made


def refused_by_all(world: World, commands: list[tuple[str, ...]], file: Path, *needles: str):
    before = world.runs_written()
    for command in commands:
        assert_refused(gridrecon(*command, "--config", str(world.config)), file, *needles)
    assert world.runs_written() == before


def test_the_files_every_case_starts_from_are_valid(world: World) -> None:
    world.reset()
    for command in (VALIDATE, RUN, SCHEDULE_STATUS, CALENDAR):
        outcome = gridrecon(*command, "--config", str(world.config))
        assert outcome.code == 0, (command, outcome)
    assert len(world.runs_written()) == 2  # the run and latest


# -- broken TOML --------------------------------------------------------------------------------

BREAKERS = ["[", "]", "=", '"', "'", "{", "}", ",", "\\", "\n[", "\n=", "\n]]", "\x01", '"""']


@st.composite
def broken_text(draw, valid: str) -> str:
    kind = draw(st.sampled_from(["insert", "delete", "truncate", "duplicate line", "nest"]))
    if kind == "nest":
        depth = draw(st.integers(2_000, 5_000))
        return valid + "deep = " + "[" * depth + "]" * depth + "\n"
    if kind == "duplicate line":
        lines = valid.splitlines(keepends=True)
        at = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[: at + 1] + lines[at:])
    at = draw(st.integers(0, len(valid)))
    if kind == "insert":
        return valid[:at] + draw(st.sampled_from(BREAKERS)) + valid[at:]
    if kind == "truncate":
        return valid[:at]
    end = draw(st.integers(at, min(len(valid), at + 12)))
    return valid[:at] + valid[end:]


def _parses(text: str) -> bool:
    try:
        tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return False
    return True


@FUZZ
@given(data=st.data(), which=st.sampled_from(["config", "pms", "marketing", "holidays"]))
def test_broken_toml_exits_two_naming_the_file(world: World, data, which: str) -> None:
    world.reset()
    file = {"config": world.config, "pms": world.pms, "marketing": world.marketing}.get(
        which, world.holidays
    )
    text = data.draw(broken_text(file.read_text(encoding="utf-8")))
    assume(not _parses(text))
    file.write_text(text, encoding="utf-8")
    commands = [CALENDAR, RUN] if which == "holidays" else [VALIDATE, RUN]
    refused_by_all(world, commands, file, "not valid TOML")


@pytest.mark.parametrize("which", ["config", "pms", "holidays"])
def test_a_file_that_is_not_utf8_exits_two_and_a_byte_order_mark_is_fine(
    world: World, which: str
) -> None:
    world.reset()
    file = {"config": world.config, "pms": world.pms, "holidays": world.holidays}[which]
    commands = [CALENDAR, RUN] if which == "holidays" else [VALIDATE, RUN]
    text = file.read_text(encoding="utf-8")
    file.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # what Windows Notepad saves
    assert gridrecon(*VALIDATE, "--config", str(world.config)).code == 0
    file.write_bytes(text.replace("Asia", "亚洲").encode("gbk") + "# 注释\n".encode("gbk"))
    refused_by_all(world, commands, file, "UTF-8")


# -- the config file --------------------------------------------------------------------------

SOURCE_KEYS = {"url", "mapping", "schema", "chunk_size", "reader", "statement_timeout"}
SOURCE_KEYS |= {"retries", "retry_delay"}
RULE_IDS = {
    "ARCHIVE_OVERDUE",
    "ARCHIVE_PENDING",
    "ARCHIVE_LATE",
    "MISSING_IN_PMS",
    "UNLINKED",
    "ATTR_MISMATCH",
    "DUPLICATE_LINK",
    "DUPLICATE_ID",
    "PARENT_MISSING",
    "INVALID_VALUE",
}
CONFIG_TABLES: dict[Path_, set[str]] = {
    (): {"timezone", "pms", "marketing", "state", "report", "calendar", "rules", "schedule"}
    | {"plan", "incremental"},
    ("pms",): SOURCE_KEYS,
    ("marketing",): SOURCE_KEYS,
    ("state",): {"url", "min_row_share"},
    ("report",): {"dir"},
    ("calendar",): {"overrides"},
    ("rules",): {
        "deadline_working_days",
        "owners",
        "tolerance",
        "timeliness_since",
        "metrics_period",
        "unlinked_candidates",
        "validity",
        *RULE_IDS,
    },
    ("rules", "owners"): {"pms", "marketing"},
    ("rules", "tolerance"): {"voltage_kv", "capacity_kva"},
    ("rules", "validity"): {"checks", "future_tolerance_days"},
    ("rules", "ARCHIVE_LATE"): {"enabled", "severity", "owner", "deadline_working_days"},
    ("rules", "UNLINKED"): {"enabled", "severity", "owner"},
    ("plan",): {"template", "staging_url", "max_run_age_days"},
    ("incremental",): {"enabled", "lag_minutes", "full_sweep_days", "snapshot_dir"},
    ("schedule",): {
        "cron",
        "timezone",
        "misfire_grace_seconds",
        "log_file",
        "log_max_bytes",
        "log_backups",
        "on_failure",
        "on_findings",
        "on_findings_min_severity",
        "hook_timeout_seconds",
    },
}


def config_commands(path: Path_) -> list[tuple[str, ...]]:
    # a run does not need the cron expression; validate and the scheduler check it
    return [VALIDATE, SCHEDULE_STATUS] if path == ("schedule", "cron") else [VALIDATE, RUN]


@FUZZ
@given(table=st.sampled_from(sorted(CONFIG_TABLES)), key=keys, value=values)
def test_an_unknown_config_key_exits_two_naming_it(
    world: World, table: Path_, key: str, value: Any
) -> None:
    assume(key not in CONFIG_TABLES[table])
    world.reset()
    write_document(world.config, changed(world.config_doc, (*table, key), value))
    refused_by_all(world, [VALIDATE, RUN], world.config, f"'{shown_path((*table, key))}")


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


ACCEPTS = {
    "text": lambda v: isinstance(v, str),
    "whole": _whole,
    "number": _number,
    "bool": lambda v: isinstance(v, bool),
    "texts": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "table": lambda v: isinstance(v, dict),
    "date": lambda v: isinstance(v, str) or type(v) is dt.date,
}
CONFIG_TYPES: dict[Path_, str] = {
    ("timezone",): "text",
    ("pms",): "table",
    ("pms", "url"): "text",
    ("pms", "mapping"): "text",
    ("pms", "schema"): "text",
    ("pms", "chunk_size"): "whole",
    ("pms", "reader"): "text",
    ("pms", "statement_timeout"): "whole",
    ("pms", "retries"): "whole",
    ("pms", "retry_delay"): "number",
    ("marketing",): "table",
    ("marketing", "url"): "text",
    ("state",): "table",
    ("state", "url"): "text",
    ("state", "min_row_share"): "number",
    ("report",): "table",
    ("report", "dir"): "text",
    ("calendar",): "table",
    ("calendar", "overrides"): "text",
    ("rules",): "table",
    ("rules", "deadline_working_days"): "whole",
    ("rules", "timeliness_since"): "date",
    ("rules", "metrics_period"): "text",
    ("rules", "unlinked_candidates"): "whole",
    ("rules", "owners"): "table",
    ("rules", "owners", "pms"): "text",
    ("rules", "tolerance"): "table",
    ("rules", "tolerance", "capacity_kva"): "number",
    ("rules", "validity"): "table",
    ("rules", "validity", "checks"): "texts",
    ("rules", "validity", "future_tolerance_days"): "whole",
    ("rules", "ARCHIVE_LATE"): "table",
    ("rules", "ARCHIVE_LATE", "enabled"): "bool",
    ("rules", "ARCHIVE_LATE", "severity"): "text",
    ("rules", "ARCHIVE_LATE", "owner"): "text",
    ("rules", "ARCHIVE_LATE", "deadline_working_days"): "whole",
    ("plan",): "table",
    ("plan", "template"): "text",
    ("plan", "staging_url"): "text",
    ("plan", "max_run_age_days"): "number",
    ("incremental",): "table",
    ("incremental", "enabled"): "bool",
    ("incremental", "lag_minutes"): "whole",
    ("incremental", "full_sweep_days"): "whole",
    ("incremental", "snapshot_dir"): "text",
    ("schedule",): "table",
    ("schedule", "cron"): "text",
    ("schedule", "timezone"): "text",
    ("schedule", "misfire_grace_seconds"): "whole",
    ("schedule", "log_file"): "text",
    ("schedule", "log_max_bytes"): "whole",
    ("schedule", "log_backups"): "whole",
    ("schedule", "on_failure"): "texts",
    ("schedule", "on_findings"): "texts",
    ("schedule", "on_findings_min_severity"): "text",
    ("schedule", "hook_timeout_seconds"): "whole",
}


@FUZZ
@given(path=st.sampled_from(sorted(CONFIG_TYPES)), value=values)
def test_a_config_value_of_the_wrong_type_exits_two_naming_the_key(
    world: World, path: Path_, value: Any
) -> None:
    assume(not ACCEPTS[CONFIG_TYPES[path]](value))
    world.reset()
    write_document(world.config, changed(world.config_doc, path, value))
    refused_by_all(world, config_commands(path), world.config, f"'{shown_path(path)}")


CONFIG_OUT_OF_RANGE: dict[Path_, st.SearchStrategy] = {
    ("timezone",): zones,
    ("pms", "url"): texts.filter(lambda t: not _is_database_url(t)),
    ("marketing", "url"): st.from_regex(
        r"[a-z]{1,8}(\+[a-z0-9]{1,8})?://u:s3cr3t-pw@h/db", fullmatch=True
    ).filter(lambda t: not _is_database_url(t)),
    ("state", "url"): texts.filter(lambda t: not _is_database_url(t)),
    ("pms", "mapping"): missing_files,
    ("marketing", "mapping"): missing_files,
    ("pms", "chunk_size"): outside(100, 10_000_000),
    ("pms", "reader"): not_in("auto", "generic"),
    ("pms", "statement_timeout"): outside(0, 7 * 86_400),
    ("pms", "retries"): outside(0, 20),
    ("pms", "retry_delay"): st.floats().filter(lambda x: not 0 <= x <= 600),
    ("plan", "max_run_age_days"): st.floats().filter(lambda x: not x > 0 or math.isinf(x)),
    ("plan", "staging_url"): texts.filter(lambda t: not _is_database_url(t)),
    ("incremental", "lag_minutes"): outside(0, 7 * 24 * 60),
    ("incremental", "full_sweep_days"): outside(1, 366),
    ("state", "min_row_share"): st.floats().filter(lambda x: not 0 <= x <= 1),
    ("calendar", "overrides"): missing_files,
    ("rules", "deadline_working_days"): outside(1, 60),
    ("rules", "timeliness_since"): texts.filter(lambda t: not _is_date(t)),
    ("rules", "metrics_period"): not_in("year", "month", "all"),
    ("rules", "unlinked_candidates"): outside(0, 20),
    ("rules", "owners", "pms"): st.sampled_from(["", " ", "\t", "\u3000", "\n "]),
    ("rules", "tolerance", "capacity_kva"): st.floats(max_value=-1e-9)
    | st.sampled_from([math.nan, math.inf]),
    ("rules", "validity", "checks"): st.lists(
        texts.filter(lambda t: t not in CHECK_NAMES), min_size=1, max_size=3
    ),
    ("rules", "validity", "future_tolerance_days"): outside(0, 3650),
    ("rules", "ARCHIVE_LATE", "severity"): severities,
    ("rules", "ARCHIVE_LATE", "deadline_working_days"): outside(1, 60),
    ("schedule", "cron"): bad_crons(),
    ("schedule", "timezone"): zones,
    ("schedule", "misfire_grace_seconds"): outside(1, 366 * 86_400),
    ("schedule", "log_max_bytes"): outside(1024, 2**40),
    ("schedule", "log_backups"): outside(0, 1000),
    ("schedule", "hook_timeout_seconds"): outside(1, 86_400),
    ("schedule", "on_failure"): st.just([]) | st.lists(st.sampled_from(["", " "]), min_size=1),
    ("schedule", "on_findings_min_severity"): severities,
}
# any text value may name an environment variable; an unset one is an error, not ""
TEXT_KEYS = [path for path, kind in CONFIG_TYPES.items() if kind == "text"]


@FUZZ
@given(data=st.data(), path=st.sampled_from(sorted(CONFIG_OUT_OF_RANGE)))
def test_a_config_value_out_of_range_exits_two_naming_the_key(
    world: World, data, path: Path_
) -> None:
    value = data.draw(CONFIG_OUT_OF_RANGE[path], label="value")
    world.reset()
    write_document(world.config, changed(world.config_doc, path, value))
    refused_by_all(world, config_commands(path), world.config, f"'{shown_path(path)}")


@FUZZ
@given(path=st.sampled_from(TEXT_KEYS), value=unset_variables)
def test_an_unset_environment_variable_exits_two_naming_key_and_variable(
    world: World, path: Path_, value: str
) -> None:
    world.reset()
    write_document(world.config, changed(world.config_doc, path, value))
    refused_by_all(
        world, config_commands(path), world.config, f"'{shown_path(path)}", "GRIDRECON_FUZZ_UNSET"
    )


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        (("pms",), "[pms]"),
        (("marketing",), "[marketing]"),
        (("pms", "url"), "'pms.url'"),
        (("marketing", "url"), "'marketing.url'"),
    ],
)
def test_a_missing_config_section_or_key_exits_two_naming_it(
    world: World, path: Path_, needle: str
) -> None:
    world.reset()
    write_document(world.config, changed(world.config_doc, path, delete=True))
    refused_by_all(world, [VALIDATE, RUN], world.config, needle)


# -- mapping files ----------------------------------------------------------------------------

FIELDS = {
    "source_id",
    "pms_id",
    "name",
    "voltage_kv",
    "capacity_kva",
    "org_code",
    "status",
    "commissioned_on",
    "recorded_at",
    "updated_at",
}
ROOT_KEYS = {"system", "description", "codes", "org_map", "org_tree"}
ROOT_KEYS |= {"substation", "line", "transformer"}
ASSET_KEYS = {"tables", "columns", "absent", "parent"}
FIELD_OPTIONS = {"column", "codes", "org_map", "scale", "format", "encoding"}
# (which file, path of a table) -> the keys allowed there
MAPPING_TABLES: dict[tuple[str, Path_], set[str]] = {
    ("pms", ()): ROOT_KEYS,
    ("pms", ("org_map",)): {"table", "key", "value", "where", "database", "csv"},
    ("pms", ("substation",)): ASSET_KEYS,
    ("pms", ("substation", "columns")): FIELDS,
    ("pms", ("substation", "columns", "voltage_kv")): FIELD_OPTIONS,
    ("pms", ("substation", "tables", 0)): {"table", "where", "columns"},
    ("pms", ("line", "parent")): {"column", "via"},
    ("pms", ("transformer", "tables", 1)): {"table", "where", "columns"},
    ("marketing", ()): ROOT_KEYS,
    ("marketing", ("org_tree",)): {"table", "code", "name", "parent", "where"},
    ("marketing", ("line",)): ASSET_KEYS,
    ("marketing", ("line", "parent", "via", 0)): {"table", "from", "to", "where"},
    ("marketing", ("transformer", "columns", "status")): FIELD_OPTIONS,
}


def _where_value(v: Any) -> bool:
    def one(x: Any) -> bool:
        return isinstance(x, str) or (_number(x) and math.isfinite(x))

    return one(v) or (isinstance(v, list) and bool(v) and all(one(x) for x in v))


ACCEPTS |= {
    "field": lambda v: isinstance(v, (str, dict)),
    "code": lambda v: isinstance(v, str) or (_number(v) and math.isfinite(v)),
    "where value": _where_value,
    "tables": lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v),
    "hops": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
}
MAPPING_TYPES: dict[tuple[str, Path_], str] = {
    ("pms", ("system",)): "text",
    ("pms", ("description",)): "text",
    ("pms", ("codes",)): "table",
    ("pms", ("codes", "voltage")): "table",
    ("pms", ("codes", "voltage", "22")): "code",
    ("pms", ("org_map",)): "table",
    ("pms", ("org_map", "table")): "text",
    ("pms", ("org_map", "key")): "text",
    ("pms", ("substation",)): "table",
    ("pms", ("substation", "tables")): "tables",
    ("pms", ("substation", "tables", 0)): "table",
    ("pms", ("substation", "tables", 0, "table")): "text",
    ("pms", ("substation", "tables", 0, "where")): "table",
    ("pms", ("substation", "tables", 0, "where", "FBZT")): "where value",
    ("pms", ("substation", "absent")): "texts",
    ("pms", ("substation", "columns")): "table",
    ("pms", ("substation", "columns", "source_id")): "field",
    ("pms", ("substation", "columns", "voltage_kv", "column")): "text",
    ("pms", ("substation", "columns", "voltage_kv", "codes")): "text",
    ("pms", ("substation", "columns", "org_code", "org_map")): "bool",
    ("pms", ("substation", "columns", "capacity_kva", "scale")): "number",
    ("pms", ("substation", "columns", "commissioned_on", "format")): "text",
    ("pms", ("substation", "columns", "name", "encoding")): "text",
    ("pms", ("line", "parent")): "table",
    ("pms", ("line", "parent", "column")): "text",
    ("pms", ("transformer", "tables", 1, "where", "SYXZ")): "where value",
    ("marketing", ("org_tree",)): "table",
    ("marketing", ("org_tree", "name")): "text",
    ("marketing", ("line", "parent", "via")): "hops",
    ("marketing", ("line", "parent", "via", 0)): "table",
    ("marketing", ("line", "parent", "via", 0, "from")): "text",
    ("marketing", ("transformer", "tables", 0, "where", "PUB_PRIV_FLAG")): "where value",
}
_BAD_FORMATS = ["%Q", "%", "%-d", "%s", "%G", "%Y%Y", "%f%f", "%Y%"]
_HOP = {"table": "G_SUBS_LINE_RELA", "from": "LINE_ID", "to": "SUBS_ID"}
MAPPING_OUT_OF_RANGE: dict[tuple[str, Path_], st.SearchStrategy] = {
    ("pms", ("system",)): not_in("pms"),
    ("pms", ("codes", "status", "20")): not_in("in_service", "not_commissioned", "retired", "other")
    | st.floats(),
    ("pms", ("codes", "voltage", "22")): texts | st.sampled_from([math.nan, math.inf]),
    ("pms", ("substation", "columns", "capacity_kva", "scale")): st.floats(max_value=0)
    | st.sampled_from([math.nan, math.inf, -math.inf]),
    ("pms", ("substation", "columns", "commissioned_on", "format")): st.builds(
        # nothing follows a format ending in a bare "%": text after it would complete a directive
        # ("%" + "A" is %A, a weekday, and a good format)
        lambda before, bad, after: before + bad + ("" if bad.endswith("%") else after),
        texts.map(lambda t: t.replace("%", "")),
        st.sampled_from(_BAD_FORMATS),
        texts.map(lambda t: t.replace("%", "")),
    ),
    ("pms", ("substation", "columns", "name", "encoding")): texts.filter(
        lambda t: not _is_encoding(t)
    ),
    ("pms", ("substation", "columns", "voltage_kv", "codes")): not_in("voltage", "status"),
    ("pms", ("substation", "tables", 0, "where", "FBZT")): st.sampled_from(
        [[], math.nan, [math.inf], ["发布", -math.inf]]
    ),
    ("pms", ("substation", "absent")): texts.filter(lambda t: t not in FIELDS | {"parent"}).map(
        lambda t: ["pms_id", t]
    ),
    ("pms", ("org_map", "database")): not_in("pms", "marketing"),
    ("marketing", ("system",)): not_in("marketing"),
    ("marketing", ("line", "parent", "via")): st.lists(st.just(_HOP), min_size=3, max_size=5),
    ("marketing", ("transformer", "columns", "voltage_kv", "scale")): st.floats(max_value=0),
}


def _is_encoding(text: str) -> bool:
    try:
        b"a".decode(text, "replace")
    except (LookupError, ValueError):
        return False
    return True


def mapping_file(world: World, which: str) -> tuple[Path, dict[str, Any]]:
    return (world.pms, world.pms_doc) if which == "pms" else (world.marketing, world.marketing_doc)


def write_mapping(world: World, which: str, doc: dict[str, Any]) -> Path:
    path, _ = mapping_file(world, which)
    write_document(path, doc)
    return path


@FUZZ
@given(where=st.sampled_from(sorted(MAPPING_TABLES)), key=keys, value=values)
def test_an_unknown_mapping_key_exits_two_naming_it(
    world: World, where: tuple[str, Path_], key: str, value: Any
) -> None:
    which, table = where
    assume(key not in MAPPING_TABLES[where])
    world.reset()
    path = write_mapping(world, which, changed(mapping_file(world, which)[1], (*table, key), value))
    refused_by_all(world, [VALIDATE, RUN], path, f"'{shown_path((*table, key))}")


@FUZZ
@given(where=st.sampled_from(sorted(MAPPING_TYPES)), value=values)
def test_a_mapping_value_of_the_wrong_type_exits_two_naming_the_key(
    world: World, where: tuple[str, Path_], value: Any
) -> None:
    which, key = where
    assume(not ACCEPTS[MAPPING_TYPES[where]](value))
    world.reset()
    path = write_mapping(world, which, changed(mapping_file(world, which)[1], key, value))
    refused_by_all(world, [VALIDATE, RUN], path, f"'{shown_path(key)}")


@FUZZ
@given(data=st.data(), where=st.sampled_from(sorted(MAPPING_OUT_OF_RANGE)))
def test_a_mapping_value_out_of_range_exits_two_naming_the_key(
    world: World, data, where: tuple[str, Path_]
) -> None:
    which, key = where
    value = data.draw(MAPPING_OUT_OF_RANGE[where], label="value")
    world.reset()
    path = write_mapping(world, which, changed(mapping_file(world, which)[1], key, value))
    refused_by_all(world, [VALIDATE, RUN], path, f"'{shown_path(key)}")


# names a database does not have are looked up in its catalogue and refused, whatever they hold
NAMED_IN_DATABASE: list[tuple[str, Path_]] = [
    ("pms", ("substation", "tables", 0, "table")),
    ("pms", ("transformer", "tables", 1, "table")),
    ("pms", ("substation", "columns", "source_id")),
    ("pms", ("substation", "columns", "voltage_kv", "column")),
    ("pms", ("line", "parent", "column")),
    ("pms", ("org_map", "key")),
    ("marketing", ("line", "parent", "via", 0, "table")),
    ("marketing", ("line", "parent", "via", 0, "to")),
    ("marketing", ("org_tree", "name")),
]
sql_names = st.one_of(
    st.sampled_from(
        [
            'x; DROP TABLE "T_SB_ZNYC_DZ"; --',
            "OBJ_ID; DROP TABLE G_TRAN",
            "G_TRAN` WHERE 1=1; --",
            "T_SB_ZNYC_DZ' OR '1'='1",
            "BDZMC /* comment */",
            "OBJ_ID--",
        ]
    ),
    texts.filter(lambda t: t.strip()),
)
DATABASE_NAMES = {
    name.casefold()
    for metadata in (pms_metadata(), marketing_metadata())
    for table in metadata.tables.values()
    for name in (table.name, *(column.name for column in table.columns))
}


@settings(FUZZ, max_examples=30)  # each case reads the database's catalogue
@given(where=st.sampled_from(NAMED_IN_DATABASE), name=sql_names)
def test_a_table_or_column_the_database_does_not_have_exits_two_naming_the_key(
    world: World, where: tuple[str, Path_], name: str
) -> None:
    which, key = where
    assume(name.casefold() not in DATABASE_NAMES)
    # a NUL is refused before the catalogue is asked ("holds a NUL character"), also exit 2
    assume("\x00" not in name)
    world.reset()
    path = write_mapping(world, which, changed(mapping_file(world, which)[1], key, name))
    shown = shown_path(key[:-1] if key[-1] == "column" else key)
    refused_by_all(world, [RUN], path, shown, "does not exist")
    # validate lists every such problem, under the key, and exits 2
    outcome = gridrecon(*VALIDATE, "--config", str(world.config))
    assert outcome.code == 2 and shown in outcome.stdout, outcome


def test_a_mapped_name_holding_a_nul_exits_two_naming_the_key(world: World) -> None:
    world.reset()
    key = ("substation", "tables", 0, "table")
    path = write_mapping(world, "pms", changed(mapping_file(world, "pms")[1], key, "T_SB\x00DZ"))
    refused_by_all(world, [RUN], path, shown_path(key), "NUL character")


@pytest.mark.parametrize(
    ("which", "path", "value", "needle"),
    [
        ("pms", ("system",), None, "'system'"),
        ("pms", ("line",), None, "[line]"),
        ("pms", ("substation", "tables"), None, "'substation.tables'"),
        ("pms", ("substation", "columns", "source_id"), None, "'substation.columns'"),
        ("pms", ("substation", "columns", "name"), None, "'substation.columns'"),
        ("pms", ("substation", "columns", "status"), None, "'substation.columns'"),
        ("pms", ("substation", "columns", "status"), "YXZT", "'substation.columns.status'"),
        ("pms", ("substation", "absent"), ["status"], "'substation.absent'"),
        ("pms", ("substation", "columns", "pms_id"), "OBJ_ID", "'substation.columns.pms_id'"),
        ("pms", ("substation", "parent"), {"column": "X"}, "[substation.parent]"),
        ("pms", ("line", "parent"), None, "[line.parent]"),
        ("pms", ("org_map",), None, "'substation.columns.org_code'"),
        ("pms", ("org_map", "csv"), "units.csv", "[org_map]"),
        ("pms", ("codes", "voltage", " 22"), 10.0, "'codes.voltage. 22'"),
        ("marketing", ("line", "parent", "via", 0, "to"), None, "'line.parent.via[0].to'"),
        ("marketing", ("org_tree", "code"), None, "'org_tree.code'"),
        ("marketing", ("line", "parent", "via"), [], "[line.parent]"),
    ],
)
def test_a_mapping_missing_a_part_or_contradicting_itself_exits_two_naming_it(
    world: World, which: str, path: Path_, value: Any, needle: str
) -> None:
    world.reset()
    _, doc = mapping_file(world, which)
    doc = changed(doc, path, delete=True) if value is None else changed(doc, path, value)
    refused_by_all(world, [VALIDATE, RUN], write_mapping(world, which, doc), needle)


# -- the calendar overrides file ----------------------------------------------------------------


@FUZZ
@given(key=keys, value=values)
def test_a_calendar_override_key_that_is_no_year_table_exits_two_naming_it(
    world: World, key: str, value: Any
) -> None:
    assume(not (re.fullmatch(r"\d{4}", key) and isinstance(value, dict)))
    world.reset()
    write_document(world.holidays, {**HOLIDAYS, key: value})
    refused_by_all(world, [CALENDAR, RUN], world.holidays, f"unexpected {key!r}")


@FUZZ
@given(key=keys, value=values)
def test_an_unknown_key_in_a_calendar_year_exits_two_naming_it(
    world: World, key: str, value: Any
) -> None:
    assume(key not in ("holidays", "workdays"))
    world.reset()
    write_document(world.holidays, {**HOLIDAYS, "2028": {key: value}})
    refused_by_all(world, [CALENDAR, RUN], world.holidays, f"[2028] has unknown key {key!r}")


@FUZZ
@given(which=st.sampled_from(["holidays", "workdays"]), value=values)
def test_a_calendar_override_list_of_the_wrong_type_exits_two_naming_it(
    world: World, which: str, value: Any
) -> None:
    ok_item = lambda v: isinstance(v, str) or type(v) is dt.date  # noqa: E731
    assume(not (isinstance(value, list) and all(ok_item(v) for v in value)))
    world.reset()
    write_document(world.holidays, changed(HOLIDAYS, ("2027", which), value))
    refused_by_all(world, [CALENDAR, RUN], world.holidays, f"[2027] {which}")


def _date_text(text: str) -> bool:
    parts = [p.strip() for p in text.split("..")]
    return len(parts) <= 2 and all(
        re.fullmatch(r"\d{4}-\d{2}-\d{2}", p) and _is_date(p) for p in parts
    )


calendar_items = st.one_of(
    texts.filter(lambda t: not _date_text(t)),  # not a date
    st.sampled_from(["2027-02-30", "2027-13-01", "2027-1-1", "20270101", "2027-01-01.."]),
    st.dates().filter(lambda d: d.year != 2027),  # outside the year
    st.dates(dt.date(2027, 1, 2), dt.date(2027, 12, 31)).map(  # backwards range
        lambda d: f"{d}..{d - dt.timedelta(days=1)}"
    ),
    st.dates(dt.date(2027, 12, 1), dt.date(2027, 12, 31)).map(lambda d: f"{d}..2028-01-03"),
)


@FUZZ
@given(which=st.sampled_from(["holidays", "workdays"]), item=calendar_items)
def test_a_calendar_override_date_out_of_range_exits_two_naming_it(
    world: World, which: str, item: Any
) -> None:
    world.reset()
    write_document(world.holidays, changed(HOLIDAYS, ("2027", which), [item]))
    refused_by_all(world, [CALENDAR, RUN], world.holidays, f"[2027] {which}")


@pytest.mark.parametrize(
    ("workdays", "needle"),
    [
        (["2027-03-03"], "is a Wednesday"),  # a weekday needs no make-up
        (["2027-01-01"], "both as a holiday and a workday"),
    ],
)
def test_a_calendar_override_that_contradicts_itself_exits_two(
    world: World, workdays: list[str], needle: str
) -> None:
    world.reset()
    write_document(world.holidays, changed(HOLIDAYS, ("2027", "workdays"), workdays))
    refused_by_all(world, [CALENDAR, RUN], world.holidays, "[2027]", needle)
