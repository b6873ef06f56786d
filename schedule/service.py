"""The nightly scheduler: `gridrecon schedule` runs `api.run` on a cron schedule until stopped.

APScheduler 3's BlockingScheduler keeps the one job in the state database (SQLAlchemyJobStore,
table gr_apscheduler_jobs), so the next fire time survives a restart:

- A night missed while the process was down runs once when it comes back: the job keeps its
  stored next fire time across restarts (see `_resume_from`), `coalesce` folds every missed fire
  time into one run, and `misfire_grace_time` (a day by default) is how late that run may start.
- One run at a time: `max_instances=1` within the process, and the state store's run lock against
  a manual `gridrecon run` (which then makes the scheduled one fail with exit 2, or vice versa).
- The job is a module-level function named by text, with the config path as its only argument:
  it loads the config afresh and calls `api.run`, the very function `gridrecon run` calls. A
  changed source, mapping or rule applies at the next run; a changed schedule at the next start.
- SIGTERM and SIGINT stop it gracefully: a run in progress finishes (its hooks too), then the
  process exits 0. The signal arrives on a wakeup socket; a watcher thread does the shutdown,
  outside signal context, and `shutdown(wait=True)` waits for the worker thread running the job.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..core.config import Config, ScheduleConfig, display_url, load_config
from ..core.errors import ConfigError, GridreconError
from . import logs
from .hooks import HookOutcome, run_hook

log = logging.getLogger("gridrecon.schedule")

JOB_ID = "gridrecon-run"
JOB_FUNCTION = "gridrecon.schedule.service:scheduled_run"
JOBS_TABLE = "gr_apscheduler_jobs"
# The scheduler's own record of its attempts: a failed run never reaches the state store's runs
# table (its transaction rolls back), yet `schedule status` must be able to say it failed.
ATTEMPTS_TABLE = "gr_schedule_attempts"
KEEP_ATTEMPTS = 100
# A run holds SQLite's write lock from its first write to its commit; the scheduler writing the
# job's next fire time meanwhile waits for it rather than failing with "database is locked".
SQLITE_BUSY_SECONDS = 300

_metadata = sa.MetaData()
attempts = sa.Table(
    ATTEMPTS_TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime()),  # naive UTC, like the state store
    sa.Column("finished_at", sa.DateTime()),
    sa.Column("duration_s", sa.Float),
    sa.Column("status", sa.String(16)),  # completed | inconclusive | failed
    sa.Column("exit_code", sa.Integer),  # null: an internal error (see the log's traceback)
    sa.Column("run_id", sa.String(64)),
    sa.Column("error", sa.Text),  # masked
    sa.Column("hooks", sa.Text),  # e.g. "on_failure exit 0"
    sa.Column("host", sa.String(255)),
)

# The config `gridrecon schedule` started with: its hooks still fire when an edited config no
# longer loads. Set by serve(); the job runs in the same process.
_startup_config: Config | None = None
_running = threading.Event()


# -- the schedule ------------------------------------------------------------------------------

_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_WEEKDAY_NAMES = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]


def _cron_weekday(text: str) -> int:
    """0..7 as crontab counts (0 and 7 are Sunday), from a number or a day name."""
    word = text.strip().lower()
    if word.isdigit() and int(word) <= 7:
        return int(word)
    for names in (_WEEKDAYS, _WEEKDAY_NAMES):
        if word in names:
            return names.index(word)
    raise ValueError(f"'{text}' is not a weekday (0-7, 0 and 7 being Sunday, or sun..sat)")


def crontab_weekdays(field: str) -> str:
    """A crontab weekday field as APScheduler 3 day names.

    crontab counts 0 (and 7) as Sunday; APScheduler 3 counts 0 as Monday (its documented
    historical mistake, issue 286), so "1-5" would silently mean Tuesday to Saturday. Names mean
    the same to both, so every weekday is spelled out by name.
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            first, last = (_cron_weekday(t) for t in span.split("-", 1))
        else:
            first = last = _cron_weekday(span)
            if step_text:  # "1/2": from Monday on, every other day
                last = 6
        if last < first:
            raise ValueError(f"weekday range '{span}' runs backwards")
        if step_text and not (step_text.isdigit() and int(step_text) >= 1):
            raise ValueError(f"step '{step_text}' must be a whole number of at least 1")
        days.update(day % 7 for day in range(first, last + 1, int(step_text or 1)))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def build_trigger(schedule: ScheduleConfig, file: Path):
    """The CronTrigger of [schedule] cron, in its time zone; ConfigError naming the key if bad."""
    from apscheduler.triggers.cron import CronTrigger

    fields = schedule.cron.split()
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields
    if day not in ("*", "?") and weekday not in ("*", "?"):
        # crontab runs when either matches, APScheduler when both do: refuse the ambiguity.
        raise ConfigError(
            f"{file}: 'schedule.cron' '{schedule.cron}' restricts both the day of the month and "
            "the weekday; crontab runs on either, this scheduler would need both: restrict one"
        )
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day.replace("?", "*"),
            month=month,
            day_of_week=crontab_weekdays(weekday.replace("?", "*")),
            timezone=schedule.timezone,
        )
    except ValueError as exc:
        raise ConfigError(
            f"{file}: 'schedule.cron' '{schedule.cron}' is not a cron expression: {exc}. Five "
            'fields: minute hour day month weekday, e.g. "0 2 * * *" for 02:00 every day'
        ) from None


