"""`gridrecon plan` (make a plan from a stored run) and `gridrecon plan apply` (stage it).

A typer sub-app, registered in cli.py with `app.add_typer(plan_app, name="plan")`. Like every
command it builds its inputs, calls the library (plans/) and renders; errors are mapped to exit
codes by cli.main().
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..core.cli_options import ConfigOption

# No help= here: the callback's docstring is the help of `gridrecon plan`.
plan_app = typer.Typer(no_args_is_help=True)


class ShowFormat(str, Enum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    ShowFormat, typer.Option("--format", "-f", help="table for people, json for scripts.")
]


def _load(config: Path | None):
    from ..core.config import load_config, resolve_config_path

    return load_config(resolve_config_path(config))


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@plan_app.callback(invoke_without_command=True)
def plan(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The plan folder to write (new, or empty).", show_default=False),
    ] = None,
    run: Annotated[str, typer.Option(help="A run id, or 'latest'.")] = "latest",
    rule: Annotated[
        str | None, typer.Option(help="Only findings of this rule.", show_default=False)
    ] = None,
    org: Annotated[
        str | None,
        typer.Option(help="Only this org code and the units below it.", show_default=False),
    ] = None,
    type: Annotated[
        str | None,
        typer.Option("--type", help="substation, line or transformer.", show_default=False),
    ] = None,
    dialect: Annotated[
        str | None,
        typer.Option(
            help="SQL dialect of changes.sql: postgresql, mysql, mariadb, sqlite or oracle "
            "(default: the staging_url's, else the marketing database's).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    format: FormatOption = ShowFormat.table,
) -> None:
    """Make a sync plan: the changes that bring marketing in line with PMS.

    From a stored run's open, unwaived findings: new marketing records for ARCHIVE_OVERDUE,
    updates to the PMS value for ATTR_MISMATCH on name, voltage, capacity, status and parent, and
    a list for manual handling. Writes a folder to review (plan.json, changes.csv/.xlsx,
    import-*.csv laid out by the plan template, changes.sql, manual.csv) and nothing anywhere
    else; `gridrecon plan apply` stages a reviewed plan.

    Example: gridrecon plan --config gridrecon.toml --out plans/today
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..core.errors import ConfigError
    from . import make_plan

    if out is None:
        raise ConfigError("give --out DIR: the folder to write the plan into")
    made, folder = make_plan(
        _load(config), out, run, rule=rule, org=org, asset_type=type, dialect=dialect
    )
    counts = made.counts()
    if format is ShowFormat.json:
        _echo_json({"plan_id": made.plan_id, "folder": str(folder), **counts})
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 1000)
    table = Table(box=None, padding=(0, 2))
    for column in ("no", "action", "asset_type", "pms_id", "marketing_id", "name", "field", "to"):
        table.add_column(column, overflow="fold")
    for change in made.changes:
        to = change["new_value"] or ""
        if change["action"] == "create":
            to = "new record"
        elif change["field"] == "parent":
            to = f"{change['parent_marketing_id']} (PMS {change['new_value']})"
        table.add_row(
            str(change["change_no"]),
            change["action"],
            change["asset_type"],
            change["pms_id"] or "",
            change["marketing_id"] or "",
            change["asset_name"] or "",
            change["field"] or "",
            to,
        )
    console.print(f"plan {made.plan_id} from run {made.run_id} (as of {made.run_as_of})")
    if made.changes:
        console.print(table)
    expected = made.expected
    console.print(
        f"{counts['changes']} changes, {counts['manual']} for manual handling (manual.csv), "
        f"{counts['not_planned']} left out; after the import the next run should show "
        f"{len(expected['resolved'])} resolved and {len(expected['new'])} new "
        f"(ARCHIVE_LATE of the records created late); plan in {out}"
    )


@plan_app.command("apply")
def plan_apply(
    plan: Annotated[Path, typer.Argument(help="The plan folder (or its plan.json).")],
    target: Annotated[
        str | None,
        typer.Option(
            help="The staging database URL (default: plan.staging_url of the config).",
            show_default=False,
        ),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Write. Without it, a dry run: check and count only.")
    ] = False,
    by: Annotated[
        str | None, typer.Option(help="Who applies (default: your login name).", show_default=False)
    ] = None,
    config: ConfigOption = None,
    format: FormatOption = ShowFormat.table,
) -> None:
    """Stage a plan in the staging (interface) database; a dry run unless --apply.

    The marketing system's interface imports the staged rows. One transaction, with an audit row
    in GR_PLAN_APPLY; applying the same plan again writes nothing. Refused (exit 2) when the
    target is the pms or marketing database, the plan's run is older than plan.max_run_age_days,
    or a change's finding is no longer open in the state store.

    Example: gridrecon plan apply plans/today --target postgresql+psycopg://steward@db/staging --apply
    """
    from . import apply_plan

    report = apply_plan(_load(config), plan, target, write=apply, by=by)
    staged = report.staging
    if format is ShowFormat.json:
        _echo_json(
            {
                "plan_id": report.plan.plan_id,
                "run_id": report.plan.run_id,
                "target": staged.target,
                "written": staged.written,
                "apply_id": staged.apply_id,
                "by": report.by,
                "rows": staged.to_write,
                "rows_written": staged.rows_written,
                "already_staged": staged.already_staged,
                "staged_by_other_plans": staged.staged_elsewhere,
                "created_tables": staged.created_tables,
            }
        )
        return
    verb = "wrote" if staged.written else "would write"
    rows = ", ".join(f"{t} {n}" for t, n in staged.to_write.items()) or "nothing new"
    typer.echo(f"plan {report.plan.plan_id} → {staged.target}: {verb} {rows}")
    if staged.already_staged:
        done = ", ".join(f"{t} {n}" for t, n in staged.already_staged.items())
        typer.echo(f"already staged by this plan: {done}")
    for item in staged.staged_elsewhere:
        typer.echo(
            f"finding {item['finding_id']}: staged by plan {item['plan_id']}, not imported yet; "
            "left as it is"
        )
    if staged.written:
        typer.echo(f"apply {staged.apply_id} by {report.by} recorded in GR_PLAN_APPLY")
    else:
        typer.echo("dry run: nothing was written; add --apply to write")
