"""Mainland-China working days, and the archiving deadline counted in them (SPEC §5).

One job: answer "is this a working day?" and "what is the n-th working day after this date?"
from chinesecalendar plus the user's override file, and refuse to answer for a year neither
knows, because a guessed holiday calendar would silently move every deadline in that year.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import chinese_calendar
import numpy as np
import pandas as pd

from gridrecon.core.errors import CalendarYearUnknown, ConfigError
from gridrecon.core.toml_section import key_text, shown

__all__ = ["WorkingCalendar", "YearInfo", "SOURCE_CHINESECALENDAR"]

SOURCE_CHINESECALENDAR = "chinesecalendar"

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEAR_RE = re.compile(r"\d{4}")
_OVERRIDE_KEYS = ("holidays", "workdays")
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class YearInfo:
    """What the calendar believes about one year, and where each exception comes from.

    `holidays` are the statutory days off (weekends inside a holiday period included);
    `makeup_workdays` are the days worked although a weekend or holiday would make them off
    (调休). Each entry is (date, source), source being "chinesecalendar" or "overrides: <path>".
    `names` gives the holiday a date belongs to, where chinesecalendar knows it.
    """

    year: int
    working_day_count: int
    holidays: list[tuple[dt.date, str]]
    makeup_workdays: list[tuple[dt.date, str]]
    names: dict[dt.date, str] = field(default_factory=dict)
    known_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class _YearOverride:
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]


class WorkingCalendar:
    """Working days from chinesecalendar, corrected and extended by an override file."""

    def __init__(
        self,
        overrides: dict[int, _YearOverride] | None = None,
        overrides_path: Path | None = None,
    ) -> None:
        self._overrides: dict[int, _YearOverride] = dict(overrides or {})
        self._overrides_path = overrides_path
        self._year_cache: dict[int, np.ndarray] = {}
        # One sorted array of working days over a contiguous span of years, grown on demand,
        # so scalar and vectorised questions share the same searchsorted answer.
        self._span: tuple[int, int] | None = None
        self._workdays = np.empty(0, dtype="datetime64[D]")
        self._after: np.ndarray | None = None  # _positions_after's table for the span

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def load(cls, overrides_path: Path | None) -> WorkingCalendar:
        """Build the calendar; `overrides_path` (already resolved by the caller) may be None."""
        if overrides_path is None:
            return cls()
        path = Path(overrides_path)
        try:
            text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not an error
        except FileNotFoundError:
            raise ConfigError(
                f"Calendar overrides file {path} does not exist "
                "(set by [calendar] overrides in the config)."
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"Calendar overrides file {path} is not UTF-8 text; save it as UTF-8"
            ) from None
        except OSError as exc:
            raise ConfigError(f"Cannot read calendar overrides file {path}: {exc}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Calendar overrides file {path} is not valid TOML: {exc}") from None
        except RecursionError:
            raise ConfigError(
                f"Calendar overrides file {path} is not valid TOML: arrays nested too deeply"
            ) from None
        return cls(_parse_overrides(raw, path), path)

    # -- what the calendar knows --------------------------------------------------------------

    def is_year_known(self, year: int) -> bool:
        """True when chinesecalendar or the override file covers `year`."""
        return year in self._overrides or _chinesecalendar_knows(year)

    def is_working_day(self, d: dt.date) -> bool:
        d = _as_date(d)
        self._require_year(d.year)
        return _is_working(d, self._overrides.get(d.year))

    # -- deadlines ----------------------------------------------------------------------------

    def deadline(self, commissioned_on: dt.date, n: int = 5) -> dt.date:
        """The n-th working day strictly after `commissioned_on`, whatever kind of day it is.

        Not chinese_calendar.find_workday: that counts from the next working day when the
        start is a day off, which moves deadlines for weekend and holiday commissioning.
        """
        _check_n(n)
        start = np.datetime64(_as_date(commissioned_on), "D")
        idx = self._positions_after(start[np.newaxis], n)
        return self._workdays[idx[0]].item()

    def deadlines(self, dates: pd.Series, n: int = 5) -> pd.Series:
        """`deadline` for every value of `dates` (dates or datetimes; null → NaT), vectorised.

        Every year from the earliest date to the latest deadline must be known; otherwise
        CalendarYearUnknown names the first missing one and nothing is returned.
        """
        _check_n(n)
        days = _series_to_days(dates)
        valid = ~np.isnat(days)
        out = np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[D]")
        if valid.any():
            # Positions first: finding them may extend self._workdays into a later year.
            idx = self._positions_after(days[valid], n)
            out[valid] = self._workdays[idx]
        return pd.Series(out, index=dates.index, name=dates.name)

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days d with start < d <= end; negative when end is before start.

        working_days_between(as_of, deadline) is the "working days left";
        working_days_between(commissioned_on, as_of) the "working days elapsed".
        """
        start, end = _as_date(start), _as_date(end)
        if start == end:
            return 0
        lo, hi = min(start, end), max(start, end)
        self._ensure_span((lo + _ONE_DAY).year, hi.year)
        a, b = np.datetime64(lo, "D"), np.datetime64(hi, "D")
        count = int(
            np.searchsorted(self._workdays, b, side="right")
            - np.searchsorted(self._workdays, a, side="right")
        )
        return count if end > start else -count

    # -- one year, for `gridrecon calendar --year` ----------------------------------------------

    def describe_year(self, year: int) -> YearInfo:
        """The year's statutory holidays and make-up working days, each with its source."""
        self._require_year(year)
        override = self._overrides.get(year)
        in_cc = _chinesecalendar_knows(year)
        holidays: list[tuple[dt.date, str]] = []
        makeup: list[tuple[dt.date, str]] = []
        names: dict[dt.date, str] = {}
        d = dt.date(year, 1, 1)
        while d.year == year:
            cc_name = chinese_calendar.get_holiday_detail(d)[1] if in_cc else None
            cc_holiday = cc_name is not None and d in chinese_calendar.holidays
            listed = override is not None and (d in override.holidays or d in override.workdays)
            source = self._override_source() if listed else SOURCE_CHINESECALENDAR
            working = _is_working(d, override)
            # Plain weekends are the default and not listed; a day off is a holiday when
            # chinesecalendar names it or the user lists it, a day worked is a make-up day
            # when a weekend or a chinesecalendar holiday would have made it a day off.
            entry = None
            if not working and (cc_holiday or (override is not None and d in override.holidays)):
                entry = holidays
            elif working and (d.weekday() >= 5 or cc_holiday):
                entry = makeup
            if entry is not None:
                entry.append((d, source))
                if cc_name:
                    names[d] = _holiday_label(cc_name)
            d += _ONE_DAY
        known_from = (SOURCE_CHINESECALENDAR,) if in_cc else ()
        if override is not None:
            known_from += (self._override_source(),)
        return YearInfo(
            year=year,
            working_day_count=int(self._year_workdays(year).size),
            holidays=holidays,
            makeup_workdays=makeup,
            names=names,
            known_from=known_from,
        )

    # -- internals ----------------------------------------------------------------------------

    def _override_source(self) -> str:
        return f"overrides: {self._overrides_path}"

    def _positions_after(self, days: np.ndarray, n: int) -> np.ndarray:
        """Index into self._workdays of the n-th working day after each of `days`."""
        first_year = int((days.min() + 1).astype("datetime64[Y]").astype(int)) + 1970
        last_year = int(days.max().astype("datetime64[Y]").astype(int)) + 1970
        self._ensure_span(first_year, max(first_year, last_year))
        while True:
            # Per day of the span (from the day before it): how many working days are on or
            # before it. Looked up for half a million days, not searched for each.
            assert self._span is not None
            first = np.datetime64(f"{self._span[0]}-01-01", "D") - 1
            if self._after is None:
                every_day = np.arange(first, np.datetime64(f"{self._span[1] + 1}-01-01", "D"))
                self._after = np.searchsorted(self._workdays, every_day, side="right")
            idx = self._after[(days - first).astype(np.int64)] + (n - 1)
            if int(idx.max()) < self._workdays.size:
                return idx
            # Some deadline runs past the last year loaded: that next year must be known too.
            assert self._span is not None
            nxt = self._span[1] + 1
            self._ensure_span(self._span[0], nxt, f"a {n}-working-day deadline runs into {nxt}")

    def _ensure_span(self, lo: int, hi: int, why: str = "") -> None:
        """Load working days for every year in lo..hi (and the span already loaded)."""
        if self._span is not None:
            if self._span[0] <= lo and hi <= self._span[1]:
                return
            lo, hi = min(lo, self._span[0]), max(hi, self._span[1])
        # Check every year first so the error names the earliest missing one.
        for year in range(lo, hi + 1):
            self._require_year(year, why)
        self._workdays = np.concatenate([self._year_workdays(y) for y in range(lo, hi + 1)])
        self._span = (lo, hi)
        self._after = None

    def _year_workdays(self, year: int) -> np.ndarray:
        cached = self._year_cache.get(year)
        if cached is None:
            self._require_year(year)
            override = self._overrides.get(year)
            first = dt.date(year, 1, 1)
            days = [
                first + dt.timedelta(days=i) for i in range((dt.date(year + 1, 1, 1) - first).days)
            ]
            cached = np.array([d for d in days if _is_working(d, override)], dtype="datetime64[D]")
            self._year_cache[year] = cached
        return cached

    def _require_year(self, year: int, why: str = "") -> None:
        if not self.is_year_known(year):
            raise CalendarYearUnknown(self._unknown_year_message(year, why))

    def _unknown_year_message(self, year: int, why: str = "") -> str:
        lo, hi = _chinesecalendar_range()
        why = f" ({why})" if why else ""
        notice = f"国务院办公厅关于{year}年部分节假日安排的通知"
        snippet = (
            f"    [{year}]\n"
            f'    holidays = []   # days off: "{year}-MM-DD", or "{year}-MM-DD..{year}-MM-DD"\n'
            f'    workdays = []   # weekend days that are working days (调休): "{year}-MM-DD"'
        )
        known = f"chinesecalendar {chinese_calendar.__version__} knows {lo}-{hi} only"
        if self._overrides_path is not None:
            return (
                f"No working-day calendar for {year}{why}: {known} and the calendar overrides file "
                f"{self._overrides_path} has no [{year}] table; deadlines are never guessed.\n"
                f"Add these lines to {self._overrides_path}, filling the lists from the State "
                f"Council notice ({notice}):\n\n{snippet}\n\n"
                f"An empty [{year}] table declares a year with weekends off only."
            )
        return (
            f"No working-day calendar for {year}{why}: {known} and no calendar overrides file is "
            "configured; deadlines are never guessed.\n"
            "Create holidays.toml next to the config file with these lines, filling the lists "
            f"from the State Council notice ({notice}):\n\n{snippet}\n\n"
            "and point the config file at it:\n\n"
            '    [calendar]\n    overrides = "holidays.toml"\n\n'
            f"An empty [{year}] table declares a year with weekends off only."
        )


