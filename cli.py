"""gridrecon's command line: a thin projection of the library.

Each command builds its inputs, calls one library function and renders the result. Errors are
mapped to exit codes in one place, `main()` (SPEC §8): a GridreconError prints one line and exits
with its code (2 bad input, 3 inconclusive), Ctrl-C exits 130, `--debug` shows the traceback.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from .core.cli_options import ConfigOption
from .core.errors import GridreconError

app = typer.Typer(
    # Plain help: Rich markup would swallow the config section names it quotes ("[incremental]").
    rich_markup_mode=None,
    name="gridrecon",
    help="Reconcile grid assets between PMS and the marketing system (SG186 / 营销2.0).",
    no_args_is_help=True,
    add_completion=True,
    # Locals can hold database URLs with passwords: never print them in a traceback.
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table for people, json for scripts.")
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"gridrecon {version('gridrecon')}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Reconcile grid assets between PMS and the marketing system (SG186 / 营销2.0).

    Example: gridrecon run --config gridrecon.toml --as-of 2026-11-20
    """
    _state["debug"] = debug


def _load(config_path: Path | None):
    from .core.config import load_config, resolve_config_path

    return load_config(resolve_config_path(config_path))


def _console():
    from rich.console import Console

    # markup off: names, URLs and messages are data, and "[pms]" or "<script>" must print as is.
    # Piped into a file or a mail, lines are not cut at 80 columns.
    width = None if sys.stdout.isatty() else 1000
    return Console(markup=False, highlight=False, width=width)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


class Severity(str, Enum):
    info = "info"
    warning = "warning"
    error = "error"


def _parse_date(text: str | None, option: str):
    import datetime as dt

    from .core.errors import ConfigError

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} must be a date like 2026-11-20, got '{text}'") from None


AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Judge 'overdue' against this date (YYYY-MM-DD); default: today in the configured zone.",
        show_default=False,
    ),
]


@app.command()
def run(
    config: ConfigOption = None,
    as_of: AsOfOption = None,
    fail_on: Annotated[
        Severity | None,
        typer.Option(help="Exit 1 when an open, unwaived finding has this severity or higher."),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Read everything, even when [incremental] would read only what changed.",
        ),
    ] = False,
) -> None:
    """Run one reconciliation: pull both systems, match, judge, write the reports.

    Writes findings.json, findings.csv, findings.xlsx, report.html and summary.json into
    <report dir>/<run id>/ and points
    <report dir>/latest at it. Exit codes: 0 done, 1 findings at or above --fail-on, 2 bad input,
    3 inconclusive, 130 interrupted.

    Example: gridrecon run --config gridrecon.toml --as-of 2026-11-20 --fail-on error
    """
    from .checks.worker_process import discard_early, start_early

    start_early()  # Great Expectations loads on the other core while this process imports
    try:
        api = _api()
        loaded = _load(config)
        with _read_progress() as progress:
            result, folder = api.run(
                loaded,
                as_of=_parse_date(as_of, "--as-of"),
                fail_on=fail_on.value if fail_on else None,
                progress=progress,
                full=full,
            )
    finally:
        discard_early()  # not taken over: the run failed before reading, or read nothing
    _render_run(result, folder)
    raise typer.Exit(result.exit_code)


def _api():
    """gridrecon's library, imported on first use (`--help` stays fast) with its libraries
    kept out of the garbage collector's way (core/imports.py)."""
    from contextlib import nullcontext

    from .core.imports import heavy_imports

    first = f"{__package__}.api" not in sys.modules  # frozen once per process
    with heavy_imports() if first else nullcontext():
        from . import api
    return api


def _read_progress():
    """Rows read per source and asset type, live on stderr — only when stderr is a terminal, so
    logs, pipes and cron mails never get progress bars."""
    from contextlib import contextmanager, nullcontext

    if not sys.stderr.isatty():
        return nullcontext(None)

    @contextmanager
    def live():
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} rows"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bars:
            tasks: dict[tuple[str, str], int] = {}

            def update(system: str, asset_type: str, rows: int) -> None:
                key = (system, asset_type)
                if key not in tasks:
                    tasks[key] = bars.add_task(f"reading {system} {asset_type}s", total=None)
                bars.update(tasks[key], completed=rows)

            yield update

    return live()


