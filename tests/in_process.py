"""The gridrecon CLI called in-process, and TOML files written from Python values: what the
config fuzzing and the injection tests run hundreds of cases with.

`gridrecon()` calls the console entry point itself (`gridrecon.cli.main`), so exit codes and
messages are exactly a user's; an exception escaping it is a traceback a user would have seen,
and fails the test with it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from gridrecon.cli import main


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def gridrecon(*args: str) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Outcome(code, out.getvalue(), err.getvalue())


def toml_string(text: str) -> str:
    # JSON's escapes are TOML's, except that TOML also forbids a raw DEL
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # nan, inf, -inf and 1e+20 are TOML too
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def toml_document(doc: dict[str, Any]) -> str:
    lines: list[str] = []

    def table(data: dict[str, Any], name: str) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in data.items() if isinstance(v, dict)}
        if name and (scalars or not tables):
            lines.append(f"[{name}]")
        lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in scalars.items())
        for key, sub in tables.items():
            table(sub, f"{name}.{toml_key(key)}" if name else toml_key(key))

    table(doc, "")
    return "\n".join(lines) + "\n"
