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

    return Console(soft_wrap=False)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


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

    console = _console()
    for source in report.sources:
        verdict = "[green]ok[/]" if source.ok else "[red]PROBLEMS[/]"
        console.print(
            f"[bold]{source.system}[/] {source.url}  mapping {source.mapping} "
            f"({source.mapping_path})  {verdict}"
        )
        if source.error:
            console.print(f"  [red]cannot check:[/] {source.error}")
        for problem in source.problems:
            console.print(f"  [red]{problem.key}[/]: {problem.message}")
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
