"""Strict reading of TOML documents (config and mapping files).

Every error names the file and the dotted key, so a user can fix it without reading code.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_toml(path: Path, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None


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
            raise self.fail(f"{where or 'the file'} must be a table, got {_shown(data)}")
        self.data: dict[str, Any] = data

    def fail(self, message: str) -> ConfigError:
        return self.error(f"{self.file}: {message}")

    def key_name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

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
                f"'{self.key_name(key)}' must be a non-empty string, got {_shown(value)}"
            )
        return expand_env(value, self.file, self.key_name(key), self.error)

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"'{self.key_name(key)}' must be a whole number, got {_shown(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise self.fail(
                f"'{self.key_name(key)}' must be at least {minimum}{upper}, got {value}"
            )
        return value

    def number(self, key: str, default: float | None = None) -> float | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"'{self.key_name(key)}' must be a number, got {_shown(value)}")
        return float(value)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"'{self.key_name(key)}' must be true or false, got {_shown(value)}")
        return value

    def string_list(self, key: str) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(
                f"'{self.key_name(key)}' must be a list of strings, got {_shown(value)}"
            )
        return value


def _shown(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
