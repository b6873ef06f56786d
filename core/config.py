"""Load and validate the gridrecon TOML config (SPEC §8).

Strict on purpose: an unknown key, a wrong type or an unset ${ENV} variable is an error that names
the file and the key, because a nightly job that silently ignores a typo reconciles the wrong thing.
Relative paths (and relative SQLite URLs) are resolved against the config file's folder, so the
same config works from cron, systemd or a shell in any directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .errors import ConfigError
from .toml_section import Section, read_toml, shown

CONFIG_ENV_VAR = "GRIDRECON_CONFIG"
DEFAULT_CONFIG_NAME = "gridrecon.toml"
DEFAULT_CHUNK_SIZE = 50_000
MAX_CHUNK_SIZE = 10_000_000
DEFAULT_PARTITION_ROWS = 500_000
MAX_PARTITION_ROWS = 1_000_000_000
BUILTIN_MAPPINGS = ("pms2", "sg186")  # the files in connectors/mappings/
DEFAULT_STATEMENT_TIMEOUT = 1800
READERS = ("auto", "generic")


@dataclass(frozen=True)
class SourceConfig:
    """One source system: where it is and which mapping describes its schema."""

    system: str  # "pms" or "marketing"
    url: URL
    mapping: str  # built-in mapping name, or a resolved path to a mapping file
    schema: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    reader: str = "auto"  # "auto": the engine's fast path where there is one; "generic": SQLAlchemy
    statement_timeout: int = DEFAULT_STATEMENT_TIMEOUT  # seconds per statement; 0 = none
    retries: int = 3  # further attempts when the connection drops
    retry_delay: float = 2.0  # seconds before the first retry, doubling with each


_SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class ScheduleConfig:
    """[schedule]: when `gridrecon schedule` runs, where it logs, whom it tells (schedule/)."""

    # 5 fields (minute hour day month weekday, weekday 0/7 = Sunday as in crontab), or 6 with
    # seconds first (for tests and demos)
    cron: str = "0 2 * * *"
    timezone: ZoneInfo = _SHANGHAI  # parse_config's default: the config's timezone
    misfire_grace_seconds: int = 86_400  # a fire time missed while down still runs within this
    log_file: Path | None = None
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    on_failure: tuple[str, ...] = ()  # argv, no shell; gets the summary JSON on stdin
    on_findings: tuple[str, ...] = ()
    on_findings_min_severity: str = "error"
    hook_timeout_seconds: int = 60


@dataclass(frozen=True)
class PlanConfig:
    """[plan]: how `gridrecon plan` lays out corrections and where `plan apply` stages them."""

    template: str = "sg186"  # built-in plan template name, or a resolved path to a template file
    staging_url: URL | None = None  # the interface (staging) database; --target beats it
    max_run_age_days: float = 3.0  # `plan apply` refuses a plan whose run started longer ago


@dataclass(frozen=True)
class IncrementalConfig:
    """[incremental]: read only what changed since the last run, where a source can say so."""

    enabled: bool = False
    lag_minutes: int = 60  # re-read rows changed this long before the last run began
    full_sweep_days: int = 7  # a full read at least this often: it is what sees deletions
    snapshot_dir: Path | None = None  # default: <report dir>/.snapshot


@dataclass(frozen=True)
class Config:
    path: Path
    timezone: ZoneInfo
    pms: SourceConfig
    marketing: SourceConfig
    state_url: URL
    report_dir: Path
    calendar_overrides: Path | None
    min_row_share: float = 0.5
    rules: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    incremental: IncrementalConfig = field(default_factory=IncrementalConfig)
    # [run] partition_rows: an asset type with more records than this is judged in partitions
    # of about this many (sync/partition.py): less memory, the same findings
    partition_rows: int = DEFAULT_PARTITION_ROWS

    @property
    def snapshot_dir(self) -> Path:
        return self.incremental.snapshot_dir or self.report_dir / ".snapshot"

    def source(self, system: str) -> SourceConfig:
        return self.pms if system == "pms" else self.marketing


def display_url(url: URL) -> str:
    """The URL as it may appear in logs, messages and reports: password masked."""
    return url.render_as_string(hide_password=True)


def scrubbed(error: BaseException, url: URL) -> str:
    """A driver error's first line as it may be shown: the URL's password masked, as typed and as
    spelled inside a URL."""
    orig = getattr(error, "orig", None) or error
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    if url.password:
        for spelled in {str(url.password), quote(str(url.password), safe="")}:
            text = text.replace(spelled, "***")
    return text


def resolve_config_path(given: Path | None) -> Path:
    """--config, else $GRIDRECON_CONFIG, else ./gridrecon.toml (SPEC §8)."""
    if given is not None:
        return given
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    return Path(DEFAULT_CONFIG_NAME)


def load_config(path: Path) -> Config:
    if not path.is_file():
        raise ConfigError(
            f"config file {path} not found: pass --config FILE, set {CONFIG_ENV_VAR}, "
            f"or create {DEFAULT_CONFIG_NAME} in the working directory"
        )
    data = read_toml(path)
    return parse_config(data, path)


def parse_url(text: str, base: Path, file: Path, key: str) -> URL:
    """Parse a SQLAlchemy URL; a relative SQLite path is taken relative to the config's folder."""
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        # never echo the text: it may hold a password
        raise ConfigError(
            f"{file}: '{key}' is not a database URL; expected e.g. "
            "postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db or sqlite:///file.sqlite"
        ) from None
    try:
        # Loads SQLAlchemy's dialect class only (the driver is imported on connecting), so an
        # unknown database fails here, naming the key, and not later as a connection error.
        url.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(
            f"{file}: '{key}' names no database SQLAlchemy knows ({shown(url.drivername)}); "
            "spell the driver in the URL, e.g. postgresql+psycopg://, mysql+pymysql://, "
            "oracle+oracledb://, sqlite:///"
        ) from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = Path(url.database)
        if not database.is_absolute() and not url.database.startswith("file:"):
            url = url.set(database=str((base / database).resolve()))
    return url


