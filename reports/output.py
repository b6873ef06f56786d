"""Write a run's files into its folder and point `latest/` at it (SPEC §8).

The folder is written under a temporary name and renamed when complete, and `latest` is a symlink
replaced atomically, so a script reading latest/findings.json never sees a half-written run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ..checks.result import RunResult
from ..core.errors import ConfigError
from . import machine
from .html import render_html
from .xlsx import render_xlsx

LATEST = "latest"

# file name -> renderer. The reports for people use their defaults (Chinese, a sheet per rule);
# `gridrecon report RUN` renders other languages and groupings on demand.
RENDERERS: dict[str, Callable[[RunResult], str | bytes]] = {
    "findings.json": machine.findings_json,
    "findings.csv": machine.findings_csv,
    "summary.json": machine.summary_json,
    "findings.xlsx": render_xlsx,
    "report.html": render_html,
}


def write_run_folder(result: RunResult, report_dir: Path) -> Path:
    """Write every rendering into <report_dir>/<run id>/ (latest/ is moved separately)."""
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the report directory {report_dir}: {exc.strerror}; "
            "set [report] dir in the config to a writable folder"
        ) from None
    final = report_dir / result.run_id
    partial = report_dir / f".{result.run_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for name, render in RENDERERS.items():
        content = render(result)
        target = partial / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


def point_latest(report_dir: Path, run_id: str) -> None:
    """Make report_dir/latest refer to run_id: an atomic symlink swap, else a copy."""
    latest = report_dir / LATEST
    temporary = report_dir / f".{LATEST}.{os.getpid()}"
    try:
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        temporary.symlink_to(run_id, target_is_directory=True)
        if latest.is_dir() and not latest.is_symlink():
            shutil.rmtree(latest)
        os.replace(temporary, latest)
    except OSError:
        # File systems without symlinks: a copy is acceptable (SPEC §8), just not atomic.
        if latest.is_symlink():
            latest.unlink()
        shutil.rmtree(latest, ignore_errors=True)
        shutil.copytree(report_dir / run_id, latest)
