"""Logging for the long-lived scheduler: one line per event, to stderr and a rotating file.

gridrecon's library logs to the "gridrecon" logger with an `event` and its fields in `extra`
(run_started, rows_read, run_ended, run_failed; the scheduler adds its own). Here those records
become one line each: readable text, or one JSON object per line (`--log-format json`) carrying
every extra field, for a log collector. Third-party chatter (alembic's migration notes,
APScheduler's "Running job ...") is held back to warnings; the scheduler reports the job events
it cares about itself.

Every line passes through `mask` last, so a password can not reach a log even when it hides in an
exception text: URL passwords become `***`, and so does any password of the configured URLs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..core.errors import ConfigError

LOGGER = "gridrecon"
# Loggers whose INFO lines are noise in a nightly log.
QUIET = ("alembic", "apscheduler", "great_expectations", "sqlalchemy", "urllib3")

# scheme://user:password@host -> scheme://user:***@host, whoever produced the text
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<password>[^\s/]+)@")
_secrets: set[str] = set()

# LogRecord's own attributes: whatever else a record carries came in through `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _AlreadyReported(logging.Filter):
    """Drops APScheduler's own lines about skipped and missed runs: the scheduler logs those as
    events (run_skipped, run_missed) with the scheduled time in the configured zone."""

    PREFIXES = ("Execution of job", "Run time of job")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


def remember_secrets(*passwords: str | None) -> None:
    """Passwords (of the configured database URLs) that must never appear in a log line."""
    _secrets.update(p for p in passwords if p and len(p) >= 3)


def mask(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}***@", text)
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class _Formatter(logging.Formatter):
    def __init__(self, zone: ZoneInfo | None):
        super().__init__()
        self.zone = zone

    def time(self, record: logging.LogRecord) -> str:
        moment = dt.datetime.fromtimestamp(record.created, self.zone or dt.UTC)
        return moment.isoformat(timespec="milliseconds")

    def traceback(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return record.exc_text or None


class TextFormatter(_Formatter):
    """`2026-11-30T02:00:07.412+08:00 INFO run_ended: run ended: completed, exit 0, … (run …)`"""

    def format(self, record: logging.LogRecord) -> str:
        fields = extra_fields(record)
        event = fields.get("event") or record.name
        line = f"{self.time(record)} {record.levelname} {event}: {record.getMessage()}"
        run_id = fields.get("run_id")
        if run_id and str(run_id) not in line:
            line += f" (run {run_id})"
        traceback = self.traceback(record)
        if traceback:  # a bug: keep the traceback, it is what gets the bug fixed
            line += "\n" + traceback
        return mask(line)


class JsonFormatter(_Formatter):
    """One JSON object per line: time, level, logger, event, message and every extra field."""

    def format(self, record: logging.LogRecord) -> str:
        fields = extra_fields(record)
        document: dict[str, Any] = {
            "time": self.time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": fields.pop("event", None),
            "message": record.getMessage(),
        }
        document.update(fields)
        traceback = self.traceback(record)
        if traceback:
            document["traceback"] = traceback
        return mask(json.dumps(document, ensure_ascii=False, default=str))


def configure(
    format: str = "text",
    log_file: Path | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
    zone: ZoneInfo | None = None,
) -> None:
    """Send gridrecon's events (INFO and up) and everyone's warnings to stderr and `log_file`.

    Replaces whatever handlers the root logger had, so calling it again reconfigures.
    """
    formatter: logging.Formatter = JsonFormatter(zone) if format == "json" else TextFormatter(zone)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        if not log_file.parent.is_dir():
            raise ConfigError(
                f"the folder of the log file {log_file} does not exist; create it or change "
                "[schedule] log_file (or --log-file)"
            )
        try:
            handlers.append(
                RotatingFileHandler(
                    log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
                )
            )
        except OSError as exc:
            raise ConfigError(f"cannot write the log file {log_file}: {exc.strerror}") from None
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    # Other libraries speak at WARNING and up only; gridrecon's own events at INFO.
    root.setLevel(logging.WARNING)
    logging.getLogger(LOGGER).setLevel(logging.INFO)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
        apscheduler_log = logging.getLogger(name)
        if not any(isinstance(f, _AlreadyReported) for f in apscheduler_log.filters):
            apscheduler_log.addFilter(_AlreadyReported())