def _render_run(result, folder: Path) -> None:
    # Plain text, not rich: the summary of a quiet night's run is most of what it prints, and
    # rich's console and table modules take longer to import than that night takes to judge.
    counts = result.counts()
    reads = ", ".join(
        f"{system} " + "/".join(f"{n:,}" for n in source.rows.values())
        for system, source in result.sources.items()
    )
    typer.echo(
        f"run {result.run_id}  as of {result.as_of}  read {reads} (substations/lines/transformers)"
    )
    if result.status == "inconclusive":
        for note in result.notes:
            typer.echo(f"gridrecon: {note}", err=True)
        typer.echo(
            "gridrecon: the run is inconclusive (exit 3): no finding was created or resolved; "
            "check the sources, then run again",
            err=True,
        )
        return
    severity = result.findings.drop_duplicates("rule_id").set_index("rule_id")["severity"]
    rows = [
        [rule, str(severity.get(rule, "")), f"{count:,}"]
        for rule, count in counts["by_rule"].items()
    ]
    if rows:
        typer.echo(_plain_table(["rule", "severity", "open"], rows))
    typer.echo(
        f"{counts['open']:,} open findings, {counts['waived']:,} waived; reports in {folder}"
    )
    for note in result.notes:
        typer.echo(note)
    failing = len(result.failing_findings())
    if failing:
        typer.secho(f"{failing:,} open findings at or above --fail-on {result.fail_on}", fg="red")


def _plain_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces either side of each cell (as rich draws box=None)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "".join(f"  {cell.ljust(width)}  " for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    )


