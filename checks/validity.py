"""Validity of canonical records: which values are invalid, and why (SPEC §6, INVALID_VALUE).

One job: run a Great Expectations suite over one system's canonical frame of one asset type and
return one row per (record, failing field) with the check, a short reason and the offending value.
It judges single values only: turning these rows into findings (ids, detail text, severity) is the
rule's job, and questions across records (duplicates, links, parents that do not resolve) belong
to other checks.

great_expectations takes seconds to import, so it is imported on first use, never with this
module (`gridrecon --help` must stay fast).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import subprocess
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from gridrecon.core.errors import ConfigError

from . import worker_process

log = logging.getLogger(__name__)

__all__ = [
    "CHECK_NAMES",
    "RESULT_COLUMNS",
    "ValiditySettings",
    "find_invalid_values",
    "run_validations",
    "Validation",
    "with_known_failures",
]

RESULT_COLUMNS = ["row", "field", "check", "reason", "value"]

IN_SERVICE = "in_service"


class _Check(NamedTuple):
    name: str
    field: str  # canonical field name, or "parent"
    reason: str
    # "not_null": the value is present; "decoded": no raw text was left by a failed decode;
    # "positive": the number is > 0; "not_future": the date is not after as_of + tolerance.
    kind: str
    in_service_only: bool = False


# Output order within a record follows this list: field order, then check order.
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
    _Check("capacity_kva_not_null", "capacity_kva", "missing", "not_null", True),
    _Check("commissioned_on_parsed", "commissioned_on", "not a date", "decoded"),
    _Check("commissioned_on_not_null", "commissioned_on", "missing", "not_null", True),
    _Check("commissioned_on_not_future", "commissioned_on", "in the future", "not_future", True),
    _Check("parent_not_null", "parent", "missing", "not_null", True),
)
_BY_NAME = {check.name: check for check in _CHECKS}
CHECK_NAMES: tuple[str, ...] = tuple(_BY_NAME)
_ORDER = {check.name: position for position, check in enumerate(_CHECKS)}

# Every source has a key and a name, whatever its mapping says.
_ALWAYS_MAPPED = frozenset({"source_id", "name"})
# Fields that are decoded from source text and keep that text in raw_<field> when decoding fails.
_DECODED = frozenset({"voltage_kv", "status", "org_code", "capacity_kva", "commissioned_on"})
_COLUMN = {"parent": "parent_source_id"}  # the field "parent" lives in this column

# The future check compares day numbers (see find_invalid_values); its limit is a suite
# parameter, so one cached suite serves every as_of and tolerance.
_DAY_COLUMN = "commissioned_on_day"
_LIMIT_PARAMETER = "latest_commissioning_day"
_EPOCH = pd.Timestamp("1970-01-01")


@dataclass(frozen=True)
class ValiditySettings:
    """Which checks run, and how far ahead of `as_of` a commissioning date may lie.

    `enabled_checks` None means every check in CHECK_NAMES. `future_tolerance_days` lets a
    commissioning date lie up to that many days after `as_of`.
    """

    enabled_checks: frozenset[str] | None = None
    future_tolerance_days: int = 0

    def __post_init__(self) -> None:
        # Checked on construction, so a bad config fails when it is read, before any source
        # is pulled.
        if self.enabled_checks is not None:
            names = frozenset(self.enabled_checks)
            object.__setattr__(self, "enabled_checks", names)
            unknown = sorted(names - _BY_NAME.keys())
            if unknown:
                raise ConfigError(
                    f"unknown validity check{'s' if len(unknown) > 1 else ''} "
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
    "parent"), `check` (a name from CHECK_NAMES), `reason` (short English), `value` (the raw
    source text where decoding failed, else the canonical value as text; null where the value
    is missing). `field`, `check`, `reason` and `value` are `str` columns. Rows are ordered by
    the record's position in `records`, then by field in the order of CHECK_NAMES.

    A field is checked only if it is in `mapped_fields` (source_id and name always are), the
    parent only if `has_parent`. A missing capacity, a missing commissioning date, one after
    `as_of` + tolerance, and a missing parent are invalid only on in-service records (SPEC §6).
    """
    validation = Validation(
        records,
        asset_type=asset_type,
        mapped_fields=mapped_fields,
        has_parent=has_parent,
        as_of=as_of,
        settings=settings,
    )
    run_validations([validation])
    return validation.result()


