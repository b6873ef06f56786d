"""The streamed fast paths give exactly the records the whole-result fast paths give, and fail
the way they do, in one clean exception.

Streamed, connectorx reads in a child process (connectors/stream_worker.py) and sends Arrow
batches of chunk_size rows. Compared statement by statement over a full pull of the sample plus
test_fast_paths' awkward rows, with chunk_size = 100 so that a table arrives in many batches.
The failures are real: a session terminated on the server, a statement timeout, a child killed,
a consumer that stops after the first batch.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from test_fast_paths import add_awkward_rows

from gridrecon.connectors import fetch, reader
from gridrecon.connectors.dialects import failure_kind
from gridrecon.connectors.mapping import ASSET_TYPES
from gridrecon.connectors.normalize import normalize_chunk, normalize_ids
from gridrecon.connectors.source import Source
from gridrecon.core.config import Config, load_config
from gridrecon.sample_data import generate

CHUNK = 100


def open_sources(tmp_path: Path, url: str, extra: str = "") -> tuple[dict[str, Source], Config]:
    path = tmp_path / f"streamed-{uuid.uuid4().hex[:6]}.toml"
    settings = f'url = "{url}"\nchunk_size = {CHUNK}\n{extra}'
    path.write_text(f"[pms]\n{settings}[marketing]\n{settings}", encoding="utf-8")
    config = load_config(path)
    return reader.open_sources(config), config


def children() -> dict[int, tuple[str, bytes]]:
    """This process's children: pid -> (state, command line), from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        if int(fields[1]) == os.getpid():
            found[int(entry.name)] = (fields[0], cmdline)
    return found


def stream_workers() -> list[int]:
    """The children that are stream workers (or were: a zombie has no command line)."""
    worker = fetch.STREAM_WORKER.encode()
    return [pid for pid, (state, cmd) in children().items() if state == "Z" or worker in cmd]


def assert_gone(pid: int) -> None:
    """Reaped: no /proc entry, and not a child of ours to wait for."""
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def both_ways(source: Source, statement: sa.Select) -> tuple[list[pd.DataFrame], list]:
    streamed = list(fetch.fetcher(source, True, streamed=True)(source, statement))
    whole = list(fetch.fetcher(source, True)(source, statement))
    return streamed, whole


def canonical(
    source: Source, spec, asset, org_map, zone, frames: list[pd.DataFrame]
) -> pd.DataFrame:
    """Raw chunks of one mapped table as read_asset normalises them, in one frame."""
    codes = source.mapping.codes
    return pd.concat(
        [normalize_chunk(source.system, f, spec, asset, codes, org_map, zone) for f in frames],
        ignore_index=True,
    )