def state_engine(url: URL) -> Engine:
    connect_args = {"timeout": SQLITE_BUSY_SECONDS} if url.get_backend_name() == "sqlite" else {}
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _store_error(config: Config, doing: str, exc: BaseException):
    from ..sync.store import StateStoreError

    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return StateStoreError(
        logs.mask(
            f"{doing} the schedule in the state store {display_url(config.state_url)} "
            f"failed: {text}; check [state] url in the config"
        )
    )


def _remember_passwords(config: Config) -> None:
    logs.remember_secrets(
        config.pms.url.password, config.marketing.url.password, config.state_url.password
    )


# -- the job -----------------------------------------------------------------------------------


class _Witness(logging.Filter):
    """Notices whether api.run logged the failure itself, so it is logged once, not twice."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.failure_logged = False

    def filter(self, record: logging.LogRecord) -> bool:
        if threading.get_ident() == self.thread and getattr(record, "event", None) == "run_failed":
            self.failure_logged = True
        return True


def _now(config: Config | None) -> dt.datetime:
    return dt.datetime.now(config.timezone if config else dt.UTC)


def scheduled_run(config_path: str) -> None:
    """The scheduled job: one `api.run` on the config at `config_path`, then the hooks.

    Never raises: whatever happens is logged, recorded and handed to the hooks, and the schedule
    goes on.
    """
    from .. import api

    _running.set()
    witness = _Witness()
    library_log = logging.getLogger("gridrecon")
    library_log.addFilter(witness)
    began = time.monotonic()
    config = _startup_config
    started_at = _now(config)
    result = folder = None
    error: str | None = None
    exit_code: int | None = None
    try:
        try:
            config = load_config(Path(config_path))
            _remember_passwords(config)
            result, folder = api.run(config)
        except GridreconError as exc:
            error, exit_code = logs.mask(exc.message), exc.exit_code
            if not witness.failure_logged:
                log.error(
                    "run failed: %s",
                    error,
                    extra={
                        "event": "run_failed",
                        "exit_code": exit_code,
                        "duration_s": round(time.monotonic() - began, 3),
                    },
                )
        except Exception as exc:  # a bug: keep the traceback in the log, keep the schedule
            error = logs.mask(f"internal error: {type(exc).__name__}: {exc}")
            log.exception(
                "run failed: %s",
                error,
                extra={
                    "event": "run_failed",
                    "exit_code": None,
                    "duration_s": round(time.monotonic() - began, 3),
                },
            )
        finished_at = _now(config)
        seconds = time.monotonic() - began
        if result is not None and result.status == "inconclusive":
            log.warning(
                "run inconclusive: %s",
                logs.mask("; ".join(result.notes)),
                extra={"event": "run_inconclusive", "run_id": result.run_id, "exit_code": 3},
            )
        if config is None:
            return  # nothing to notify or record with: the log line above is all there is
        try:
            outcomes = _notify(
                config,
                config_path,
                result,
                folder,
                error,
                exit_code,
                started_at,
                finished_at,
                seconds,
            )
            _record_attempt(
                config, result, error, exit_code, started_at, finished_at, seconds, outcomes
            )
        except Exception:  # a bug after the run: log it, keep the schedule
            log.exception(
                "notifying or recording the run failed", extra={"event": "scheduler_error"}
            )
    finally:
        library_log.removeFilter(witness)
        _running.clear()
        try:
            give_back_memory()
        except Exception:  # not worth a failed night: the memory is reused the next night
            log.debug("could not give the night's memory back", exc_info=True)


def give_back_memory() -> None:
    """Give what a night freed back to the system: the service then sleeps until the next
    night, and the allocators (the C library's, Arrow's) would keep it for reuse. After a
    province's full night the process held 680-870 MB, and 260 MB once this was done."""
    from ..connectors.fetch import release_freed_memory

    release_freed_memory()


