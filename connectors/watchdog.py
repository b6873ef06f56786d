"""Cancel a MySQL/MariaDB statement that runs past its time, from a process of its own.

connectorx (the MySQL fast path) keeps Python's interpreter lock for the whole of a read, so no
thread of the reading process could act on a timeout while it runs. This small process can:
it is started with the statement's marker and the timeout, and is told to stop by its parent
closing its stdin. If the timeout passes first, it cancels (KILL QUERY) every statement of the
same user that carries the marker, until the parent's read returns.

Parameters arrive as JSON on stdin, never on the command line: the URL carries a password.
"""

from __future__ import annotations

import json
import select
import sys
import time

POLL_SECONDS = 0.2
GIVE_UP_SECONDS = 600  # an orphan never outlives its purpose by long


def _stopped(wait: float) -> bool:
    """Wait up to `wait` seconds for the parent to close stdin (its 'stop')."""
    ready, _, _ = select.select([sys.stdin], [], [], wait)
    return bool(ready) and sys.stdin.read(1) == ""


def main() -> int:
    order = json.loads(sys.stdin.readline())
    if _stopped(order["after"]):
        return 0
    import pymysql

    connection = pymysql.connect(
        host=order["host"],
        port=order["port"],
        user=order["user"],
        password=order["password"] or "",
        autocommit=True,
    )
    deadline = time.monotonic() + GIVE_UP_SECONDS
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                (f"%{order['marker']}%",),
            )
            for (thread_id,) in cursor.fetchall():
                try:
                    cursor.execute(f"KILL QUERY {int(thread_id)}")
                except pymysql.MySQLError:
                    pass  # it ended by itself meanwhile
            if _stopped(POLL_SECONDS):
                break
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
