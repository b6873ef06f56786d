"""Validity of canonical records: which values are invalid, and why (SPEC §6, INVALID_VALUE).

One job: run a Great Expectations suite over one system's canonical frame of one asset type and
return one row per (record, failing field) with the check, a short reason and the offending value.
It judges single values only; turning these rows into findings (ids, detail text, severity) is the
rule's job, and cross-record questions (duplicates, links, parents that do not resolve) belong to
other checks.

great_expectations takes seconds to import, so it is imported on first use, never at module import
(`gridrecon --help` must stay fast).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from gridrecon.core.errors import ConfigError

__all__ = ["CHECK_NAMES", "RESULT_COLUMNS", "ValiditySettings", "find_invalid_values"]

RESULT_COLUMNS = ["row", "field", "check", "reason", "value"]

IN_SERVICE = "in_service"


class _Check(NamedTuple):
    name: str
    field: str  # canonical field name, or "parent"
    reason: str
    # How the check is expressed, see _expectation(): "not_null" (the value is present),
    # "decoded" (no raw text was left over by a failed decode), "positive", "not_future".
    kind: str
    in_service_only: bool = False


# Output order within a record follows this list (field order, then check order).
_CHECKS: tuple[_Check, ...] = (
    _Check("source_id_not_null", "source_id", "missing", "not_null"),
    _Check("name_not_null", "name", "missing", "not_null"),
    _Check("voltage_kv_decoded", "voltage_kv", "not in code list", "decoded"),
    _Check("voltage_kv_not_null", "voltage_kv", "missing", "not_null"),
    _Check("status_decoded", "status", "not in code list", "decoded"),
    _Check("status_not_null", "status", "missing", "not_null"),
    _Check("org_code_mapped", "org_code", "not in org map", "decoded"),
    _Check("org_code_not_null", "org_code", "missing", "not_null"),
    _Check("capacity_kva_parsed", "capacity_kva", "not a number", "decoded"),
    _Check("capacity_kva_positive", "capacity_kva", "not positive", "positive"),
    _Check("capacity_kva_not_null", "capacity_kva", "missing", "not_null", in_service_only=True),
    _Check("commissioned_on_parsed", "commissioned_on", "not a date", "decoded"),
    _Check(
        "commissioned_on_not_null", "commissioned_on", "missing", "not_null", in_service_only=True
    ),
    _Check(
        "commissioned_on_not_future",
        "commissioned_on",
        "in the future",
        "not_future",
        in_service_only=True,
    ),
    _Check("parent_not_null", "parent", "missing", "not_null", in_service_only=True),
)
_BY_NAME = {check.name: check for check in _CHECKS}
CHECK_NAMES: tuple[str, ...] = tuple(_BY_NAME)

# Fields checked whatever the mapping says: every source has a key and a name.
_ALWAYS_MAPPED = frozenset({"source_id", "name"})
_FIELD_RANK = {field: rank for rank, field in enumerate(dict.fromkeys(c.field for c in _CHECKS))}
_COLUMN = {"parent": "parent_source_id"}  # the field "parent" lives in this column
_LIMIT_PARAMETER = "latest_commissioning_day"
_DAY_COLUMN = "commissioned_on_day"  # days since 1970-01-01, a helper for the future check
_EPOCH = pd.Timestamp("1970-01-01")


@dataclass(frozen=True)
class ValiditySettings:
    """Which checks run, and how far ahead a commissioning date may lie.

    `enabled_checks` None means every check in CHECK_NAMES. `future_tolerance_days` lets a
    commissioning date be up to that many days after `as_of` (planned dates entered early).
    """

    enabled_checks: frozenset[str] | None = None
    future_tolerance_days: int = 0

    def __post_init__(self) -> None:
        # Checked here so a bad config fails when it is read, before any source is pulled.
        if self.enabled_checks is not None:
            names = frozenset(self.enabled_checks)
            object.__setattr__(self, "enabled_checks", names)
            unknown = sorted(names - _BY_NAME.keys())
            if unknown:
                raise ConfigError(
                    f"unknown validity check{'s' if len(unknown) > 1 else ''}: "
                    f"{', '.join(unknown)}; valid names are: {', '.join(CHECK_NAMES)}"
                )
        days = self.future_tolerance_days
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise ConfigError(
                f"future_tolerance_days must be a whole number of days >= 0, not {days!r}"
            )


def find_invalid_values(
    records: pd.DataFrame,
    *,
    asset_type: str,
    mapped_fields: frozenset[str],
    has_parent: bool,
    as_of: dt.date,
    settings: ValiditySettings = ValiditySettings(),
) -> pd.DataFrame:
    """One row per (record, failing field) of `records`, a canonical frame of one asset type.

    Columns: `row` (the record's index label in `records`), `field` (canonical field name or
    "parent"), `check` (a name from CHECK_NAMES), `reason` (short English), `value` (the raw text
    where decoding failed, else the canonical value as text; null where the value is missing).
    Rows are ordered by the record's position in `records`, then by field.

    A field is checked only if it is in `mapped_fields` (source_id and name always are); the
    parent only if `has_parent`. A missing commissioning date or capacity, a date after
    `as_of` + tolerance, and a missing parent are invalid only on in-service records (SPEC §6).
    """
    checks = _active_checks(mapped_fields, has_parent, settings)
    if not checks or records.empty:
        return _empty_result(records.index)

    columns = _needed_columns(checks)
    missing = [c for c in columns if c not in records.columns]
    if missing:
        raise ValueError(f"canonical frame lacks column(s): {', '.join(missing)}")
    # Positions, not labels: GX reports index values, and labels may repeat or be of any type.
    frame = records[columns].reset_index(drop=True)
    if any(c.kind == "not_future" for c in checks):
        # GX compares only datetime64[ns] columns vectorised (others value by value, 100x
        # slower), and ns cannot hold placeholder dates such as 9999-12-31: compare day numbers.
        frame[_DAY_COLUMN] = (frame["commissioned_on"] - _EPOCH) / pd.Timedelta(days=1)

    as_of_date = dt.date(as_of.year, as_of.month, as_of.day)
    latest = as_of_date + dt.timedelta(days=settings.future_tolerance_days)
    limit = float((latest - _EPOCH.date()).days)
    failures = _run_suite(frame, asset_type, checks, {_LIMIT_PARAMETER: limit})
    return _result(records.index, frame, failures)


def _active_checks(
    mapped_fields: frozenset[str], has_parent: bool, settings: ValiditySettings
) -> tuple[_Check, ...]:
    enabled = CHECK_NAMES if settings.enabled_checks is None else settings.enabled_checks
    fields = _ALWAYS_MAPPED | frozenset(mapped_fields) | ({"parent"} if has_parent else set())
    return tuple(c for c in _CHECKS if c.name in enabled and c.field in fields)


def _needed_columns(checks: tuple[_Check, ...]) -> list[str]:
    needed: dict[str, None] = {}
    for check in checks:
        needed[_COLUMN.get(check.field, check.field)] = None
        if check.kind in ("decoded", "not_null") and check.field not in _ALWAYS_MAPPED | {"parent"}:
            needed[f"raw_{check.field}"] = None
        if check.in_service_only:
            needed["status"] = None
    return list(needed)


# --- Great Expectations ---------------------------------------------------------------------

_lock = threading.Lock()  # the context, its engine and its batch cache are shared state
_suites: dict[tuple[str, tuple[str, ...]], Any] = {}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No GX warning or log record reaches the user's terminal during a validation."""
    gx_logger = logging.getLogger("great_expectations")
    level, propagate = gx_logger.level, gx_logger.propagate
    gx_logger.setLevel(logging.CRITICAL + 1)
    gx_logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        gx_logger.setLevel(level)
        gx_logger.propagate = propagate