class Validation:
    """find_invalid_values of one frame, prepared: run_validations runs several in one Great
    Expectations validation, then result() gives each frame's result as find_invalid_values
    would (the same arguments, the same rows).

    Great Expectations' cost is per expectation (some 10 ms each, however few the rows: the
    frames validated are each field's distinct inputs), so a run's six frames validated as one
    take about a quarter of the time they took one by one."""

    def __init__(
        self,
        records: pd.DataFrame,
        *,
        asset_type: str,
        mapped_fields: frozenset[str],
        has_parent: bool,
        as_of: dt.date,
        settings: ValiditySettings = ValiditySettings(),
    ):
        self.asset_type = asset_type
        self.checks = _active_checks(mapped_fields, has_parent, settings)
        self._index = records.index
        self._failures: list[tuple[_Check, np.ndarray]] | None = None
        latest = dt.date(as_of.year, as_of.month, as_of.day) + dt.timedelta(
            days=settings.future_tolerance_days
        )
        self.parameters = {_LIMIT_PARAMETER: float((latest - _EPOCH.date()).days)}
        if not self.checks or records.empty:
            self.checks, self._failures = (), []
            self._frame = records.iloc[:0, :0]
            return
        columns = _needed_columns(self.checks)
        missing = [c for c in columns if c not in records.columns]
        if missing:
            raise ValueError(f"canonical frame lacks column(s): {', '.join(missing)}")
        # Validate by position: GX reports index values, and labels may repeat or be of any type.
        frame = records[columns].reset_index(drop=True)
        if any(c.kind == "not_future" for c in self.checks):
            # GX compares datetime64[ns] columns vectorised but datetime64[us] value by value
            # (seconds on 500k rows), and ns cannot hold placeholder dates such as 9999-12-31.
            frame[_DAY_COLUMN] = (frame["commissioned_on"] - _EPOCH) / pd.Timedelta(days=1)
        self._frame = frame
        self.distinct = _DistinctValues(frame, self.checks)

    def found(self, failures: list[tuple[_Check, np.ndarray]]) -> None:
        """What validating `self.distinct.frame` found: each check's failing positions, counted
        from its first row (those outside its rows are left out)."""
        mine = set(self.checks)
        self._failures = [
            (check, self.distinct.positions(check, positions))
            for check, positions in failures
            if check in mine
        ]

    @property
    def validated(self) -> bool:
        return self._failures is not None

    def result(self) -> pd.DataFrame:
        if not self.validated:
            raise RuntimeError("run_validations() has not run this validation")
        return _result(self._index, self._frame, self._failures)


def run_validations(validations: list[Validation]) -> None:
    """Run the validations' checks over all their distinct values at once: one Great
    Expectations validation (one per as_of and tolerance, where they differ)."""
    pending = [v for v in validations if not v.validated]
    groups: dict[tuple, list[Validation]] = {}
    for validation in pending:
        groups.setdefault(tuple(validation.parameters.items()), []).append(validation)
    for group in groups.values():
        frames = [v.distinct.frame for v in group]
        # A column one frame lacks is null in its rows: no check of that frame reads it, and
        # Validation.found looks at each of its checks only in its own rows of that check's field.
        stacked = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        names = {check.name for v in group for check in v.checks}
        checks = tuple(c for c in _CHECKS if c.name in names)  # in _CHECKS order
        asset_types = "+".join(dict.fromkeys(v.asset_type for v in group))
        failures = _validated(stacked, asset_types, checks, group[0].parameters)
        start = 0
        for validation, frame in zip(group, frames):
            validation.found([(check, found - start) for check, found in failures])
            start += len(frame)