def failure_summary(
    config: Config,
    config_path: str,
    error: str,
    exit_code: int | None,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    seconds: float,
) -> dict[str, Any]:
    """What on_failure gets when the run raised (there is no RunResult to summarise)."""
    return {
        "run_id": None,
        "status": "failed",
        "exit_code": exit_code,
        "error": error,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at.isoformat(timespec="seconds"),
        "duration_s": round(seconds, 3),
        "config": {"path": config_path},
        "sources": {
            system: {"url": display_url(config.source(system).url)}
            for system in ("pms", "marketing")
        },
        "state": {"url": display_url(config.state_url)},
        "host": socket.gethostname(),
    }


def _notify(
    config, config_path, result, folder, error, exit_code, started_at, finished_at, seconds
) -> list[HookOutcome]:
    from ..checks.settings import SEVERITY_RANK
    from ..reports.machine import summary

    schedule = config.schedule
    if result is None:
        hook, argv = "on_failure", schedule.on_failure
        payload = failure_summary(
            config, config_path, error or "", exit_code, started_at, finished_at, seconds
        )
        status = "failed"
    elif result.status != "completed" or result.exit_code >= 2:
        hook, argv, payload = "on_failure", schedule.on_failure, summary(result)
        status, exit_code = result.status, result.exit_code
    else:
        threshold = SEVERITY_RANK[schedule.on_findings_min_severity]
        open_findings = result.open_findings
        alarming = int((open_findings["severity"].map(SEVERITY_RANK) >= threshold).sum())
        if not alarming:
            return []
        hook, argv, payload = "on_findings", schedule.on_findings, summary(result)
        status, exit_code = "completed", result.exit_code
    if not argv:
        return []
    environment = {
        "GRIDRECON_HOOK": hook,
        "GRIDRECON_RUN_STATUS": status,
        "GRIDRECON_EXIT_CODE": "" if exit_code is None else str(exit_code),
        "GRIDRECON_RUN_ID": result.run_id if result is not None else "",
        "GRIDRECON_RUN_FOLDER": str(folder) if folder is not None else "",
        "GRIDRECON_CONFIG": config_path,
    }
    return [
        run_hook(
            hook, argv, payload, schedule.hook_timeout_seconds, config.path.parent, environment
        )
    ]


