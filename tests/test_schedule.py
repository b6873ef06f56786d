"""`gridrecon schedule` as operations run it: a real long-lived process on a copy of the sample,
with a cron that fires every few seconds (six fields, seconds first), stopped by SIGTERM."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import GRIDRECON, SAMPLE, run_cli

from gridrecon.core.config import load_config
from gridrecon.core.errors import ConfigError
from gridrecon.schedule.service import build_trigger

ZONE = ZoneInfo("Asia/Shanghai")

# Writes what it was given, then, on its first call only, hangs: the scheduler must kill it.
HOOK = """
import json, os, pathlib, sys, time
out = pathlib.Path(sys.argv[1])
calls = len(list(out.glob("call-*.json"))) + 1
record = {"hook": os.environ["GRIDRECON_HOOK"], "pid": os.getpid(), "stdin": sys.stdin.read()}
(out / "partial").write_text(json.dumps(record))
(out / "partial").rename(out / f"call-{calls}.json")
if calls == 1 and len(sys.argv) > 2 and sys.argv[2] == "hang-first":
    time.sleep(300)
"""


def _sample(folder: Path, schedule: str, pms_url: str = "sqlite:///pms.sqlite") -> Path:
    for name in ("pms.sqlite", "marketing.sqlite"):
        (folder / name).write_bytes((SAMPLE / name).read_bytes())
    (folder / "hook.py").write_text(HOOK, encoding="utf-8")
    (folder / "calls").mkdir()
    config = folder / "gridrecon.toml"
    config.write_text(
        f'[pms]\nurl = "{pms_url}"\n[marketing]\nurl = "sqlite:///marketing.sqlite"\n'
        f'[report]\ndir = "reports"\n[schedule]\n{schedule}',
        encoding="utf-8",
    )
    return config


def _hook(*args: str) -> str:
    return json.dumps([sys.executable, "hook.py", "calls", *args])


class Scheduler:
    """A `gridrecon schedule` process; its stderr goes to a file the test can read at any time."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None):
        self.stderr_path = config.parent / f"stderr-{time.monotonic_ns()}.log"
        self.stderr_file = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            [str(GRIDRECON), "schedule", "--config", str(config), *args],
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self.stderr_file,
        )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(
                    f"the scheduler exited {self.process.returncode} before {what}:\n" + self.stderr
                )
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"no {what} within {timeout} s:\n" + self.stderr)
            time.sleep(0.1)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.stderr_file.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr_file.close()


@pytest.fixture
def schedulers():
    """Start schedulers through this; any left running by a failed test is killed."""
    started: list[Scheduler] = []

    def start(config: Path, *args: str, env: dict[str, str] | None = None) -> Scheduler:
        started.append(Scheduler(config, *args, env=env))
        return started[-1]

    yield start
    for scheduler in started:
        scheduler.kill()


def _completed_runs(folder: Path) -> list[str]:
    try:
        with sqlite3.connect(folder / "gridrecon-state.sqlite") as connection:
            rows = connection.execute(
                "SELECT run_id FROM gr_runs WHERE status = 'completed' ORDER BY started_at"
            ).fetchall()
    except sqlite3.OperationalError:  # the store's tables are not there yet
        return []
    return [row[0] for row in rows]


def _calls(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((folder / "calls").glob("call-*.json"))]


def test_the_scheduler_runs_on_its_cron_and_sigterm_lets_the_run_in_progress_finish(
    tmp_path: Path, schedulers
) -> None:
    config = _sample(
        tmp_path,
        f'cron = "*/3 * * * * *"\non_findings = {_hook()}\non_findings_min_severity = "error"\n',
    )
    # Every run pauses 2 s before its commit, so the SIGTERM below lands inside a run.
    scheduler = schedulers(config, env={"GRIDRECON_TEST_PAUSE": "before-commit:2"})
    scheduler.wait_for(lambda: len(_completed_runs(tmp_path)) == 1, "first completed run")
    scheduler.wait_for(
        lambda: scheduler.stderr.count("test pause at before-commit") == 2, "second run"
    )

    assert scheduler.terminate() == 0, scheduler.stderr
    log = scheduler.stderr
    assert "SIGTERM: stopping after the run in progress has finished" in log
    assert log.rstrip().endswith("scheduler stopped")
    runs = _completed_runs(tmp_path)
    assert len(runs) == 2  # the second run, interrupted by SIGTERM, finished and committed
    assert (tmp_path / "reports" / "latest").resolve().name == runs[1]
    assert log.count("run ended: completed, exit 0") == 2

    # on_findings got each run's summary: the sample has open error findings.
    calls = _calls(tmp_path)
    assert [c["hook"] for c in calls] == ["on_findings", "on_findings"]
    summaries = [json.loads(c["stdin"]) for c in calls]
    assert [s["run_id"] for s in summaries] == runs
    assert summaries[0]["findings"]["by_severity"]["error"] == 12