class _Gx(NamedTuple):
    gx: Any
    batch_definition: Any
    datasource: Any
    Column: Any
    Validator: Any


_gx_state: _Gx | None = None


def _gx() -> _Gx:
    """The process's one ephemeral GX context (in memory: no gx/ folder is ever written)."""
    global _gx_state
    if _gx_state is None:
        # GX reads this when it builds a context; the config below says the same. No usage
        # statistics are sent from a power company's network, whatever the GX version.
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        # Importing inside catch_warnings also undoes GX's logging.captureWarnings(True), which
        # would otherwise reroute every later Python warning of the whole process.
        with _quiet():
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )
            from great_expectations.expectations.row_conditions import Column
            from great_expectations.validator.v1_validator import Validator

            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(),
                analytics_enabled=False,
                # GX draws tqdm bars for every validation unless told not to.
                progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            )
            context = gx.get_context(mode="ephemeral", project_config=config)
            datasource = context.data_sources.add_pandas("gridrecon")
            asset = datasource.add_dataframe_asset("canonical_records")
            batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        _gx_state = _Gx(gx, batch_definition, datasource, Column, Validator)
    return _gx_state


def _suite(state: _Gx, asset_type: str, checks: tuple[_Check, ...]) -> Any:
    key = (asset_type, tuple(c.name for c in checks))
    if key not in _suites:
        suite = state.gx.ExpectationSuite(name=f"validity_{asset_type}_{len(_suites)}")
        for check in checks:
            expectation = _expectation(state, check)
            expectation.meta = {"check": check.name}
            suite.add_expectation(expectation)
        _suites[key] = suite
    return _suites[key]


