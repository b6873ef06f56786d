"""Typed errors that carry their exit code and a message a user can act on.

Library code raises these; the CLI has one handler that prints the message and exits with the
code (SPEC §8). Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INCONCLUSIVE = 3
EXIT_INTERRUPTED = 130


class GridreconError(Exception):
    """Base of every error gridrecon reports to a user instead of a traceback."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(GridreconError):
    """The config file is missing, malformed, or has an unknown or invalid key.

    Always one line: the message quotes keys and values from files and database catalogues, and
    a newline or another control character in one of them must not break the line a monitoring
    check or a log reads.
    """

    def __init__(self, message: str):
        super().__init__(one_line(message))


def one_line(text: str) -> str:
    """text with control characters written as escapes (a newline as \\n)."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


class MappingError(ConfigError):
    """A mapping file is malformed or names a table or column the database does not have."""


class SourceError(GridreconError):
    """A database cannot be reached or read (the URL in the message is masked)."""


class SpillError(GridreconError):
    """Records read to disk by partition (sync/spill.py) could not be written there."""


class CalendarYearUnknown(GridreconError):
    """A working-day question about a year neither chinesecalendar nor the overrides know."""


class InconclusiveRun(GridreconError):
    """A source looked broken, so nothing was concluded from it."""

    exit_code = EXIT_INCONCLUSIVE