def pairs(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Raw chunks of one relation as read_relation normalises them."""
    frame = pd.concat(frames, ignore_index=True)
    return pd.DataFrame(
        {"key": normalize_ids(frame["key"]), "value": normalize_ids(frame["value"])}
    )


def compare_streamed(url: str, tmp_path: Path) -> int:
    """Every bulk statement of a full pull (mapped tables and relations), streamed and whole:
    the same canonical records, awkward rows included. Returns the most batches one table took."""
    generate(url, url, scale="small")
    add_awkward_rows(url)
    sources, config = open_sources(tmp_path, url)
    most_batches = 0
    try:
        for source in sources.values():
            resolver = reader.resolve(source)
            org_map = reader.load_org_map(source.mapping, sources)
            for asset_type in ASSET_TYPES:
                asset = source.mapping.assets[asset_type]
                for spec in asset.tables:
                    statement = reader._table_statement(source, resolver, spec)
                    before = source.rows_fetched
                    streamed, whole = both_ways(source, statement)
                    rows = sum(len(frame) for frame in streamed)
                    assert source.rows_fetched - before == 2 * rows  # counted either way
                    assert len(streamed) == max(1, -(-rows // CHUNK))
                    assert all(len(frame) <= CHUNK for frame in streamed)
                    most_batches = max(most_batches, len(streamed))
                    pd.testing.assert_frame_equal(
                        canonical(source, spec, asset, org_map, config.timezone, streamed),
                        canonical(source, spec, asset, org_map, config.timezone, whole),
                        obj=f"{source.system} {asset_type} {spec.table}",
                    )
                for hop in asset.hops:
                    resolved = resolver.tables[hop.table.casefold()]
                    labelled = [(hop.from_column, "key"), (hop.to_column, "value")]
                    statement = reader.select_rows(source, resolved, labelled, hop.where)[0]
                    streamed, whole = both_ways(source, statement)
                    pd.testing.assert_frame_equal(
                        pairs(streamed), pairs(whole), obj=f"{source.system} {hop.table}"
                    )
    finally:
        for source in sources.values():
            source.dispose()
    return most_batches


def assert_selection(source: Source, streamed: fetch.Fetcher, whole: fetch.Fetcher) -> None:
    assert fetch.fetcher(source, True, streamed=True) is streamed
    assert fetch.fetcher(source, True) is whole
    assert fetch.fetcher(source, False, streamed=True) is fetch.generic


@pytest.mark.postgres
def test_postgresql_streamed_gives_the_whole_read_records(pg_database, tmp_path) -> None:
    assert compare_streamed(pg_database, tmp_path) > 1
    sources, _ = open_sources(tmp_path, pg_database)
    assert_selection(sources["pms"], fetch.postgresql_streamed, fetch.postgresql)
    sources["pms"].dispose()
    generic, _ = open_sources(tmp_path, pg_database, 'reader = "generic"\n')
    assert fetch.fetcher(generic["pms"], True, streamed=True) is fetch.generic
    generic["pms"].dispose()
    assert stream_workers() == []


@pytest.mark.mariadb
def test_mariadb_streamed_gives_the_whole_read_records(mariadb_database, tmp_path) -> None:
    assert compare_streamed(mariadb_database, tmp_path) > 1
    sources, _ = open_sources(tmp_path, mariadb_database)
    assert_selection(sources["marketing"], fetch.mysql_streamed, fetch.mysql)
    sources["marketing"].dispose()
    assert stream_workers() == []


def slow_series(marker: str, fast_rows: int = 5000) -> sa.Select:
    """A PostgreSQL statement whose first `fast_rows` rows come at once, and each after that
    in 50 ms: under way for minutes, findable by `marker`."""
    return (
        sa.select(sa.literal_column("g"), sa.literal_column(f"'{marker}'").label("mark"))
        .select_from(sa.text("generate_series(1, 100000) AS g"))
        .where(sa.text(f"pg_sleep(CASE WHEN g > {fast_rows} THEN 0.05 ELSE 0 END) IS NOT NULL"))
    )


def terminate_sessions(url: str, marker: str) -> int:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        ended = connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE :pattern AND pid <> pg_backend_pid()"
            ),
            {"pattern": f"%{marker}%"},
        ).scalars()
        count = sum(1 for done in ended if done)
    engine.dispose()
    return count


@pytest.mark.postgres
def test_a_session_terminated_mid_stream_is_one_clean_dropped_error(
    pg_database, tmp_path, capfd
) -> None:
    sources, _ = open_sources(tmp_path, pg_database)
    source = sources["pms"]
    marker = f"victim_{uuid.uuid4().hex[:8]}"
    frames = fetch.postgresql_streamed(source, slow_series(marker))
    first = next(frames)
    assert len(first) == CHUNK
    assert terminate_sessions(pg_database, marker) == 1
    with pytest.raises(fetch.StreamedReadError) as caught:
        for _ in frames:
            pass
    source.dispose()
    message = str(caught.value)
    assert message in (  # the server's goodbye, or the reset when it is not read in time
        "db error: FATAL: terminating connection due to administrator command",
        "error communicating with the server: Connection reset by peer (os error 104)",
    )
    assert failure_kind(caught.value) == "dropped"  # read_statement retries it
    assert capfd.readouterr().err == ""  # no Rust panic message on the terminal
    assert stream_workers() == []


@pytest.mark.postgres
def test_a_postgresql_statement_timeout_mid_stream_is_classified_a_timeout(
    pg_database, tmp_path, capfd
) -> None:
    sources, _ = open_sources(tmp_path, pg_database, "statement_timeout = 1\n")
    source = sources["pms"]
    statement = slow_series(f"timeout_{uuid.uuid4().hex[:8]}")
    arrived = 0
    with pytest.raises(fetch.StreamedReadError) as caught:
        for _ in fetch.fetcher(source, True, streamed=True)(source, statement):
            arrived += 1
    assert arrived >= 1  # it failed in the middle
    with pytest.raises(RuntimeError) as in_process:
        list(fetch.fetcher(source, True)(source, statement))
    source.dispose()
    assert failure_kind(caught.value) == "timeout"
    assert str(caught.value) == str(in_process.value)  # the words of the in-process read
    assert capfd.readouterr().err == ""


@pytest.mark.mariadb
def test_a_mariadb_statement_past_the_timeout_is_a_statement_timeout(
    mariadb_database, tmp_path, capfd
) -> None:
    sources, _ = open_sources(tmp_path, mariadb_database, "statement_timeout = 1\n")
    source = sources["marketing"]
    statement = (
        sa.select(sa.literal_column("seq"))
        .select_from(sa.text("seq_1_to_100000"))
        .where(sa.text("IF(seq > 5000, SLEEP(0.05), 0) = 0"))
    )
    arrived = 0
    with pytest.raises(fetch.StatementTimeout) as caught:
        for frame in fetch.fetcher(source, True, streamed=True)(source, statement):
            assert list(frame.columns) == ["seq"]  # the watchdog's marker left out
            arrived += 1
    source.dispose()
    assert arrived >= 1
    assert "Query execution was interrupted" in str(caught.value)
    assert failure_kind(caught.value) == "timeout"
    assert capfd.readouterr().err == ""
    assert children() == {}  # the watchdog reaped too


@pytest.mark.mariadb
def test_one_watchdog_serves_every_statement_of_a_mariadb_source(
    mariadb_database, tmp_path
) -> None:
    sources, _ = open_sources(tmp_path, mariadb_database, "statement_timeout = 1\n")
    source = sources["marketing"]
    quick = sa.select(sa.literal_column("seq")).select_from(sa.text("seq_1_to_10"))
    slow = (
        sa.select(sa.literal_column("seq"))
        .select_from(sa.text("seq_1_to_100000"))
        .where(sa.text("IF(seq > 5000, SLEEP(0.05), 0) = 0"))
    )
    read = fetch.fetcher(source, True)
    assert len(pd.concat(read(source, quick))) == 10
    watchdog = source.watchdog
    for _ in range(2):  # cancelled at the timeout, and the next one too
        with pytest.raises(fetch.StatementTimeout):
            list(read(source, slow))
    assert len(pd.concat(read(source, quick))) == 10
    assert source.watchdog is watchdog
    assert [c[1].split(b"\0")[2] for c in children().values()] == [b"gridrecon.connectors.watchdog"]
    source.dispose()
    assert children() == {}


@pytest.mark.postgres
def test_a_reading_process_killed_is_a_dropped_connection(pg_database, tmp_path, capfd) -> None:
    sources, _ = open_sources(tmp_path, pg_database)
    source = sources["pms"]
    frames = fetch.postgresql_streamed(source, slow_series(f"killed_{uuid.uuid4().hex[:8]}"))
    next(frames)
    (worker,) = stream_workers()
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(fetch.StreamedReadError) as caught:
        for _ in frames:
            pass
    source.dispose()
    assert str(caught.value) == (
        f"lost connection to the reading process (pid {worker}): it was killed by SIGKILL"
    )
    assert failure_kind(caught.value) == "dropped"
    assert capfd.readouterr().err == ""
    assert_gone(worker)


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["closed", "abandoned"])
def test_a_consumer_that_stops_early_leaves_no_process(how, pg_database, tmp_path) -> None:
    sources, _ = open_sources(tmp_path, pg_database)
    source = sources["pms"]
    fds = open_fds()
    frames = fetch.postgresql_streamed(source, slow_series(f"early_{uuid.uuid4().hex[:8]}"))
    next(frames)
    (worker,) = stream_workers()
    assert open_fds() > fds  # its pipe and its stderr file
    if how == "closed":
        frames.close()
    else:  # an exception downstream drops the last reference
        del frames
    assert_gone(worker)
    assert open_fds() == fds  # pipes closed, the stderr file too (it never had a name)
    source.dispose()


@pytest.mark.mariadb
def test_a_mariadb_consumer_that_stops_early_leaves_no_process(mariadb_database, tmp_path) -> None:
    sources, _ = open_sources(tmp_path, mariadb_database, "statement_timeout = 60\n")
    source = sources["marketing"]
    statement = sa.select(sa.literal_column("seq")).select_from(sa.text("seq_1_to_1000000"))
    frames = fetch.fetcher(source, True, streamed=True)(source, statement)
    next(frames)
    (worker,) = stream_workers()
    frames.close()
    assert_gone(worker)
    # the source's watchdog serves its next statements, and ends with the source
    assert [c[1].split(b"\0")[2] for c in children().values()] == [b"gridrecon.connectors.watchdog"]
    source.dispose()
    assert children() == {}


@pytest.mark.postgres
def test_a_type_connectorx_cannot_read_falls_back_to_the_cursor(pg_database, tmp_path) -> None:
    sources, _ = open_sources(tmp_path, pg_database)
    source = sources["pms"]
    statement = sa.select(
        sa.literal_column("g"), sa.literal_column("point(g, g)").label("p")
    ).select_from(sa.text("generate_series(1, 250) AS g"))
    frames = list(fetch.postgresql_streamed(source, statement))
    source.dispose()
    assert [len(frame) for frame in frames] == [100, 100, 50]  # psycopg's chunks
    assert source.rows_fetched == 250
