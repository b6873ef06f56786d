"""gridrecon's command line: a thin projection of the library.

Each command builds its inputs, calls one library function and renders the result. Errors are
mapped to exit codes in one place, `main()` (SPEC §8): a GridreconError prints one line and exits
with its code (2 bad input, 3 inconclusive), Ctrl-C exits 130, `--debug` shows the traceback.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from .core.errors import GridreconError

app = typer.Typer(
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

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $GRIDRECON_CONFIG, else ./gridrecon.toml).",
        show_default=False,
    ),
]


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


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
    width = None if sys.stdout.isatty() else 200
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
) -> None:
    """Run one reconciliation: pull both systems, match, judge, write the reports.

    Writes findings.json, findings.csv and summary.json into <report dir>/<run id>/ and points
    <report dir>/latest at it. Exit codes: 0 done, 1 findings at or above --fail-on, 2 bad input,
    3 inconclusive, 130 interrupted.

    Example: gridrecon run --config gridrecon.toml --as-of 2026-11-20 --fail-on error
    """
    from . import api

    result, folder = api.run(
        _load(config),
        as_of=_parse_date(as_of, "--as-of"),
        fail_on=fail_on.value if fail_on else None,
    )
    _render_run(result, folder)
    raise typer.Exit(result.exit_code)


def _render_run(result, folder: Path) -> None:
    from rich.table import Table

    console = _console()
    counts = result.counts()
    reads = ", ".join(
        f"{system} " + "/".join(f"{n:,}" for n in source.rows.values())
        for system, source in result.sources.items()
    )
    console.print(
        f"run {result.run_id}  as of {result.as_of}  read {reads} (substations/lines/transformers)"
    )
    table = Table("rule", "severity", "open", box=None, padding=(0, 2))
    severity = result.findings.drop_duplicates("rule_id").set_index("rule_id")["severity"]
    for rule, count in counts["by_rule"].items():
        table.add_row(rule, str(severity.get(rule, "")), f"{count:,}")
    if counts["by_rule"]:
        console.print(table)
    console.print(
        f"{counts['open']:,} open findings, {counts['waived']:,} waived; reports in {folder}"
    )
    failing = len(result.failing_findings())
    if failing:
        console.print(
            f"{failing:,} open findings at or above --fail-on {result.fail_on}", style="red"
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
    for title, days in (("holidays (days off)", info.holidays),
                        ("make-up working days (调休)", info.makeup_workdays)):
        table = Table("date", "weekday", "holiday", "source", box=None, padding=(0, 2), title=title)
        for day, source in days:
            table.add_row(day.isoformat(), f"{day:%a}", info.names.get(day, ""), source)
        console.print(table)


class Scale(str, Enum):
    small = "small"
    city = "city"
    province = "province"


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
    planted = int((manifest["expect"] == "finding").sum()) if "expect" in manifest else len(manifest)
    typer.echo(f"wrote the {scale.value} sample (seed {seed}) to {where}; {planted} planted findings")


@app.command()
def validate(config: ConfigOption = None, format: FormatOption = OutputFormat.table) -> None:
    """Check the config and mappings against the live databases.

    Reports every mapped table and column that does not exist, code values the code lists do not
    know, units the org map cannot translate, and the in-scope rows per table. Exits 2 when a
    source cannot be read as mapped.

    Example: gridrecon validate --config gridrecon.toml
    """
    from .connectors.validate import validate as validate_sources

    report = validate_sources(_load(config))
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
                "asset type", "table.column", "field", "value not in code list", "rows",
                box=None, padding=(0, 2), title="values that will be INVALID_VALUE findings",
            )
            for value in source.unknown_values:
                table.add_row(
                    value.asset_type, f"{value.table}.{value.column}", value.field,
                    repr(value.value), f"{value.rows:,}",
                )
            console.print(table)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the one place where errors become exit codes."""
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


if __name__ == "__main__":
    main()
