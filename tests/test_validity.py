"""Validity checks on canonical records (INVALID_VALUE, SPEC §6), through real Great Expectations.

Every frame is built by hand in the connectors' canonical shape; each test plants one kind of bad
value and asserts the exact rows find_invalid_values returns for it.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from gridrecon.checks import validity
from gridrecon.checks.validity import (
    CHECK_NAMES,
    RESULT_COLUMNS,
    ValiditySettings,
    find_invalid_values,
)
from gridrecon.connectors.normalize import FRAME_COLUMNS, empty_frame
from gridrecon.core.errors import ConfigError

ZONE = ZoneInfo("Asia/Shanghai")
AS_OF = dt.date(2026, 6, 1)
ALL_FIELDS = frozenset({"voltage_kv", "capacity_kva", "org_code", "status", "commissioned_on"})
LINE_FIELDS = ALL_FIELDS - {"capacity_kva"}  # lines have no capacity in either sample mapping

# A public transformer with nothing wrong with it; tests change what they need.
VALID = {
    "asset_type": "transformer",
    "source_id": "T-1",
    "pms_id": "T-1",
    "name": "河口村1号公变",
    "voltage_kv": 10.0,
    "capacity_kva": 400.0,
    "parent_source_id": "F-1",
    "org_code": "37401",
    "status": "in_service",
    "commissioned_on": pd.Timestamp("2026-03-02"),
    "recorded_at": pd.Timestamp("2026-03-03 09:00", tz=ZONE),
    "updated_at": pd.Timestamp("2026-03-03 09:00", tz=ZONE),
    "name_key": "河口村1#公变",
    "source_table": "T_SB_ZWYC_ZSBYQ",
}


def records(*changes: dict[str, Any], index: list[Any] | None = None) -> pd.DataFrame:
    """A canonical frame, one record per dict of changes to VALID, with the connectors' dtypes."""
    dtypes = empty_frame(ZONE).dtypes
    rows = [{**VALID, **change} for change in changes]
    frame = pd.DataFrame(
        {
            column: pd.Series([row.get(column) for row in rows], dtype=dtypes[column])
            for column in FRAME_COLUMNS
        }
    )
    if index is not None:
        frame.index = index
    return frame


def invalid(
    frame: pd.DataFrame,
    *,
    fields: frozenset[str] = ALL_FIELDS,
    has_parent: bool = True,
    as_of: dt.date = AS_OF,
    settings: ValiditySettings = ValiditySettings(),
) -> list[tuple[Any, ...]]:
    """The result as (row, field, check, reason, value) tuples, None for a missing value."""
    result = find_invalid_values(
        frame,
        asset_type="transformer",
        mapped_fields=fields,
        has_parent=has_parent,
        as_of=as_of,
        settings=settings,
    )
    assert list(result.columns) == RESULT_COLUMNS
    return [
        tuple(None if pd.isna(v) else v for v in row)
        for row in result.itertuples(index=False, name=None)
    ]


@pytest.fixture
def fresh_gx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next call build its GX context and suites anew, as the first call of a run does."""
    monkeypatch.setattr(validity, "_state", None)
    monkeypatch.setattr(validity, "_suites", {})
    monkeypatch.setattr(validity, "_worker", None)  # validated here, not in a worker process


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A validity worker of this test's own, as a run starts; GX unloaded in this process."""
    monkeypatch.setattr(validity, "_state", None)
    monkeypatch.setattr(validity, "_suites", {})
    monkeypatch.setattr(validity, "_worker", None)
    validity.start_worker()
    started = validity._worker
    assert started is not None and started.alive()
    yield started
    started.end()


def test_a_clean_frame_gives_an_empty_result_with_the_result_columns() -> None:
    result = find_invalid_values(
        records({}, {"source_id": "T-2", "status": "retired"}),
        asset_type="transformer",
        mapped_fields=ALL_FIELDS,
        has_parent=True,
        as_of=AS_OF,
    )
    assert result.empty
    assert list(result.columns) == RESULT_COLUMNS
    assert [str(t) for t in result.dtypes] == ["int64", "str", "str", "str", "str"]


def test_an_empty_frame_gives_an_empty_result() -> None:
    result = find_invalid_values(
        empty_frame(ZONE),
        asset_type="line",
        mapped_fields=LINE_FIELDS,
        has_parent=True,
        as_of=AS_OF,
    )
    assert result.empty
    assert list(result.columns) == RESULT_COLUMNS


