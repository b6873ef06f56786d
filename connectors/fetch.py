"""How rows travel from a database into frames.

Every engine SQLAlchemy knows is read by the generic path: the statement streamed through a
SQLAlchemy connection in chunks. For the engines a province runs on there are faster paths, chosen
by dialect name in FAST_PATHS; `reader = "generic"` in a source's config turns them off. Every
path yields the same raw values (the tests compare the canonical records of both), so the one
normalisation step after it does not care which path a chunk came by.

Measured on a province (PMS on PostgreSQL, marketing on MariaDB; bench/bench_province.py): the
SQLAlchemy Row layer and PyMySQL's pure-Python protocol are what the generic path spends its time
in; the fast paths skip both.

For very large tables there is a streamed variant of each fast path (STREAMED_PATHS, asked for
with `fetcher(..., streamed=True)`): connectorx sends chunk_size rows at a time, so no process
holds a whole table's raw result (a national table is 900 MB raw). It reads in a child process,
connectors/stream_worker.py, which writes the batches as an Arrow IPC stream into an unnamed file
the parent reads as it grows (beside the spilled records: connectorx fetches ahead of its
consumer without bound, and a pipe would keep what the parent has not yet taken in the child's
memory instead; on disk it costs the table's raw size for the length of the read). Why a child:
an error in the middle of connectorx's streamed read (a dropped connection, a cancelled
statement) is a Rust panic, which prints its message on fd 2, the terminal, where the product
promises one clean line. The child's fd 2 is a file; it reports its error there in one JSON
line, which the parent raises as StreamedReadError. And connectorx holds the interpreter lock
while it reads: in a child it holds only the child's, while the parent converts the batches
already sent.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pandas._libs.lib import to_object_array_tuples

if TYPE_CHECKING:
    from .source import Source

log = logging.getLogger("gridrecon")


def release_freed_memory() -> None:
    """Give the memory a read freed (raw columns, the conversions' intermediates) back to the
    system: Arrow's allocator (mimalloc) and the C library's malloc (Python's and numpy's
    large blocks) both keep what is freed for reuse. After reading a national sample the process
    held 5.4 GB for 2.2 GB of Arrow records, and 3.0 GB once both had given theirs back; it takes
    0.02 s on a province. (Arrow allocating through malloc instead held 3.8 GB before, but made a
    national run a fifth slower: each large buffer was mapped afresh.) A run that is not judged
    in partitions keeps it instead (api.pull): there, the rest of the run reuses it."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


# connectorx 0.4 builds its frames with a pandas internal that pandas 3 deprecates. A filter set
# once, not a catch_warnings() around each read: that is process-wide state, and another thread
# (the Great Expectations import) restoring its own copy of it would drop ours mid-read.
warnings.filterwarnings("ignore", message="make_block is deprecated")


def frame_from_rows(rows: list[Any], keys: list[str]) -> pd.DataFrame:
    """Rows (tuples or SQLAlchemy Rows) as a frame of Python values, built column by column.

    Columns stay `object`: the normalisation step decides types, the same for every path.
    """
    if not rows:
        return pd.DataFrame({key: pd.Series(dtype=object) for key in keys}, columns=keys)
    # pandas' own rows-to-array loop (DataFrame.from_records uses it): one 2-D object array, a
    # third of the time of transposing the rows in Python and building each column.
    return pd.DataFrame(to_object_array_tuples(rows), columns=keys, dtype=object)


def generic(source: Source, statement: sa.Select) -> Iterator[pd.DataFrame]:
    """Any engine: stream the statement through SQLAlchemy, chunk_size rows at a time."""
    with source.connect() as connection:
        result = connection.execution_options(
            stream_results=True, yield_per=source.config.chunk_size
        ).execute(statement)
        keys = list(result.keys())
        for partition in result.partitions():
            source.rows_fetched += len(partition)
            yield frame_from_rows(partition, keys)


def postgresql(source: Source, statement: sa.Select) -> Iterator[pd.DataFrame]:
    """PostgreSQL: connectorx reads the whole result in Rust (binary COPY), straight into Arrow
    columns; where it cannot serve the URL, a server-side cursor on the raw psycopg connection
    (psycopg_cursor). The session is read-only and has the statement timeout either way."""
    if not _connectorx_usable(source):
        yield from psycopg_cursor(source, statement)
        return
    import connectorx

    sql = _literal_sql(source, statement)
    try:
        read = [connectorx.read_sql(_connectorx_pg_url(source), sql, return_type="arrow")]
    except BaseException as error:  # PanicException is a BaseException
        if type(error).__name__ != "PanicException":
            raise
        log.warning("%s: the fast reader failed (%s); reading generically", source.system, error)
        yield from psycopg_cursor(source, statement)
        return
    source.rows_fetched += read[0].num_rows
    yield _as_frame(read)


def psycopg_cursor(source: Source, statement: sa.Select) -> Iterator[pd.DataFrame]:
    """PostgreSQL: a server-side cursor on the raw psycopg connection.

    psycopg's C loaders turn the wire format into Python values; nothing else runs per row.
    (COPY ... TO STDOUT was measured too: its binary row parser was slower than the cursor, and
    its CSV form cannot tell a NULL from an empty string.)
    """
    compiled = statement.compile(
        dialect=source.engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    with source.connect() as connection:
        raw = connection.connection.dbapi_connection
        with raw.cursor(name="gridrecon_read") as cursor:
            cursor.itersize = source.config.chunk_size
            cursor.execute(compiled.string, compiled.params)
            keys = [column.name for column in cursor.description]
            while rows := cursor.fetchmany(source.config.chunk_size):
                source.rows_fetched += len(rows)
                yield frame_from_rows(rows, keys)
        raw.rollback()  # end the read transaction the cursor opened


def mysql(source: Source, statement: sa.Select) -> Iterator[pd.DataFrame]:
    """MySQL and MariaDB: connectorx reads the whole result in Rust, straight into arrays.

    Dates and times travel as text: connectorx cannot represent MariaDB's zero dates
    (0000-00-00), which the normalisation step must see, as the generic path shows them.
    Numbers arrive as numbers and text as text, as PyMySQL delivers them.
    """
    import connectorx

    marker, sql = _marked_sql(source, statement)
    timeout = source.config.statement_timeout
    watchdog = Watchdog.of(source, marker) if timeout else None
    began = time.monotonic()
    try:
        read = [connectorx.read_sql(connectorx_url(source.config.url), sql, return_type="arrow")]
    except BaseException as error:  # PanicException is a BaseException
        if timeout and time.monotonic() - began >= timeout:
            raise StatementTimeout(f"statement timeout: {error}") from None
        if type(error).__name__ == "PanicException":  # a value connectorx cannot represent
            log.warning(
                "%s: the fast reader failed (%s); reading generically", source.system, error
            )
            yield from generic(source, statement)
            return
        raise
    finally:
        if watchdog is not None:
            watchdog.done(marker)
    read[0] = read[0].drop_columns([_MARKER_COLUMN])
    source.rows_fetched += read[0].num_rows
    yield _as_frame(read)


_MARKER_COLUMN = "gridrecon_marker"


def _literal_sql(source: Source, statement: sa.Select) -> str:
    """The statement as text with its values inlined: connectorx takes no bound values."""
    return str(
        statement.compile(dialect=source.engine.dialect, compile_kwargs={"literal_binds": True})
    )


def _marked_sql(source: Source, statement: sa.Select) -> tuple[str, str]:
    """A MySQL fast path's marker and SQL: dates and times as text, the marker selected.

    connectorx wraps the query in its own SELECTs (a count first, then the rows), so no
    per-statement timeout can be written into it, and it holds the interpreter lock while it
    reads: a watchdog process cancels its statements on the server instead, finding them by a
    marker. The marker is a selected literal: connectorx re-renders the SQL, dropping comments.
    """
    marker = f"gridrecon:{secrets.token_hex(8)}"
    text_dates = statement.with_only_columns(
        *(_temporal_as_text(source, column) for column in statement.selected_columns),
        sa.literal_column(f"'{marker}'").label(_MARKER_COLUMN),
        maintain_column_froms=True,
    )
    return marker, _literal_sql(source, text_dates)


class StatementTimeout(Exception):
    """The server cancelled a statement that ran past the source's statement_timeout."""


def postgresql_streamed(source: Source, statement: sa.Select) -> Iterator[pd.DataFrame]:
    """postgresql(), chunk_size rows at a time from a child process (the module docstring says
    why). Where connectorx cannot serve the URL or a column's type, the psycopg cursor, which
    streams too."""
    if not _connectorx_usable(source):
        yield from psycopg_cursor(source, statement)
        return
    try:
        yield from _streamed_frames(
            source, _connectorx_pg_url(source), _literal_sql(source, statement)
        )
    except UnsupportedResult as error:
        log.warning("%s: the fast reader failed (%s); reading generically", source.system, error)
        yield from psycopg_cursor(source, statement)


def mysql_streamed(source: Source, statement: sa.Select) -> Iterator[pd.DataFrame]:
    """mysql(), chunk_size rows at a time from a child process (the module docstring says why).

    The watchdog runs until the last batch has arrived: the statement stays open on the server
    while the batches already sent are converted, so that time counts against the timeout, as
    PostgreSQL counts it too.
    """
    marker, sql = _marked_sql(source, statement)
    timeout = source.config.statement_timeout
    watchdog = Watchdog.of(source, marker) if timeout else None
    began = time.monotonic()
    try:
        yield from _streamed_frames(
            source, connectorx_url(source.config.url), sql, drop=_MARKER_COLUMN
        )
        return
    except StreamedReadError as error:
        if timeout and time.monotonic() - began >= timeout:
            raise StatementTimeout(f"statement timeout: {error}") from None
        if not isinstance(error, UnsupportedResult):
            raise
        log.warning("%s: the fast reader failed (%s); reading generically", source.system, error)
    finally:
        if watchdog is not None:
            watchdog.done(marker)
    yield from generic(source, statement)


class StreamedReadError(Exception):
    """A streamed read failed: the child's own error message (connectorx's, as the in-process
    read would raise it, so dialects.failure_kind tells a timeout or a dropped connection
    alike), or how the child ended without one (a 'lost connection': a dropped read)."""


class UnsupportedResult(StreamedReadError):
    """connectorx cannot represent a column of the result; nothing was yielded yet, so the
    caller may read it another way."""


STREAM_WORKER = "gridrecon.connectors.stream_worker"


def _streamed_frames(
    source: Source, url: str, sql: str, drop: str | None = None
) -> Iterator[pd.DataFrame]:
    """Each batch of the child's stream as the frame _as_frame makes of it, `drop` left out."""
    import pyarrow as pa

    for batch in _stream_batches(url, sql, source):
        if drop is not None:
            batch = batch.drop_columns([drop])
        source.rows_fetched += batch.num_rows
        yield _as_frame([pa.Table.from_batches([batch])])


def _stream_batches(url: str, sql: str, source: Source) -> Iterator[Any]:
    """The record batches connectors/stream_worker.py reads, as they arrive.

    However the iteration ends (exhausted, failed, or closed by the consumer), the child is
    killed if still running and reaped. It writes the stream into a file made here and unlinked
    at once (the child inherits its descriptor), read as it grows (_Growing). Its stderr is an
    unnamed temporary file too, holding Rust's panic text and the error line.
    """
    import pyarrow as pa

    written, path = tempfile.mkstemp(prefix="gridrecon-stream-", dir=source.spill_dir)
    order = json.dumps(
        {"url": url, "sql": sql, "batch_size": source.config.chunk_size, "fd": written}
    )
    with tempfile.TemporaryFile() as errors, open(path, "rb") as stream:
        os.unlink(path)  # the open descriptors keep it while needed; nothing stays behind
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", STREAM_WORKER],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                pass_fds=(written,),
            )
        finally:
            os.close(written)  # the child's copy is the one that writes
        assert child.stdin is not None
        sent = 0
        broken: BaseException | None = None
        try:
            try:
                child.stdin.write(order.encode() + b"\n")
                child.stdin.close()
                batches = pa.ipc.open_stream(_Growing(stream, child))
                for batch in batches:
                    sent += 1
                    yield batch
            except (pa.ArrowException, OSError) as error:  # cut short: the child says why
                broken = error
            status = child.wait()
            if status != 0:
                raise _child_failed(source, child.pid, status, errors, nothing_sent=sent == 0)
            if broken is not None:
                raise StreamedReadError(
                    f"lost connection to the reading process: {source.scrub(broken)}"
                )
            if sent == 0:  # as the whole-result read gives it: one empty frame
                yield pa.RecordBatch.from_pylist([], schema=batches.schema)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            if not child.stdin.closed:
                try:
                    child.stdin.close()
                except OSError:
                    pass


class _Growing(io.RawIOBase):
    """A file the stream worker is still writing, read as it grows: at its end, a read waits
    for more until the worker has exited (then the end is the end)."""

    POLL_SECONDS = 0.005

    def __init__(self, file: Any, child: subprocess.Popen):
        self._file = file
        self._child = child

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fills `buffer` whole, unless the worker has exited first: Arrow takes a short read
        for the end of the stream."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            count = self._file.readinto(view[filled:])
            if count:
                filled += count
            elif self._child.poll() is not None:  # exited: what it wrote is all there is
                while filled < len(view) and (count := self._file.readinto(view[filled:])):
                    filled += count
                break
            else:
                time.sleep(self.POLL_SECONDS)
        return filled


def _child_failed(
    source: Source, pid: int, status: int, errors: Any, nothing_sent: bool
) -> StreamedReadError:
    """The error of a child that exited with `status`: its JSON error line, else how it ended."""
    errors.seek(0)
    lines = errors.read().decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                continue
            message = source.scrub(RuntimeError(report["error"]))
            if report.get("unsupported") and nothing_sent:
                return UnsupportedResult(message)
            return StreamedReadError(message)
    if status < 0:
        how = f"it was killed by {signal.Signals(-status).name}"
    else:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        how = f"it exited with status {status}" + (f": {last}" if last else " and no message")
    text = f"lost connection to the reading process (pid {pid}): {how}"
    return StreamedReadError(source.scrub(RuntimeError(text)))


class Watchdog:
    """A MySQL source's watchdog process (connectors/watchdog.py): started with its first
    fast-path statement under a timeout, told of each statement's start and end, and ended
    with the source (Source.dispose). One process for all of a source's statements: starting
    one per statement cost each read of a small table some 40 ms."""

    _starting = threading.Lock()

    def __init__(self, source: Source):
        url = source.config.url
        self._after = source.config.statement_timeout
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gridrecon.connectors.watchdog"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        # on stdin, not the command line: the URL holds a password
        self._send(
            {
                "host": url.host,
                "port": url.port or 3306,
                "user": url.username,
                "password": url.password,
            }
        )

    @classmethod
    def of(cls, source: Source, marker: str) -> Watchdog:
        """The source's watchdog (started if none runs), watching the statement `marker`."""
        with cls._starting:
            watchdog = source.watchdog
            if watchdog is None or not watchdog.alive():
                if watchdog is not None:
                    watchdog.end()
                watchdog = source.watchdog = cls(source)
        watchdog._send({"watch": marker, "after": watchdog._after})
        return watchdog

    def alive(self) -> bool:
        return self._process.poll() is None

    def done(self, marker: str) -> None:
        """The statement `marker` ended (however): no longer to be cancelled."""
        self._send({"done": marker})

    def end(self) -> None:
        """Stop the process (closing its stdin is the signal) and reap it."""
        with self._lock, contextlib.suppress(OSError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _send(self, order: dict) -> None:
        # A watchdog that died (killed) takes its pipe along: the statement runs unwatched,
        # and the next one starts another (Watchdog.of).
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._process.stdin.write(json.dumps(order) + "\n")
            self._process.stdin.flush()


def _temporal_as_text(source: Source, column: Any) -> Any:
    element = getattr(column, "element", column)
    table = getattr(element, "table", None)
    if table is None:
        return column
    column_type = source.column_type(table.name, element.name)
    if isinstance(column_type, (sa.Date, sa.DateTime, sa.Time)):
        return sa.cast(element, sa.String).label(column.name)
    return column


def _as_frame(read: list[Any]) -> pd.DataFrame:
    """connectorx's Arrow columns (the one table in `read`, taken out of it: no reference to it
    is left to the caller) as a frame the normalisation step takes like any other, each column's
    buffers freed once it is converted: a whole table's raw text is gigabytes at scale.

    Text stays in Arrow, as pandas' `str` columns; an integer column without nulls stays an
    integer array, times and dates become datetime64: no Python object per row. Other columns
    (decimals, floats, integers with nulls) become the Python values a driver delivers (Decimal,
    float, int, None), made once per distinct value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = read.pop()
    converted = {}
    for name in list(table.column_names):
        column = table.column(name).combine_chunks()
        table = table.drop_columns([name])
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            values = pd.Series(column, dtype="str")
        elif pa.types.is_integer(column.type) and column.null_count == 0:
            values = pd.Series(column.to_numpy())
        elif pa.types.is_timestamp(column.type):  # datetime64, with its zone where it has one
            values = column.to_pandas(coerce_temporal_nanoseconds=False)
        elif pa.types.is_date(column.type):
            as_times = pc.cast(column, pa.timestamp("us"))
            values = pd.Series(as_times.to_numpy(zero_copy_only=False), dtype="datetime64[us]")
        else:
            encoded = pc.dictionary_encode(column)
            distinct = np.array([*encoded.dictionary.to_pylist(), None], dtype=object)
            codes = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()
            values = pd.Series(distinct[codes], dtype=object)
        converted[name] = values
        del column
    return pd.DataFrame(converted, copy=False)


def connectorx_url(url: sa.URL) -> str:
    """The source URL as connectorx spells it: mysql://user:password@host:port/database."""
    return url.set(drivername="mysql", query={}).render_as_string(hide_password=False)


def _connectorx_pg_url(source: Source) -> str:
    """The source URL as connectorx spells it, with the session settings of every gridrecon
    connection (dialects.session_setup: read-only, the statement timeout) as startup options."""
    from urllib.parse import quote

    options = "-c default_transaction_read_only=on"
    if source.config.statement_timeout:
        options += f" -c statement_timeout={int(source.config.statement_timeout) * 1000}"
    url = source.config.url.set(drivername="postgresql", query={})
    return f"{url.render_as_string(hide_password=False)}?options={quote(options)}"


def _connectorx_usable(source: Source, query_keys: frozenset[str] = frozenset()) -> bool:
    """connectorx is a speed-up for URLs of host, port, user, password and database, plus the
    query keys given (socket paths, TLS options and the like go another way)."""
    try:
        import connectorx  # noqa: F401
    except ImportError:
        return False
    url = source.config.url
    return bool(url.host) and set(url.query) <= query_keys


def _mysql_usable(source: Source) -> bool:
    return _connectorx_usable(source, frozenset({"charset"}))


Fetcher = Callable[["Source", sa.Select], Iterator[pd.DataFrame]]
# dialect name -> (fast path, whether it can serve this source)
FAST_PATHS: dict[str, tuple[Fetcher, Callable[[Source], bool]]] = {
    "postgresql": (postgresql, lambda source: source.engine.driver == "psycopg"),
    "mysql": (mysql, _mysql_usable),
    "mariadb": (mysql, _mysql_usable),
}


# dialect name -> the fast path's streamed variant, for a source FAST_PATHS says it can serve
STREAMED_PATHS: dict[str, Fetcher] = {
    "postgresql": postgresql_streamed,
    "mysql": mysql_streamed,
    "mariadb": mysql_streamed,
}


def fetcher(source: Source, bulk: bool, streamed: bool = False) -> Fetcher:
    """The path a statement of this source takes. Slices (`bulk` false) always go generic: a
    key lookup is a few rows, and its bound values stay bound. `streamed`: a fast path's
    streamed variant, for a table too large to hold raw in one piece."""
    if bulk and source.config.reader == "auto":
        name = source.engine.dialect.name
        fast = FAST_PATHS.get(name)
        if fast is not None and fast[1](source):
            return STREAMED_PATHS.get(name, fast[0]) if streamed else fast[0]
    return generic
