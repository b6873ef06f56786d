"""The README is part of the product: every command is documented there and has an example."""

from __future__ import annotations

import re

from conftest import REPO, run_cli

from gridrecon.cli import app


def command_names() -> list[str]:
    """Every command, sub-commands as "runs list"."""
    import typer.main

    def walk(group, prefix: str) -> list[str]:
        names = []
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                names += walk(command, f"{prefix}{name} ")
            else:
                names.append(prefix + name)
        return names

    return sorted(walk(typer.main.get_command(app), ""))


def test_every_command_has_help_with_an_example() -> None:
    for name in command_names():
        result = run_cli(*name.split(), "--help")
        assert result.code == 0, (name, result.stderr)
        assert "Example: gridrecon " + name in " ".join(result.stdout.split()), name


def test_every_command_appears_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in command_names():
        assert re.search(rf"`gridrecon {name}\b", readme), name


def test_the_readme_quick_start_runs_the_shipped_sample_config() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "gridrecon run --as-of 2026-11-20" in readme
    config = (REPO / "gridrecon.toml").read_text(encoding="utf-8")
    assert "sample_data/pms.sqlite" in config and "sample_data/marketing.sqlite" in config


def test_the_calendar_command_shows_holidays_make_up_days_and_their_source() -> None:
    result = run_cli("calendar", "--year", "2026", "--format", "json", cwd=REPO / "tests")
    assert result.code == 0, result.stderr
    import json

    info = json.loads(result.stdout)
    assert info["working_days"] == 248
    assert any(
        d["date"] == "2026-10-10" and d["source"] == "chinesecalendar"
        for d in info["makeup_workdays"]
    )
    assert any(h["date"] == "2026-10-01" for h in info["holidays"])


def test_help_prints_config_section_names_as_written() -> None:
    """Help text names config sections in brackets ("[incremental]"): they must not be taken
    for markup and dropped."""
    result = run_cli("run", "--help")
    assert result.code == 0, result.stderr
    assert "[incremental]" in result.stdout
    result = run_cli("calendar", "--help")
    assert "[calendar] overrides file" in " ".join(result.stdout.split())
