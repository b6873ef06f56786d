"""Benchmark (not a test): a province's nightly run against real PostgreSQL and MariaDB servers.

    python bench/bench_province.py [--scale province|national] [--runs 3] [--floor-runs 3]
                                   [--pg-url URL] [--mariadb-url URL] [--keep-data] [--reuse-data]
                                   [--json FILE] [--baseline FILE]

1. Writes the sample at the scale (`gridrecon sample --scale …`): PMS into PostgreSQL, marketing
   into MariaDB. A province is 1,500 substations, 25,000 lines and 500,000 public transformers per
   system; national is ten times that. The databases are created when missing (the user must be
   allowed to); those this run created are dropped at the end unless --keep-data.
   Then an index on each mapped update-time column (GXSJ, CHG_DATE), as a source meant for
   incremental extraction has (without one a night's change queries scan every table), and
   planner statistics (ANALYZE), as a production server keeps them.
2. Writes a config for them into a temporary folder (state store: a SQLite file there; reports
   there too).
3. The read floor: the very SELECTs gridrecon issues (`source_queries`), delivered by the databases'
   own clients to /dev/null — `psql -c "COPY (…) TO STDOUT"` and `mariadb --quick -e "…"` —
   one after another (sequential) and both systems at once (parallel); median of --floor-runs.
4. `gridrecon run` end to end (read both, all rules, persist, all reports) as a child process: one
   warm-up run (a new state store's first run is special), then --runs full runs (`--full`, when
   this gridrecon has it), then --runs runs on unchanged data (incremental nights). Per run: wall
   time, peak RSS of the run's processes, exit code. The runs may keep Python's compiled
   bytecode, as an installed gridrecon does (PYTHONDONTWRITEBYTECODE is not passed on).
   Then nights as `gridrecon schedule` runs them: `api.run` in one long-lived process whose
   imports were paid when it started. A first night without changes (which also loads what is
   imported lazily) is shown apart; then --runs full nights and --runs nights without changes,
   taking turns. A night without changes is compared with a full night of the same process.
5. Prints the machine, the figures and each target with PASS or FAIL; --json writes them too.
   A night without changes is judged in the schedule's process, where nightly runs are meant to
   run; as a process of its own it is shown (INFO) beside what that process's imports alone take.
   With --baseline (the --json of a province run), a national run also checks that the time grew
   no more than the rows did.

Exit 0 when everything ran, whatever the targets say (it is a measurement); 1 when something broke.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

AS_OF = "2026-11-20"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/gridrecon_bench"
DEFAULT_MARIADB = "mysql+pymysql://root@127.0.0.1:3306/gridrecon_bench"
GB = 1024**3
# The targets.
FLOOR_FACTOR = 4.0
RSS_LIMIT = {"province": 1.5 * GB, "national": 2.0 * GB}
INCREMENTAL_SHARE = 0.10


class BenchError(Exception):
    """Something broke: the benchmark cannot give a figure."""


# ---------------------------------------------------------------------------------------------
# Child processes: wall time and peak memory


@dataclass
class Measured:
    seconds: float
    peak_rss: int  # bytes
    exit_code: int
    stdout: str = ""
    stderr: str = ""


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (Linux /proc; just ``pid`` elsewhere)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue  # gone meanwhile, or no /proc
    return found


# A process forked and not yet through exec: its memory is its parent's (a vfork child runs on
# the very pages of its parent), already counted there (the kernel's PF_FORKNOEXEC task flag).
FORKED_NOT_EXECUTED = 0x40


def _forked_not_executed(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
        flags = int(f.read().rsplit(")", 1)[1].split()[6])  # field 9
    return bool(flags & FORKED_NOT_EXECUTED)


def _tree_rss(pids: list[int]) -> int:
    """Resident memory of these processes together, from /proc/<pid>/status.

    Not the proportional set size (smaps_rollup): reading that walks every page table of the
    process while it runs, and on a national run (9 GB) ten samples a second made the run 15%
    slower. The worker is a process of its own (not a fork), so the two share little more than
    the libraries both load: the sum is a slight overcount, never an undercount.

    A child caught between its fork and its exec is left out: subprocess starts children with
    vfork, and until the exec the child's VmRSS is its parent's whole memory, the same pages.
    Counted, a sample that lands in that window adds the run's main process a second time: in
    eight national runs, one sample read 1,133 MB where the processes held 652 MB."""
    total = 0
    for p in pids:
        try:
            if _forked_not_executed(p):
                continue
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total


def measure(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Measured:
    """Run ``argv``, its output kept in ``log``.out and ``log``.err; its wall time and peak
    memory. The peak is the larger of what the kernel reports for the child (wait4: the peak RSS
    of its largest process) and, while it has worker processes, their memory together sampled
    every 100 ms, so workers are charged too."""
    out_path, err_path = log.with_suffix(".out"), log.with_suffix(".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        sampled = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal sampled
            while not stop.wait(0.1):
                pids = _tree(proc.pid)
                if len(pids) > 1:
                    sampled = max(sampled, _tree_rss(pids))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted: the child must not outlive the benchmark
            proc.kill()
            proc.wait()
            raise
        finally:
            stop.set()
        seconds = time.perf_counter() - started
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    kernel = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return Measured(
        seconds,
        max(kernel, sampled),
        proc.returncode,
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
    )


def gridrecon_command() -> list[str]:
    """The gridrecon console command of this interpreter's environment."""
    beside = Path(sys.executable).with_name("gridrecon")
    found = str(beside) if beside.exists() else shutil.which("gridrecon")
    if not found:
        raise BenchError("no gridrecon command next to this Python nor on PATH; install gridrecon")
    return [found]


