"""Strict reading of TOML documents (config and mapping files).

Every error names the file and the dotted key, so a user can fix it without reading code, on one
line: keys and values are shown with control characters escaped (a quoted TOML key or string may
hold a newline), whatever the file holds.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LARGEST_WHOLE_NUMBER = 2**31 - 1


def read_toml(path: Path, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    try:
        # utf-8-sig: Notepad on Windows saves UTF-8 with a byte-order mark, which TOML forbids
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    return parse_toml(text, path, error)


def parse_toml(text: str, path: Path, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively
        raise error(f"{path} is not valid TOML: arrays or tables nested too deeply") from None


def shown(value: Any) -> str:
    """A short, one-line rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def key_text(key: str) -> str:
    """A key as written in a message: control and other unprintable characters escaped."""
    if key.isprintable():
        return key
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in key)


def expand_env(value: str, file: Path, key: str, error: type[ConfigError] = ConfigError) -> str:
    """Replace ${VAR} with the environment's value; an unset variable is an error, not ''."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise error(
                f"{file}: '{key}' uses ${{{name}}} but the environment variable {name} is not set"
            )
        return os.environ[name]

    return _ENV_PATTERN.sub(substitute, value)


class Section:
    """Typed, strict access to one table of a TOML document, for precise error messages."""

    def __init__(self, data: Any, file: Path, where: str, error: type[ConfigError] = ConfigError):
        self.file = file
        self.where = where
        self.error = error
        if not isinstance(data, dict):
            what = f"'{where}'" if where else "the file"
            raise self.fail(f"{what} must be a table, got {shown(data)}")
        self.data: dict[str, Any] = data

    def fail(self, message: str) -> ConfigError:
        return self.error(f"{self.file}: {message}")

    def key_name(self, key: str) -> str:
        return f"{self.where}.{key_text(key)}" if self.where else key_text(key)

    def check_keys(self, allowed: set[str] | frozenset[str]) -> None:
        for key in self.data:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                raise self.fail(f"unknown key '{self.key_name(key)}' (allowed here: {hint})")

    def section(self, key: str, required: bool = True) -> Section | None:
        if key not in self.data:
            if required:
                raise self.fail(f"missing section [{self.key_name(key)}]")
            return None
        return Section(self.data[key], self.file, self.key_name(key), self.error)

    def string(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        if key not in self.data:
            if required:
                raise self.fail(f"missing key '{self.key_name(key)}'")
            return default
        value = self.data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(
                f"'{self.key_name(key)}' must be a non-empty string, got {shown(value)}"
            )
        value = expand_env(value, self.file, self.key_name(key), self.error)
        if "\x00" in value:  # no name, path or URL holds one, and the OS refuses it in a path
            raise self.fail(f"'{self.key_name(key)}' holds a NUL character (\\x00)")
        return value

    def integer(
        self, key: str, default: int, minimum: int, maximum: int = _LARGEST_WHOLE_NUMBER
    ) -> int:
        # Every whole number has an upper bound: TOML integers are 64-bit, and a value beyond
        # what a setting can mean overflows wherever it meets a C int (a fetch size, a timer).
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"'{self.key_name(key)}' must be a whole number, got {shown(value)}")
        if not minimum <= value <= maximum:
            raise self.fail(
                f"'{self.key_name(key)}' must be at least {minimum} and at most {maximum}, "
                f"got {shown(value)}"
            )
        return value

    def number(self, key: str, default: float | None = None) -> float | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"'{self.key_name(key)}' must be a number, got {shown(value)}")
        if not math.isfinite(value):  # TOML has nan and inf
            raise self.fail(f"'{self.key_name(key)}' must be a finite number, got {value}")
        return float(value)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"'{self.key_name(key)}' must be true or false, got {shown(value)}")
        return value

    def string_list(self, key: str) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"'{self.key_name(key)}' must be a list of strings, got {shown(value)}")
        return value