def test_a_missing_id_and_a_missing_name_are_invalid() -> None:
    frame = records({"source_id": None}, {"source_id": "T-2", "name": None})
    assert invalid(frame) == [
        (0, "source_id", "source_id_not_null", "missing", None),
        (1, "name", "name_not_null", "missing", None),
    ]


def test_a_code_not_in_the_code_list_is_reported_with_its_raw_value() -> None:
    frame = records(
        {"voltage_kv": None, "raw_voltage_kv": "AC09999"},
        {"status": None, "raw_status": "99"},
    )
    assert invalid(frame) == [
        (0, "voltage_kv", "voltage_kv_decoded", "not in code list", "AC09999"),
        (1, "status", "status_decoded", "not in code list", "99"),
    ]


def test_a_null_code_is_missing_on_any_record() -> None:
    frame = records({"voltage_kv": None, "status": "retired"}, {"status": None})
    assert invalid(frame) == [
        (0, "voltage_kv", "voltage_kv_not_null", "missing", None),
        (1, "status", "status_not_null", "missing", None),
    ]


def test_a_unit_not_in_the_org_map_is_reported_with_its_raw_unit() -> None:
    frame = records({"org_code": None, "raw_org_code": "8a8a8a8a01"}, {"org_code": None})
    assert invalid(frame) == [
        (0, "org_code", "org_code_mapped", "not in org map", "8a8a8a8a01"),
        (1, "org_code", "org_code_not_null", "missing", None),
    ]


def test_zero_and_negative_capacities_are_not_positive() -> None:
    frame = records({"capacity_kva": 0.0}, {"capacity_kva": -5.0}, {"capacity_kva": -0.5})
    assert invalid(frame) == [
        (0, "capacity_kva", "capacity_kva_positive", "not positive", "0"),
        (1, "capacity_kva", "capacity_kva_positive", "not positive", "-5"),
        (2, "capacity_kva", "capacity_kva_positive", "not positive", "-0.5"),
    ]


def test_a_capacity_that_is_not_a_number_is_invalid_on_any_record() -> None:
    frame = records({"capacity_kva": None, "raw_capacity_kva": "400kVA", "status": "retired"})
    assert invalid(frame) == [
        (0, "capacity_kva", "capacity_kva_parsed", "not a number", "400kVA"),
    ]


def test_a_missing_capacity_is_invalid_only_in_service() -> None:
    frame = records(
        {"capacity_kva": None},
        {"capacity_kva": None, "status": "retired"},
        {"capacity_kva": None, "status": "not_commissioned"},
    )
    assert invalid(frame) == [(0, "capacity_kva", "capacity_kva_not_null", "missing", None)]


def test_an_unparseable_date_on_a_retired_record_is_invalid() -> None:
    frame = records(
        {"commissioned_on": None, "raw_commissioned_on": "0000-00-00", "status": "retired"}
    )
    assert invalid(frame) == [
        (0, "commissioned_on", "commissioned_on_parsed", "not a date", "0000-00-00"),
    ]


def test_a_missing_date_on_a_retired_record_is_valid_but_not_in_service() -> None:
    frame = records({"commissioned_on": None, "status": "retired"}, {"commissioned_on": None})
    assert invalid(frame) == [(1, "commissioned_on", "commissioned_on_not_null", "missing", None)]


def test_a_future_date_is_invalid_in_service_but_valid_not_commissioned() -> None:
    frame = records(
        {"commissioned_on": pd.Timestamp("2026-06-02")},
        {"commissioned_on": pd.Timestamp("2026-09-01"), "status": "not_commissioned"},
    )
    assert invalid(frame) == [
        (0, "commissioned_on", "commissioned_on_not_future", "in the future", "2026-06-02"),
    ]


def test_a_date_on_as_of_is_valid() -> None:
    assert invalid(records({"commissioned_on": pd.Timestamp(AS_OF)})) == []


def test_a_placeholder_date_far_in_the_future_is_in_the_future() -> None:
    frame = records({"commissioned_on": pd.Timestamp("9999-12-31")})
    assert invalid(frame) == [
        (0, "commissioned_on", "commissioned_on_not_future", "in the future", "9999-12-31"),
    ]