def _expectation(state: _Gx, check: _Check) -> Any:
    expectations, Column = state.gx.expectations, state.Column
    column = _COLUMN.get(check.field, check.field)
    conditions = []
    if check.in_service_only:
        conditions.append(Column("status") == IN_SERVICE)
    if check.kind == "decoded":
        # normalize.py keeps the raw text only where decoding failed, so raw set = failed.
        return expectations.ExpectColumnValuesToBeNull(
            column=f"raw_{check.field}", row_condition=_all_of(conditions)
        )
    if check.kind == "not_null":
        if check.field not in _ALWAYS_MAPPED | {"parent"}:
            # A value that is null because it failed to decode is reported by *_decoded.
            conditions.append(Column(f"raw_{check.field}").is_null())
        return expectations.ExpectColumnValuesToNotBeNull(
            column=column, row_condition=_all_of(conditions)
        )
    if check.kind == "positive":
        return expectations.ExpectColumnValuesToBeBetween(
            column=column, min_value=0, strict_min=True, row_condition=_all_of(conditions)
        )
    if check.kind == "not_future":
        # A parameter, so one cached suite serves every as_of and tolerance.
        return expectations.ExpectColumnValuesToBeBetween(
            column=_DAY_COLUMN,
            max_value={"$PARAMETER": _LIMIT_PARAMETER},
            row_condition=_all_of(conditions),
        )
    raise AssertionError(check.kind)


def _all_of(conditions: list[Any]) -> Any:
    if not conditions:
        return None
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = combined & condition
    return combined


def _run_suite(
    frame: pd.DataFrame,
    asset_type: str,
    checks: tuple[_Check, ...],
    parameters: dict[str, Any],
) -> list[tuple[_Check, np.ndarray]]:
    """For each check, the positions in `frame` of the records it fails."""
    with _lock:
        state = _gx()
        suite = _suite(state, asset_type, checks)
        engine = state.datasource.get_execution_engine()
        try:
            with _quiet():
                # The validator Batch.validate() builds, built directly: Batch.validate() loads
                # (and fingerprints) the whole frame a second time, a second per 500k rows.
                validator = state.Validator(
                    batch_definition=state.batch_definition,
                    batch_parameters={"dataframe": frame},
                    result_format={"result_format": "COMPLETE", "partial_unexpected_count": 0},
                )
                result = validator.validate_expectation_suite(suite, parameters)
        finally:
            # The engine caches the batch; do not keep a 500k-row frame alive between calls.
            engine.batch_manager.reset_batch_cache()
            engine.batch_manager.batch_data_cache.clear()

    failures = []
    for outcome in result.results:
        check = _BY_NAME[outcome.expectation_config.meta["check"]]
        info = outcome.exception_info or {}
        if info.get("raised_exception"):
            # GX catches errors per expectation; a check that could not run must not pass.
            raise RuntimeError(
                f"validity check {check.name} failed to run: {info.get('exception_message')}"
            )
        positions = outcome.result.get("unexpected_index_list") or []
        failures.append((check, np.asarray(positions, dtype=np.int64)))
    return failures


# --- result ---------------------------------------------------------------------------------


def _empty_result(index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": pd.Series(index[:0]),
            **{c: pd.Series(dtype="str") for c in RESULT_COLUMNS[1:]},
        }
    )


def _result(
    index: pd.Index, frame: pd.DataFrame, failures: list[tuple[_Check, np.ndarray]]
) -> pd.DataFrame:
    parts = []
    for check, positions in failures:
        if len(positions) == 0:
            continue
        parts.append(
            pd.DataFrame(
                {
                    "position": positions,
                    "rank": _FIELD_RANK[check.field] * 100 + CHECK_NAMES.index(check.name),
                    "field": check.field,
                    "check": check.name,
                    "reason": check.reason,
                    "value": _values(frame, check, positions),
                }
            )
        )
    if not parts:
        return _empty_result(index)
    found = pd.concat(parts, ignore_index=True).sort_values(["position", "rank"], kind="stable")
    out = pd.DataFrame({"row": index.take(found["position"].to_numpy())})
    for column in RESULT_COLUMNS[1:]:
        out[column] = found[column].astype("str").to_numpy()
    return out


def _values(frame: pd.DataFrame, check: _Check, positions: np.ndarray) -> pd.Series:
    """The offending value as text, for the finding's detail."""
    if check.kind == "decoded":
        return frame[f"raw_{check.field}"].iloc[positions].astype("str").reset_index(drop=True)
    if check.kind == "positive":
        numbers = frame[check.field].iloc[positions]
        return pd.Series([_number_text(v) for v in numbers], dtype="str")
    if check.kind == "not_future":
        dates = frame[check.field].iloc[positions]
        return dates.dt.strftime("%Y-%m-%d").astype("str").reset_index(drop=True)
    return pd.Series([None] * len(positions), dtype="str")  # missing: there is no value


def _number_text(value: float) -> str:
    # 0.0 -> "0", -5.0 -> "-5", 12.5 -> "12.5": as a steward would type it.
    if np.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(float(value))
