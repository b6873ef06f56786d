"""`gridrecon schedule` (the long-lived scheduler) and `gridrecon schedule status`.

A typer sub-app, registered in cli.py with `app.add_typer(schedule_app, name="schedule")`. Like
every command it builds its inputs, calls the library (service.py) and renders; errors are mapped
to exit codes by cli.main().
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..core.cli_options import ConfigOption
from ..core.errors import GridreconError

# No help= here: the callback's docstring is the help of `gridrecon schedule`.
schedule_app = typer.Typer(no_args_is_help=False)


class LogFormat(str, Enum):
    text = "text"
    json = "json"


class StatusFormat(str, Enum):
    table = "table"
    json = "json"


@schedule_app.callback(invoke_without_command=True)
def schedule(
    ctx: typer.Context,
    config: ConfigOption = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format", help="text for people, json (one object per line) for log collectors."
        ),
    ] = LogFormat.text,
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            help="Also log to this file, rotated by size "
            "(default: schedule.log_file of the config, if set).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run reconciliations on the config's schedule.cron (default 02:00 daily) until stopped.

    A long-lived process, for systemd: each fire time runs exactly what `gridrecon run` runs,
    logs one line per event to stderr (and the log file), and runs the on_failure / on_findings
    hooks. The schedule is kept in the state database: a night missed while the process was down
    runs once when it starts again. SIGTERM or Ctrl-C stops it after the run in progress; exit 0.

    Example: gridrecon schedule --config /etc/gridrecon/gridrecon.toml --log-format json
    """
    if ctx.invoked_subcommand is not None:
        return
    import logging

    from ..core.config import load_config, resolve_config_path
    from . import logs, service

    service.catch_signals()  # first: a stop during the start-up is graceful too
    loaded = load_config(resolve_config_path(config))
    settings = loaded.schedule
    logs.configure(
        log_format.value,
        log_file.resolve() if log_file is not None else settings.log_file,
        settings.log_max_bytes,
        settings.log_backups,
        loaded.timezone,
    )
    try:
        service.serve(loaded)
    except GridreconError as exc:
        # From here on the log is where operators look: the reason goes there, once.
        logging.getLogger("gridrecon.schedule").error(
            "the scheduler cannot run: %s",
            exc.message,
            extra={"event": "scheduler_failed", "exit_code": exc.exit_code},
        )
        raise typer.Exit(exc.exit_code) from None


@schedule_app.command("status")
def status(
    ctx: typer.Context,
    config: ConfigOption = None,
    format: Annotated[
        StatusFormat, typer.Option("--format", "-f", help="table for people, json for scripts.")
    ] = StatusFormat.table,
) -> None:
    """Show the schedule: next fire time, the last run with its result and duration.

    The next fire time comes from the job store in the state database, the last run from the
    state store; the last scheduled attempt is shown too, since a run that failed is not in the
    state store. A next fire time more than a minute past means no scheduler is running.

    Example: gridrecon schedule status --config gridrecon.toml --format json
    """
    from ..core.config import load_config, resolve_config_path
    from . import service

    if config is None and ctx.parent is not None:  # gridrecon schedule --config F status
        config = ctx.parent.params.get("config")
    info = service.status(load_config(resolve_config_path(config)))
    if format is StatusFormat.json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2, default=str))
        return
    rows = [("schedule", f"cron '{info['cron']}' ({info['timezone']})")]
    if not info["scheduled"]:
        rows.append(
            ("next run", "not scheduled: `gridrecon schedule` has never run on this state store")
        )
    else:
        note = "  (past: is the scheduler running?)" if info["overdue"] else ""
        rows.append(("next run", f"{info['next_fire_time']}{note}"))
        if info["schedule_changed"]:
            rows.append(
                ("", "the config's cron differs from the running one; it applies at its restart")
            )
    run = info["last_run"]
    rows.append(
        (
            "last run",
            "none yet"
            if run is None
            else f"{run['run_id']}  {run['status']}, exit {run['exit_code']}, "
            f"{run['duration_s'] or 0:.1f} s, started {run['started_at']}",
        )
    )
    attempt = info["last_attempt"]
    if attempt is not None:
        text = (
            f"{attempt['started_at']}  {attempt['status']}, exit {attempt['exit_code']}, "
            f"{attempt['duration_s'] or 0:.1f} s"
        )
        if attempt["error"]:
            text += f": {attempt['error']}"
        if attempt["hooks"]:
            text += f"  [{attempt['hooks']}]"
        rows.append(("last scheduled", text))
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        typer.echo(f"{label:<{width}}  {text}")