# ---------------------------------------------------------------------------------------------
# The databases


def _server_url(url: URL) -> URL:
    """The same server, database the server always has (PostgreSQL) or none (MariaDB: an empty
    name connects to no database; set() would keep the old name for None)."""
    return url.set(database="postgres" if url.get_backend_name() == "postgresql" else "")


def ensure_database(url: URL) -> bool:
    """Create the URL's database when it does not exist; True when this call created it."""
    name = url.database
    if not name:
        raise BenchError(f"{url.render_as_string(hide_password=True)} names no database")
    engine = sa.create_engine(_server_url(url), isolation_level="AUTOCOMMIT")
    quoted = engine.dialect.identifier_preparer.quote_identifier(name)
    try:
        with engine.connect() as conn:
            if url.get_backend_name() == "postgresql":
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
                if not exists:
                    # Server-level DDL has no SQLAlchemy construct; the name is quoted.
                    conn.exec_driver_sql(
                        f"CREATE DATABASE {quoted} ENCODING 'UTF8' TEMPLATE template0"
                    )
            else:
                exists = conn.execute(
                    sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"),
                    {"n": name},
                ).first()
                if not exists:
                    conn.exec_driver_sql(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4")
    finally:
        engine.dispose()
    return not exists


def drop_database(url: URL) -> None:
    engine = sa.create_engine(_server_url(url), isolation_level="AUTOCOMMIT")
    quoted = engine.dialect.identifier_preparer.quote_identifier(url.database)
    force = " WITH (FORCE)" if url.get_backend_name() == "postgresql" else ""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
    finally:
        engine.dispose()


def server_version(url: URL) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SELECT version()").scalar())
    finally:
        engine.dispose()


def has_sample(pg: URL, mariadb: URL) -> bool:
    """Both databases hold sample tables with rows (for --reuse-data)."""
    for url, table in ((pg, "T_SB_ZWYC_XL"), (mariadb, "G_LINE")):
        engine = sa.create_engine(url)
        try:
            if not sa.inspect(engine).has_table(table):
                return False
            with engine.connect() as conn:
                t = sa.table(table)
                if not conn.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first():
                    return False
        finally:
            engine.dispose()
    return True


def row_counts(pg: URL, mariadb: URL) -> dict[str, int]:
    """Rows per sample table, to show what the run had to read."""
    tables = {
        pg: ["T_SB_ZNYC_DZ", "T_SB_ZWYC_XL", "T_SB_ZNYC_PDBYQ", "T_SB_ZWYC_ZSBYQ"],
        mariadb: ["G_SUBS", "G_LINE", "G_TRAN", "G_TG", "G_LINE_TG_RELA"],
    }
    counts = {}
    for url, names in tables.items():
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                for name in names:
                    stmt = sa.select(sa.func.count()).select_from(sa.table(name))
                    counts[name] = int(conn.execute(stmt).scalar())
        finally:
            engine.dispose()
    return counts


# ---------------------------------------------------------------------------------------------
# The read floor: the databases' own clients


def _client(names: tuple[str, ...]) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BenchError(f"the read floor needs the {names[0]} client on PATH")


def client_commands(config_path: Path, pg: URL, mariadb: URL) -> dict[str, list[list[str]]]:
    """Per system, one client command line per SELECT gridrecon issues in a full pull."""
    from gridrecon.connectors.reader import source_queries
    from gridrecon.core.config import load_config

    psql = _client(("psql",))
    mysql = _client(("mariadb", "mysql"))
    commands: dict[str, list[list[str]]] = {"pms": [], "marketing": []}
    for q in source_queries(load_config(config_path)):
        if q.dialect == "postgresql":
            url = pg
            argv = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", url.host or "localhost",
                    "-p", str(url.port or 5432), "-U", url.username or "postgres",
                    "-d", url.database, "-c", f"COPY ({q.sql}) TO STDOUT"]  # fmt: skip
        elif q.dialect in ("mysql", "mariadb"):
            url = mariadb
            argv = [mysql, "--quick", "--batch", "--skip-column-names",
                    "--default-character-set=utf8mb4", "-h", url.host or "localhost",
                    "-P", str(url.port or 3306), "-u", url.username or "root",
                    url.database, "-e", q.sql]  # fmt: skip
        else:
            raise BenchError(f"no client for a {q.dialect} source")
        commands[q.system].append(argv)
    return commands