def with_known_failures(
    records: pd.DataFrame,
    fresh: pd.DataFrame,
    *,
    known: pd.Series,
    failures: pd.DataFrame,
    keys: pd.Series,
    as_of: dt.date,
    settings: ValiditySettings = ValiditySettings(),
) -> pd.DataFrame:
    """find_invalid_values of all `records`, given `fresh`: that of the records not `known`.

    known: records validated by an earlier run and unchanged since; `failures` holds what that
    run found, by record key (`keys` gives each record's). A record's validity depends on its
    own values alone, except a commissioning date in the future, which is judged again against
    this `as_of`: an incremental night validates only the records it read (a Validation of
    records[~known]) and takes the rest from memory."""
    carried = failures[failures["key"].isin(keys[known])]
    if len(carried):
        latest = as_of + dt.timedelta(days=settings.future_tolerance_days)
        still = (carried["check"] != "commissioned_on_not_future") | (
            carried["value"] > latest.isoformat()
        )
        carried = carried[still]
    label_of = pd.Series(records.index[known.to_numpy()], index=keys[known].to_numpy())
    old = pd.DataFrame(
        {
            "row": label_of.reindex(carried["key"].to_numpy()).to_numpy(),
            **{c: carried[c].astype("str").to_numpy() for c in RESULT_COLUMNS[1:]},
        }
    )
    if old.empty:
        return fresh
    combined = pd.concat([old, fresh], ignore_index=True)
    position = records.index.get_indexer(combined["row"])
    order = combined["check"].map(_ORDER)
    combined = combined.assign(_p=position, _o=order).sort_values(["_p", "_o"], kind="stable")
    result = combined[RESULT_COLUMNS].reset_index(drop=True)
    result["row"] = result["row"].astype(records.index.dtype)
    return result


class _DistinctValues:
    """The frame Great Expectations validates: each field's distinct inputs once, not every row.

    Every check reads one field (its value, its raw text, and the status where it applies to
    in-service records only) and nothing of any other record, so a row fails a check exactly
    when that combination of inputs fails it. Half a million transformers hold a few thousand
    such combinations per field (org codes, capacities, days); validating those and mapping the
    failures back to every row holding them gives the same rows as validating the whole frame,
    at a fraction of the cost. A field checked only for being present is reduced to whether it
    is (ids and names are all distinct). The frame holds, for each field, the first row of each
    of its combinations, whole; the failures of a check are looked at only in the rows of its
    own field (positions).
    """

    def __init__(self, frame: pd.DataFrame, checks: tuple[_Check, ...]):
        self._codes: dict[str, np.ndarray] = {}  # field -> each row's combination number
        self._rows: dict[str, tuple[int, int]] = {}  # field -> its rows [start, stop) in .frame
        firsts = []  # per field: the first row of each of its combinations
        coded: dict[str, tuple[np.ndarray, int]] = {}  # a column read by several fields: once
        for field, columns in _inputs(checks).items():
            presence_only = all(c.kind == "not_null" for c in checks if c.field == field)
            value = _COLUMN.get(field, field)
            codes, count = _combination_numbers(
                frame, columns, value if presence_only else None, coded
            )
            # Kept per field until the failures are mapped back: in as few bytes as they fit.
            codes = codes.astype(np.int16 if count <= np.iinfo(np.int16).max else np.int32)
            first = _first_rows(codes)  # each combination's first row, in number order
            start = sum(len(f) for f in firsts)
            self._codes[field], self._rows[field] = codes, (start, start + len(first))
            firsts.append(first)
        rows = np.concatenate(firsts) if firsts else np.array([], dtype=np.intp)
        self.frame = frame.iloc[rows].reset_index(drop=True)

    def positions(self, check: _Check, found: np.ndarray) -> np.ndarray:
        """The rows of the original frame whose combination failed `check`."""
        start, stop = self._rows[check.field]
        failed = found[(found >= start) & (found < stop)] - start
        return np.flatnonzero(np.isin(self._codes[check.field], failed))


def _inputs(checks: tuple[_Check, ...]) -> dict[str, list[str]]:
    """field -> the columns its checks read."""
    inputs: dict[str, dict[str, None]] = {}  # ordered sets
    for check in checks:
        columns = inputs.setdefault(check.field, {})
        if check.kind == "not_future":
            columns[_DAY_COLUMN] = None
        else:
            columns[_COLUMN.get(check.field, check.field)] = None
        if check.field in _DECODED:
            columns[f"raw_{check.field}"] = None
        if check.in_service_only:
            columns["status"] = None
    return {field: list(columns) for field, columns in inputs.items()}


