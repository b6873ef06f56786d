"""The validity worker's process, started before the run imports its libraries.

Great Expectations takes seconds of CPU to import, in the worker process (checks/validity.py).
Started when the run begins to read, that import takes turns for the two cores with the readers
and both database servers; started when `gridrecon run` begins, it has the second core to itself
while the run imports pandas, SQLAlchemy and the drivers. This module imports nothing of those,
so that the CLI can start the process first; validity.start_worker() then takes it over.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys

_early: subprocess.Popen | None = None
# What the worker's Python runs: validity._serve, with its arguments in the braces.
SERVE = "from gridrecon.checks.validity import _serve; _serve({})"


def spawn() -> subprocess.Popen:
    """A worker process: a child Python running validity._serve, fed over its stdin."""
    environment = dict(os.environ)
    # The child imports gridrecon from wherever this process did.
    environment["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.Popen(
        [sys.executable, "-c", SERVE.format("")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=environment,
        # A session of its own: Ctrl-C in a terminal reaches the run, which ends this
        # process, not this process mid-start (a "Fatal Python error" on the user's screen).
        start_new_session=True,
    )


def start_early() -> None:
    """Start a worker process now, for the run about to begin (if it cannot start, the run
    starts one later or validates in its own process, as it would have)."""
    global _early
    if _early is None:
        try:
            _early = spawn()
        except (OSError, ValueError):
            return
        atexit.register(discard_early)


def take_early() -> subprocess.Popen | None:
    """The process start_early started, if it still runs; the caller owns it from now on."""
    global _early
    process, _early = _early, None
    if process is not None:
        atexit.unregister(discard_early)
        if process.poll() is not None:  # it died: the caller starts another
            _close(process)
            return None
    return process


def discard_early() -> None:
    """End the process start_early started, if no one took it over: a night on which nothing
    changed validates nothing. It is loading or idle, with nothing to finish: killed at once."""
    process = take_early()
    if process is not None:
        process.kill()
        process.wait()
        _close(process)


def _close(process: subprocess.Popen) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()