# The scheduler's main thread blocked in C on the SQLite lock a run holds (APScheduler writing its
# job store while the run has not committed): the stop must be seen now, not after the commit.
BLOCKED_MAIN_THREAD = """
import logging, sqlite3, sys, threading, time
from gridrecon.schedule import service
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
service.catch_signals()
service._running.set()  # a run is in progress
store = sys.argv[1]
sqlite3.connect(store).execute("CREATE TABLE IF NOT EXISTS t (x)")
holding = threading.Event()
def hold_the_lock():
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holding.set()
    time.sleep(6)
    print("lock released", file=sys.stderr, flush=True)
    holder.execute("COMMIT")
threading.Thread(target=hold_the_lock).start()
holding.wait()
print("main thread blocked", file=sys.stderr, flush=True)
sqlite3.connect(store, timeout=30, isolation_level=None).execute("BEGIN IMMEDIATE")
print("main thread has the lock", file=sys.stderr, flush=True)
"""


def test_sigterm_is_seen_while_the_main_thread_waits_in_c_for_a_lock(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", BLOCKED_MAIN_THREAD, str(tmp_path / "store.sqlite")],
            stderr=sink,
        )
        try:
            deadline = time.monotonic() + 30
            while "main thread blocked" not in stderr.read_text():
                assert time.monotonic() < deadline and process.poll() is None, stderr.read_text()
                time.sleep(0.05)
            time.sleep(0.3)  # inside sqlite3's busy wait
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, stderr.read_text()
        finally:
            process.kill()
    lines = stderr.read_text().splitlines()
    stopping = lines.index("SIGTERM: stopping after the run in progress has finished")
    assert stopping < lines.index("lock released") < lines.index("main thread has the lock")


def test_a_restart_after_missed_fire_times_catches_up_with_exactly_one_run(
    tmp_path: Path, schedulers
) -> None:
    # Two fire times a minute, 10 and 12 s from now: the first process is stopped before them.
    now = dt.datetime.now(ZONE)
    first, second = (now + dt.timedelta(seconds=10)), (now + dt.timedelta(seconds=12))
    config = _sample(tmp_path, f'cron = "{first.second},{second.second} * * * * *"\n')

    before = schedulers(config)
    before.wait_for(lambda: "scheduler started" in before.stderr, "start")
    assert dt.datetime.now(ZONE) < first - dt.timedelta(seconds=1), "the machine is too slow"
    assert before.terminate() == 0, before.stderr
    assert _completed_runs(tmp_path) == []

    time.sleep(max(0.0, (second - dt.datetime.now(ZONE)).total_seconds()) + 1.5)
    after = schedulers(config)
    after.wait_for(lambda: len(_completed_runs(tmp_path)) == 1, "the catch-up run")
    time.sleep(3)  # a second run for the other missed fire time would start at once
    assert after.terminate() == 0, after.stderr
    assert len(_completed_runs(tmp_path)) == 1
    assert "missed 2 fire time(s) while stopped" in after.stderr
    assert after.stderr.count("run started") == 1

    status = run_cli("schedule", "status", "--config", str(config), "--format", "json")
    assert status.code == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["cron"] == f"{first.second},{second.second} * * * * *"
    assert dt.datetime.fromisoformat(info["next_fire_time"]) > dt.datetime.now(ZONE)
    assert not info["overdue"]
    assert info["last_run"]["run_id"] == _completed_runs(tmp_path)[0]
    assert (info["last_run"]["status"], info["last_run"]["exit_code"]) == ("completed", 0)
    assert info["last_run"]["duration_s"] > 0
    assert info["last_attempt"]["status"] == "completed"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_source_sends_the_failure_summary_to_on_failure_and_a_hung_hook_is_killed(
    tmp_path: Path, schedulers
) -> None:
    port = _closed_port()
    config = _sample(
        tmp_path,
        f'cron = "*/2 * * * * *"\non_failure = {_hook("hang-first")}\nhook_timeout_seconds = 2\n',
        pms_url=f"postgresql+psycopg://steward:s3cret-pw@127.0.0.1:{port}/pms",
    )
    log_file = tmp_path / "schedule.log"
    scheduler = schedulers(config, "--log-format", "json", "--log-file", str(log_file))
    scheduler.wait_for(lambda: len(_calls(tmp_path)) >= 2, "a second on_failure call", 60)
    assert scheduler.terminate() == 0, scheduler.stderr

    calls = _calls(tmp_path)
    assert {c["hook"] for c in calls} == {"on_failure"}
    summary = json.loads(calls[0]["stdin"])
    assert (summary["status"], summary["exit_code"], summary["run_id"]) == ("failed", 2, None)
    assert f"127.0.0.1:{port}" in summary["error"] and "pms" in summary["error"]
    masked = f"postgresql+psycopg://steward:***@127.0.0.1:{port}/pms"
    assert summary["sources"]["pms"]["url"] == masked
    with pytest.raises(ProcessLookupError):  # the hung hook was killed, not left behind
        os.kill(calls[0]["pid"], 0)

    lines = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == "scheduler_started" and events[-1] == "scheduler_stopped"
    failed = [line for line in lines if line["event"] == "run_failed"]
    assert failed and all(line["exit_code"] == 2 for line in failed)
    assert "hook_timed_out" in events and "hook_done" in events
    for text in (
        log_file.read_text(encoding="utf-8"),
        scheduler.stderr,
        *(c["stdin"] for c in calls),
    ):
        assert "s3cret-pw" not in text
    assert _completed_runs(tmp_path) == []