def _combination_numbers(
    frame: pd.DataFrame,
    columns: list[str],
    presence_only: str | None,
    coded: dict[str, tuple[np.ndarray, int]],
) -> tuple[np.ndarray, int]:
    """Each row's combination of values in `columns` numbered 0, 1, ... in order of first
    appearance (null is a value too), and how many combinations there are; of the column
    `presence_only`, only whether a value is there counts. `coded` keeps each column's value
    numbers for the next call."""
    numbers = np.zeros(len(frame), dtype=np.int64)
    combinations = 1
    for column in columns:
        if column == presence_only:
            codes, count = frame[column].notna().to_numpy().astype(np.int64), 2
        else:
            if column not in coded:
                codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
                # null is 0; 32 bits: kept per column while all fields are numbered
                coded[column] = ((codes + 1).astype(np.int32), len(uniques) + 1)
            codes, count = coded[column]
        if combinations * count >= 2**62:  # renumber before the product could overflow
            numbers, combinations = _renumbered(numbers)
        numbers = numbers * count + codes
        combinations *= count
    return _renumbered(numbers)


def _renumbered(numbers: np.ndarray) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(numbers)
    return codes.astype(np.int64, copy=False), len(uniques)


def _first_rows(numbers: np.ndarray) -> np.ndarray:
    """Where each number first appears, for numbers given in order of first appearance."""
    seen_before = np.maximum.accumulate(np.concatenate([[-1], numbers[:-1]]))
    return np.flatnonzero(numbers > seen_before)


def _active_checks(
    mapped_fields: frozenset[str], has_parent: bool, settings: ValiditySettings
) -> tuple[_Check, ...]:
    enabled = _BY_NAME.keys() if settings.enabled_checks is None else settings.enabled_checks
    # The parent is governed by has_parent alone (the mapping's parent path, not a column).
    fields = (_ALWAYS_MAPPED | frozenset(mapped_fields)) - {"parent"}
    if has_parent:
        fields |= {"parent"}
    return tuple(c for c in _CHECKS if c.name in enabled and c.field in fields)


def columns_read(
    mapped_fields: frozenset[str], has_parent: bool, settings: ValiditySettings
) -> list[str]:
    """The columns of a canonical frame that find_invalid_values reads, given the same
    arguments: a caller with a wide frame can hand over just these."""
    return _needed_columns(_active_checks(mapped_fields, has_parent, settings))


def _needed_columns(checks: tuple[_Check, ...]) -> list[str]:
    needed: dict[str, None] = {}  # ordered set
    for check in checks:
        needed[_COLUMN.get(check.field, check.field)] = None
        if check.field in _DECODED:
            needed[f"raw_{check.field}"] = None
        if check.in_service_only:
            needed["status"] = None
    return list(needed)


# --- Great Expectations ---------------------------------------------------------------------


class _Gx(NamedTuple):
    gx: Any
    Column: Any
    Validator: Any
    datasource: Any
    batch_definition: Any


_lock = threading.Lock()  # the context, its execution engine and batch cache are shared state
_state: _Gx | None = None
_suites: dict[tuple[str, tuple[str, ...]], Any] = {}
_worker_lock = threading.Lock()  # one call at a time on the worker's pipe
_worker: _Worker | None = None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No GX warning or log record reaches the user's terminal."""
    gx_logger = logging.getLogger("great_expectations")
    level, propagate = gx_logger.level, gx_logger.propagate
    # GX logs through loggers with no handler: Python would print WARNING and above to stderr.
    # A check that fails to run is raised by _run_suite, so nothing is lost here.
    gx_logger.setLevel(logging.CRITICAL + 1)
    gx_logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        gx_logger.setLevel(level)
        gx_logger.propagate = propagate


def _gx() -> _Gx:
    """The process's one GX context, ephemeral: in memory only, no gx/ folder is written."""
    global _state
    if _state is None:
        # No usage statistics leave a power company's network: said both through the
        # environment (read by GX versions that send them) and in the context's config.
        os.environ["GX_ANALYTICS_ENABLED"] = "false"
        # Importing inside catch_warnings (in _quiet) also undoes GX's import-time
        # logging.captureWarnings(True), which would reroute every later warning of the process.
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
                # GX draws a tqdm bar on stderr for every validation unless told not to.
                progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            )
            context = gx.get_context(mode="ephemeral", project_config=config)
            datasource = context.data_sources.add_pandas("gridrecon")
            asset = datasource.add_dataframe_asset("canonical_records")
            batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        _state = _Gx(gx, Column, Validator, datasource, batch_definition)
    return _state


