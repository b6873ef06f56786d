"""Incremental nights: read only the rows a source changed, reuse what is known about the rest.

After every completed run gridrecon keeps a snapshot of what it read: the canonical records of
both systems and which of them failed validation. The next run, when [incremental] is enabled,
asks each source table only for rows whose update-time column is at or after the watermark (the
earlier of the newest update seen and the last run's start, minus `lag_minutes` for rows whose
transaction was still open), and for the keys of every row changed at all (in scope or not, so a
row that left the scope leaves the snapshot too). Those rows replace their snapshot copies; every
rule then runs over the merged records, except that Great Expectations validates only the rows
that are new or changed (a row's validity depends on nothing else; the one check that depends on
the date, a commissioning date in the future, is re-judged for the carried-over failures).

A night on which no source row changed at all does not even load the records: the snapshot also
keeps the last judgement in the parts that hold whatever the date (every finding but the
deadlines of assets not yet in marketing, and the metrics' counts), and tonight's findings and
metrics are built from those as of tonight. That holds while as_of does not go back and no
commissioning date judged to lie in the future has been reached; otherwise the records are
loaded and judged again.

What an incremental night cannot see: a deleted row, a row with no update time, a change made
only in a relation table (a transformer moved to another 台区 without its own CHG_DATE changing).
So every `full_sweep_days` (weekly by default), after a change of config or mapping, and with
`gridrecon run --full`, the run reads everything again. Tables without a usable update-time
column (none mapped, or stored as text) are read whole every night.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..connectors.normalize import in_sorted, record_key_hashes, record_keys, sorted_unique

SNAPSHOT_FILE = "snapshot.pickle"  # small: what the next run decides with, and the judgement
RECORDS_GLOB = "records-*"  # large: the records, loaded only when something changed
RECORDS_INDEX = "index.pickle"  # in the records folder: which frames it holds, their validity
SNAPSHOT_VERSION = 4


@dataclass
class ValidityMemory:
    """What validation found for one system and asset type, by record key (table + id)."""

    validated: np.ndarray  # sorted record_key_hashes of every record validated
    failures: pd.DataFrame  # key, field, check, reason, value


@dataclass
class StoredRecords:
    """What the last completed run read: its canonical records and their validity."""

    records: dict[str, dict[str, pd.DataFrame]]  # system -> asset type -> canonical records
    validity: dict[tuple[str, str], ValidityMemory] = field(default_factory=dict)
    # records read to disk by partition (sync/spill.py): their folder, and per (system, asset
    # type) its files there; records[system][asset type] is then empty
    spill_folder: Path | None = None
    spilled: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # what the snapshot keeps of spilled records, gathered while they were judged
    digests: dict[tuple[str, str], RecordsDigest] = field(default_factory=dict)


def write_records(folder: Path, name: str, stored: StoredRecords) -> None:
    """The records as a folder `name` in `folder`: Arrow IPC files per system and asset type,
    LZ4-compressed, and the validity memory. Written under a temporary name and renamed, so the
    folder is whole or absent. Records read to disk by partition are there already: their
    folder becomes this one.

    Arrow writes the columns as they are held (Arrow text) and compresses them outside the
    interpreter lock: a province's records take 0.25 s and 144 MB, where pickling them took
    0.55 s and 183 MB even with repeated text packed as categoricals.
    """
    import pyarrow as pa
    from pyarrow import feather

    temporary = folder / f".{name}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    if stored.spill_folder is not None:
        os.replace(stored.spill_folder, temporary)
    else:
        temporary.mkdir(parents=True)
    frames: dict[tuple[str, str], list[str]] = {}
    for system, by_type in stored.records.items():
        for asset_type, frame in by_type.items():
            if (system, asset_type) in stored.spilled:
                frames[(system, asset_type)] = stored.spilled[(system, asset_type)]
                continue
            table = pa.Table.from_pandas(frame)  # its pandas dtypes and index go along
            file = f"{system}.{asset_type}.arrow"
            feather.write_feather(table, temporary / file, compression="lz4")
            frames[(system, asset_type)] = [file]
    _write(temporary / RECORDS_INDEX, {"frames": frames, "validity": stored.validity})
    os.replace(temporary, folder / name)


def read_records(path: Path) -> StoredRecords | None:
    """write_records' folder, or None where it cannot be read whole. Records that were read to
    disk by partition come back whole, in the order they were read."""
    import pyarrow as pa
    from pyarrow import feather

    from .spill import ROW

    index = _unpickled(path / RECORDS_INDEX)
    if not isinstance(index, dict):
        return None
    records: dict[str, dict[str, pd.DataFrame]] = {}
    try:
        for (system, asset_type), files in index["frames"].items():
            tables = [feather.read_table(path / f, memory_map=False) for f in files]
            frame = pa.concat_tables(tables).to_pandas() if tables else None
            if frame is not None and ROW in frame:
                frame = frame.sort_values(ROW).drop(columns=ROW).reset_index(drop=True)
            records.setdefault(system, {})[asset_type] = frame
    except (OSError, pa.ArrowException, KeyError, ValueError, TypeError, AttributeError):
        return None
    return StoredRecords(records, index["validity"])


@dataclass
class RecordsDigest:
    """What a snapshot keeps of one system's records of one asset type besides the records
    (Snapshot.recent, .id_hashes, the newest update), gathered partition by partition where the
    records are never whole in memory (sync/spill.py)."""

    newest: pd.Timestamp | None
    recent: pd.DataFrame  # the records updated at or after recent_from
    id_hashes: np.ndarray  # sorted record_key_hashes of the records with an id


class DigestBuilder:
    def __init__(self, recent_from: dt.datetime):
        self.recent_from = recent_from
        self._newest: list[pd.Timestamp] = []
        self._recent: list[pd.DataFrame] = []
        self._hashes: list[np.ndarray] = []

    def add(self, records: pd.DataFrame, hashes: np.ndarray) -> None:
        """hashes: record_key_hashes(records)."""
        newest = records["updated_at"].max()
        if pd.notna(newest):
            self._newest.append(newest)
        self._recent.append(records[records["updated_at"] >= self.recent_from])
        self._hashes.append(hashes[records["source_id"].notna().to_numpy()])

    def digest(self) -> RecordsDigest:
        return RecordsDigest(
            newest=max(self._newest, default=None),
            recent=pd.concat(self._recent).sort_index(),
            id_hashes=sorted_unique(np.concatenate(self._hashes)),
        )


def merged_memory(memories: list[ValidityMemory]) -> ValidityMemory:
    """The validity memory of several partitions' records, as one."""
    columns = memories[0].failures.columns
    return ValidityMemory(
        validated=sorted_unique(np.concatenate([m.validated for m in memories])),
        # built from the values as remember_validity builds one: the same dtypes as one
        # memory of all the records would have
        failures=pd.DataFrame(
            {
                c: np.concatenate([m.failures[c].to_numpy(dtype=object) for m in memories])
                for c in columns
            }
        ),
    )