@app.command()
def calendar(
    year: Annotated[int, typer.Option(help="The year to show.")],
    config: ConfigOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Show what the working-day calendar believes about a year, and where each day comes from.

    Uses the [calendar] overrides file of the config when there is a config; without one, only
    chinesecalendar. A year neither knows exits 2 with the lines to add to the override file.

    Example: gridrecon calendar --year 2026
    """
    from .checks.calendar import WorkingCalendar
    from .core.config import resolve_config_path

    path = resolve_config_path(config)
    overrides = _load(config).calendar_overrides if config or path.is_file() else None
    info = WorkingCalendar.load(overrides).describe_year(year)
    if format is OutputFormat.json:
        _print_json(
            {
                "year": info.year,
                "working_days": info.working_day_count,
                "known_from": list(info.known_from),
                "holidays": [
                    {"date": d.isoformat(), "name": info.names.get(d), "source": source}
                    for d, source in info.holidays
                ],
                "makeup_workdays": [
                    {"date": d.isoformat(), "name": info.names.get(d), "source": source}
                    for d, source in info.makeup_workdays
                ],
            }
        )
        return
    from rich.table import Table

    console = _console()
    console.print(
        f"{info.year}: {info.working_day_count} working days (from {', '.join(info.known_from)})"
    )
    for title, days in (
        ("holidays (days off)", info.holidays),
        ("make-up working days (调休)", info.makeup_workdays),
    ):
        table = Table("date", "weekday", "holiday", "source", box=None, padding=(0, 2), title=title)
        for day, source in days:
            table.add_row(day.isoformat(), f"{day:%a}", info.names.get(day, ""), source)
        console.print(table)


class Scale(str, Enum):
    small = "small"
    city = "city"
    province = "province"
    national = "national"


@app.command()
def sample(
    out: Annotated[
        Path | None,
        typer.Option(help="Write pms.sqlite, marketing.sqlite and planted.csv into this folder."),
    ] = None,
    pms_url: Annotated[
        str | None, typer.Option(help="Write the PMS sample into this database URL instead.")
    ] = None,
    marketing_url: Annotated[
        str | None, typer.Option(help="Write the marketing sample into this database URL.")
    ] = None,
    scale: Annotated[Scale, typer.Option(help="How many assets.")] = Scale.small,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 20261120,
) -> None:
    """Write the sample PMS and marketing databases, with planted defects.

    The planted defects and the findings each must produce are listed in planted.csv and in
    sample_data/README.md. Existing sample tables in the target are replaced.

    Example: gridrecon sample --out /tmp/sample --scale city
    """
    from .core.errors import ConfigError
    from .sample_data import generate, write_sqlite_pair

    if (out is None) == (pms_url is None or marketing_url is None):
        raise ConfigError("give either --out DIR, or both --pms-url URL and --marketing-url URL")
    if out is not None:
        manifest = write_sqlite_pair(out, scale=scale.value, seed=seed)
        where = f"{out}/pms.sqlite and {out}/marketing.sqlite"
    else:
        manifest = generate(pms_url, marketing_url, scale=scale.value, seed=seed)
        where = "the given databases"
    planted = (
        int((manifest["expect"] == "finding").sum()) if "expect" in manifest else len(manifest)
    )
    typer.echo(
        f"wrote the {scale.value} sample (seed {seed}) to {where}; {planted} planted findings"
    )


@app.command()
def validate(config: ConfigOption = None, format: FormatOption = OutputFormat.table) -> None:
    """Check the config and mappings against the live databases.

    Checks the [rules] settings, the calendar overrides file and the schedule's cron expression
    too, then reports every mapped table and column that does not exist, code values the code
    lists do not know, units the org map cannot translate, and the in-scope rows per table. Exits
    2 when a source cannot be read as mapped.

    Example: gridrecon validate --config gridrecon.toml
    """
    from .checks.calendar import WorkingCalendar
    from .checks.settings import RuleSettings
    from .connectors.validate import validate as validate_sources
    from .schedule.service import build_trigger

    loaded = _load(config)
    # What a run or the scheduler would refuse at its start is refused here first.
    RuleSettings.parse(loaded.rules, loaded.path)
    WorkingCalendar.load(loaded.calendar_overrides)
    build_trigger(loaded.schedule, loaded.path)
    report = validate_sources(loaded)
    if format is OutputFormat.json:
        _print_json(dataclasses.asdict(report) | {"ok": report.ok})
    else:
        _render_validation(report)
    if not report.ok:
        raise typer.Exit(2)


def _render_validation(report) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    for source in report.sources:
        console.print(
            Text.assemble(
                (source.system, "bold"),
                f" {source.url}  mapping {source.mapping} ({source.mapping_path})  ",
                ("ok", "green") if source.ok else ("PROBLEMS", "red"),
            )
        )
        if source.error:
            console.print(Text.assemble("  ", ("cannot check: ", "red"), source.error))
        for problem in source.problems:
            console.print(Text.assemble("  ", (problem.key, "red"), ": ", problem.message))
        if source.tables:
            table = Table("asset type", "table", "rows in scope", box=None, padding=(0, 2))
            for count in source.tables:
                table.add_row(count.asset_type, count.table, f"{count.rows:,}")
            console.print(table)
        if source.unknown_values:
            table = Table(
                "asset type",
                "table.column",
                "field",
                "value not in code list",
                "rows",
                box=None,
                padding=(0, 2),
                title="values that will be INVALID_VALUE findings",
            )
            for value in source.unknown_values:
                table.add_row(
                    value.asset_type,
                    f"{value.table}.{value.column}",
                    value.field,
                    repr(value.value),
                    f"{value.rows:,}",
                )
            console.print(table)


runs_app = typer.Typer(help="The runs the state store remembers.", no_args_is_help=True)
findings_app = typer.Typer(
    help="Findings as the state store knows them; waive what is explained.", no_args_is_help=True
)
app.add_typer(runs_app, name="runs")
app.add_typer(findings_app, name="findings")
from .schedule.commands import schedule_app  # noqa: E402

app.add_typer(schedule_app, name="schedule")
from .plans.commands import plan_app  # noqa: E402

app.add_typer(plan_app, name="plan")


def _print_frame(frame, format: OutputFormat, columns: list[str], title: str | None = None) -> None:
    """A table for people, or clean JSON / CSV on stdout for scripts."""
    import math

    frame = frame[columns] if len(frame) else frame.reindex(columns=columns)

    def plain(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, bool) and format is OutputFormat.csv:
            return "true" if value else "false"
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value.item() if hasattr(value, "item") else value

    records = [{c: plain(v) for c, v in row.items()} for row in frame.to_dict(orient="records")]
    if format is OutputFormat.json:
        _print_json(records)
        return
    if format is OutputFormat.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for record in records:
            writer.writerow(["" if record[c] is None else record[c] for c in columns])
        return
    from rich.table import Table

    table = Table(box=None, padding=(0, 2), title=title)
    for column in columns:
        # ids are copied from here into the next command: wrap them, never cut them with "…"
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(*("" if record[c] is None else str(record[c]) for c in columns))
    _console().print(table)


@runs_app.command("list")
def runs_list(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    format: FormatOption = OutputFormat.table,
) -> None:
    """List recent runs: status, exit code, as_of, duration, rows read and open findings.

    Example: gridrecon runs list --limit 5
    """
    import json as jsonlib

    api = _api()

    frame = api.list_runs(_load(config), limit)
    summaries = [jsonlib.loads(text or "{}") for text in frame["summary_json"]]
    frame["rows_read"] = [
        " ".join(
            f"{system}:"
            + "/".join(
                str(n) for n in s.get("sources", {}).get(system, {}).get("rows", {}).values()
            )
            for system in ("pms", "marketing")
        )
        for s in summaries
    ]
    frame["open"] = [s.get("findings", {}).get("open") for s in summaries]
    frame["duration_s"] = frame["duration_s"].round(1)
    _print_frame(
        frame,
        format,
        [
            "run_id",
            "status",
            "exit_code",
            "as_of",
            "started_at",
            "duration_s",
            "rows_read",
            "open",
            "reason",
        ],
    )


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="A run id, or 'latest'.")],
    config: ConfigOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Show one run: what it read, its counts, settings and config fingerprint.

    Example: gridrecon runs show latest
    """
    api = _api()

    record = api.show_run(_load(config), run)
    if format is not OutputFormat.table:
        _print_json(record)
        return
    summary = record["summary"]
    console = _console()
    console.print(
        f"run {record['run_id']}  {record['status']} (exit {record['exit_code']})  as of "
        f"{record['as_of']}  started {record['started_at']}  {record['duration_s'] or 0:.1f} s"
    )
    if record.get("reason"):
        console.print(record["reason"])
    console.print(f"config {record['config_path']}  fingerprint {record['config_fingerprint']}")
    for system, source in summary.get("sources", {}).items():
        rows = ", ".join(f"{t} {n:,}" for t, n in source["rows"].items())
        console.print(f"{system} {source['url']} ({source['mapping']}): {rows}")
    counts = summary.get("findings", {})
    console.print(
        f"open {counts.get('open', 0):,}  new {counts.get('new', 0):,}  resolved "
        f"{counts.get('resolved', 0):,}  waived {counts.get('waived', 0):,}"
    )
    for rule, count in counts.get("by_rule", {}).items():
        console.print(f"  {rule:<16} {count:,}")


FINDING_LIST_COLUMNS = [
    "finding_id",
    "rule_id",
    "severity",
    "state",
    "asset_type",
    "pms_id",
    "marketing_id",
    "asset_name",
    "org_code",
    "field",
    "owner",
    "age_days",
    "age_working_days",
    "waived_until",
]


@findings_app.command("list")
def findings_list(
    config: ConfigOption = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule id.")] = None,
    org: Annotated[
        str | None, typer.Option(help="Only this org code and the units below it.")
    ] = None,
    type: Annotated[
        str | None, typer.Option("--type", help="substation, line or transformer.")
    ] = None,
    state: Annotated[
        str | None, typer.Option(help="new, open (= new, open, reopened), reopened or resolved.")
    ] = "open",
    owner: Annotated[str | None, typer.Option(help="Only this owning department.")] = None,
    since: Annotated[str | None, typer.Option(help="First seen on or after this date.")] = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """List findings from the state store, filtered.

    Example: gridrecon findings list --rule ARCHIVE_OVERDUE --org 37401 --format csv
    """
    import datetime as dt

    api = _api()

    loaded = _load(config)
    since_date = _parse_date(since, "--since")
    frame = api.list_findings(
        loaded,
        rule=rule,
        org=org,
        asset_type=type,
        state=state,
        owner=owner,
        since=dt.datetime.combine(since_date, dt.time(), loaded.timezone) if since_date else None,
    )
    frame["waived"] = frame["waiver_reason"].notna()
    columns = (
        FINDING_LIST_COLUMNS
        if format is OutputFormat.table
        else [
            *FINDING_LIST_COLUMNS[:-1],
            "pms_value",
            "marketing_value",
            "detail",
            "first_seen",
            "last_seen",
            "waived",
            "waiver_reason",
            "waived_by",
            "waived_until",
        ]
    )
    _print_frame(frame, format, columns)


@findings_app.command("show")
def findings_show(
    finding_id: Annotated[str, typer.Argument(help="The finding id.")],
    config: ConfigOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Show one finding with both systems' values, its waiver and its history.

    Example: gridrecon findings show 3f2a9c0d1e4b5a6f
    """
    api = _api()

    record, history = api.show_finding(_load(config), finding_id)
    if format is not OutputFormat.table:
        record = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in record.items()}
        record["history"] = [
            {"run_id": r, "state": s, "at": a.isoformat()}
            for r, s, a in history.itertuples(index=False)
        ]
        _print_json(record)
        return
    console = _console()
    from .checks.findings import FINDING_FIELDS

    shown = [f for f in FINDING_FIELDS if f != "waived"]
    shown += ["age_days", "age_working_days", "waiver_reason", "waived_by", "waived_until"]
    for key in shown:
        value = record.get(key)
        if value is not None and value == value:
            console.print(f"{key:>17}  {value}")
    for run_id, state, at in history.itertuples(index=False):
        console.print(f"{'history':>17}  {at:%Y-%m-%d %H:%M}  {state:<9} run {run_id}")


def _default_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@findings_app.command("waive")
def findings_waive(
    ids: Annotated[list[str] | None, typer.Argument(help="Finding ids to waive.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why the finding is acceptable.")] = None,
    until: Annotated[
        str | None, typer.Option(help="The waiver expires after this date (YYYY-MM-DD).")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who waives (default: your login name).")] = None,
    from_csv: Annotated[
        Path | None,
        typer.Option("--from-csv", help="Waive every row of an edited findings.csv with a reason."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Waive findings: they stay out of open counts and --fail-on until the waiver expires.

    Give ids with --reason, or --from-csv with the exported findings.csv to which a column named
    reason (and optionally until, by) was added and filled in for the rows to waive.

    Example: gridrecon findings waive 3f2a9c0d1e4b5a6f --reason "台区改造中" --until 2026-12-31
    """
    api = _api()
    from .core.errors import ConfigError
    from .sync.waivers import parse_until

    loaded = _load(config)
    who = by or _default_user()
    if from_csv is not None:
        if ids:
            raise ConfigError("give finding ids or --from-csv, not both")
        count = api.waive_from_csv(loaded, from_csv, who)
    else:
        if not ids or not reason:
            raise ConfigError("give one or more finding ids and --reason TEXT (or --from-csv FILE)")
        count = api.waive(loaded, ids, reason, who, parse_until(until, "--until"))
    typer.echo(f"waived {count} findings")


@findings_app.command("unwaive")
def findings_unwaive(
    ids: Annotated[list[str], typer.Argument(help="Finding ids whose waiver to remove.")],
    config: ConfigOption = None,
) -> None:
    """Remove waivers: the findings count as open again from the next run.

    Example: gridrecon findings unwaive 3f2a9c0d1e4b5a6f
    """
    api = _api()

    count = api.unwaive(_load(config), ids)
    typer.echo(f"removed {count} waivers")


check_app = typer.Typer(help="Ask about one asset now, by key lookups.", no_args_is_help=True)
app.add_typer(check_app, name="check")

AssetTypeOption = Annotated[
    str | None, typer.Option("--type", help="substation, line or transformer.", show_default=False)
]


@check_app.command("asset")
def check_asset(
    query: Annotated[str, typer.Argument(help="A PMS id, a marketing id, or part of a name.")],
    type: AssetTypeOption = None,
    config: ConfigOption = None,
    as_of: AsOfOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Why is this asset (not) in step? Both systems' records side by side, its deadline, every
    rule's verdict and the finding history, read by key — no full pull.

    Example: gridrecon check asset 9400000008
    """
    from . import adhoc
    from .core.errors import ConfigError

    if type is not None and type not in ("substation", "line", "transformer"):
        raise ConfigError(f"--type must be substation, line or transformer, got '{type}'")
    result = adhoc.check_asset(_load(config), query, type, _parse_date(as_of, "--as-of"))
    if result.choices or result.asset_type is None:
        if not result.choices:
            raise ConfigError(f"no asset matches '{query}' in either system")
        typer.echo(
            f"'{query}' matches {len(result.choices)} assets; ask again with one of the ids:"
        )
        _print_frame(
            __import__("pandas").DataFrame(result.choices),
            format,
            ["asset_type", "pms_id", "marketing_id", "name", "org_code"],
        )
        raise typer.Exit(0)
    if format is not OutputFormat.table:
        _print_json(_check_json(result))
        return
    _render_check(result)


def _check_fields() -> list[str]:
    """Both systems' records side by side: the canonical fields, and the table of each row."""
    from .connectors.normalize import CANONICAL_COLUMNS  # pandas: not at import, --help is fast

    return [c for c in CANONICAL_COLUMNS if c != "asset_type"] + ["source_table"]


def _check_json(result) -> dict:
    def records(frame, columns):
        if frame is None or frame.empty:
            return []
        shown = frame[columns].astype(object).where(frame[columns].notna(), None)
        return [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in shown.to_dict(orient="records")
        ]

    return {
        "asset_type": result.asset_type,
        "pms_id": result.pms_id,
        "as_of": result.as_of.isoformat(),
        "deadline": result.deadline.isoformat() if result.deadline else None,
        "working_days_elapsed": result.working_days_elapsed,
        "pms": records(result.pms, _check_fields()),
        "marketing": records(result.marketing, _check_fields()),
        "parents": result.parents,
        "verdicts": result.verdicts,
        "history": records(
            result.history, ["finding_id", "rule_id", "state", "field", "first_seen", "last_seen"]
        ),
        "rows_fetched": result.rows_fetched,
    }


def _render_check(result) -> None:
    from rich.table import Table

    console = _console()
    columns = [("PMS", row) for row in result.pms.to_dict("records")]
    columns += [("marketing", row) for row in result.marketing.to_dict("records")]
    table = Table(
        "field",
        *(title for title, _ in columns),
        box=None,
        padding=(0, 2),
        title=f"{result.asset_type} {result.pms_id or ''}",
    )
    for name in _check_fields():
        cells = []
        for _, row in columns:
            value = row.get(name)
            if value is None or value != value:
                cells.append("")
            elif hasattr(value, "strftime"):
                cells.append(
                    value.strftime("%Y-%m-%d %H:%M" if name == "recorded_at" else "%Y-%m-%d")
                )
            elif isinstance(value, float):
                cells.append(f"{value:g}")
            else:
                cells.append(str(value))
        table.add_row(name, *cells)
    console.print(table)
    if not len(result.pms):
        console.print("PMS: no record with this id")
    if not len(result.marketing):
        console.print("marketing: no record links to this PMS id")
    for parent in result.parents:
        console.print(
            f"parent ({parent['system']}) {parent['asset_type']} {parent['source_id']} "
            f"{parent['name'] or '— not found'}"
        )
    if result.deadline:
        console.print(
            f"as of {result.as_of}: deadline {result.deadline}, "
            f"{result.working_days_elapsed} working days since commissioning"
        )
    for rule, details in result.verdicts.items():
        if details:
            for detail in details:
                console.print(f"  {rule:<16} {detail}", style="red")
        else:
            console.print(f"  {rule:<16} ok")
    for row in result.history.to_dict("records") if len(result.history) else []:
        console.print(
            f"  history: {row['rule_id']} {row['field'] or ''} {row['state']}, first seen "
            f"{row['first_seen']:%Y-%m-%d}, last seen {row['last_seen']:%Y-%m-%d}"
        )
    console.print(f"({result.rows_fetched} rows fetched)")


@app.command()
def diff(
    type: Annotated[str, typer.Option("--type", help="substation, line or transformer.")],
    org: Annotated[
        str | None, typer.Option(help="Only this org code and the units below it.")
    ] = None,
    config: ConfigOption = None,
    as_of: AsOfOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Reconcile one asset type (and org) now, filtered in the source queries; nothing is stored.

    Example: gridrecon diff --type transformer --org 3740101 --as-of 2026-11-20
    """
    from . import adhoc
    from .core.errors import ConfigError

    if type not in ("substation", "line", "transformer"):
        raise ConfigError(f"--type must be substation, line or transformer, got '{type}'")
    result = adhoc.diff(_load(config), type, org, _parse_date(as_of, "--as-of"))
    if format is not OutputFormat.table:
        from .checks.findings import FINDING_FIELDS

        _print_frame(
            result.findings,
            format,
            [f for f in FINDING_FIELDS if f not in ("state", "first_seen", "last_seen", "waived")],
        )
        return
    _print_frame(
        result.findings,
        format,
        [
            "rule_id",
            "severity",
            "pms_id",
            "marketing_id",
            "asset_name",
            "org_code",
            "field",
            "pms_value",
            "marketing_value",
        ],
    )
    counts = result.counts()
    typer.echo(
        f"{counts['open']} findings for {type}s"
        + (f" of org {org}" if org else "")
        + f" as of {result.as_of}; "
        + ", ".join(f"{r} {n}" for r, n in counts["by_rule"].items())
    )


class ReportFormat(str, Enum):
    html = "html"
    xlsx = "xlsx"
    csv = "csv"
    json = "json"


class ReportBy(str, Enum):
    rule = "rule"
    org = "org"


class Lang(str, Enum):
    zh = "zh"
    en = "en"


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="A run id, or 'latest'.")],
    format: Annotated[ReportFormat, typer.Option("--format", "-f", help="What to render.")] = (
        ReportFormat.html
    ),
    by: Annotated[
        ReportBy, typer.Option(help="xlsx work queues: one sheet per rule or per org.")
    ] = (ReportBy.rule),
    lang: Annotated[Lang, typer.Option(help="Labels in Chinese or English.")] = Lang.zh,
    out: Annotated[
        Path | None, typer.Option(help="Write here (default: report.<format> in the run folder).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Render a stored run again, in any format and language, from its own files.

    Example: gridrecon report latest --format xlsx --by org --out 各单位问题清单.xlsx
    """
    from .reports import render
    from .reports.stored import load_run, run_folder

    loaded = _load(config)
    result = load_run(loaded.report_dir, run)
    content = render(result, format.value, by=by.value, lang=lang.value)
    target = (
        out or run_folder(loaded.report_dir, run) / f"report-{lang.value}-{by.value}.{format.value}"
    )
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    target.write_bytes(data)
    typer.echo(f"wrote {target}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the one place where errors become exit codes."""
    from .core.memory import decline_huge_pages

    decline_huge_pages()  # before the validity worker starts: it inherits the setting
    try:
        app(args=argv, prog_name="gridrecon")
    except GridreconError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"gridrecon: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("gridrecon: interrupted", err=True)
        sys.exit(130)


def entry_point() -> None:
    """The `gridrecon` command: main(), then an exit that skips the interpreter's teardown.

    Freeing pandas', SQLAlchemy's and the drivers' modules one by one at exit takes 0.2-0.3 s,
    a fifth of a night on which nothing changed, after all the work is done. The exit functions
    still run and the output is flushed; only that teardown is skipped. main() itself exits the
    usual way, for callers in a Python process of their own (tests, scripts).
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):  # sys.exit("message"): printed, exit 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    code = 0 if code is None else int(code)
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)  # something still runs: leave as usual, which waits for it
    atexit._run_exitfuncs()  # logging's shutdown and gridrecon's own clean-ups among them
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, or a closed stream
            pass
    os._exit(code)


if __name__ == "__main__":
    entry_point()
