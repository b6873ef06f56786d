"""An asset type too large to hold at once, written to disk by partition as it is read.

sync/partition.py judges a large asset type a partition at a time, so that matching's and the
rules' working memory is one partition's. At national scale that is not enough: the records
themselves (2.2 GB of Arrow for five million transformers a system), the read's raw tables and
the numbering of every id come before the first partition is judged. So the asset type whose
records are nobody's parent (the transformers), where the catalogue estimates more of them than
[run] partition_rows, is read in chunks, and each chunk's records are appended, as they arrive,
to the Arrow IPC file of their partition. The run then loads one partition of both systems at a
time (api._judge_spilled).

A record's partition follows from its own fields, so it can be decided as the record is read,
and whatever a rule compares lies in one partition (as sync/partition.py places them):
- a PMS record goes by its id's hash, a marketing record by the hash of the PMS id it carries:
  a PMS record, its repeats and every marketing record carrying its id are together;
- a marketing record carrying no PMS id goes by its own id's hash, and a record with no id at all
  by its row number (it is compared with nothing).
What a partition cannot tell on its own is whether a marketing record's own id repeats in another
partition (two records of one id carrying different PMS ids). The hashes of every record's own
id are kept while reading (8 bytes a record) and counted over all of them (repeated_own_ids);
DUPLICATE_ID judges those records together at the end.

The files are written under the name of the snapshot's records folder (sync/incremental.py): an
incremental run keeps them as its records, any other run removes them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..connectors.normalize import NULL_HASH, id_hashes
from ..core.errors import SpillError

ROW = "_row"  # a record's position in the whole read: its row label once loaded


@dataclass
class SpilledRecords:
    """One system's records of one asset type, on disk by partition."""

    system: str
    asset_type: str
    count: int  # partitions
    files: list[list[Path]]  # per partition: its files, one per table that has records in it
    rows: int
    rows_by_table: dict[str, int]
    newest_update: datetime | None
    own_hashes: np.ndarray  # per record, by row: the hash of its own id (NULL_HASH: none)
    empty: pd.DataFrame  # no records, with the records' columns and dtypes

    def load(self, partition: int, columns: list[str] | None = None) -> pd.DataFrame:
        """The records of one partition (only `columns`, if given), labelled by their row in
        the whole read, in the order they were read."""
        import pyarrow as pa
        from pyarrow import feather

        files = self.files[partition]
        if not files:
            frame = self.empty if columns is None else self.empty[columns]
            return frame.copy()
        read = None if columns is None else [*columns, ROW]
        tables = [feather.read_table(path, columns=read, memory_map=False) for path in files]
        frame = (tables[0] if len(tables) == 1 else pa.concat_tables(tables)).to_pandas()
        frame.index = pd.Index(frame.pop(ROW).to_numpy(), name=None)
        return frame


def repeated_own_ids(spilled: SpilledRecords) -> np.ndarray:
    """Per record, by row: whether another record of the system holds its own id too (by the
    ids' 64-bit hashes; two different ids of five million share one with a chance of about
    one in a million)."""
    return repeated_hashes(spilled.own_hashes)


def repeated_hashes(hashes: np.ndarray) -> np.ndarray:
    """Per hash: whether another one is equal to it (NULL_HASH, no id, never is)."""
    known = hashes != NULL_HASH
    ordered = np.sort(hashes[known])
    repeated = np.zeros(len(hashes), dtype=bool)
    if len(ordered):
        repeats = ordered[1:][ordered[1:] == ordered[:-1]]
        repeated[known] = np.isin(hashes[known], repeats)
    return repeated