def index_update_times(pg: URL, mariadb: URL) -> list[str]:
    """An index on every mapped update-time column, as a source meant for incremental
    extraction has: a night's change queries then look up the few rows changed instead of
    scanning each table. Returns the indexes created (none when they exist)."""
    from gridrecon.connectors.mapping import load_mapping

    created = []
    for url, mapping, system in ((pg, "pms2", "pms"), (mariadb, "sg186", "marketing")):
        engine = sa.create_engine(url)
        try:
            inspector = sa.inspect(engine)
            for asset in load_mapping(mapping, system).assets.values():
                for spec in asset.tables:
                    field = spec.field("updated_at")
                    if field is None:
                        continue
                    table = next(
                        t for t in inspector.get_table_names() if t.upper() == spec.table.upper()
                    )
                    column = next(
                        c["name"] for c in inspector.get_columns(table)
                        if c["name"].upper() == field.column.upper()
                    )  # fmt: skip
                    have = {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}
                    if (column,) in have:
                        continue
                    name = f"ix_{table}_{column}_bench".lower()
                    with engine.begin() as connection:
                        sa.Index(name, sa.Table(table, sa.MetaData(), autoload_with=connection)
                                 .c[column]).create(connection)  # fmt: skip
                    created.append(f"{table}.{column}")
        finally:
            engine.dispose()
    return created


def analyze(pg: URL, mariadb: URL) -> None:
    """Tables as a production database keeps them (autovacuum, InnoDB's persistent statistics):
    planner statistics, and on PostgreSQL vacuumed. Without statistics, a server-side cursor for
    a night's change query is planned as a scan of the whole table (PostgreSQL assumes a third of
    the rows match). Without a vacuum, on a server whose autovacuum is off, the first reads after
    the sample was written set the hint bits of every row, and whichever measurement reads first
    pays for that write."""
    for url in (pg, mariadb):
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")  # VACUUM: no transaction
        try:
            with engine.connect() as connection:
                if engine.dialect.name == "postgresql":
                    connection.exec_driver_sql("VACUUM ANALYZE")
                else:
                    tables = sa.inspect(connection).get_table_names()
                    quoted = ", ".join(engine.dialect.identifier_preparer.quote(t) for t in tables)
                    connection.exec_driver_sql(f"ANALYZE TABLE {quoted}").fetchall()
        finally:
            engine.dispose()


def client_env(pg: URL, mariadb: URL) -> dict[str, str]:
    """Passwords through the environment, never on a command line."""
    env = dict(os.environ)
    if pg.password:
        env["PGPASSWORD"] = pg.password
    if mariadb.password:
        env["MYSQL_PWD"] = mariadb.password
    return env