def resolve_path(text: str, base: Path) -> Path:
    path = Path(text)
    try:
        path = path.expanduser()
    except RuntimeError:  # "~someone" without such a user: a plain name then
        pass
    return path if path.is_absolute() else (base / path).resolve()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, say
        return False


def _zone(section: Section, key: str, default: str | None = None) -> ZoneInfo | None:
    name = section.string(key, default=default)
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    # a zone name is a path below the zone database: "Asia" is a folder, a long one too long
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise section.fail(
            f"'{section.key_name(key)}' {shown(name)} is not an IANA time zone (e.g. Asia/Shanghai)"
        ) from None


_SOURCE_KEYS = {
    "url",
    "mapping",
    "schema",
    "chunk_size",
    "reader",
    "statement_timeout",
    "retries",
    "retry_delay",
}
_TOP_KEYS = {
    "timezone",
    "pms",
    "marketing",
    "state",
    "report",
    "calendar",
    "rules",
    "schedule",
    "plan",
    "incremental",
    "run",
}


def _parse_source(root: Section, system: str, default_mapping: str, base: Path) -> SourceConfig:
    section = root.section(system)
    assert section is not None
    section.check_keys(_SOURCE_KEYS)
    url = parse_url(section.string("url", required=True), base, root.file, f"{system}.url")
    mapping = section.string("mapping", default=default_mapping)
    if mapping not in BUILTIN_MAPPINGS:  # anything else is a file, relative to the config
        path = resolve_path(mapping, base)
        if not _is_file(path):
            raise section.fail(
                f"'{system}.mapping' {shown(mapping)} is neither a built-in mapping "
                f"({', '.join(BUILTIN_MAPPINGS)}) nor a mapping file ({path} does not exist)"
            )
        mapping = str(path)
    return SourceConfig(
        system=system,
        url=url,
        mapping=mapping,
        schema=section.string("schema"),
        chunk_size=section.integer(
            "chunk_size", DEFAULT_CHUNK_SIZE, minimum=100, maximum=MAX_CHUNK_SIZE
        ),
        reader=_choice(section, "reader", READERS),
        statement_timeout=section.integer(
            "statement_timeout", DEFAULT_STATEMENT_TIMEOUT, minimum=0, maximum=7 * 86_400
        ),
        retries=section.integer("retries", 3, minimum=0, maximum=20),
        retry_delay=_bounded(section, "retry_delay", 2.0, 0.0, 600.0),
    )


def _choice(section: Section, key: str, choices: tuple[str, ...]) -> str:
    value = section.string(key, default=choices[0])
    if value not in choices:
        raise section.fail(
            f"'{section.key_name(key)}' must be one of {', '.join(choices)}, got '{value}'"
        )
    return value


def _bounded(section: Section, key: str, default: float, low: float, high: float) -> float:
    value = section.number(key, default)
    if not low <= value <= high:
        raise section.fail(
            f"'{section.key_name(key)}' must be at least {low:g} and at most {high:g}, "
            f"got {value:g}"
        )
    return value


_SCHEDULE_KEYS = {
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
}


