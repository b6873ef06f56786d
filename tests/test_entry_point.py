"""The `gridrecon` command exits without the interpreter's teardown (cli.entry_point), and loses
nothing by it: all output arrives, exit codes and exit functions are as with a normal exit, and
work still running in another thread is waited for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, sample_config
from in_process import gridrecon

from gridrecon.sample_data import AS_OF


def python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # output buffered as Python buffers a pipe by default, whatever this process was given
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def help_after(setup: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`gridrecon --help` through entry_point, in a process where `setup` ran first."""
    entry = "import sys\nfrom gridrecon.cli import entry_point\n"
    return python(setup + entry + "sys.argv = ['gridrecon', '--help']\nentry_point()\n", tmp_path)


def test_every_line_of_a_long_output_arrives_through_a_pipe(tmp_path: Path) -> None:
    # the sample's findings as JSON: well over what one write of the output buffer holds
    config = str(sample_config(tmp_path))
    assert run_cli("run", "--config", config, "--as-of", AS_OF.isoformat()).code == 0
    command = run_cli("findings", "list", "--config", config, "--format", "json")
    assert command.code == 0, command.stderr
    assert len(command.stdout) > 16_000
    expected = gridrecon("findings", "list", "--config", config, "--format", "json").stdout
    assert command.stdout == expected


def test_exit_codes_and_messages_are_those_of_a_normal_exit(tmp_path: Path) -> None:
    missing = run_cli("run", "--config", str(tmp_path / "missing.toml"))
    assert missing.code == 2
    assert missing.stderr.startswith("gridrecon: error:") and "missing.toml" in missing.stderr
    assert run_cli("--help").code == 0
    assert run_cli("no-such-command").code == 2


def test_exit_functions_run_and_a_message_exit_is_exit_1(tmp_path: Path) -> None:
    done = help_after(
        "import atexit, pathlib\natexit.register(lambda: pathlib.Path('ran').write_text('yes'))\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran").read_text() == "yes"
    said = python(
        "import sys\n"
        "import gridrecon.cli as cli\n"
        "cli.main = lambda: sys.exit('gridrecon: stopped')\n"
        "cli.entry_point()\n",
        tmp_path,
    )
    assert (said.returncode, said.stderr.strip()) == (1, "gridrecon: stopped")


def test_a_thread_still_working_is_waited_for(tmp_path: Path) -> None:
    done = help_after(
        "import pathlib, threading, time\n"
        "def work():\n"
        "    time.sleep(1)\n"
        "    pathlib.Path('written').write_text('late')\n"
        "threading.Thread(target=work).start()\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "written").read_text() == "late"


def test_output_still_in_pythons_buffer_is_written_before_the_exit(tmp_path: Path) -> None:
    # click's echo flushes as it writes; print() into a pipe does not: what is still buffered
    # at the end must not be lost by skipping the teardown (which would have flushed it)
    done = python(
        "import gridrecon.cli as cli\n"
        "cli.main = lambda: [print('line') for _ in range(20_000)]\n"
        "cli.entry_point()\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "line\n" * 20_000


def test_the_library_is_imported_with_the_collector_paused_and_then_frozen(tmp_path: Path) -> None:
    # What pandas and SQLAlchemy make at import lives as long as the process: frozen, the
    # collector's passes leave it out (core/imports.py). Imported once; the collector runs again.
    done = python(
        "import gc\n"
        "from gridrecon import cli\n"
        "assert gc.get_freeze_count() == 0\n"
        "api = cli._api()\n"
        "frozen = gc.get_freeze_count()\n"
        "assert cli._api() is api and gc.get_freeze_count() == frozen\n"
        "print(gc.isenabled(), frozen > 50_000)\n",
        tmp_path,
    )
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_heavy_imports_leave_the_collector_as_they_found_it() -> None:
    import gc

    from gridrecon.core.imports import heavy_imports

    assert gc.isenabled()
    try:
        with heavy_imports():
            assert not gc.isenabled()
            raise ValueError("an import failed")
    except ValueError:
        pass
    assert gc.isenabled()
    gc.disable()
    try:
        with heavy_imports():
            pass
        assert not gc.isenabled()  # a caller that had paused it keeps it paused
    finally:
        gc.enable()
        gc.unfreeze()


def thp_enabled(status: str) -> str:
    return next(line.split()[1] for line in status.splitlines() if line.startswith("THP_enabled"))


@pytest.mark.skipif(
    "THP_enabled" not in (Path("/proc/self/status").read_text() if sys.platform == "linux" else ""),
    reason="a Linux kernel that reports transparent huge pages per process (5.0 and later)",
)
def test_the_command_and_its_children_run_without_transparent_huge_pages(tmp_path: Path) -> None:
    # Clearing huge pages cost a seventh of a full run's CPU (core/memory.py). The validity
    # worker is a child: it inherits the setting, as this child does. (This test process may
    # have declined them already, running the CLI in process: the child allows them first.)
    done = python(
        "import ctypes, pathlib, subprocess, sys\n"
        "ctypes.CDLL(None).prctl(41, 0, 0, 0, 0)\n"
        "from gridrecon import cli\n"
        "before = pathlib.Path('/proc/self/status').read_text()\n"
        "try:\n"
        "    cli.main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "child = subprocess.run(['cat', '/proc/self/status'], capture_output=True, text=True)\n"
        "print(before + '\\n---\\n' + pathlib.Path('/proc/self/status').read_text() + '\\n---\\n'\n"
        "      + child.stdout)\n",
        tmp_path,
    )
    before, after, child = done.stdout.split("\n---\n")
    assert (thp_enabled(before), thp_enabled(after), thp_enabled(child)) == ("1", "0", "0")