def start_worker() -> None:
    """Start the process that validates with Great Expectations, if none is running and GX is
    not loaded here already. It imports GX (seconds of CPU) on the other core while this process
    reads the sources, instead of taking turns with the readers for the interpreter lock; the
    suites then run there too, until stop_worker(). If it cannot start or dies, validation runs in
    this process as before."""
    global _worker
    with _worker_lock:
        if _state is not None:  # validated here: a process started early is not needed
            worker_process.discard_early()
        elif _worker is None or not _worker.alive():
            try:
                _worker = _Worker(worker_process.take_early())
            except (OSError, ValueError) as exc:  # no process may be started, no executable known
                log.debug("validity runs in this process: no worker (%s)", exc)
                _worker = None


def stop_worker() -> None:
    """End the worker, if one runs: a run stops it once its records are validated, so that its
    memory (Great Expectations' modules, some 200 MB) is free for the rest of the run."""
    global _worker
    with _worker_lock:
        worker_process.discard_early()  # one the CLI started that no one took over
        if _worker is not None:
            _worker.end()
            _worker = None


class _Worker:
    """A child Python serving _run_suite calls, pickled over its stdin and stdout.

    A plain subprocess, not multiprocessing: a spawned multiprocessing child runs the parent's
    main script again, which breaks any caller's script without a __main__ guard."""

    def __init__(self, process: subprocess.Popen | None = None) -> None:
        """process: one worker_process started already (worker_process.take_early())."""
        import atexit

        self._process = process if process is not None else worker_process.spawn()
        atexit.register(self.end)

    def alive(self) -> bool:
        return self._process.poll() is None

    def run_suite(self, *arguments: Any) -> list[tuple[_Check, np.ndarray]]:
        import pickle

        pickle.dump(arguments, self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self._process.stdin.flush()
        ok, value = pickle.load(self._process.stdout)
        if not ok:
            raise value
        return value

    def end(self) -> None:
        """Hang up: the worker ends at the end of its input, at once if it is waiting for a
        suite; one still loading GX (nothing was validated after all) is killed."""
        import atexit

        atexit.unregister(self.end)  # a scheduler's process starts one every night
        with contextlib.suppress(OSError):  # a worker that died took its pipe with it
            self._process.stdin.close()
        try:
            self._process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()


# Great Expectations imports SciPy and Altair with its expectations and renderers, for
# expectations gridrecon never runs: 1.5 s of CPU of the worker's 4.5 s start on a 2-core server,
# while the run reads the sources on the same cores. The worker loads their modules on first use.
_DEFERRED_PACKAGES = ("scipy", "altair")


class _DeferredImports:
    """A meta path finder: the Python modules of _DEFERRED_PACKAGES are imported lazily
    (importlib.util.LazyLoader), executed on first attribute access. Extension modules load
    as usual; they are imported by those Python modules anyway."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name.partition(".")[0] not in _DEFERRED_PACKAGES:
            return None
        import importlib.machinery
        import importlib.util
        import sys

        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is None:
                continue
            if isinstance(spec.loader, importlib.machinery.SourceFileLoader):
                spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None


# Great Expectations' data sources other than pandas' in-memory frames (Spark, SQL engines,
# files and cloud storage): GX's package imports every one of them when it starts, 0.3 s of
# the worker's 1.5 s of CPU, and the worker validates pandas frames only.
_FLUENT = "great_expectations.datasource.fluent."
_UNUSED_DATASOURCES = frozenset(
    _FLUENT + name
    for name in (
        "alloy_datasource",
        "aurora_datasource",
        "bigquery_datasource",
        "citus_datasource",
        "databricks_sql_datasource",
        "fabric",
        "fabric_datasource",
        "neon_datasource",
        "pandas_azure_blob_storage_datasource",
        "pandas_dbfs_datasource",
        "pandas_file_path_datasource",
        "pandas_filesystem_datasource",
        "pandas_google_cloud_storage_datasource",
        "pandas_s3_datasource",
        "postgres_datasource",
        "redshift_datasource",
        "snowflake_datasource",
        "spark_azure_blob_storage_datasource",
        "spark_datasource",
        "spark_dbfs_datasource",
        "spark_file_path_datasource",
        "spark_filesystem_datasource",
        "spark_google_cloud_storage_datasource",
        "spark_s3_datasource",
        "sql_datasource",
        "sql_server_datasource",
        "sqlite_datasource",
    )
)


class _UnusedDatasources:
    """A meta path finder and loader: each module of _UNUSED_DATASOURCES is an empty module in
    which every name GX imports is a class of its own, never used, so no such data source is
    defined (GX registers a data source when its class is defined)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in _UNUSED_DATASOURCES:
            return None
        import importlib.machinery

        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: Any) -> Any:
        import types

        module = types.ModuleType(spec.name)

        def placeholder(name: str) -> type:
            if name.startswith("__"):
                raise AttributeError(name)
            value = type(name, (), {"__module__": spec.name})
            setattr(module, name, value)
            return value

        module.__getattr__ = placeholder  # type: ignore[method-assign]
        return module

    def exec_module(self, module: Any) -> None:
        pass