def _record_attempt(
    config, result, error, exit_code, started_at, finished_at, seconds, outcomes: list[HookOutcome]
) -> None:
    hooks = ", ".join(
        f"{o.hook} "
        + (
            "timed out"
            if o.timed_out
            else "did not start"
            if o.exit_code is None
            else f"exit {o.exit_code}"
        )
        for o in outcomes
    )
    row = {
        "started_at": started_at.astimezone(dt.UTC).replace(tzinfo=None),
        "finished_at": finished_at.astimezone(dt.UTC).replace(tzinfo=None),
        "duration_s": round(seconds, 3),
        "status": result.status if result is not None else "failed",
        "exit_code": result.exit_code if result is not None else exit_code,
        "run_id": result.run_id if result is not None else None,
        "error": error,
        "hooks": hooks or None,
        "host": socket.gethostname(),
    }
    engine = state_engine(config.state_url)
    try:
        with engine.begin() as connection:
            _metadata.create_all(connection, checkfirst=True)
            connection.execute(attempts.insert().values(**row))
            oldest_kept = connection.execute(
                sa.select(attempts.c.id)
                .order_by(attempts.c.id.desc())
                .offset(KEEP_ATTEMPTS - 1)
                .limit(1)
            ).scalar()
            if oldest_kept is not None:
                connection.execute(attempts.delete().where(attempts.c.id < oldest_kept))
    except SQLAlchemyError as exc:  # the record is for `schedule status`; the run is done
        log.warning(
            "%s",
            _store_error(config, "recording the attempt in", exc).message,
            extra={"event": "attempt_not_recorded"},
        )
    finally:
        engine.dispose()


# -- the long-lived process --------------------------------------------------------------------


def _make_scheduler_class():
    from apscheduler.schedulers.base import STATE_STOPPED
    from apscheduler.schedulers.blocking import BlockingScheduler

    class Scheduler(BlockingScheduler):
        def _process_jobs(self):
            # Shutting down (waiting for the run in progress): fire nothing more. Without this a
            # fire time falling due meanwhile is submitted to the closed executor (an error line)
            # and its next fire time moved on, so it would not be caught up after the restart.
            if self.state == STATE_STOPPED:
                return None
            return super()._process_jobs()

    return Scheduler


class _Stopper:
    """SIGTERM / SIGINT -> a graceful shutdown, done by a watcher thread, not in the handler.

    Installed first thing by `gridrecon schedule`, before the slow start-up (imports, migrations),
    so a stop during start-up is graceful too; the scheduler is attached when it exists.

    The signal reaches the watcher through `signal.set_wakeup_fd`: the interpreter's C-level
    handler writes the signal number to a socket at once. A Python handler would run only when
    the main thread next executes bytecode, and it may be blocked in C for as long as a run takes
    (APScheduler writing its job store waits on the SQLite lock a run holds until it commits), so
    the stop would be seen only after the run, no longer "in progress".
    """

    _CLOSE = b"\0"  # not a signal number: tells the watcher to leave

    def __init__(self) -> None:
        self.scheduler = None
        self.receiver, self.sender = socket.socketpair()
        self.sender.setblocking(False)  # set_wakeup_fd requires it
        self.requested = threading.Event()
        self.started = threading.Event()
        self.finished = threading.Event()
        self.previous: dict[int, Any] = {}
        self.previous_wakeup_fd = -1
        self.watcher = threading.Thread(target=self._watch, name="gridrecon-signals", daemon=True)
        self.stopping: threading.Thread | None = None

    def install(self) -> None:
        self.previous_wakeup_fd = signal.set_wakeup_fd(
            self.sender.fileno(), warn_on_full_buffer=False
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            # The C-level handler, which writes to the wakeup socket, is installed only with a
            # Python one; that one has nothing left to do.
            self.previous[signum] = signal.signal(signum, self._ignore)
        self.watcher.start()

    @staticmethod
    def _ignore(signum, frame) -> None:
        pass

    def _watch(self) -> None:
        while True:
            received = self.receiver.recv(64)
            for signum in received:
                if signum == self._CLOSE[0]:
                    return
                if signum in self.previous:  # other handlers' signals are written here too
                    self._on_signal(signal.Signals(signum).name)

    def _on_signal(self, name: str) -> None:
        if self.stopping is not None:
            log.info(
                "%s again: still waiting for the run in progress to finish",
                name,
                extra={"event": "scheduler_stopping", "signal": name},
            )
            return
        waiting = _running.is_set()
        log.info(
            "%s: stopping%s",
            name,
            " after the run in progress has finished" if waiting else "",
            extra={"event": "scheduler_stopping", "signal": name, "run_in_progress": waiting},
        )
        self.requested.set()
        self.stopping = threading.Thread(
            target=self._shutdown, name="gridrecon-shutdown", daemon=True
        )
        self.stopping.start()

    def _shutdown(self) -> None:
        from apscheduler.schedulers import SchedulerNotRunningError

        # A signal during start-up waits until the scheduler runs, or serve() gave up starting.
        while not (self.started.is_set() or self.finished.is_set()):
            time.sleep(0.05)
        if self.scheduler is None:
            return
        try:
            self.scheduler.shutdown(wait=True)
        except SchedulerNotRunningError:
            pass

    def wait_stopped(self) -> None:
        if self.stopping is not None:
            self.stopping.join()

    def close(self) -> None:
        self.finished.set()
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self.previous_wakeup_fd)
        self.sender.send(self._CLOSE)
        self.watcher.join()
        if self.stopping is not None:
            self.stopping.join()
        self.receiver.close()
        self.sender.close()