def test_the_future_tolerance_allows_that_many_days_after_as_of() -> None:
    frame = records(
        {"commissioned_on": pd.Timestamp("2026-06-04")},
        {"commissioned_on": pd.Timestamp("2026-06-05")},
    )
    settings = ValiditySettings(future_tolerance_days=3)
    assert invalid(frame, settings=settings) == [
        (1, "commissioned_on", "commissioned_on_not_future", "in the future", "2026-06-05"),
    ]


def test_a_missing_parent_is_invalid_in_service_but_valid_retired() -> None:
    frame = records({"parent_source_id": None}, {"parent_source_id": None, "status": "retired"})
    assert invalid(frame) == [(0, "parent", "parent_not_null", "missing", None)]


def test_the_parent_is_not_checked_for_an_asset_type_without_one() -> None:
    frame = records({"asset_type": "substation", "parent_source_id": None})
    assert invalid(frame, has_parent=False) == []


def test_an_unmapped_field_is_never_checked() -> None:
    # A line: no capacity in the mapping, so the column is entirely null even in service;
    # and a system without commissioning dates has none on any record.
    frame = records({"asset_type": "line", "capacity_kva": None, "commissioned_on": None})
    unmapped = LINE_FIELDS - {"commissioned_on"}
    assert invalid(frame, fields=unmapped) == []
    assert invalid(records({"org_code": None, "raw_org_code": "U9"}), fields=frozenset()) == []


def test_a_record_failing_several_fields_gives_one_row_per_field_in_field_order() -> None:
    frame = records(
        {},
        {
            "source_id": None,
            "voltage_kv": None,
            "raw_voltage_kv": "AC09999",
            "capacity_kva": 0.0,
            "commissioned_on": pd.Timestamp("2027-01-01"),
            "parent_source_id": None,
        },
        {"name": None},
        index=["b", "a", "c"],
    )
    assert invalid(frame) == [
        ("a", "source_id", "source_id_not_null", "missing", None),
        ("a", "voltage_kv", "voltage_kv_decoded", "not in code list", "AC09999"),
        ("a", "capacity_kva", "capacity_kva_positive", "not positive", "0"),
        ("a", "commissioned_on", "commissioned_on_not_future", "in the future", "2027-01-01"),
        ("a", "parent", "parent_not_null", "missing", None),
        ("c", "name", "name_not_null", "missing", None),
    ]


def test_repeated_index_labels_are_reported_for_the_right_record() -> None:
    frame = records({}, {"name": None}, index=[7, 7])
    assert invalid(frame) == [(7, "name", "name_not_null", "missing", None)]


def test_a_switched_off_check_reports_nothing_and_its_nulls_are_not_called_missing() -> None:
    frame = records({"voltage_kv": None, "raw_voltage_kv": "AC09999"}, {"voltage_kv": None})
    settings = ValiditySettings(enabled_checks=frozenset(CHECK_NAMES) - {"voltage_kv_decoded"})
    assert invalid(frame, settings=settings) == [
        (1, "voltage_kv", "voltage_kv_not_null", "missing", None),
    ]
    only_names = ValiditySettings(enabled_checks=frozenset({"name_not_null"}))
    assert invalid(frame, settings=only_names) == []


def test_an_unknown_check_name_is_a_config_error_naming_the_valid_names() -> None:
    with pytest.raises(ConfigError) as error:
        ValiditySettings(enabled_checks=frozenset({"name_not_null", "voltage_decoded"}))
    message = str(error.value)
    assert "voltage_decoded" in message
    assert all(name in message for name in CHECK_NAMES)


def test_a_negative_future_tolerance_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="future_tolerance_days"):
        ValiditySettings(future_tolerance_days=-1)


def test_validation_prints_nothing_and_lets_no_warning_through(
    fresh_gx: None, capfd: pytest.CaptureFixture[str]
) -> None:
    frame = records({"name": None}, {"commissioned_on": pd.Timestamp("2027-01-01")})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(invalid(frame)) == 2
    assert caught == []
    assert capfd.readouterr() == ("", "")


