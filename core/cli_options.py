"""Command-line option types shared by every module that defines gridrecon commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $GRIDRECON_CONFIG, else ./gridrecon.toml).",
        show_default=False,
    ),
]
