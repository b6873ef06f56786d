"""Bad input exits 2 with one message naming the thing and how to fix it, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli


def assert_one_clean_error(result, *needles: str) -> None:
    assert result.code == 2, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("gridrecon: error: ")
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_a_mapped_table_that_does_not_exist_exits_two_naming_mapping_and_key(
    custom_config: Path,
) -> None:
    mapping = custom_config.parent / "register.toml"
    mapping.write_text(mapping.read_text().replace('"asset_xfmr"', '"asset_xfmrs"'))
    result = run_cli("run", "--config", str(custom_config), "--as-of", "2026-11-20")
    assert_one_clean_error(
        result, str(mapping), "transformer.tables[0].table", "asset_xfmrs", "similar: ASSET_XFMR"
    )


def test_a_mapped_column_that_does_not_exist_exits_two_listing_the_columns_that_do(
    custom_config: Path,
) -> None:
    mapping = custom_config.parent / "register.toml"
    mapping.write_text(mapping.read_text().replace('capacity_kva = "kva"', 'capacity_kva = "kvar"'))
    result = run_cli("run", "--config", str(custom_config))
    assert_one_clean_error(
        result, "transformer.columns.capacity_kva", "'kvar'", "xid, label, volt, kva"
    )


def test_an_unknown_config_key_exits_two_naming_it(custom_config: Path) -> None:
    custom_config.write_text(custom_config.read_text() + '\n[report]\ndirectory = "x"\n')
    result = run_cli("run", "--config", str(custom_config))
    assert_one_clean_error(result, str(custom_config), "unknown key 'report.directory'", "dir")


def test_an_unset_environment_variable_exits_two_naming_it(custom_config: Path) -> None:
    text = custom_config.read_text().replace(
        'url = "sqlite:///register.sqlite"', 'url = "${GRIDRECON_TEST_UNSET_URL}"', 1
    )
    custom_config.write_text(text)
    result = run_cli(
        "validate", "--config", str(custom_config), env={"GRIDRECON_TEST_UNSET_URL": ""}
    )
    assert result.code == 2  # set but empty: not a database URL
    result = run_cli("run", "--config", str(custom_config))
    assert_one_clean_error(result, "GRIDRECON_TEST_UNSET_URL", "pms.url", "not set")


def test_an_unreachable_database_exits_two_with_the_password_masked(custom_config: Path) -> None:
    text = custom_config.read_text().replace(
        'url = "sqlite:///register.sqlite"',
        'url = "postgresql+psycopg://steward:s3cret-pw@127.0.0.1:1/pms"',
        1,
    )
    custom_config.write_text(text)
    result = run_cli("run", "--config", str(custom_config))
    assert_one_clean_error(result, "postgresql+psycopg://steward:***@127.0.0.1:1/pms")
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_a_missing_sqlite_file_is_not_created(custom_config: Path) -> None:
    custom_config.write_text(
        custom_config.read_text().replace("register.sqlite", "nowhere.sqlite", 1)
    )
    result = run_cli("run", "--config", str(custom_config))
    assert_one_clean_error(result, "nowhere.sqlite", "does not exist")
    assert not (custom_config.parent / "nowhere.sqlite").exists()


def test_a_missing_config_file_exits_two(tmp_path: Path) -> None:
    result = run_cli("run", "--config", str(tmp_path / "absent.toml"))
    assert_one_clean_error(result, "absent.toml", "not found")


@pytest.mark.parametrize(
    ("replace", "by", "needle"),
    [
        ('system = "marketing"', 'system = "billing"', "'system' must be one of pms, marketing"),
        ('codes = "state"', 'codes = "states"', "code list 'states'"),
        ("[line]\n", "[line]\nfoo = 1\n", "unknown key 'line.foo'"),
        (
            'absent = ["recorded_at", "capacity_kva"]',
            'absent = ["recorded_at"]',
            "'line.columns' has no column for 'capacity_kva'",
        ),
        ("HV10 = 10.0", 'HV10 = "ten"', "must map to numbers"),
        ('A = "in_service"', 'A = "running"', "must map to one of in_service"),
    ],
)
def test_a_malformed_mapping_exits_two_naming_the_key(
    custom_config: Path, replace: str, by: str, needle: str
) -> None:
    mapping = custom_config.parent / "register.toml"
    assert replace in mapping.read_text()
    mapping.write_text(mapping.read_text().replace(replace, by, 1))
    result = run_cli("validate", "--config", str(custom_config))
    assert_one_clean_error(result, str(mapping), needle)


def test_debug_shows_the_traceback(custom_config: Path) -> None:
    result = run_cli("--debug", "run", "--config", str(custom_config.parent / "absent.toml"))
    assert result.code != 0
    assert "Traceback" in result.stderr or "ConfigError" in result.stderr