def _run_clients(commands: list[list[str]], env: dict[str, str]) -> None:
    for argv in commands:
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        if done.returncode != 0:
            raise BenchError(f"{Path(argv[0]).name} failed: {done.stderr.decode(errors='replace')}")


def _both_at_once(commands: dict[str, list[list[str]]], env: dict[str, str]) -> float:
    """Seconds for every system's SELECTs, the systems side by side."""
    errors: list[BenchError] = []

    def worker(argvs: list[list[str]]) -> None:
        try:
            _run_clients(argvs, env)
        except BenchError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(a,)) for a in commands.values()]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def read_floor(commands: dict[str, list[list[str]]], env: dict[str, str], runs: int) -> dict:
    """Median seconds: each system alone, both one after another, both at once."""
    per_system: dict[str, list[float]] = {s: [] for s in commands}
    sequential, parallel = [], []
    for _ in range(runs):
        for system, argvs in commands.items():
            started = time.perf_counter()
            _run_clients(argvs, env)
            per_system[system].append(time.perf_counter() - started)
        sequential.append(sum(per_system[s][-1] for s in commands))
        parallel.append(_both_at_once(commands, env))
    return {
        "sequential_s": statistics.median(sequential),
        "parallel_s": statistics.median(parallel),
        "per_system_s": {s: statistics.median(v) for s, v in per_system.items()},
        "sequential_all_s": sequential,
        "parallel_all_s": parallel,
    }


# ---------------------------------------------------------------------------------------------
# gridrecon run


def has_full_flag(gridrecon: list[str]) -> bool:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    done = subprocess.run(gridrecon + ["run", "--help"], capture_output=True, text=True, env=env)
    return "--full" in done.stdout


def write_config(folder: Path, pg: URL, mariadb: URL) -> Path:
    def quoted(url: URL) -> str:
        return json.dumps(url.render_as_string(hide_password=False))  # a valid TOML string

    path = folder / "bench.toml"
    path.write_text(
        f"""# gridrecon benchmark: the sample in PostgreSQL (PMS) and MariaDB (marketing)
timezone = "Asia/Shanghai"

[pms]
url = {quoted(pg)}
mapping = "pms2"

[marketing]
url = {quoted(mariadb)}
mapping = "sg186"

[state]
url = "sqlite:///state.sqlite"

[report]
dir = "reports"

[incremental]                 # nights without --full read only what changed
enabled = true
""",
        encoding="utf-8",
    )
    return path


@dataclass
class RunFigure:
    kind: str  # warm-up, full, incremental
    seconds: float
    peak_rss: int
    exit_code: int
    said: str = ""


@dataclass
class Series:
    runs: list[RunFigure] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [r.seconds for r in self.runs]

    def summary(self) -> dict:
        if not self.runs:
            return {}
        return {
            "median_s": statistics.median(self.seconds),
            "min_s": min(self.seconds),
            "max_s": max(self.seconds),
            "peak_rss_bytes": max(r.peak_rss for r in self.runs),
        }


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _installed_env() -> dict[str, str]:
    """The runs' environment as on a server gridrecon was installed on: Python may keep its
    compiled bytecode. (A developer's PYTHONDONTWRITEBYTECODE would make every run compile the
    package's modules again, 0.05 s of a night without changes; pip compiles them at install.)"""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def gridrecon_run(
    gridrecon: list[str], config: Path, kind: str, n: int, full_flag: bool
) -> RunFigure:
    argv = gridrecon + ["run", "--config", str(config), "--as-of", AS_OF]
    if kind == "full" and full_flag:
        argv.append("--full")
    log = config.parent / f"run-{kind}-{n}"
    m = measure(argv, log, _installed_env())
    lines = m.stdout.strip().splitlines()
    # Exit 1 is "findings at or above --fail-on"; a run that crashed exits 1 too, but says
    # nothing about findings.
    reported = any("open findings" in line for line in lines)
    if m.exit_code not in (0, 1) or (m.exit_code == 1 and not reported):
        raise BenchError(
            f"gridrecon run ({kind}) exited {m.exit_code} after {m.seconds:.0f} s, peak RSS "
            f"{_mb(m.peak_rss)}; the end of its stderr ({log}.err):\n{_tail(m.stderr)}"
        )
    # What the run said about itself: its findings line and how it read (the last line).
    said = [line for line in lines if "open findings" in line][:1] + lines[-1:]
    said = [line.split("; reports in")[0] for line in dict.fromkeys(said)]
    print(f"  {kind:<12} {m.seconds:8.1f} s  {m.peak_rss / 2**20:7.0f} MB  exit {m.exit_code}  "
          f"{' | '.join(said)}", flush=True)  # fmt: skip
    return RunFigure(kind, m.seconds, m.peak_rss, m.exit_code, " | ".join(said))