def test_cron_weekdays_count_from_sunday_as_in_crontab(tmp_path: Path) -> None:
    config = _sample(tmp_path, 'cron = "30 1 * * 1-5"\n')
    trigger = build_trigger(load_config(config).schedule, config)
    saturday = dt.datetime(2026, 11, 28, 12, 0, tzinfo=ZONE)
    monday = dt.datetime(2026, 11, 30, 1, 30, tzinfo=ZONE)
    assert trigger.get_next_fire_time(None, saturday) == monday
    config.write_text(config.read_text().replace("1-5", "0"))
    trigger = build_trigger(load_config(config).schedule, config)
    assert trigger.get_next_fire_time(None, saturday).strftime("%a %H:%M") == "Sun 01:30"


def test_a_bad_schedule_section_exits_two_naming_the_key(tmp_path: Path) -> None:
    config = _sample(tmp_path, 'crn = "0 2 * * *"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'schedule.crn'"):
        load_config(config)
    config.write_text(config.read_text().replace('crn = "0 2 * * *"', 'cron = "0 25 * * *"'))
    result = run_cli("schedule", "--config", str(config))
    assert result.code == 2, result.stderr
    assert "'schedule.cron' '0 25 * * *' is not a cron expression" in result.stderr
    assert str(config) in result.stderr and "Traceback" not in result.stderr


# What a night leaves: text columns in Arrow and numbers, made, joined and freed.
_NIGHT_FREED = """
import numpy as np, pandas as pd
from gridrecon.schedule.service import give_back_memory
def resident():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))
base = resident()
frames = [pd.DataFrame({"id": pd.Series(np.arange(n * 1000, n * 1000 + 300_000)).astype("str"),
                        "value": np.random.rand(300_000)}) for n in range(12)]
keys = [frame["id"] + "/" + frame["id"] for frame in frames]
del frames, keys
held = resident() - base
give_back_memory()
print(held, resident() - base)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="resident memory is read from /proc")
def test_what_a_night_freed_is_given_back_before_the_service_sleeps() -> None:
    # The allocators keep freed memory for reuse, and nothing uses them while the service
    # sleeps: after a province's full night it held 680-870 MB until the next one. Each
    # scheduled night ends with give_back_memory() (the benchmark measures what is held then).
    done = subprocess.run(
        [sys.executable, "-c", _NIGHT_FREED], capture_output=True, text=True, timeout=120
    )
    held, after = map(int, done.stdout.split())
    assert held > 100, done.stderr  # megabytes freed but still held
    assert after < held / 2
