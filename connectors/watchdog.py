"""Cancel MySQL/MariaDB statements that run past their time, from a process of its own.

connectorx (the MySQL fast path) keeps Python's interpreter lock for the whole of a read, so no
thread of the reading process could act on a timeout while it runs. This small process can.
One runs per source, from its first fast-path statement until the source is disposed of
(fetch.Watchdog). It is told on stdin, one JSON line each, first where to connect (never on the
command line: the URL carries a password), then of each statement its marker and timeout
({"watch": marker, "after": seconds}) and its end ({"done": marker}). Once a statement is past
its timeout, it cancels (KILL QUERY) every statement of the same user that carries the marker,
until its end arrives. The parent closing stdin, or dying, ends it.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time

POLL_SECONDS = 0.2
GIVE_UP_SECONDS = 600  # a statement that will not die is not hunted for ever


class Lines:
    """Lines from a file descriptor, waited for with a timeout (Python's own buffered reader
    would hold lines select() cannot see)."""

    def __init__(self, fd: int):
        self._fd = fd
        self._buffer = b""
        self._ended = False

    def next(self, wait: float | None) -> str | None:
        """The next line; None if none came within `wait` seconds (None: no limit); "" at
        the end of input."""
        deadline = None if wait is None else time.monotonic() + wait
        while b"\n" not in self._buffer:
            if self._ended:
                return ""
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._fd, 65536)
            self._buffer += chunk
            self._ended = not chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8")


def main() -> int:
    lines = Lines(sys.stdin.fileno())
    first = lines.next(None)
    if not first:
        return 0
    server = json.loads(first)
    watched: dict[str, float] = {}  # marker -> when its statement is due to end (monotonic)
    connection = None
    while True:
        now = time.monotonic()
        overdue = [marker for marker, due in watched.items() if due <= now]
        for marker in overdue:
            if now - watched[marker] > GIVE_UP_SECONDS:
                del watched[marker]
        if overdue:
            try:
                connection = connection or _connect(server)
                _cancel(connection, overdue)
            except Exception:  # the server went away, or refused: asked again at the next poll
                connection = None
            wait: float | None = POLL_SECONDS
        else:
            wait = min(watched.values()) - now if watched else None
        line = lines.next(wait)
        if line == "":
            break
        if line is None:
            continue
        order = json.loads(line)
        if "watch" in order:
            watched[order["watch"]] = time.monotonic() + order["after"]
        else:
            watched.pop(order["done"], None)
    if connection is not None:
        connection.close()
    return 0


def _connect(server: dict):
    import pymysql

    return pymysql.connect(
        host=server["host"],
        port=server["port"],
        user=server["user"],
        password=server["password"] or "",
        autocommit=True,
    )


def _cancel(connection, markers: list[str]) -> None:
    """KILL QUERY every other statement carrying one of the markers."""
    import pymysql

    with connection.cursor() as cursor:
        for marker in markers:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                (f"%{marker}%",),
            )
            for (thread_id,) in cursor.fetchall():
                try:
                    cursor.execute(f"KILL QUERY {int(thread_id)}")
                except pymysql.MySQLError:
                    pass  # it ended by itself meanwhile


if __name__ == "__main__":
    sys.exit(main())