# The nights `gridrecon schedule` runs: the same api.run, in one long-lived process whose imports
# were paid once, when the service started (the first night also loads what is imported lazily).
# After the first night, a full night (a full sweep, or a night on which everything changed) and
# a night without changes, taking turns. The process declines transparent huge pages as the
# `gridrecon` command does (core/memory.py), and gives the night's freed memory back after each
# night as the service does; what it then holds while it waits for the next night is measured.
_SCHEDULED_NIGHTS = """
import datetime as dt, json, sys, time
from pathlib import Path
began = time.perf_counter()
from gridrecon import api
from gridrecon.core.config import load_config
from gridrecon.core.memory import decline_huge_pages
from gridrecon.schedule.service import give_back_memory
decline_huge_pages()
print(json.dumps({"start_up_s": time.perf_counter() - began}), flush=True)
for full in [False] + [True, False] * int(sys.argv[3]):
    began = time.perf_counter()
    result, _ = api.run(load_config(Path(sys.argv[1])), as_of=dt.date.fromisoformat(sys.argv[2]),
                        full=full)
    seconds = time.perf_counter() - began
    give_back_memory()
    held = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                if line.startswith("VmRSS"))
    print(json.dumps({"full": full, "seconds": seconds, "held_bytes": held,
                      "status": result.status, "read": result.notes[-1] if result.notes else ""}),
          flush=True)
"""


def scheduled_nights(config: Path, nights: int) -> dict:
    """Nights in one process, as `gridrecon schedule` runs them: a first night without changes
    (which loads the lazily imported modules), apart; then `nights` full nights and `nights`
    nights without changes, taking turns, each kind a series."""
    log = config.parent / "scheduled"
    argv = [sys.executable, "-c", _SCHEDULED_NIGHTS, str(config), AS_OF, str(nights)]
    m = measure(argv, log, _installed_env())
    lines = [json.loads(line) for line in m.stdout.splitlines() if line.startswith("{")]
    runs = [line for line in lines if "seconds" in line]
    if m.exit_code != 0 or len(runs) != 2 * nights + 1:
        raise BenchError(
            f"the nights in one process exited {m.exit_code} after {len(runs)} of "
            f"{2 * nights + 1} nights; the end of its stderr ({log}.err):\n{_tail(m.stderr)}"
        )
    quiet = [r for r in runs if not r["full"]]
    if any(r["status"] != "completed" for r in runs) or any(
        "no row changed" not in r["read"] for r in quiet
    ):
        raise BenchError(f"a night in one process read changes or did not complete: {runs}")
    series = {
        kind: Series([RunFigure(kind, r["seconds"], m.peak_rss, 0, r["read"]) for r in chosen])
        for kind, chosen in (
            ("scheduled", quiet[1:]),
            ("scheduled-full", [r for r in runs if r["full"]]),
        )
    }
    for n, r in enumerate(runs):
        what = "first night in the process" if n == 0 else f"night {n + 1}"
        kind = "scheduled-full" if r["full"] else "scheduled"
        print(f"  {kind:<14} {r['seconds']:6.2f} s  {m.peak_rss / 2**20:7.0f} MB  {what}; "
              f"{_mb(r['held_bytes'])} held after it", flush=True)  # fmt: skip
    return {
        "start_up_s": lines[0]["start_up_s"],
        "first_night_s": runs[0]["seconds"],
        "nights": [asdict(r) for r in series["scheduled"].runs],
        **series["scheduled"].summary(),
        "full_nights": [asdict(r) for r in series["scheduled-full"].runs],
        "full": series["scheduled-full"].summary(),
        "held_between_nights_bytes": max(r["held_bytes"] for r in runs),
    }


# ---------------------------------------------------------------------------------------------
# The machine