_stopper: _Stopper | None = None


def catch_signals() -> None:
    """Make SIGTERM and SIGINT stop `serve` gracefully from now on (main thread only)."""
    global _stopper
    if _stopper is None:
        _stopper = _Stopper()
        _stopper.install()


def _resume_from(jobstore, trigger, config: Config, now: dt.datetime):
    """The next fire time to give the job: the stored one when the schedule is unchanged.

    `add_job(replace_existing=True)` would otherwise compute it afresh from now, and the night
    missed while the process was down would silently never run.
    """
    from apscheduler.util import undefined

    try:
        stored = jobstore.lookup_job(JOB_ID)
    except SQLAlchemyError:
        raise
    except Exception as exc:  # noqa: BLE001  (unpickling a job another version stored)
        log.warning(
            "the stored schedule could not be read (%s); starting it afresh",
            logs.mask(str(exc)),
            extra={"event": "schedule_replaced"},
        )
        return undefined
    if stored is None:
        return undefined
    if repr(stored.trigger) != repr(trigger) or list(stored.args) != [str(config.path)]:
        log.info(
            "the schedule changed (was %s, now %s); the next run is computed from now",
            stored.trigger,
            trigger,
            extra={"event": "schedule_changed"},
        )
        return undefined
    due = stored.next_run_time
    if due is None or due > now:
        return due if due is not None else undefined
    # Counted for the log only (a seconds cron down for a month would take long to count).
    missed, latest, moment = 0, due, due
    while moment is not None and moment <= now and missed < 10_000:
        missed, latest = missed + 1, moment
        moment = trigger.get_next_fire_time(moment, now)
    counted = f"{missed}" if missed < 10_000 else "at least 10000"
    grace = config.schedule.misfire_grace_seconds
    # APScheduler's rule: the run goes ahead when the latest missed fire time is within the grace.
    within = trigger.get_next_fire_time(None, now - dt.timedelta(seconds=grace))
    fields = {"missed": missed, "first_missed": due.isoformat()}
    if within is None or within > now:
        log.warning(
            "missed %s fire time(s) while stopped, the first at %s, none within "
            "misfire_grace_seconds (%d): not catching up",
            counted,
            due.isoformat(),
            grace,
            extra={"event": "run_missed", **fields},
        )
        return undefined
    fields["last_missed"] = latest.isoformat() if missed < 10_000 else None
    log.warning(
        "missed %s fire time(s) while stopped (the first at %s): catching up with one run now",
        counted,
        due.isoformat(),
        extra={"event": "catch_up", **fields},
    )
    return due


