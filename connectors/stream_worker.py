"""Read one statement through connectorx in batches, as an Arrow IPC stream into a file.

The streamed fast paths (connectors/fetch.py) run their reads here, in a process of their own:
an error in the middle of connectorx's streamed read (a dropped connection, a cancelled
statement) is a Rust panic in its writer thread, which prints Rust's panic message on fd 2. Here
fd 2 is a file the parent reads; the error itself is one JSON line on it,
{"error": "<message>", "unsupported": <bool>}, and the exit status 1. "unsupported" is true for a
type connectorx cannot represent (the fast paths then read another way, as the in-process ones
do), false for an error of the database or the connection.

The batches go to a file the parent opened (its descriptor inherited), not to a pipe: connectorx fetches ahead of whoever
takes its batches, without bound, so a reader that writes them to a pipe its parent drains more
slowly (normalising them) held over a gigabyte at national scale. Written to a file, they leave
this process as fast as they arrive; the parent reads the file as it grows.

Parameters arrive as JSON on stdin, never on the command line: the URL carries a password. Only
what the read needs is imported: no pandas, no SQLAlchemy, nothing else of gridrecon.
"""

from __future__ import annotations

import json
import re
import signal
import sys

# connectorx's writer failed on an error of the database: the text that follows is the Rust
# Debug form of its driver's error, wrapped in connectorx's own error types.
_WRITER_FAILED = "cx writer failed: "
_WRAPPERS = ("Source(", "PostgresError(", "MySQLError(")
_DB_ERROR = re.compile(r'DbError \{ severity: "([^"]*)".*? message: "((?:[^"\\]|\\.)*)"')
_OS_ERROR = re.compile(r'Os \{ code: (\d+), kind: \w+, message: "((?:[^"\\]|\\.)*)" \}')


def plain(message: str) -> str:
    """A writer failure in the words connectorx uses for the same error outside a stream, so
    that it is classified (dialects.failure_kind) and shown alike: PostgreSQL's
    `db error: ERROR: canceling statement due to statement timeout`, MySQL's
    `MySqlError { ERROR 1317 (70100): ... }`."""
    if not message.startswith(_WRITER_FAILED):
        return message
    text = message[len(_WRITER_FAILED) :]
    stripped = True
    while stripped:
        stripped = False
        for wrapper in _WRAPPERS:
            if text.startswith(wrapper) and text.endswith(")"):
                text, stripped = text[len(wrapper) : -1], True
    if text.startswith("Error { kind: Db,") and (found := _DB_ERROR.search(text)):
        return f"db error: {found[1]}: {_unescape(found[2])}"
    if text.startswith("Error { kind: Closed,"):
        return "connection closed"
    if text.startswith("Error { kind: Io,"):
        found = _OS_ERROR.search(text)
        cause = f"{_unescape(found[2])} (os error {found[1]})" if found else text
        return f"error communicating with the server: {cause}"
    return text


def _unescape(debug: str) -> str:
    return debug.replace('\\"', '"').replace("\\\\", "\\")


def main() -> int:
    # Ctrl-C reaches the whole process group; the parent decides, and kills its child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    order = json.loads(sys.stdin.readline())
    try:
        import connectorx
        import pyarrow as pa

        batches = connectorx.read_sql(
            order["url"],
            order["sql"],
            return_type="arrow_stream",
            batch_size=order["batch_size"],
        )
        with open(order["fd"], "wb") as out:
            with pa.ipc.new_stream(out, batches.schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
                    out.flush()  # the parent reads the file as it grows
    except BaseException as error:  # connectorx's PanicException is a BaseException
        panic = type(error).__name__ == "PanicException"
        text = (str(error).strip().splitlines() or [type(error).__name__])[0]
        report = {
            "error": plain(text),
            "unsupported": panic and not text.startswith(_WRITER_FAILED),
        }
        sys.stderr.write("\n" + json.dumps(report) + "\n")
        sys.stderr.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