def machine(pg: URL, mariadb: URL) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        ram = 0
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    os_name = platform.platform()
    try:
        release = dict(
            line.split("=", 1)
            for line in Path("/etc/os-release").read_text().splitlines()
            if "=" in line
        )
        os_name = (
            f"{release['PRETTY_NAME'].strip(chr(34))}, {platform.system()} {platform.release()}"
        )
    except (OSError, KeyError):
        pass
    return {
        "cpu": cpu,
        "cores": cores,
        "usable_cores": usable,
        "ram_bytes": ram,
        "os": os_name,
        "python": platform.python_version(),
        "postgresql": server_version(pg).split(" on ")[0],
        "mariadb": server_version(mariadb),
    }


def git_commit() -> str | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() + ("+changes" if dirty else "")


# ---------------------------------------------------------------------------------------------
# Report


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def peak_rss(figures: dict) -> int:
    """The largest peak of every gridrecon run, the first one included."""
    runs = [figures["warm_up"], *figures["full_runs"], *figures["incremental_runs"]]
    runs += figures.get("scheduled", {}).get("nights", [])
    runs += figures.get("scheduled", {}).get("full_nights", [])
    return max(r["peak_rss"] for r in runs)


def verdicts(scale: str, figures: dict, baseline: dict | None) -> list[dict]:
    floor = figures["read_floor"]["sequential_s"]
    full = figures["full"]
    incremental = figures["incremental"]
    peak = peak_rss(figures)
    out = [
        {
            "target": f"full run <= {FLOOR_FACTOR:g}x the read floor (sequential)",
            "value": f"{full['median_s'] / floor:.2f}x",
            "pass": full["median_s"] <= FLOOR_FACTOR * floor,
        },
        {
            "target": f"peak RSS <= {RSS_LIMIT[scale] / GB:g} GB ({scale}, every run)",
            "value": _mb(peak),
            "pass": peak <= RSS_LIMIT[scale],
        },
    ]
    scheduled = figures.get("scheduled")
    own = f"{incremental['median_s'] / full['median_s']:.0%}"
    if scheduled:
        # what the service's process imported when it started, and what its first night
        # imported lazily besides a night's work (the reports' libraries, the templates)
        imports = scheduled["start_up_s"] + max(
            scheduled["first_night_s"] - scheduled["median_s"], 0
        )
        own += (
            f"; imports alone take {imports:.2f} s of it ({imports / full['median_s']:.0%}: "
            f"{scheduled['start_up_s']:.2f} s at start, the rest on a first night)"
        )
    # Nightly runs are the service's (`gridrecon schedule`): a process started for each night
    # pays Python's imports first, which are about a tenth of a province's full run or more.
    # Shown, not judged: no change to the night's work can make that share smaller.
    out.append(
        {
            "target": "night without changes as a gridrecon run process of its own, against a "
            "full run",
            "value": own,
            "pass": None,
        }
    )
    if scheduled:
        # the full night it is compared with ran in the same process: the imports paid by neither
        scheduled_full = scheduled.get("full") or full
        out.append(
            {
                "target": f"night without changes <= {INCREMENTAL_SHARE:.0%} of a full night "
                "(both in gridrecon schedule's process)",
                "value": f"{scheduled['median_s'] / scheduled_full['median_s']:.0%}",
                "pass": scheduled["median_s"] <= INCREMENTAL_SHARE * scheduled_full["median_s"],
            }
        )
    if baseline is not None:
        rows = sum(figures["rows"].values()) / sum(baseline["rows"].values())
        took = full["median_s"] / baseline["full"]["median_s"]
        out.append(
            {
                "target": f"time grows no more than the rows ({baseline['scale']} -> {scale}: "
                f"rows x{rows:.1f})",
                "value": f"full run x{took:.1f}",
                "pass": took <= rows,
            }
        )
    return out