# -- chinesecalendar ------------------------------------------------------------------------


@functools.cache
def _chinesecalendar_knows(year: int) -> bool:
    # Ask the package itself rather than hard-coding 2004-2026: a newer release knows more.
    try:
        chinese_calendar.is_workday(dt.date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


def _chinesecalendar_range() -> tuple[int, int]:
    years = [d.year for d in chinese_calendar.holidays]
    return min(years), max(years)


def _is_working(d: dt.date, override: _YearOverride | None) -> bool:
    # The override file wins, so a user can correct chinesecalendar day by day.
    if override is not None:
        if d in override.holidays:
            return False
        if d in override.workdays:
            return True
    if _chinesecalendar_knows(d.year):
        # Same rule as chinese_calendar.is_workday, read from its tables directly: is_workday
        # rescans all its dates on every call, far too slow for building whole years.
        if d in chinese_calendar.workdays:
            return True
        if d in chinese_calendar.holidays:
            return False
    return d.weekday() < 5


def _holiday_label(name: str) -> str:
    """'National Day' → '国庆节 National Day' (chinesecalendar stores the English name)."""
    try:
        return f"{chinese_calendar.Holiday(name).chinese} {name}"
    except ValueError:
        return name


# -- override file --------------------------------------------------------------------------


def _parse_overrides(raw: dict, path: Path) -> dict[int, _YearOverride]:
    result: dict[int, _YearOverride] = {}
    for key, table in raw.items():
        if not _YEAR_RE.fullmatch(key) or not isinstance(table, dict):
            raise ConfigError(
                f"{path}: unexpected {key!r}; the file holds one table per year, e.g. [2027] "
                "with holidays = [...] and workdays = [...]."
            )
        year = int(key)
        for name in table:
            if name not in _OVERRIDE_KEYS:
                raise ConfigError(
                    f"{path}: [{year}] has unknown key {name!r}; allowed: holidays, workdays."
                )
        holidays = _parse_date_list(table.get("holidays", []), path, year, "holidays")
        workdays = _parse_date_list(table.get("workdays", []), path, year, "workdays")
        both = sorted(holidays & workdays)
        if both:
            raise ConfigError(
                f"{path}: [{year}] lists {both[0].isoformat()} both as a holiday and a workday."
            )
        for d in sorted(workdays):
            if d.weekday() < 5 and not _corrects_chinesecalendar_holiday(d):
                raise ConfigError(
                    f"{path}: [{year}] workdays: {d.isoformat()} is a "
                    f"{_WEEKDAY_NAMES[d.weekday()]}; "
                    "workdays lists weekend days that are working days (调休) — weekdays are "
                    "working days already."
                )
        result[year] = _YearOverride(frozenset(holidays), frozenset(workdays))
    return result


def _corrects_chinesecalendar_holiday(d: dt.date) -> bool:
    # A weekday in `workdays` is a typo, except when it overturns a chinesecalendar holiday.
    return _chinesecalendar_knows(d.year) and d in chinese_calendar.holidays


def _parse_date_list(value: object, path: Path, year: int, key: str) -> set[dt.date]:
    if not isinstance(value, list):
        raise ConfigError(
            f"{path}: [{year}] {key} must be a list of dates, e.g. "
            f'["{year}-01-01", "{year}-02-06..{year}-02-12"]; got {shown(value)}.'
        )
    dates: set[dt.date] = set()
    for item in value:
        for d in _parse_date_item(item, path, year, key):
            if d.year != year:
                what = "is" if isinstance(item, dt.date) or ".." not in item else "reaches"
                raise ConfigError(
                    f"{path}: [{year}] {key}: {_show(item)} {what} outside {year}; "
                    f"list {d.year}'s days under [{d.year}]."
                )
            dates.add(d)
    return dates


def _parse_date_item(item: object, path: Path, year: int, key: str) -> list[dt.date]:
    # TOML's own unquoted dates (2027-01-01) are accepted as well as strings.
    if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
        return [item]
    bad = ConfigError(
        f"{path}: [{year}] {key}: {_show(item)} is not a date; use "
        f'"YYYY-MM-DD" or an inclusive range "YYYY-MM-DD..YYYY-MM-DD".'
    )
    if not isinstance(item, str):
        raise bad
    parts = [p.strip() for p in item.split("..")]
    if len(parts) > 2:
        raise bad
    try:
        if not all(_DATE_RE.fullmatch(p) for p in parts):
            raise ValueError
        ends = [dt.date.fromisoformat(p) for p in parts]
    except ValueError:
        raise bad from None
    first, last = ends[0], ends[-1]
    if last < first:
        raise ConfigError(f"{path}: [{year}] {key}: range {_show(item)} ends before it starts.")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _show(item: object) -> str:
    return f'"{key_text(item)}"' if isinstance(item, str) else shown(item)


# -- small helpers --------------------------------------------------------------------------


def _as_date(d: dt.date) -> dt.date:
    # A datetime is a date too; its calendar day is what counts.
    return d.date() if isinstance(d, dt.datetime) else d


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(
            f"the deadline length must be a whole number of working days ≥ 1, got {n!r}"
        )


def _series_to_days(dates: pd.Series) -> np.ndarray:
    """A Series of dates/datetimes/nulls as datetime64[D] (NaT for nulls), wall-clock days."""
    s = dates
    if not isinstance(s.dtype, pd.DatetimeTZDtype) and not pd.api.types.is_datetime64_dtype(
        s.dtype
    ):
        s = pd.to_datetime(s)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        # An aware timestamp's day is its local day in its own zone.
        s = s.dt.tz_localize(None)
    return s.to_numpy().astype("datetime64[D]")