def _load_gx_for_suites(whole: bool = False) -> None:
    """Load GX in a process that runs suites only (the worker): SciPy and Altair deferred,
    SQLAlchemy left out, and the unused data sources too unless `whole`."""
    import sys

    from gridrecon.core.imports import heavy_imports

    sys.meta_path.insert(0, _DeferredImports())
    # SQLAlchemy is optional to GX, and this process validates pandas frames only: GX then
    # skips it and its SQL data sources (0.2 s of CPU).
    sys.modules.setdefault("sqlalchemy", None)
    if not whole:
        sys.meta_path.insert(0, _UnusedDatasources())
    with heavy_imports():
        _gx()


def _serve(whole: bool = False) -> None:
    """The worker's loop: load GX at once, then run suites until the parent hangs up."""
    import pickle
    import sys

    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else printed goes to stderr, not into the replies
    try:
        _load_gx_for_suites(whole)
    except Exception:
        if not whole:
            # Not without its unused data sources (another GX version): this process starts
            # again with GX whole, its replies going where they went (a module that failed
            # to load cannot be imported again in the same interpreter).
            replies.flush()
            os.dup2(replies.fileno(), 1)
            os.execv(
                sys.executable, [sys.executable, "-c", worker_process.SERVE.format("whole=True")]
            )
        # else raised again, with its message, by the first suite that needs it
    while True:
        try:
            arguments = pickle.load(sys.stdin.buffer)
        except EOFError:
            # The parent hung up, and every reply is flushed: leave without tearing the
            # interpreter down (freeing GX's modules took longer than the parent waits).
            os._exit(0)
        try:
            reply = (True, _run_suite(*arguments))
        except Exception as exc:
            reply = (False, exc)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an error GX raised that cannot be pickled: its text, then
            error = reply[1]
            data = pickle.dumps((False, RuntimeError(f"{type(error).__name__}: {error}")))
        replies.write(data)
        replies.flush()


def _validated(
    frame: pd.DataFrame, asset_type: str, checks: tuple[_Check, ...], parameters: dict[str, Any]
) -> list[tuple[_Check, np.ndarray]]:
    """_run_suite, in the worker when one runs (start_worker), else here."""
    import pickle

    global _worker
    with _worker_lock:
        worker = _worker if _state is None else None
        if worker is not None:
            try:
                return worker.run_suite(frame, asset_type, checks, parameters)
            except (EOFError, OSError, pickle.UnpicklingError) as exc:  # it died: go on without
                log.warning("the validity worker stopped (%s); validating in this process", exc)
                worker.end()
                _worker = None
    return _run_suite(frame, asset_type, checks, parameters)


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
    expect = state.gx.expectations
    column = _COLUMN.get(check.field, check.field)
    condition = state.Column("status") == IN_SERVICE if check.in_service_only else None
    if check.kind == "decoded":
        # normalize.py keeps the raw text only where decoding failed: raw set = decode failed.
        return expect.ExpectColumnValuesToBeNull(column=f"raw_{check.field}")
    if check.kind == "not_null":
        return expect.ExpectColumnValuesToNotBeNull(column=column, row_condition=condition)
    if check.kind == "positive":
        return expect.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True)
    if check.kind == "not_future":
        return expect.ExpectColumnValuesToBeBetween(
            column=_DAY_COLUMN,
            max_value={"$PARAMETER": _LIMIT_PARAMETER},
            row_condition=condition,
        )
    raise AssertionError(check.kind)