@dataclass
class Carried:
    """The last run's judgement in the parts a night without changes builds on."""

    as_of: dt.date
    undated: pd.DataFrame  # Judgement.undated
    unarchived: dict[str, pd.DataFrame]  # Judgement.unarchived
    metric_counts: dict[str, Any]  # checks.metrics.metric_counts
    summaries: dict[str, Any]  # system -> SourceSummary
    future_from: dt.date | None  # the earliest commissioning day judged to be in the future

    def holds_on(self, as_of: dt.date, future_tolerance_days: int) -> bool:
        """Whether these parts give tonight's findings for unchanged records: as_of has not
        gone back, and no date judged to lie in the future has been reached since."""
        if as_of < self.as_of:
            return False
        latest = as_of + dt.timedelta(days=future_tolerance_days)
        return self.future_from is None or self.future_from > latest


@dataclass
class Snapshot:
    """What the next run needs to know of the last completed one (the records file aside)."""

    fingerprint: str  # the config fingerprint of the run that wrote it
    run_started_at: dt.datetime  # aware
    full_sweep_at: dt.datetime  # aware: when the records were last read whole
    newest_update: dt.datetime | None  # the newest update time among the records
    records_file: str  # the records folder, in the same folder
    carried: Carried | None = None
    # To tell a night without changes without loading the records: the records the next run
    # reads again anyway (updated at or after `recent_from`, the lag window), and per (system,
    # asset type) the sorted record_key_hashes of every record.
    recent_from: dt.datetime | None = None
    recent: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    id_hashes: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    # its records were read to disk by partition (sync/spill.py): a night with changes reads
    # everything again rather than load them whole
    spilled: bool = False
    version: int = SNAPSHOT_VERSION

    def unchanged(self, system: str, changes: dict[str, Any], absent: dict[str, Any]) -> bool:
        """Whether tonight's changes of one system (reader.read_system_changes) change none of
        its records: every row read is one the snapshot holds as it is, and every other id
        touched (a row out of scope) is one the snapshot does not hold."""
        if self.recent_from is None:
            return False
        for asset_type, found in changes.items():
            if found.since < self.recent_from or any(ids is None for ids in found.touched.values()):
                return False  # rows read that the snapshot did not keep apart; a table read whole
            known = self.recent[(system, asset_type)]
            known = known[known["updated_at"] >= found.since]
            # the first-seen time a store fills in for systems without a creation time
            compared = [c for c in known.columns if c not in absent[asset_type]]
            if not _same_rows(known[compared], found.records[compared]):
                return False
            hashes = self.id_hashes[(system, asset_type)]
            for table, ids in found.touched.items():
                others = ids.difference(
                    found.records.loc[found.records["source_table"] == table, "source_id"]
                )
                others = pd.DataFrame({"source_table": table, "source_id": others})
                if in_sorted(record_key_hashes(others), hashes).any():
                    return False
        return True


