"""The working-day calendar and the archiving deadline (SPEC §5), on the real chinesecalendar."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from gridrecon.checks.calendar import WorkingCalendar
from gridrecon.core.errors import CalendarYearUnknown, ConfigError

D = date


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar.load(None)


def write_overrides(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "holidays.toml"
    path.write_text(text, encoding="utf-8")
    return path


# 2027 as a user would type it (dates made up for the test, not the real 2027 schedule):
# 2027-01-01 is a Friday; 02-06 (Sat) .. 02-12 (Fri) off; Sunday 02-14 worked.
OVERRIDES_2027 = """
[2027]
holidays = ["2027-01-01", "2027-02-06..2027-02-12"]
workdays = ["2027-02-14"]
"""


# -- SPEC §5 and the deadline rule --------------------------------------------------------------


def test_deadline_skips_national_day_and_counts_the_make_up_saturday(cal):
    # 09-30 (1), 10-01..10-07 off, 10-08 (2), 10-09 (3), Sat 10-10 make-up (4), 10-12 (5).
    assert cal.deadline(D(2026, 9, 29)) == D(2026, 10, 12)


def test_deadline_from_a_saturday_counts_the_following_week(cal):
    assert cal.deadline(D(2026, 11, 7)) == D(2026, 11, 13)


def test_deadline_across_spring_festival_2026(cal):
    # Commissioned Friday 2026-02-13. Saturday 02-14 is a make-up working day (1);
    # 02-15 (Sun) .. 02-23 (Mon) are the Spring Festival holiday and skipped;
    # 02-24 (2), 02-25 (3), 02-26 (4), 02-27 Fri (5). Saturday 02-28 (make-up) is not needed.
    assert cal.deadline(D(2026, 2, 13)) == D(2026, 2, 27)
    # One day earlier: 02-13 (1), 02-14 (2), 02-24 (3), 02-25 (4), 02-26 (5).
    assert cal.deadline(D(2026, 2, 12)) == D(2026, 2, 26)


def test_deadline_of_an_asset_commissioned_on_a_holiday_counts_from_the_next_day(cal):
    # 10-01 is National Day: 10-08 (1), 10-09 (2), Sat 10-10 (3), 10-12 (4), 10-13 (5).
    assert cal.deadline(D(2026, 10, 1)) == D(2026, 10, 13)


def test_deadline_of_an_asset_commissioned_on_a_make_up_saturday_does_not_count_that_day(cal):
    # Sat 10-10 is a working day but the count is strictly after it: 10-12 .. 10-16.
    assert cal.deadline(D(2026, 10, 10)) == D(2026, 10, 16)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, D(2026, 9, 30)),
        (5, D(2026, 10, 12)),
        # 09-30, 10-08, 10-09, 10-10, 10-12, 10-13, 10-14, 10-15, 10-16, 10-19 (Mon).
        (10, D(2026, 10, 19)),
    ],
)
def test_deadline_length_is_configurable(cal, n, expected):
    assert cal.deadline(D(2026, 9, 29), n=n) == expected


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_deadline_length_must_be_a_positive_whole_number(cal, n):
    with pytest.raises(ValueError):
        cal.deadline(D(2026, 9, 29), n=n)


def test_archive_on_the_deadline_day_is_on_time(cal):
    recorded_on = D(2026, 10, 12)
    assert cal.deadline(D(2026, 9, 29)) == recorded_on
    assert recorded_on <= cal.deadline(D(2026, 9, 29))  # the deadline day itself is inclusive


def test_deadline_accepts_a_datetime_and_uses_its_day(cal):
    assert cal.deadline(datetime(2026, 9, 29, 23, 59)) == D(2026, 10, 12)


def test_is_working_day_follows_holidays_and_make_up_days(cal):
    assert cal.is_working_day(D(2026, 9, 30))
    assert not cal.is_working_day(D(2026, 10, 1))  # National Day, a Thursday
    assert cal.is_working_day(D(2026, 10, 10))  # make-up Saturday
    assert not cal.is_working_day(D(2026, 10, 11))  # ordinary Sunday


# -- vectorised deadlines -----------------------------------------------------------------------


def every_day(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def test_vectorised_deadlines_equal_the_scalar_one_on_every_day_of_2024_to_2026(cal):
    days = every_day(D(2024, 1, 1), D(2026, 12, 31))
    in_range, into_2027 = [], []
    for d in days:
        try:
            in_range.append((d, cal.deadline(d)))
        except CalendarYearUnknown as exc:
            assert "2027" in str(exc)
            into_2027.append(d)
    # 2026-12-31 (Thu) is the last working day chinesecalendar knows: from 12-24 the fifth
    # working day is 12-31; from 12-25 on it would fall in 2027.
    assert into_2027 == every_day(D(2026, 12, 25), D(2026, 12, 31))

    result = cal.deadlines(pd.Series([d for d, _ in in_range]))
    assert [ts.date() for ts in result] == [dl for _, dl in in_range]

    with pytest.raises(CalendarYearUnknown, match="2027"):
        cal.deadlines(pd.Series(into_2027))


def test_vectorised_deadlines_turn_nulls_into_nat_and_keep_the_index(cal):
    dates = pd.Series([D(2026, 9, 29), None, pd.NaT, D(2026, 11, 7)], index=[10, 11, 12, 13])
    result = WorkingCalendar.load(None).deadlines(dates, n=5)
    assert list(result.index) == [10, 11, 12, 13]
    assert result[10] == pd.Timestamp("2026-10-12")
    assert pd.isna(result[11]) and pd.isna(result[12])
    assert result[13] == pd.Timestamp("2026-11-13")


def test_vectorised_deadlines_of_only_nulls_need_no_calendar_year(cal):
    result = cal.deadlines(pd.Series([None, None], dtype=object))
    assert result.isna().all()


def test_vectorised_deadlines_take_the_local_day_of_aware_timestamps(cal):
    stamps = pd.Series(pd.to_datetime(["2026-09-29 23:30"]).tz_localize("Asia/Shanghai"))
    assert cal.deadlines(stamps)[0] == pd.Timestamp("2026-10-12")


def test_vectorised_deadlines_name_the_first_missing_year(cal):
    dates = pd.Series([D(2026, 6, 1), D(2003, 5, 6), D(2027, 3, 1)])
    with pytest.raises(CalendarYearUnknown, match="2003"):
        cal.deadlines(dates)


# -- years chinesecalendar does not know --------------------------------------------------------


def test_unknown_year_2027_is_never_guessed(cal):
    with pytest.raises(CalendarYearUnknown) as exc:
        cal.deadline(D(2027, 3, 1))
    message = str(exc.value)
    assert "2027" in message and "[2027]" in message
    # With no override file configured it says how to configure one.
    assert '[calendar]\n    overrides = "holidays.toml"' in message
    with pytest.raises(CalendarYearUnknown, match=r"\[2027\]"):
        cal.is_working_day(D(2027, 3, 1))
    with pytest.raises(CalendarYearUnknown, match=r"\[2027\]"):
        cal.describe_year(2027)


def test_unknown_year_message_names_the_configured_override_file(tmp_path):
    path = write_overrides(tmp_path, "[2028]\n")
    with pytest.raises(CalendarYearUnknown) as exc:
        WorkingCalendar.load(path).deadline(D(2026, 12, 28))
    message = str(exc.value)
    assert str(path) in message and "[2027]" in message
    assert "runs into 2027" in message


def test_a_2027_override_file_makes_2027_deadlines_work(tmp_path):
    cal = WorkingCalendar.load(write_overrides(tmp_path, OVERRIDES_2027))
    # From Fri 2026-12-25: 12-28, 12-29, 12-30, 12-31 (4); 2027-01-01 is listed as a holiday,
    # so the fifth working day is Monday 2027-01-04.
    assert cal.deadline(D(2026, 12, 25)) == D(2027, 1, 4)
    # From Fri 2027-02-05: 02-06..02-12 off, Sun 02-14 worked (1), 02-15..02-18 (2..5).
    assert cal.deadline(D(2027, 2, 5)) == D(2027, 2, 18)
    result = cal.deadlines(pd.Series([D(2026, 12, 25), D(2027, 2, 5)]))
    assert list(result.dt.date) == [D(2027, 1, 4), D(2027, 2, 18)]


def test_an_empty_year_table_declares_weekends_only(tmp_path):
    cal = WorkingCalendar.load(write_overrides(tmp_path, "[2027]\n"))
    assert cal.deadline(D(2026, 12, 25)) == D(2027, 1, 1)
    info = cal.describe_year(2027)
    assert info.holidays == [] and info.makeup_workdays == []
    assert info.working_day_count == 261  # 2027: 365 days from a Friday = 52 weeks + 1 weekday


def test_a_deadline_running_into_a_missing_year_names_that_year_even_past_the_override(tmp_path):
    cal = WorkingCalendar.load(write_overrides(tmp_path, "[2027]\n"))
    with pytest.raises(CalendarYearUnknown, match="2028"):
        cal.deadline(D(2027, 12, 30))


def test_an_override_of_a_known_2026_date_wins_over_chinesecalendar(tmp_path):
    # Monday 10-12 made a holiday: 09-30, 10-08, 10-09, 10-10, 10-13.
    cal = WorkingCalendar.load(write_overrides(tmp_path, '[2026]\nholidays = ["2026-10-12"]\n'))
    assert not cal.is_working_day(D(2026, 10, 12))
    assert cal.deadline(D(2026, 9, 29)) == D(2026, 10, 13)
    assert cal.deadlines(pd.Series([D(2026, 9, 29)]))[0] == pd.Timestamp("2026-10-13")


def test_an_override_can_cancel_a_chinesecalendar_make_up_day(tmp_path):
    cal = WorkingCalendar.load(write_overrides(tmp_path, '[2026]\nholidays = ["2026-10-10"]\n'))
    assert not cal.is_working_day(D(2026, 10, 10))
    assert cal.deadline(D(2026, 9, 29)) == D(2026, 10, 13)


def test_an_override_can_turn_a_chinesecalendar_holiday_into_a_working_day(tmp_path):
    # A weekday in `workdays` is accepted only when it corrects a chinesecalendar holiday.
    text = '[2026]\nworkdays = ["2026-10-07", "2026-10-11"]\n'
    cal = WorkingCalendar.load(write_overrides(tmp_path, text))
    assert cal.is_working_day(D(2026, 10, 7)) and cal.is_working_day(D(2026, 10, 11))
    # 09-30, 10-07, 10-08, 10-09, 10-10.
    assert cal.deadline(D(2026, 9, 29)) == D(2026, 10, 10)


def test_toml_native_dates_are_accepted_in_the_override_file(tmp_path):
    cal = WorkingCalendar.load(write_overrides(tmp_path, "[2027]\nholidays = [2027-01-01]\n"))
    assert not cal.is_working_day(D(2027, 1, 1))


# -- malformed override files -------------------------------------------------------------------

MALFORMED = {
    "bad toml": ("[2027\nholidays = [", "not valid TOML"),
    "unknown key": ('[2027]\nholiday = ["2027-01-01"]\n', "holiday"),
    "table not named by a year": ('[next_year]\nholidays = ["2027-01-01"]\n', "next_year"),
    "dates outside any year table": ('holidays = ["2027-01-01"]\n', "holidays"),
    "list is a string": ('[2027]\nholidays = "2027-01-01"\n', "2027-01-01"),
    "bad date": ('[2027]\nholidays = ["2027-02-30"]\n', "2027-02-30"),
    "not a date at all": ('[2027]\nholidays = ["Feb 6"]\n', "Feb 6"),
    "number instead of a date": ("[2027]\nholidays = [20270101]\n", "20270101"),
    "range backwards": (
        '[2027]\nholidays = ["2027-02-12..2027-02-06"]\n',
        "2027-02-12..2027-02-06",
    ),
    "date outside its year": ('[2027]\nholidays = ["2026-12-31"]\n', "2026-12-31"),
    "range leaving its year": ('[2027]\nholidays = ["2027-12-30..2028-01-02"]\n', "2028-01-02"),
    "weekday as a workday": ('[2027]\nworkdays = ["2027-02-15"]\n', "2027-02-15"),
    "weekday workday in a known year": ('[2026]\nworkdays = ["2026-10-12"]\n', "2026-10-12"),
    "holiday and workday at once": (
        '[2027]\nholidays = ["2027-02-14"]\nworkdays = ["2027-02-14"]\n',
        "2027-02-14",
    ),
}


@pytest.mark.parametrize(("text", "offending"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_override_file_is_a_config_error_naming_file_and_value(
    tmp_path, text, offending
):
    path = write_overrides(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        WorkingCalendar.load(path)
    message = str(exc.value)
    assert str(path) in message
    assert offending in message
    if "[20" in text and "not valid TOML" not in message:
        year = text.split("[", 1)[1][:4]
        assert f"[{year}]" in message


def test_a_missing_override_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        WorkingCalendar.load(tmp_path / "nope.toml")


def test_errors_exit_with_code_two():
    assert CalendarYearUnknown("x").exit_code == 2
    assert ConfigError("x").exit_code == 2


# -- working days between -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (D(2026, 9, 29), D(2026, 10, 12), 5),
        (D(2026, 10, 12), D(2026, 9, 29), -5),
        (D(2026, 9, 29), D(2026, 9, 29), 0),
        (D(2026, 9, 30), D(2026, 10, 8), 1),  # start excluded, end included: only 10-08
        (D(2026, 10, 1), D(2026, 10, 7), 0),  # inside National Day
        (D(2026, 10, 9), D(2026, 10, 11), 1),  # the make-up Saturday 10-10
        (D(2025, 12, 31), D(2026, 1, 5), 2),  # 01-01..01-03 off; Sun 01-04 (make-up), Mon 01-05
    ],
)
def test_working_days_between_counts_days_after_start_up_to_end(cal, start, end, expected):
    assert cal.working_days_between(start, end) == expected


def test_working_days_between_a_date_and_its_deadline_is_n_on_every_day_of_2025(cal):
    for d in every_day(D(2025, 1, 1), D(2025, 12, 31)):
        for n in (1, 5):
            assert cal.working_days_between(d, cal.deadline(d, n)) == n


def test_working_days_between_refuses_an_unknown_year(cal):
    with pytest.raises(CalendarYearUnknown, match="2027"):
        cal.working_days_between(D(2026, 12, 1), D(2027, 1, 10))


# -- describe_year ------------------------------------------------------------------------------


def test_describe_year_2026_counts_248_working_days(cal):
    # 2026 starts on a Thursday: 365 days = 52 weeks + 1 → 261 weekdays.
    # Weekday holidays: 01-01, 01-02 (2); 02-16..02-20, 02-23 (6); 04-06 (1); 05-01, 05-04,
    # 05-05 (3); 06-19 (1); 09-25 (1); 10-01, 10-02, 10-05, 10-06, 10-07 (5) → 19.
    # Make-up weekend days: 01-04, 02-14, 02-28, 05-09, 09-20, 10-10 → 6.  261 - 19 + 6 = 248.
    info = cal.describe_year(2026)
    assert info.year == 2026
    assert info.working_day_count == 248
    assert info.known_from == ("chinesecalendar",)


def test_describe_year_2026_lists_national_day_and_its_make_up_saturday(cal):
    info = cal.describe_year(2026)
    holidays = dict(info.holidays)
    for day in every_day(D(2026, 10, 1), D(2026, 10, 7)):
        assert holidays[day] == "chinesecalendar"
        assert "National Day" in info.names[day]
    makeup = dict(info.makeup_workdays)
    assert makeup[D(2026, 10, 10)] == "chinesecalendar"
    assert sorted(makeup) == [
        D(2026, 1, 4),
        D(2026, 2, 14),
        D(2026, 2, 28),
        D(2026, 5, 9),
        D(2026, 9, 20),
        D(2026, 10, 10),
    ]
    # Ordinary weekends are not listed as holidays.
    assert D(2026, 10, 11) not in holidays


def test_describe_year_names_the_override_file_as_the_source_of_a_corrected_day(tmp_path):
    path = write_overrides(tmp_path, '[2026]\nholidays = ["2026-10-12"]\n')
    info = WorkingCalendar.load(path).describe_year(2026)
    assert dict(info.holidays)[D(2026, 10, 12)] == f"overrides: {path}"
    assert dict(info.holidays)[D(2026, 10, 1)] == "chinesecalendar"
    assert info.working_day_count == 247
    assert info.known_from == ("chinesecalendar", f"overrides: {path}")


def test_describe_year_of_an_override_year_lists_its_days_from_the_file(tmp_path):
    path = write_overrides(tmp_path, OVERRIDES_2027)
    info = WorkingCalendar.load(path).describe_year(2027)
    source = f"overrides: {path}"
    assert [d for d, _ in info.holidays] == [
        D(2027, 1, 1),
        *every_day(D(2027, 2, 6), D(2027, 2, 12)),
    ]
    assert {s for _, s in info.holidays} == {source}
    assert info.makeup_workdays == [(D(2027, 2, 14), source)]
    # 261 weekdays - (01-01 + 02-08..02-12 = 6 weekday holidays) + 1 make-up Sunday.
    assert info.working_day_count == 256
    assert info.known_from == (source,)
