"""Notification hooks: a command from the config, the run summary as JSON on its standard input.

`on_failure` and `on_findings` are argv lists (no shell, so nothing in a summary can be run as
shell text). A hook gets a time limit; one that outlives it is killed with everything it started
(it runs in its own process group). A hook that fails, hangs or does not exist is logged and the
schedule goes on: a broken mail gateway must not stop the nightly reconciliation.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .logs import mask

log = logging.getLogger("gridrecon.schedule")

# What a hook printed is logged when it fails: its last lines, not a whole mail body.
_OUTPUT_TAIL = 800


@dataclass
class HookOutcome:
    hook: str
    exit_code: int | None  # None: did not start, or was killed after its timeout
    timed_out: bool
    seconds: float


def run_hook(
    hook: str,
    argv: tuple[str, ...],
    payload: dict[str, Any],
    timeout: float,
    cwd: Path,
    environment: dict[str, str],
) -> HookOutcome:
    """Run one hook with `payload` as JSON on stdin. Never raises; logs what happened."""
    began = time.monotonic()
    data = (json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n").encode()
    fields = {"hook": hook, "command": list(argv)}
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **environment},
            # Its own process group: on timeout the whole group is killed (a shell script's
            # children too), and a Ctrl-C meant for the scheduler does not reach it.
            start_new_session=True,
        )
    except OSError as exc:
        log.error(
            "hook %s could not start %s: %s",
            hook,
            argv[0],
            exc.strerror or exc,
            extra={"event": "hook_failed", **fields, "exit_code": None},
        )
        return HookOutcome(hook, None, False, time.monotonic() - began)
    try:
        output, _ = process.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        seconds = time.monotonic() - began
        log.error(
            "hook %s timed out after %d s and was killed",
            hook,
            timeout,
            extra={"event": "hook_timed_out", **fields, "timeout_s": timeout},
        )
        return HookOutcome(hook, None, True, seconds)
    seconds = time.monotonic() - began
    if process.returncode != 0:
        tail = output.decode(errors="replace").strip()[-_OUTPUT_TAIL:]
        log.error(
            "hook %s exited %d after %.1f s%s",
            hook,
            process.returncode,
            seconds,
            f": {mask(tail)}" if tail else "",
            extra={
                "event": "hook_failed",
                **fields,
                "exit_code": process.returncode,
                "duration_s": round(seconds, 3),
            },
        )
    else:
        log.info(
            "hook %s done in %.1f s",
            hook,
            seconds,
            extra={"event": "hook_done", **fields, "exit_code": 0, "duration_s": round(seconds, 3)},
        )
    return HookOutcome(hook, process.returncode, False, seconds)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        # A child that left the group can hold the pipe open: do not wait on it forever.
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