def _listener(scheduler, trigger, schedule: ScheduleConfig, stopper: _Stopper):
    from apscheduler import events

    def on_event(event) -> None:
        if event.code == events.EVENT_SCHEDULER_STARTED:  # in the main thread, no lock held
            stopper.started.set()
            job = scheduler.get_job(JOB_ID)
            upcoming = job.next_run_time.isoformat() if job and job.next_run_time else None
            late = bool(
                job
                and job.next_run_time
                and job.next_run_time <= dt.datetime.now(schedule.timezone)
            )
            log.info(
                "scheduler started: cron '%s' (%s), next run %s",
                schedule.cron,
                schedule.timezone,
                f"now (due at {upcoming})" if late else f"at {upcoming}",
                extra={
                    "event": "scheduler_started",
                    "cron": schedule.cron,
                    "timezone": str(schedule.timezone),
                    "next_run_time": upcoming,
                },
            )
        elif event.code == events.EVENT_JOB_MAX_INSTANCES:
            due = ", ".join(t.isoformat() for t in event.scheduled_run_times)
            log.warning(
                "the run due at %s was skipped: the previous run is still going",
                due,
                extra={"event": "run_skipped", "scheduled_for": due},
            )
        elif event.code == events.EVENT_JOB_MISSED:
            due = event.scheduled_run_time.isoformat()
            log.warning(
                "the run due at %s was missed: it could not start within "
                "misfire_grace_seconds (%d)",
                due,
                schedule.misfire_grace_seconds,
                extra={"event": "run_missed", "scheduled_for": due},
            )
        elif event.code == events.EVENT_JOB_ERROR:  # scheduled_run never raises; just in case
            log.error(
                "the scheduled job raised %s",
                logs.mask(repr(event.exception)),
                extra={"event": "job_error", "traceback": logs.mask(event.traceback or "")},
            )
        elif event.code == events.EVENT_JOB_EXECUTED and scheduler.running:
            # From the trigger, not scheduler.get_job(): this runs in the worker thread, and a
            # shutdown holding the job-store lock while it waits for this thread would deadlock.
            when = trigger.get_next_fire_time(None, dt.datetime.now(schedule.timezone))
            upcoming = when.isoformat() if when else None
            log.info(
                "next run at %s", upcoming, extra={"event": "next_run", "next_run_time": upcoming}
            )

    mask = (
        events.EVENT_SCHEDULER_STARTED
        | events.EVENT_JOB_MAX_INSTANCES
        | events.EVENT_JOB_MISSED
        | events.EVENT_JOB_ERROR
        | events.EVENT_JOB_EXECUTED
    )
    return on_event, mask


def serve(config: Config) -> None:
    """Run the schedule of `config` until SIGTERM or SIGINT; call from the main thread.

    Logging must be configured (logs.configure). Raises GridreconError (exit 2) when the schedule
    or the state database is unusable.
    """
    global _stopper
    catch_signals()
    assert _stopper is not None
    try:
        _serve(config, _stopper)
    finally:
        _stopper.close()
        _stopper = None