def _parse_schedule(root: Section, zone: ZoneInfo, base: Path) -> ScheduleConfig:
    """[schedule]; the cron expression itself is checked by the scheduler, which knows cron."""
    section = root.section("schedule", required=False)
    if section is None:
        return ScheduleConfig(timezone=zone)
    section.check_keys(_SCHEDULE_KEYS)
    cron = " ".join(section.string("cron", default=ScheduleConfig.cron).split())
    if len(cron.split()) not in (5, 6):
        raise section.fail(
            f"'schedule.cron' must have 5 fields (minute hour day month weekday) or 6 (second "
            f"first), got {shown(cron)}"
        )
    zone = _zone(section, "timezone") or zone
    severity = section.string("on_findings_min_severity", default="error")
    if severity not in ("info", "warning", "error"):
        raise section.fail(
            "'schedule.on_findings_min_severity' must be info, warning or error, "
            f"got {shown(severity)}"
        )

    def command(key: str) -> tuple[str, ...]:
        argv = list(section.string_list(key))
        if key in section.data and (not argv or not all(a.strip() for a in argv)):
            raise section.fail(
                f"'schedule.{key}' must be a command as a list of non-empty strings, "
                'e.g. ["/usr/local/bin/page-oncall", "--team", "grid"]'
            )
        if argv and "/" in argv[0]:  # a path, not a name looked up in PATH
            argv[0] = str(resolve_path(argv[0], base))
        return tuple(argv)

    log_file = section.string("log_file")
    return ScheduleConfig(
        cron=cron,
        timezone=zone,
        misfire_grace_seconds=section.integer(
            "misfire_grace_seconds", 86_400, minimum=1, maximum=366 * 86_400
        ),
        log_file=resolve_path(log_file, base) if log_file else None,
        log_max_bytes=section.integer(
            "log_max_bytes", 10 * 1024 * 1024, minimum=1024, maximum=2**40
        ),
        log_backups=section.integer("log_backups", 5, minimum=0, maximum=1000),
        on_failure=command("on_failure"),
        on_findings=command("on_findings"),
        on_findings_min_severity=severity,
        hook_timeout_seconds=section.integer("hook_timeout_seconds", 60, minimum=1, maximum=86_400),
    )


def _parse_plan(root: Section, base: Path) -> PlanConfig:
    section = root.section("plan", required=False)
    if section is None:
        return PlanConfig()
    section.check_keys({"template", "staging_url", "max_run_age_days"})
    template = section.string("template", default=PlanConfig.template)
    if template.endswith(".toml") or "/" in template or os.sep in template:
        template = str(resolve_path(template, base))
    staging = section.string("staging_url")
    age = section.number("max_run_age_days", PlanConfig.max_run_age_days)
    if age <= 0:
        raise section.fail(f"'plan.max_run_age_days' must be more than 0, got {age:g}")
    return PlanConfig(
        template=template,
        staging_url=parse_url(staging, base, root.file, "plan.staging_url") if staging else None,
        max_run_age_days=age,
    )


def parse_config(data: dict[str, Any], path: Path) -> Config:
    base = path.resolve().parent
    root = Section(data, path, "")
    root.check_keys(_TOP_KEYS)

    zone = _zone(root, "timezone", default="Asia/Shanghai")

    state = root.section("state", required=False)
    state_url_text = "sqlite:///gridrecon-state.sqlite"
    min_row_share = 0.5
    if state is not None:
        state.check_keys({"url", "min_row_share"})
        state_url_text = state.string("url", default=state_url_text)
        min_row_share = state.number("min_row_share", 0.5)
        if not 0 <= min_row_share <= 1:
            raise ConfigError(
                f"{path}: 'state.min_row_share' must be between 0 and 1, got {min_row_share:g}"
            )

    report = root.section("report", required=False)
    report_dir = "gridrecon-reports"
    if report is not None:
        report.check_keys({"dir"})
        report_dir = report.string("dir", default=report_dir)

    calendar = root.section("calendar", required=False)
    overrides = None
    if calendar is not None:
        calendar.check_keys({"overrides"})
        text = calendar.string("overrides")
        overrides = resolve_path(text, base) if text else None
        if overrides is not None and not _is_file(overrides):
            raise calendar.fail(
                f"'calendar.overrides' names {overrides}, which does not exist; create it (see "
                "README, Working days) or remove the key"
            )

    rules = root.section("rules", required=False)

    return Config(
        path=path.resolve(),
        timezone=zone,
        pms=_parse_source(root, "pms", "pms2", base),
        marketing=_parse_source(root, "marketing", "sg186", base),
        state_url=parse_url(state_url_text, base, path, "state.url"),
        report_dir=resolve_path(report_dir, base),
        calendar_overrides=overrides,
        min_row_share=min_row_share,
        rules=rules.data if rules is not None else {},
        raw=data,
        schedule=_parse_schedule(root, zone, base),
        plan=_parse_plan(root, base),
        incremental=_parse_incremental(root, base),
        partition_rows=_parse_run(root),
    )


def _parse_run(root: Section) -> int:
    section = root.section("run", required=False)
    if section is None:
        return DEFAULT_PARTITION_ROWS
    section.check_keys({"partition_rows"})
    return section.integer(
        "partition_rows", DEFAULT_PARTITION_ROWS, minimum=1, maximum=MAX_PARTITION_ROWS
    )


def _parse_incremental(root: Section, base: Path) -> IncrementalConfig:
    section = root.section("incremental", required=False)
    if section is None:
        return IncrementalConfig()
    section.check_keys({"enabled", "lag_minutes", "full_sweep_days", "snapshot_dir"})
    folder = section.string("snapshot_dir")
    return IncrementalConfig(
        enabled=section.boolean("enabled", False),
        lag_minutes=section.integer("lag_minutes", 60, minimum=0, maximum=7 * 24 * 60),
        full_sweep_days=section.integer("full_sweep_days", 7, minimum=1, maximum=366),
        snapshot_dir=resolve_path(folder, base) if folder else None,
    )