def print_report(figures: dict) -> None:
    m = figures["machine"]
    print()
    print(f"gridrecon benchmark, {figures['scale']} scale, {figures['date']}"
          f"{', commit ' + figures['commit'] if figures['commit'] else ''}")  # fmt: skip
    print(f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
          f"{m['ram_bytes'] / GB:.0f} GB RAM; {m['os']}")  # fmt: skip
    print(f"         Python {m['python']}; {m['postgresql']}; MariaDB {m['mariadb']}")
    counts = figures["rows"]
    print("rows:    " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    gen = figures["generation"]
    floor = figures["read_floor"]
    full, inc = figures["full"], figures["incremental"]
    rows = [
        ("sample generation (gridrecon sample)",
         "reused" if gen is None else f"{gen['seconds']:.1f} s, peak RSS {_mb(gen['peak_rss_bytes'])}"),
        ("read floor, sequential (psql + mariadb)",
         f"{floor['sequential_s']:.1f} s  (PMS {floor['per_system_s']['pms']:.1f} s, "
         f"marketing {floor['per_system_s']['marketing']:.1f} s)"),
        ("read floor, parallel (both at once)", f"{floor['parallel_s']:.1f} s"),
        ("first run on a new state store", f"{figures['warm_up']['seconds']:.1f} s, "
         f"peak RSS {_mb(figures['warm_up']['peak_rss'])}"),
        (f"full run{'' if figures['full_flag'] else ' (no --full flag: plain run)'}, "
         f"median of {len(figures['full_runs'])}",
         f"{full['median_s']:.1f} s  (min {full['min_s']:.1f}, max {full['max_s']:.1f})"),
        ("full run, peak RSS (max)", _mb(full["peak_rss_bytes"])),
        ("peak RSS of every run (max)", _mb(peak_rss(figures))),
        ("full run / read floor", f"{full['median_s'] / floor['sequential_s']:.2f}x sequential, "
         f"{full['median_s'] / floor['parallel_s']:.2f}x parallel"),
        (f"night without changes, median of {len(figures['incremental_runs'])}",
         f"{inc['median_s']:.1f} s  (min {inc['min_s']:.1f}, max {inc['max_s']:.1f}), "
         f"peak RSS {_mb(inc['peak_rss_bytes'])}"),
        ("night without changes / full run", f"{inc['median_s'] / full['median_s']:.0%}"),
    ]  # fmt: skip
    scheduled = figures.get("scheduled")
    if scheduled:
        rows += [
            (f"the same in gridrecon schedule's process, median of {len(scheduled['nights'])}",
             f"{scheduled['median_s']:.2f} s  (min {scheduled['min_s']:.2f}, max "
             f"{scheduled['max_s']:.2f}); its first night {scheduled['first_night_s']:.2f} s, "
             f"start-up {scheduled['start_up_s']:.2f} s"),
        ]  # fmt: skip
        if scheduled.get("full"):
            full_night = scheduled["full"]
            rows += [
                (f"full night in schedule's process, median of {len(scheduled['full_nights'])}",
                 f"{full_night['median_s']:.1f} s  (min {full_night['min_s']:.1f}, max {full_night['max_s']:.1f}), "
                 f"peak RSS of the process {_mb(full_night['peak_rss_bytes'])}, "
                 f"{_mb(scheduled['held_between_nights_bytes'])} held between nights at most"),
                ("night without changes / full night, both in schedule's process",
                 f"{scheduled['median_s'] / full_night['median_s']:.0%}"),
            ]  # fmt: skip
        rows += [
            ("night in schedule's process / full run (a process of its own)",
             f"{scheduled['median_s'] / full['median_s']:.0%}"),
        ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print()
    verdict = {True: "PASS", False: "FAIL", None: "INFO"}
    for v in figures["targets"]:
        print(f"  {verdict[v['pass']]}  {v['target']}: {v['value']}")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure gridrecon run against a province (or national) sample in "
        "PostgreSQL and MariaDB.",
    )
    parser.add_argument("--scale", choices=["province", "national"], default="province")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each kind (default 3)")
    parser.add_argument("--floor-runs", type=int, default=3,
                        help="repetitions of the read floor (default 3)")  # fmt: skip
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="PMS database (created if missing)")
    parser.add_argument("--mariadb-url", default=DEFAULT_MARIADB,
                        help="marketing database (created if missing)")  # fmt: skip
    parser.add_argument("--keep-data", action="store_true",
                        help="keep databases this run created (default: drop them at the end)")  # fmt: skip
    parser.add_argument("--reuse-data", action="store_true",
                        help="use the sample already in the databases instead of writing it")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--baseline", type=Path,
                        help="--json of a smaller scale's run: check the growth is linear")  # fmt: skip
    args = parser.parse_args(argv)
    if args.runs < 1 or args.floor_runs < 1:
        parser.error("--runs and --floor-runs must be at least 1")

    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    # A terminated benchmark stops its child and cleans up, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    pg = make_url(args.pg_url)
    mariadb = make_url(args.mariadb_url)
    if mariadb.get_backend_name() in ("mysql", "mariadb") and "charset" not in mariadb.query:
        mariadb = mariadb.update_query_dict({"charset": "utf8mb4"})
    folder = Path(tempfile.mkdtemp(prefix="gridrecon-bench-"))
    created: list[URL] = []
    ok = False
    figures: dict = {
        "scale": args.scale,
        "date": dt.date.today().isoformat(),
        "commit": git_commit(),
        "as_of": AS_OF,
    }
    try:
        gridrecon = gridrecon_command()
        for url in (pg, mariadb):
            if ensure_database(url):
                created.append(url)
        figures["machine"] = machine(pg, mariadb)
        print(f"scale {args.scale}; working folder {folder}", flush=True)

        # 1. the sample
        if args.reuse_data:
            if not has_sample(pg, mariadb):
                raise BenchError("--reuse-data, but the databases hold no sample")
            figures["generation"] = None
        else:
            print(f"writing the {args.scale} sample …", flush=True)
            argv = gridrecon + ["sample", "--scale", args.scale,
                                "--pms-url", pg.render_as_string(hide_password=False),
                                "--marketing-url", mariadb.render_as_string(hide_password=False)]  # fmt: skip
            m = measure(argv, folder / "sample")
            if m.exit_code != 0:
                raise BenchError(f"gridrecon sample exited {m.exit_code}:\n{_tail(m.stderr)}")
            figures["generation"] = {"seconds": m.seconds, "peak_rss_bytes": m.peak_rss}
            print(f"  {m.seconds:.1f} s, peak RSS {_mb(m.peak_rss)}", flush=True)
        figures["rows"] = row_counts(pg, mariadb)
        figures["indexed"] = index_update_times(pg, mariadb)
        if figures["indexed"]:
            print(f"indexed the update-time columns {', '.join(figures['indexed'])}", flush=True)
        analyze(pg, mariadb)

        # 2. the config
        config = write_config(folder, pg, mariadb)

        # 3. the read floor
        print(f"read floor ({args.floor_runs} repetitions) …", flush=True)
        commands = client_commands(config, pg, mariadb)
        figures["read_floor"] = read_floor(commands, client_env(pg, mariadb), args.floor_runs)
        figures["read_floor"]["queries"] = {s: len(c) for s, c in commands.items()}
        floor = figures["read_floor"]
        print(f"  sequential {floor['sequential_s']:.1f} s, parallel {floor['parallel_s']:.1f} s",
              flush=True)  # fmt: skip

        # 4. gridrecon run
        full_flag = has_full_flag(gridrecon)
        figures["full_flag"] = full_flag
        print("gridrecon run …", flush=True)
        warm = gridrecon_run(gridrecon, config, "warm-up", 1, full_flag)
        full = Series([gridrecon_run(gridrecon, config, "full", n, full_flag)
                       for n in range(1, args.runs + 1)])  # fmt: skip
        incremental = Series([gridrecon_run(gridrecon, config, "incremental", n, full_flag)
                              for n in range(1, args.runs + 1)])  # fmt: skip
        figures["warm_up"] = asdict(warm)
        figures["full_runs"] = [asdict(r) for r in full.runs]
        figures["incremental_runs"] = [asdict(r) for r in incremental.runs]
        figures["full"] = full.summary()
        figures["incremental"] = incremental.summary()
        figures["scheduled"] = scheduled_nights(config, args.runs)

        # 5. the report
        figures["targets"] = verdicts(args.scale, figures, baseline)
        print_report(figures)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
        ok = True
        return 0
    except (BenchError, sa.exc.SQLAlchemyError) as exc:
        # SQLAlchemy's: an unreachable server, no permission, … (its first line says which).
        message = str(exc) if isinstance(exc, BenchError) else str(exc).splitlines()[0]
        print(f"benchmark failed: {message}", file=sys.stderr)
        if args.json:  # what was measured before it broke
            figures["error"] = message
            args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
        return 1
    finally:
        if ok or not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"working folder kept for inspection: {folder}", file=sys.stderr)
        if not args.keep_data:
            for url in created:
                drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