def _serve(config: Config, stopper: _Stopper) -> None:
    global _startup_config
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from ..sync.store import StateStore

    schedule = config.schedule
    trigger = build_trigger(schedule, config.path)
    _remember_passwords(config)
    _startup_config = config
    store = StateStore(config.state_url)  # creates / upgrades the store, with its clear errors
    try:
        store.ensure_schema()
    finally:
        store.dispose()

    engine = state_engine(config.state_url)
    try:
        jobstore = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
        scheduler = _make_scheduler_class()(
            jobstores={"default": jobstore},
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": schedule.misfire_grace_seconds,
            },
            timezone=schedule.timezone,
        )
        try:
            jobstore.jobs_t.create(engine, checkfirst=True)
            _metadata.create_all(engine, checkfirst=True)
            resume = _resume_from(jobstore, trigger, config, dt.datetime.now(schedule.timezone))
        except SQLAlchemyError as exc:
            raise _store_error(config, "reading", exc) from None
        scheduler.add_job(
            JOB_FUNCTION,
            trigger,
            args=[str(config.path)],
            id=JOB_ID,
            name="gridrecon run",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=schedule.misfire_grace_seconds,
            next_run_time=resume,
        )
        stopper.scheduler = scheduler
        scheduler.add_listener(*_listener(scheduler, trigger, schedule, stopper))
        if stopper.requested.is_set():
            log.info("stopped before the scheduler started", extra={"event": "scheduler_stopped"})
            return
        try:
            scheduler.start()  # blocks until shutdown
            # start() can return as soon as shutdown has begun: wait until it is done, i.e.
            # until the run in progress (and its hooks) finished.
            stopper.wait_stopped()
        except Exception as exc:
            if scheduler.running:
                scheduler.shutdown(wait=True)  # let a run in progress finish first
            if isinstance(exc, SQLAlchemyError):  # the job store's database went away
                raise _store_error(config, "keeping", exc) from None
            if not isinstance(exc, GridreconError):
                log.exception("the scheduler failed", extra={"event": "scheduler_failed"})
            raise
    finally:
        engine.dispose()
    log.info("scheduler stopped", extra={"event": "scheduler_stopped"})


# -- schedule status ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def status(config: Config) -> dict[str, Any]:
    """Next fire time (job store), the last run (state store), the last scheduled attempt."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from .. import api

    zone = config.timezone
    trigger = build_trigger(config.schedule, config.path)
    last_run_frame = api.list_runs(config, 1)  # also creates / upgrades the store
    engine = state_engine(config.state_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        job = None
        if JOBS_TABLE in tables:
            try:
                job = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE).lookup_job(JOB_ID)
            except SQLAlchemyError:
                raise
            except Exception:  # noqa: BLE001  (stored by another version; replaced at start)
                job = None
        attempt = None
        if ATTEMPTS_TABLE in tables:
            with engine.connect() as connection:
                attempt = (
                    connection.execute(sa.select(attempts).order_by(attempts.c.id.desc()).limit(1))
                    .mappings()
                    .first()
                )
    except SQLAlchemyError as exc:
        raise _store_error(config, "reading", exc) from None
    finally:
        engine.dispose()

    now = dt.datetime.now(zone)
    next_fire = job.next_run_time if job is not None else None
    last_run = None
    if len(last_run_frame):
        row = last_run_frame.iloc[0]
        last_run = {
            key: _plain(row[key])
            for key in ("run_id", "status", "exit_code", "as_of", "started_at", "duration_s")
        }
        if last_run["as_of"] is not None:
            last_run["as_of"] = str(last_run["as_of"])
    last_attempt = None
    if attempt is not None:
        last_attempt = {
            key: attempt[key]
            for key in ("status", "exit_code", "run_id", "duration_s", "error", "hooks", "host")
        }
        for key in ("started_at", "finished_at"):
            moment = attempt[key]
            last_attempt[key] = (
                moment.replace(tzinfo=dt.UTC).astimezone(zone).isoformat(timespec="seconds")
                if moment
                else None
            )
    return {
        "cron": config.schedule.cron,
        "timezone": str(config.schedule.timezone),
        "scheduled": job is not None,
        "next_fire_time": next_fire.astimezone(zone).isoformat() if next_fire else None,
        # a fire time well past means no scheduler is processing it: not running?
        "overdue": bool(next_fire and (now - next_fire).total_seconds() > 60),
        "schedule_changed": bool(job is not None and repr(job.trigger) != repr(trigger)),
        "last_run": last_run,
        "last_attempt": last_attempt,
    }