def _run_suite(
    frame: pd.DataFrame,
    asset_type: str,
    checks: tuple[_Check, ...],
    parameters: dict[str, Any],
) -> list[tuple[_Check, np.ndarray]]:
    """For each check, the positions in `frame` of the records that fail it."""
    with _lock:
        state = _gx()
        suite = _suite(state, asset_type, checks)
        engine = state.datasource.get_execution_engine()
        try:
            with _quiet():
                # The validator Batch.validate() would build, built directly: Batch.validate()
                # needs a Batch first and so loads (and fingerprints) the frame twice.
                validator = state.Validator(
                    batch_definition=state.batch_definition,
                    batch_parameters={"dataframe": frame},
                    result_format={"result_format": "COMPLETE", "partial_unexpected_count": 0},
                )
                result = validator.validate_expectation_suite(suite, parameters)
        finally:
            # The engine caches the batch: do not keep a 500k-row frame alive between calls.
            engine.batch_manager.reset_batch_cache()
            engine.batch_manager.batch_data_cache.clear()

    failures = []
    for outcome in result.results:
        check = _BY_NAME[outcome.expectation_config.meta["check"]]
        error = _raised(outcome.exception_info)
        if error is not None:
            # GX catches errors per expectation; a check that could not run must not pass.
            raise RuntimeError(f"validity check {check.name} could not run: {error}")
        positions = np.asarray(outcome.result.get("unexpected_index_list") or [], dtype=np.int64)
        if check.kind == "not_null" and check.field in _DECODED:
            # A null left by a failed decode is not missing: it is the *_decoded check's
            # finding (or nobody's, if that check is switched off).
            positions = positions[frame[f"raw_{check.field}"].isna().to_numpy()[positions]]
        failures.append((check, positions))
    return failures


def _raised(info: dict | None) -> str | None:
    """The message of an error GX caught while running an expectation, if it caught one. GX
    reports it either flat or per metric that failed ({metric id: {...}})."""
    if not info:
        return None
    for entry in (info, *info.values()):
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message") or "unknown error")
    return None


# --- result ---------------------------------------------------------------------------------


def _empty_result(index: pd.Index) -> pd.DataFrame:
    empty = {column: pd.Series(dtype="str") for column in RESULT_COLUMNS[1:]}
    return pd.DataFrame({"row": pd.Series(index[:0], dtype=index.dtype), **empty})


def _result(
    index: pd.Index, frame: pd.DataFrame, failures: list[tuple[_Check, np.ndarray]]
) -> pd.DataFrame:
    parts = [
        pd.DataFrame(
            {
                "position": positions,
                "order": _ORDER[check.name],
                "field": check.field,
                "check": check.name,
                "reason": check.reason,
                "value": _values(frame, check, positions),
            }
        )
        for check, positions in failures
        if len(positions)
    ]
    if not parts:
        return _empty_result(index)
    found = pd.concat(parts, ignore_index=True).sort_values(["position", "order"], kind="stable")
    out = pd.DataFrame({"row": index.take(found["position"].to_numpy())})
    for column in RESULT_COLUMNS[1:]:
        out[column] = found[column].astype("str").to_numpy()
    return out


def _values(frame: pd.DataFrame, check: _Check, positions: np.ndarray) -> np.ndarray:
    """The offending values as text, for the finding's detail; None where there is none."""
    if check.kind == "decoded":
        raw = frame[f"raw_{check.field}"].to_numpy(dtype=object, na_value=None)
        return raw[positions]
    if check.kind == "positive":
        return np.array([_number_text(v) for v in frame[check.field].to_numpy()[positions]])
    if check.kind == "not_future":
        dates = frame[check.field].iloc[positions]
        return dates.dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    return np.full(len(positions), None, dtype=object)  # missing: there is no value


def _number_text(value: float) -> str:
    # As a steward would type it: 0.0 -> "0", -5.0 -> "-5", 12.5 -> "12.5".
    if np.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(float(value))