@dataclass(frozen=True)
class ReadPlan:
    """How this run reads the sources: everything, or the changes since `since`."""

    mode: str  # "full" | "incremental"
    reason: str  # why, for the log and summary.json
    snapshot: Snapshot | None = None
    since: dt.datetime | None = None  # aware; the watermark minus the lag
    folder: Path | None = None  # where the snapshot and its records file are


def _unpickled(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            # gridrecon's own file, written below by the same user; never a file from elsewhere
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        return None  # unreadable: the run reads everything and writes a new one


def load(folder: Path) -> Snapshot | None:
    """The snapshot in `folder`, or None if there is none, it is from another version, or its
    records file is gone."""
    snapshot = _unpickled(folder / SNAPSHOT_FILE)
    if not isinstance(snapshot, Snapshot) or snapshot.version != SNAPSHOT_VERSION:
        return None
    if not (folder / snapshot.records_file).is_dir():
        return None
    return snapshot


def load_records(folder: Path, snapshot: Snapshot) -> StoredRecords | None:
    return read_records(folder / snapshot.records_file)


class SnapshotError(Exception):
    """The records could not be written as Arrow (a column Arrow cannot hold)."""


class RecordsWriter:
    """Writes a run's records folder (write_records) in a thread of its own, while the run
    stores its findings and writes its reports: Arrow compresses and writes outside the
    interpreter lock. The snapshot naming the folder is written only once the run has committed
    (save); a run that fails removes the folder again (abandon)."""

    def __init__(self, folder: Path, run_started_at: dt.datetime, stored: StoredRecords):
        self.folder = folder
        self.run_started_at = run_started_at
        self.stored = stored
        # to the microsecond: two runs of one process within a second name different folders
        self.name = f"records-{run_started_at:%Y%m%d%H%M%S%f}-{os.getpid()}"
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._write, name="gridrecon-records")
        self._thread.start()

    def _write(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_records(self.folder, self.name, self.stored)
        except Exception as exc:  # raised again by done(), in the run's thread
            self._error = exc

    def done(self) -> str:
        """The folder's name, once written. Raises OSError where the file system refused, and
        SnapshotError for anything else that stopped the write."""
        self._thread.join()
        if isinstance(self._error, OSError):
            raise self._error
        if self._error is not None:
            raise SnapshotError(f"{type(self._error).__name__}: {self._error}") from self._error
        return self.name

    def abandon(self) -> None:
        self._thread.join()
        _remove(self.folder / self.name)
        _remove(self.folder / f".{self.name}.tmp")


def save(
    records: RecordsWriter,
    fingerprint: str,
    full_sweep_at: dt.datetime,
    carried: Carried | None,
    lag_minutes: int,
    hashes: dict[tuple[str, str], np.ndarray] | None = None,
) -> None:
    """Once the records folder is written, the snapshot that names it, atomically: a crash
    leaves the previous snapshot or the new one, never half, and never one without its records.
    hashes: record_key_hashes of each of the records' frames, where the caller has them."""
    records_file = records.done()
    folder, stored, run_started_at = records.folder, records.stored, records.run_started_at
    digests = stored.digests
    held = {
        (system, asset_type): frame
        for system, by_type in stored.records.items()
        for asset_type, frame in by_type.items()
        if (system, asset_type) not in digests
    }
    stamps = [frame["updated_at"].max() for frame in held.values() if len(frame)]
    stamps += [digest.newest for digest in digests.values()]
    stamps = [s for s in stamps if s is not None and pd.notna(s)]
    newest = max(stamps).to_pydatetime() if stamps else None
    recent_from = _since(newest, run_started_at, lag_minutes)
    recent = {key: frame[frame["updated_at"] >= recent_from] for key, frame in held.items()}
    id_hashes = {
        key: sorted_unique(
            _hashes(frame, (hashes or {}).get(key))[frame["source_id"].notna().to_numpy()]
        )
        for key, frame in held.items()
    }
    for key, digest in digests.items():
        recent[key] = digest.recent[digest.recent["updated_at"] >= recent_from]
        id_hashes[key] = digest.id_hashes
    snapshot = Snapshot(
        fingerprint=fingerprint,
        run_started_at=run_started_at,
        full_sweep_at=full_sweep_at,
        newest_update=newest,
        records_file=records_file,
        carried=carried,
        recent_from=recent_from,
        recent=recent,
        id_hashes=id_hashes,
        spilled=bool(digests),
    )
    _write(folder / SNAPSHOT_FILE, snapshot)
    for old in [*folder.glob(RECORDS_GLOB), *folder.glob(f".{RECORDS_GLOB}.tmp")]:
        if old.name != records_file:  # the others, and any a crashed run left half-written
            _remove(old)


def _write(path: Path, value: Any) -> None:
    """Pickle `value` to `path` atomically."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.tmp"
    with temporary.open("wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary, path)


def discard(folder: Path) -> None:
    """Remove the snapshot and every records folder, as far as the file system lets."""
    _remove(folder / SNAPSHOT_FILE)
    for old in [*folder.glob(RECORDS_GLOB), *folder.glob(f".{RECORDS_GLOB}.tmp")]:
        _remove(old)


def _remove(path: Path) -> None:
    """A records folder, an earlier version's records file, or the snapshot file, if there;
    one that cannot be removed stays (a later save tries again)."""
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:  # e.g. its folder is a file: there is nothing to remove
        pass


def plan_read(
    enabled: bool,
    folder: Path,
    fingerprint: str,
    now: dt.datetime,
    lag_minutes: int,
    full_sweep_days: int,
    force_full: bool,
    first_run: bool = False,
) -> ReadPlan:
    """Decide whether this run may read incrementally, and from when."""
    if not enabled:
        return ReadPlan("full", "incremental reads are off")
    if force_full:
        return ReadPlan("full", "--full was given")
    if first_run:
        return ReadPlan("full", "the state store has no completed run")
    snapshot = load(folder)
    if snapshot is None:
        return ReadPlan("full", "no snapshot of an earlier run")
    if snapshot.fingerprint != fingerprint:
        return ReadPlan("full", "the config, a mapping or the rules changed since the snapshot")
    if now - snapshot.full_sweep_at >= dt.timedelta(days=full_sweep_days):
        return ReadPlan("full", f"the last full read is {full_sweep_days} or more days old")
    since = _since(snapshot.newest_update, snapshot.run_started_at, lag_minutes)
    return ReadPlan("incremental", f"changes since {since.isoformat()}", snapshot, since, folder)


def recent_from(
    newest: dt.datetime | None, run_started_at: dt.datetime, lag_minutes: int
) -> dt.datetime:
    """From when the next run reads rows again: what a snapshot keeps as its recent rows."""
    return _since(newest, run_started_at, lag_minutes)


def _since(
    newest: dt.datetime | None, run_started_at: dt.datetime, lag_minutes: int
) -> dt.datetime:
    """The watermark (the earlier of the newest update seen and the run's start) minus the lag."""
    watermark = min(newest, run_started_at) if newest else run_started_at
    return watermark - dt.timedelta(minutes=lag_minutes)


def _same_rows(kept: pd.DataFrame, read: pd.DataFrame) -> bool:
    """The same records, whatever their order (key: table and id)."""
    if len(kept) != len(read):
        return False
    if len(kept) == 0:
        return True
    order = ["source_table", "source_id"]
    kept = kept.sort_values(order, kind="stable").reset_index(drop=True)
    read = read.sort_values(order, kind="stable").reset_index(drop=True)
    return kept.astype(object).equals(read.astype(object))


def remember_validity(
    judged: dict[tuple[str, str], pd.DataFrame],
    invalid: dict[tuple[str, str], pd.DataFrame],
    hashes: dict[tuple[str, str], np.ndarray] | None = None,
) -> dict[tuple[str, str], ValidityMemory]:
    """Validation results by record key, from a run's validated records and their failures.
    hashes: record_key_hashes of each judged frame, where the caller has them."""
    memory = {}
    for key, records in judged.items():
        failures = invalid[key]
        failure_keys = record_keys(records.loc[failures["row"].to_numpy()]).to_numpy()
        identified = records["source_id"].notna().to_numpy()
        memory[key] = ValidityMemory(
            validated=sorted_unique(_hashes(records, (hashes or {}).get(key))[identified]),
            failures=pd.DataFrame(
                {
                    "key": failure_keys,
                    **{c: failures[c].to_numpy() for c in ("field", "check", "reason", "value")},
                }
            ),
        )
    return memory


def _hashes(records: pd.DataFrame, known: np.ndarray | None) -> np.ndarray:
    """record_key_hashes(records), unless the caller computed them already."""
    return record_key_hashes(records) if known is None else known