def test_no_gx_folder_is_written_in_the_working_directory(
    fresh_gx: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert len(invalid(records({"name": None}))) == 1
    assert list(tmp_path.iterdir()) == []


def test_no_network_connection_is_attempted(
    fresh_gx: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    assert len(invalid(records({"name": None}))) == 1
    assert attempts == []


# 3,000 rows drawn from a dozen kinds of record, each with its own mix of bad values.
KINDS = [
    {},
    {"status": "retired", "capacity_kva": None},
    {"capacity_kva": 0.0},
    {"capacity_kva": -5.0, "status": "planned"},
    {"capacity_kva": None, "raw_capacity_kva": "四百"},
    {"commissioned_on": pd.Timestamp("2027-01-01")},
    {"commissioned_on": pd.Timestamp("2027-01-01"), "status": "retired"},
    {"org_code": None, "raw_org_code": "99999"},
    {"org_code": None},
    {"name": None, "parent_source_id": None},
    {"source_id": None, "voltage_kv": None, "raw_voltage_kv": "77"},
    {"status": None, "raw_status": "X9", "commissioned_on": None},
]
DRAWN = [(i * 7919) % len(KINDS) for i in range(3000)]


def mixed_frame() -> pd.DataFrame:
    return records(*(KINDS[k] for k in DRAWN), index=[f"r{i}" for i in range(3000)])


def test_a_worker_process_finds_what_this_process_finds(
    worker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    found = invalid(mixed_frame())
    # it ran in the worker: this process has still not loaded GX
    assert validity._state is None and validity._worker is worker and worker.alive()
    assert found == invalid(mixed_frame(), settings=ValiditySettings())  # same worker, again
    validity.stop_worker()
    assert not worker.alive() and validity._worker is None
    assert worker._process.returncode == 0  # it left when hung up on, not killed after waiting
    assert found == invalid(mixed_frame())  # no worker now: here
    assert validity._state is not None
    assert list(tmp_path.iterdir()) == []  # no gx/ folder from either
    assert capfd.readouterr() == ("", "")


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/maps").exists(), reason="reads the worker's mappings (Linux)"
)
def test_the_worker_leaves_scipy_and_altair_unloaded_until_used(worker: Any) -> None:
    # Great Expectations imports them for expectations gridrecon does not run; loading them
    # would take seconds of the read's CPU. Their compiled modules show in the process's maps.
    # SQLAlchemy, optional to GX, is not loaded at all: the worker validates pandas frames.
    def loaded(part: str) -> list[str]:
        maps = Path(f"/proc/{worker._process.pid}/maps").read_text().splitlines()
        return sorted({line.split()[-1] for line in maps if f"/{part}/" in line})

    assert invalid(mixed_frame()) == invalid(mixed_frame(), settings=ValiditySettings())
    assert loaded("pydantic_core")  # the worker loaded Great Expectations (pydantic's core)
    scipy = loaded("scipy")
    assert not [path for path in scipy if "/scipy/special/" in path or "/scipy/linalg/" in path]
    assert len(scipy) < 10, scipy  # without the deferral, 83 of them
    assert loaded("sqlalchemy") == []


def _worker_python(code: str) -> subprocess.Popen:
    """A Python child running `code`, with stdin and stdout piped, as the worker is started."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )


def test_the_worker_loads_no_data_source_but_pandas(tmp_path: Path) -> None:
    # GX imports its Spark, SQL and file data sources at start (0.3 s of CPU); the worker
    # validates pandas frames only, so each of those modules is an empty placeholder there.
    code = (
        "import sys; from gridrecon.checks import validity; validity._load_gx_for_suites(); "
        "print(sorted(n for n in validity._UNUSED_DATASOURCES "
        "if n not in sys.modules or getattr(sys.modules[n], '__file__', None))); "
        "print(sorted(validity._state.gx.data_context.data_context.context_factory"
        ".project_manager.get_project().data_sources.factories))"
    )
    child = _worker_python(code)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()
    loaded, factories = out.decode().splitlines()
    assert loaded == "[]"  # every one imported by GX, and every one a placeholder
    assert "add_pandas" in factories and "add_spark" not in factories and "add_sql" not in factories


def test_a_worker_whose_gx_needs_a_left_out_data_source_loads_it_whole(
    monkeypatch: pytest.MonkeyPatch, fresh_gx: None
) -> None:
    # As another GX version might: here GX cannot start without pandas' data source. The
    # worker starts again (the same process) with GX whole, and validates as this process does.
    expected = invalid(mixed_frame())
    code = (
        "from gridrecon.checks import validity; "
        "validity._UNUSED_DATASOURCES |= {validity._FLUENT + 'pandas_datasource'}; "
        "validity._serve()"
    )
    child = _worker_python(code)
    monkeypatch.setattr(validity, "_state", None)
    worker = validity._Worker(child)
    monkeypatch.setattr(validity, "_worker", worker)
    try:
        assert invalid(mixed_frame()) == expected
        assert validity._state is None and worker.alive()  # validated there, not here
        command_line = Path(f"/proc/{child.pid}/cmdline").read_bytes()
        assert b"_serve(whole=True)" in command_line  # the same process, started again
    finally:
        worker.end()
        child.stderr.close()
    assert child.returncode == 0


def test_a_worker_that_died_is_replaced_by_this_process(
    worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    worker._process.kill()
    worker._process.wait()
    frame = records({"name": None}, {"capacity_kva": 0.0})
    assert [f[2] for f in invalid(frame)] == ["name_not_null", "capacity_kva_positive"]
    assert validity._worker is None
    assert "the validity worker stopped" in caplog.text


def check_that_cannot_run() -> None:
    # GX catches an expectation's error and reports it in the result: that must not count as a
    # pass. Here the column name_not_null reads is not in the frame.
    frame = pd.DataFrame({"source_id": ["T-1"]})
    checks = (validity._BY_NAME["name_not_null"],)
    with pytest.raises(RuntimeError, match="validity check name_not_null could not run: .*name"):
        validity._validated(frame, "transformer", checks, {})


def test_a_check_that_fails_to_run_is_raised(fresh_gx: None) -> None:
    check_that_cannot_run()


def test_a_check_that_fails_to_run_in_the_worker_is_raised_here(worker: Any) -> None:
    check_that_cannot_run()
    assert worker.alive() and validity._state is None  # raised there, and it serves on


def test_importing_the_module_does_not_import_great_expectations() -> None:
    code = "import sys, gridrecon.checks.validity\nsys.exit('great_expectations' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), check=False)
    assert done.returncode == 0


def test_rows_sharing_values_are_judged_each_as_if_validated_alone() -> None:
    # Validation runs over each field's distinct inputs and maps failures back to every row that
    # holds them: 3,000 rows drawn from a dozen kinds of record must each get exactly what the
    # same record gets when validated on its own, in row order.
    alone = [invalid(records(kind)) for kind in KINDS]
    # retired records need no capacity and may be commissioned later; the rest are invalid
    assert [i for i, found in enumerate(alone) if not found] == [0, 1, 6]
    assert invalid(mixed_frame()) == expected_of_mixed_frame()


def test_frames_validated_together_get_what_each_gets_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A run validates its six frames in one Great Expectations validation. Each frame must get
    # exactly its own result: a check one frame runs (a transformer's capacity) finds nothing in
    # another's rows (a line's, with no capacity mapped, all of them null and in service), and
    # frames judged against another as_of are validated apart.
    asked = [
        dict(frame=mixed_frame(), asset_type="transformer", mapped_fields=ALL_FIELDS),
        dict(
            frame=records(*(KINDS[k] for k in DRAWN[:500]), {"capacity_kva": None}),
            asset_type="line",
            mapped_fields=LINE_FIELDS,
        ),
        dict(
            frame=records({"commissioned_on": pd.Timestamp("2026-06-02")}, {"voltage_kv": None}),
            asset_type="substation",
            mapped_fields=LINE_FIELDS - {"org_code"},
            has_parent=False,
        ),
        dict(frame=records(), asset_type="line", mapped_fields=LINE_FIELDS, has_parent=False),
        dict(
            frame=records(*(KINDS[k] for k in DRAWN[:200])),
            asset_type="transformer",
            mapped_fields=ALL_FIELDS,
            as_of=dt.date(2027, 6, 1),  # the planted 2027-01-01 dates are not in the future
        ),
    ]

    alone = [validity.find_invalid_values(a["frame"], **validation_arguments(a)) for a in asked]
    assert all(len(found) for found in alone[:3]) and alone[3].empty
    suites = []
    validated = validity._validated
    monkeypatch.setattr(validity, "_validated", lambda *a: suites.append(a[1]) or validated(*a))
    together = [validity.Validation(a["frame"], **validation_arguments(a)) for a in asked]
    validity.run_validations(together)
    # the empty frame needs no validation; the one judged as of 2027 is validated apart
    assert suites == ["transformer+line+substation", "transformer"]
    for found, done in zip(alone, together):
        pd.testing.assert_frame_equal(done.result(), found)


def validation_arguments(asked: dict[str, Any]) -> dict[str, Any]:
    return {"has_parent": True, "as_of": AS_OF, **{k: v for k, v in asked.items() if k != "frame"}}


def test_a_run_validates_in_a_worker_of_its_own_and_stops_it(
    fresh_gx: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import REPO

    from gridrecon import api
    from gridrecon.core.config import load_config
    from gridrecon.sample_data import AS_OF as SAMPLE_AS_OF

    started: list[Any] = []
    start = validity._Worker

    def counted(*process: Any) -> Any:
        started.append(start(*process))
        return started[-1]

    monkeypatch.setattr(validity, "_Worker", counted)
    config = load_config(REPO / "gridrecon.toml")
    result = api.reconcile(config, as_of=SAMPLE_AS_OF)
    assert (result.findings["rule_id"] == "INVALID_VALUE").sum() > 0
    # one worker, stopped once validation was done; GX was never loaded in this process
    assert len(started) == 1 and not started[0].alive()
    assert validity._worker is None and validity._state is None


def test_a_worker_started_early_is_taken_over_and_validates(fresh_gx: None) -> None:
    from gridrecon.checks import worker_process

    worker_process.start_early()
    early = worker_process._early
    assert early is not None and early.poll() is None
    validity.start_worker()
    assert validity._worker is not None and validity._worker._process is early
    assert worker_process._early is None  # taken over: no second process
    assert invalid(mixed_frame()) == expected_of_mixed_frame()
    assert validity._state is None  # validated by the worker, not here
    validity.stop_worker()
    assert early.returncode == 0  # hung up on when done, as any worker


def test_a_worker_started_early_and_not_needed_is_killed_at_once(fresh_gx: None) -> None:
    from gridrecon.checks import worker_process

    worker_process.start_early()
    early = worker_process._early
    validity.stop_worker()
    assert early.returncode == -9  # killed, without waiting for it to load anything
    assert worker_process._early is None and worker_process.take_early() is None


def test_gridrecon_run_starts_one_worker_and_a_night_without_changes_kills_it(
    fresh_gx: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `gridrecon run` starts the worker before it imports its libraries; the read takes that
    # process over (no second one), and a night on which nothing changed ends it unused.
    from conftest import sample_config
    from in_process import gridrecon

    from gridrecon.checks import worker_process
    from gridrecon.sample_data import AS_OF as SAMPLE_AS_OF

    spawned: list[Any] = []
    spawn = worker_process.spawn
    monkeypatch.setattr(worker_process, "spawn", lambda: spawned.append(spawn()) or spawned[-1])
    config = sample_config(tmp_path, extra="[incremental]\nenabled = true\n")
    arguments = ("run", "--config", str(config), "--as-of", SAMPLE_AS_OF.isoformat())
    first = gridrecon(*arguments)
    assert first.code == 0 and "read: full" in first.stdout
    assert len(spawned) == 1 and spawned[0].returncode == 0  # used, then hung up on
    quiet = gridrecon(*arguments)
    assert quiet.code == 0 and "no row changed" in quiet.stdout
    assert len(spawned) == 2 and spawned[1].returncode == -9  # not needed: killed
    bad = gridrecon("run", "--config", str(tmp_path / "missing.toml"))
    assert bad.code == 2 and len(spawned) == 3 and spawned[2].returncode == -9
    assert worker_process._early is None and validity._worker is None


def expected_of_mixed_frame() -> list[tuple[Any, ...]]:
    """invalid(mixed_frame()) as each kind of record validated on its own gives it."""
    alone = [invalid(records(kind)) for kind in KINDS]
    return [(f"r{i}", *found[1:]) for i, k in enumerate(DRAWN) for found in alone[k]]


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
    reason="finds the worker process through /proc (Linux)",
)
def test_ctrl_c_ends_a_run_and_its_worker_without_a_traceback(tmp_path: Path) -> None:
    import signal
    import time

    from conftest import GRIDRECON, sample_config

    config = sample_config(tmp_path)
    run = subprocess.Popen(
        [str(GRIDRECON), "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job is
    )
    worker, deadline = None, time.monotonic() + 60
    while worker is None and run.poll() is None and time.monotonic() < deadline:
        worker = next((p for p in _children(run.pid) if "_serve" in _command_line(p)), None)
        time.sleep(0.01)
    assert worker is not None, "the run started no validity worker"
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    for noise in ("Traceback", "KeyboardInterrupt", "Fatal Python error"):
        assert noise not in err
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # ended by the run, or orphaned and reaped
    assert not Path(f"/proc/{worker}").exists()