class SpillWriter:
    """Appends one system's records of one asset type to their partitions' files as they are
    read. A table's statement may be retried from the start (a dropped connection): begin()
    drops what an earlier attempt at the same table wrote."""

    def __init__(self, folder: Path, system: str, asset_type: str, count: int):
        self.folder = folder
        self.system = system
        self.asset_type = asset_type
        self.count = count
        self._writers: dict[tuple[str, int], object] = {}
        self._files: dict[tuple[str, int], Path] = {}
        self._tables: list[str] = []
        self._rows = 0
        self._table: str | None = None
        self._table_start = 0
        self._hashes: list[tuple[str, np.ndarray]] = []
        self._newest: dict[str, pd.Timestamp] = {}
        self._schema = None
        self._empty: pd.DataFrame | None = None

    def begin(self, table: str) -> None:
        """A statement reading `table` starts; if it started before, its records so far go."""
        if table == self._table:
            for key in [k for k in self._writers if k[0] == table]:
                self._writers.pop(key).close()
                self._files.pop(key).unlink(missing_ok=True)
            self._hashes = [(t, h) for t, h in self._hashes if t != table]
            self._newest.pop(table, None)
            self._rows = self._table_start
        else:
            self._table, self._table_start = table, self._rows
            self._tables.append(table)

    def add(self, chunk: pd.DataFrame) -> None:
        """Normalised records of the current table, parents resolved."""
        try:
            self._add(chunk)
        except OSError as exc:
            raise SpillError(
                f"cannot write the {self.system} {self.asset_type} records to {self.folder} "
                f"({exc.strerror or exc}); a read of more than [run] partition_rows records "
                "goes to disk there: free space, or set [incremental] snapshot_dir to a "
                "writable folder with room for them"
            ) from None

    def _add(self, chunk: pd.DataFrame) -> None:
        import pyarrow as pa

        if self._empty is None:
            self._empty = chunk.iloc[:0]
        if not len(chunk):
            return
        rows = np.arange(self._rows, self._rows + len(chunk), dtype=np.int64)
        self._rows += len(chunk)
        own = id_hashes(chunk["source_id"])
        self._hashes.append((self._table, own))
        key = own if self.system == "pms" else _link_or_own(chunk, own)
        number = np.where(
            key != NULL_HASH, (key % np.uint64(self.count)).astype(np.int64), rows % self.count
        )
        newest = chunk["updated_at"].max()
        if pd.notna(newest):
            kept = self._newest.get(self._table)
            self._newest[self._table] = newest if kept is None else max(kept, newest)
        table = pa.Table.from_pandas(chunk, preserve_index=False).append_column(ROW, pa.array(rows))
        if self._schema is None:
            self._schema = table.schema
        elif table.schema != self._schema:
            table = table.cast(self._schema)
        # sorted by partition once, then each partition a slice of it (no copy)
        order = np.argsort(number, kind="stable")
        bounds = np.searchsorted(number[order], np.arange(self.count + 1))
        table = table.take(order)
        for partition in range(self.count):
            if bounds[partition] < bounds[partition + 1]:
                part = table.slice(bounds[partition], bounds[partition + 1] - bounds[partition])
                self._writer(partition).write_table(part)

    def _writer(self, partition: int):
        import pyarrow as pa

        key = (self._table, partition)
        if key not in self._writers:
            self.folder.mkdir(parents=True, exist_ok=True)
            index = self._tables.index(self._table)
            path = self.folder / f"{self.system}.{self.asset_type}.{partition}.{index}.arrow"
            options = pa.ipc.IpcWriteOptions(compression="lz4")
            self._files[key] = path
            self._writers[key] = pa.ipc.new_file(path, self._schema, options=options)
        return self._writers[key]

    def close(self, empty: pd.DataFrame) -> SpilledRecords:
        """What was written; `empty`: the records' columns, for a system with none at all."""
        try:
            for writer in self._writers.values():
                writer.close()
        except OSError as exc:
            raise SpillError(
                f"cannot write the {self.system} {self.asset_type} records to {self.folder} "
                f"({exc.strerror or exc}); free space there, or set [incremental] snapshot_dir "
                "to a writable folder with room for them"
            ) from None
        self._writers.clear()
        files = [
            [self._files[(t, p)] for t in self._tables if (t, p) in self._files]
            for p in range(self.count)
        ]
        rows_by_table: dict[str, int] = {}
        for table, hashes in self._hashes:
            rows_by_table[table] = rows_by_table.get(table, 0) + len(hashes)
        newest = max(self._newest.values(), default=None)
        return SpilledRecords(
            system=self.system,
            asset_type=self.asset_type,
            count=self.count,
            files=files,
            rows=self._rows,
            rows_by_table=rows_by_table,
            newest_update=None if newest is None else newest.to_pydatetime(),
            own_hashes=np.concatenate([h for _, h in self._hashes] or [_NO_HASHES]),
            empty=self._empty if self._empty is not None else empty,
        )

    def abandon(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


_NO_HASHES = np.empty(0, dtype=np.uint64)


def _link_or_own(chunk: pd.DataFrame, own: np.ndarray) -> np.ndarray:
    """A marketing record's partition key: the PMS id it carries, else its own id."""
    link = id_hashes(chunk["pms_id"])
    return np.where(link != NULL_HASH, link, own)


@dataclass
class SpillFolder:
    """Where a run's spilled records go: removed unless an incremental run keeps them."""

    path: Path
    writers: list[SpillWriter] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            self.path.mkdir(parents=True)
        except OSError as exc:
            raise SpillError(
                f"cannot create {self.path} for records read to disk ({exc.strerror or exc}); "
                "a read of more than [run] partition_rows records goes to disk there: set "
                "[incremental] snapshot_dir to a writable folder with room for them"
            ) from None

    def writer(self, system: str, asset_type: str, count: int) -> SpillWriter:
        made = SpillWriter(self.path, system, asset_type, count)
        self.writers.append(made)
        return made

    def remove(self) -> None:
        for writer in self.writers:
            writer.abandon()
        shutil.rmtree(self.path, ignore_errors=True)
