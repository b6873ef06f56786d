"""gridrecon's library API: one function per thing a user does.

The CLI and the scheduler call these functions and nothing else, so there is one code path for a
run however it is started.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .checks.calendar import WorkingCalendar
from .checks.metrics import asset_counts, merge_counts, metrics_as_of
from .checks.result import RunResult, SourceSummary
from .checks.rules import AssetJudgement, Judge
from .checks.settings import RuleSettings
from .checks.validity import start_worker, stop_worker
from .connectors.fetch import release_freed_memory
from .connectors.mapping import ASSET_TYPES, SYSTEMS, Mapping
from .connectors.normalize import record_key_hashes
from .connectors.reader import (
    Progress,
    SourceRead,
    apply_system_changes,
    estimated_rows,
    load_org_tree,
    open_sources,
    read_source,
    read_system_changes,
)
from .core.config import Config, display_url
from .core.errors import GridreconError
from .sync import incremental
from .sync.incremental import Carried, StoredRecords, remember_validity
from .sync.matching import PARENT_TYPE, IdCodes, duplicated_ids, matched_records, paired
from .sync.partition import partition_count, partitions
from .sync.spill import SpilledRecords, SpillFolder, repeated_hashes, repeated_own_ids

log = logging.getLogger("gridrecon")
# A library logs; the application decides where to (the scheduler does; `gridrecon run` prints
# its own messages). Without this, Python's last-resort handler would echo errors to stderr.
log.addHandler(logging.NullHandler())

TEST_PAUSE_VARIABLE = "GRIDRECON_TEST_PAUSE"


def _test_pause(point: str) -> None:
    """Fault-injection seam for the crash tests: GRIDRECON_TEST_PAUSE=before-commit:30 stops
    the run there for 30 s (after announcing it on stderr) so a test can kill it at that point."""
    import sys

    wanted, _, seconds = os.environ.get(TEST_PAUSE_VARIABLE, "").partition(":")
    if wanted == point:
        print(f"gridrecon: test pause at {point}", file=sys.stderr, flush=True)
        time.sleep(float(seconds or 30))


def today(config: Config) -> dt.date:
    return dt.datetime.now(config.timezone).date()


def new_run_id(started_at: dt.datetime) -> str:
    return f"{started_at:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def config_fingerprint(config: Config, settings: RuleSettings, mappings: dict[str, Mapping]) -> str:
    """A hash of everything that decides a run's findings (passwords masked before hashing)."""
    described = {
        "timezone": str(config.timezone),
        "sources": {
            system: {
                "url": display_url(config.source(system).url),
                "schema": config.source(system).schema,
                "mapping": mappings[system].name,
                "mapping_sha256": hashlib.sha256(mappings[system].path.read_bytes()).hexdigest(),
            }
            for system in ("pms", "marketing")
        },
        "calendar_overrides": (
            hashlib.sha256(config.calendar_overrides.read_bytes()).hexdigest()
            if config.calendar_overrides and config.calendar_overrides.is_file()
            else None
        ),
        "rules": settings.as_dict(),
    }
    text = json.dumps(described, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Pulled:
    """Everything read from both systems for one run."""

    reads: dict[str, SourceRead]
    summaries: dict[str, SourceSummary]
    mappings: dict[str, Mapping]
    orgs: pd.DataFrame
    # incremental runs: which records were read tonight, per (system, asset type)
    fresh: dict[tuple[str, str], pd.Series] | None = None
    validity: dict[tuple[str, str], Any] | None = None  # the snapshot's, for those not fresh
    # a night on which nothing changed and the snapshot's judgement holds: no records at all
    carried: Carried | None = None
    spill: SpillFolder | None = None  # where asset types read to disk by partition are

    def spilled(self, asset_type: str) -> dict[str, SpilledRecords] | None:
        """Both systems' records of `asset_type`, where they were read to disk by partition."""
        if self.spill is None or not self.reads:
            return None
        found = {s: self.reads[s].assets[asset_type].spilled for s in SYSTEMS}
        return found if all(found.values()) else None

    def remove_spill(self) -> None:
        if self.spill is not None:
            self.spill.remove()
            self.spill = None


def _summarise(read: SourceRead, seconds: float) -> SourceSummary:
    rows_by_table: dict[str, int] = {}
    for asset in read.assets.values():
        for table, count in asset.rows_by_table.items():
            rows_by_table[table] = rows_by_table.get(table, 0) + count
    return SourceSummary(
        system=read.system,
        url=read.url,
        mapping=read.mapping,
        rows={t: a.rows for t, a in read.assets.items()},
        rows_by_table=rows_by_table,
        newest_update={
            t: (a.newest_update.isoformat() if a.newest_update else None)
            for t, a in read.assets.items()
        },
        seconds=seconds,
    )


def pull(
    config: Config,
    progress: Progress | None = None,
    plan: incremental.ReadPlan | None = None,
    carry: Carried | None = None,
) -> Pulled:
    """Read both systems into canonical records (and the org tree, for reports).

    With an incremental read plan (sync/incremental.py), only the rows changed since the plan's
    watermark are read, on top of the snapshot's records. If none changed and `carry` (the
    snapshot's judgement, when it holds tonight) is given, the records are not loaded at all.

    An asset type too large to hold (sync/spill.py) is read to disk by partition, into a new
    folder beside the snapshot; the caller removes it (Pulled.remove_spill) unless it keeps it
    as the snapshot's records.
    """
    sources = open_sources(config)
    spill = None
    try:
        # Both systems at once, so that one database's work overlaps the other's reading.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gridrecon-read") as pool:
            pulled = None
            if plan is not None and plan.mode == "incremental":
                pulled = _pull_changes(config, sources, pool, plan, carry)
            if pulled is None:
                start_worker()  # Great Expectations loads while the databases deliver
                counts = _spill_counts(config, sources, pool)
                if counts:
                    spill = SpillFolder(_spill_path(config))
                    for source in sources.values():  # streamed reads buffer beside it
                        source.spill_dir = spill.path

                def read(system: str) -> tuple[SourceRead, SourceSummary]:
                    began = time.monotonic()
                    writers = {t: spill.writer(system, t, n) for t, n in counts.items()}
                    read = read_source(
                        sources[system], sources, config.timezone, ASSET_TYPES, progress, writers
                    )
                    return read, _summarise(read, time.monotonic() - began)

                done = dict(zip(sources, pool.map(read, sources)))
                if any(
                    partition_count(asset.rows, config.partition_rows) > 1
                    for read, _ in done.values()
                    for asset in read.assets.values()
                ):
                    # Judged in partitions, the run is bound by memory: what the read freed
                    # goes back to the system. Otherwise matching and the rules reuse it, where
                    # memory handed out afresh costs time (see Performance in the README).
                    release_freed_memory()
                pulled = Pulled(
                    reads={system: pair[0] for system, pair in done.items()},
                    summaries={system: pair[1] for system, pair in done.items()},
                    mappings={},
                    orgs=pd.DataFrame(),
                    spill=spill,
                )
        pulled.orgs = load_org_tree(sources["marketing"])
        if pulled.orgs.empty:
            pulled.orgs = load_org_tree(sources["pms"])
    except BaseException:
        if spill is not None:
            spill.remove()
        raise
    finally:
        for source in sources.values():
            source.dispose()
    pulled.mappings = {system: source.mapping for system, source in sources.items()}
    return pulled


# The asset types a read may spill to disk: those that are no other type's parent (a partition
# of the children needs every parent at hand).
SPILLABLE = [t for t in ASSET_TYPES if t not in PARENT_TYPE.values()]


def _spill_counts(config: Config, sources: dict, pool: ThreadPoolExecutor) -> dict[str, int]:
    """The asset types to read to disk by partition (sync/spill.py), and into how many: those
    estimated to hold more records than [run] partition_rows in either system. Not where a
    system keeps no creation time: the time gridrecon first saw each record is filled in over
    all of them (persist.fill_first_seen). Both systems asked at once (each connects first)."""
    counts = {}
    for asset_type in SPILLABLE:
        if any("recorded_at" in s.mapping.assets[asset_type].absent for s in sources.values()):
            continue
        rows = max(pool.map(estimated_rows, sources.values(), [asset_type] * len(sources)))
        count = partition_count(rows, config.partition_rows)
        if count > 1:
            counts[asset_type] = count
    return counts


def _spill_path(config: Config) -> Path:
    """A new folder for this process's spilled records, beside the snapshot; those of processes
    that ended without removing theirs (killed) are removed first."""
    for left in config.snapshot_dir.glob(".spill-*.tmp"):
        pid = left.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    return config.snapshot_dir / f".spill-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: alive
        pass
    return True


def _pull_changes(
    config: Config, sources: dict, pool: Any, plan: incremental.ReadPlan, carry: Carried | None
) -> Pulled | None:
    """Tonight's changes on top of the snapshot (None if its records cannot be read)."""

    def changes(system: str) -> tuple[dict, float]:
        began = time.monotonic()
        found = read_system_changes(sources[system], sources, config.timezone, plan.since)
        return found, time.monotonic() - began

    changed = dict(zip(sources, pool.map(changes, sources)))
    absent = {
        system: {t: source.mapping.assets[t].absent for t in ASSET_TYPES}
        for system, source in sources.items()
    }
    if carry is not None and all(
        plan.snapshot.unchanged(system, found, absent[system])
        for system, (found, _) in changed.items()
    ):
        summaries = {
            system: dataclasses.replace(carry.summaries[system], seconds=seconds)
            for system, (_, seconds) in changed.items()
        }
        return Pulled({}, summaries, {}, pd.DataFrame(), carried=carry)
    from .checks.validity import start_worker

    if plan.snapshot.spilled:
        # Rows changed, and the records were too many to hold: loaded whole they would not
        # fit either, so they are read again, to disk by partition.
        return None
    start_worker()  # the changed rows are validated
    stored = incremental.load_records(plan.folder, plan.snapshot)
    if stored is None:
        log.warning("the snapshot's records in %s cannot be read: reading everything", plan.folder)
        return None
    reads, summaries, fresh = {}, {}, {}
    for system, (found, seconds) in changed.items():
        began = time.monotonic()
        reads[system], fresh_of = apply_system_changes(
            sources[system], stored.records[system], found
        )
        summaries[system] = _summarise(reads[system], seconds + time.monotonic() - began)
        fresh.update({(system, t): mask for t, mask in fresh_of.items()})
    return Pulled(reads, summaries, {}, pd.DataFrame(), fresh, stored.validity)


def conclude(
    config: Config,
    settings: RuleSettings,
    calendar: WorkingCalendar,
    pulled: Pulled,
    as_of: dt.date,
    started_at: dt.datetime,
    fail_on: str | None,
    keep: dict[str, Any] | None = None,
) -> RunResult:
    """Match, judge and measure what was pulled. Findings come out as `new`.

    keep: a dict to receive what the next incremental run builds on ("validity", "carried").
    """
    judge = Judge(pulled.mappings, calendar, settings, as_of, pulled.validity, pulled.fresh)
    carried = pulled.carried
    notes: list[str] = []
    if carried is not None:  # nothing changed: the last judgement, as of tonight
        findings = judge.findings(carried.undated, carried.unarchived)
        counts = carried.metric_counts
    else:
        spilled = {t: both for t in ASSET_TYPES if (both := pulled.spilled(t))}
        held = [t for t in ASSET_TYPES if t not in spilled]
        records = {s: {t: pulled.reads[s].records(t) for t in held} for s in SYSTEMS}
        numbered: Future = Future()  # the ids' codes (IdCodes), per asset type
        hashes: dict[tuple[str, str], Any] = {}

        def hash_keys() -> None:
            # Each record's key hash, once: the snapshot keeps them all, the validity memory
            # those of the records judged (those whose id is not repeated). Computed while
            # Great Expectations validates, where the rules would otherwise wait (_judge).
            if keep is not None:
                hashes.update(
                    {(s, t): record_key_hashes(records[s][t]) for s in SYSTEMS for t in held}
                )

        def duplicated() -> dict[tuple[str, str], np.ndarray]:
            codes = numbered.result()
            return {(s, t): codes[t].duplicated(s) for s in SYSTEMS for t in held}

        def validate() -> None:
            try:
                judge.validate({(s, t): records[s][t] for s in SYSTEMS for t in held}, duplicated)
            finally:
                if not spilled:  # validation is done: its memory is the rest of the run's
                    stop_worker()

        # Great Expectations validates in its worker process while this one numbers the ids
        # (Arrow's hash tables, outside the interpreter lock, while validation is prepared)
        # and matches the records; the rules wait for its results (_judge).
        with ThreadPoolExecutor(1, thread_name_prefix="gridrecon-validate") as executor:
            validated = executor.submit(validate)
            try:
                try:
                    codes = {
                        t: IdCodes.of(records["pms"][t], records["marketing"][t]) for t in held
                    }
                except BaseException as exc:
                    numbered.set_exception(exc)
                    raise
                numbered.set_result(codes)
                judged, counts, partitioned = _judge(
                    judge, records, codes, config.partition_rows, validated, hash_keys
                )
            finally:
                wait([validated])  # whatever _judge raised: no thread outlives the run
        invalid = dict(judge.failures)
        validity: dict[tuple[str, str], incremental.ValidityMemory] = {}
        if keep is not None:
            validity = remember_validity(
                {key: judge.judged[key] for key in hashes},
                invalid,
                {key: hashes[key][~codes[key[1]].duplicated(key[0])] for key in hashes},
            )
        digests: dict[tuple[str, str], incremental.RecordsDigest] = {}
        if spilled:
            recent_from = incremental.recent_from(
                _newest(pulled), started_at, config.incremental.lag_minutes
            )
        for asset_type, both in spilled.items():
            outcome = judge_spilled(judge, asset_type, both, records, recent_from)
            judged[asset_type], counts[asset_type] = outcome.judged, outcome.counts
            partitioned[asset_type] = len(outcome.judged)
            invalid.update(outcome.invalid)
            validity.update(outcome.validity)
            digests.update(outcome.digests)
        if spilled:
            stop_worker()
        judged = {t: judged[t] for t in ASSET_TYPES}  # the order the metrics list them in
        counts = {t: counts[t] for t in ASSET_TYPES}
        judgement = judge.conclude(judged)
        findings = judgement.findings
        notes += [
            f"{asset_type} judged in {count} partitions ([run] partition_rows = "
            f"{config.partition_rows})"
            for asset_type, count in partitioned.items()
            if count > 1
        ]
        notes += [
            f"{asset_type} read to disk by partition: more than [run] partition_rows = "
            f"{config.partition_rows} records"
            for asset_type in spilled
        ]
        if keep is not None:
            keep["hashes"] = hashes
            keep["digests"] = digests
            keep["validity"] = validity
            keep["carried"] = Carried(
                as_of=as_of,
                undated=judgement.undated,
                unarchived=judgement.unarchived,
                metric_counts=counts,
                summaries=pulled.summaries,
                future_from=_future_from(invalid),
            )
    seen = started_at.isoformat(timespec="seconds")
    findings["first_seen"] = seen
    findings["last_seen"] = seen
    orgs = pulled.orgs
    parents = orgs.dropna(subset=["parent_code"]).set_index("org_code")["parent_code"].to_dict()
    metrics = metrics_as_of(counts, as_of, settings.metrics_period, parents)
    return RunResult(
        run_id=new_run_id(started_at),
        as_of=as_of,
        started_at=started_at,
        finished_at=dt.datetime.now(config.timezone),
        config_path=str(config.path),
        config_fingerprint=config_fingerprint(config, settings, pulled.mappings),
        settings=settings.as_dict(),
        sources=pulled.summaries,
        findings=findings,
        metrics=metrics,
        fail_on=fail_on,
        orgs=orgs,
        notes=notes,
    )


def _judge(
    judge: Judge,
    records: dict[str, dict[str, pd.DataFrame]],
    codes: dict[str, IdCodes],
    partition_rows: int,
    validated: Future,
    meanwhile: Callable[[], None],
) -> tuple[
    dict[str, list[AssetJudgement]], dict[str, tuple[pd.DataFrame, pd.DataFrame]], dict[str, int]
]:
    """Match and judge each asset type held in `records`, a partition at a time where it has
    more records than partition_rows (sync/partition.py), and count what the metrics need. Also
    says how many partitions each asset type took.

    validated: the judge's validation, running; every asset type is matched (and paired, its
    pairs compared, where it is one partition), and `meanwhile` run, before the rules wait for
    it."""
    matched = {}
    compare = judge.settings.enabled("ATTR_MISMATCH")
    for asset_type in records["pms"]:
        pms, marketing = records["pms"][asset_type], records["marketing"][asset_type]
        parent_type = PARENT_TYPE.get(asset_type)
        parents = [records[s][parent_type] if parent_type else None for s in SYSTEMS]
        pms, marketing = matched_records(pms, marketing, codes[asset_type], *parents)
        pieces = partitions(codes[asset_type], partition_rows)
        whole = differences = None
        if len(pieces) == 1:
            whole = paired(asset_type, pms, marketing, codes[asset_type])
            differences = judge.pair_differences(whole) if compare else None
        matched[asset_type] = pms, marketing, pieces, whole, differences
    meanwhile()
    validated.result()  # raises what validation raised
    judged: dict[str, list[AssetJudgement]] = {}
    counts = {}
    for asset_type in list(matched):
        pms, marketing, pieces, whole, differences = matched.pop(asset_type)
        unlinked_details = None
        if len(pieces) > 1 and judge.settings.enabled("UNLINKED"):
            unlinked_details = judge.unlinked_details(marketing, pms)
        judged[asset_type], counted = [], []
        for pms_rows, marketing_rows in pieces:
            if whole is not None:
                match, whole = whole, None
            else:
                differences = None
                match = paired(
                    asset_type,
                    pms.take(pms_rows),
                    marketing.take(marketing_rows),
                    codes[asset_type].take(pms_rows, marketing_rows),
                )
            piece = judge.judge_asset(match, unlinked_details, differences)
            judged[asset_type].append(piece)
            counted.append(asset_counts(match, piece.unfinalized(), piece.deadlines))
            del match  # before the next partition is taken
        counts[asset_type] = merge_counts(counted)
    return judged, counts, {t: len(pieces) for t, pieces in judged.items()}


@dataclass
class SpilledJudgement:
    """judge_spilled's outcome for one asset type."""

    judged: list[AssetJudgement]  # one per partition
    counts: tuple[pd.DataFrame, pd.DataFrame]  # its metric counts (asset_counts)
    invalid: dict[tuple[str, str], pd.DataFrame]  # per system: the validity failures
    validity: dict[tuple[str, str], incremental.ValidityMemory]
    digests: dict[tuple[str, str], incremental.RecordsDigest]


def judge_spilled(
    judge: Judge,
    asset_type: str,
    spilled: dict[str, SpilledRecords],
    records: dict[str, dict[str, pd.DataFrame]],
    recent_from: dt.datetime,
) -> SpilledJudgement:
    """Validate, match and judge an asset type read to disk by partition (sync/spill.py), one
    partition of both systems in memory at a time; records: the parent types' records, held.

    Two things look beyond a partition, and are settled over all records first: whether a
    marketing record's own id repeats (its id's hash counted over every record), and the
    candidate PMS records of an UNLINKED one (_spilled_unlinked_details). Marketing's repeated
    ids are judged by DUPLICATE_ID together, after the last partition. What the snapshot keeps
    of the records (incremental.RecordsDigest) is gathered on the way."""
    parent_type = PARENT_TYPE.get(asset_type)
    parents = [records[s][parent_type] if parent_type else None for s in SYSTEMS]
    repeated = repeated_own_ids(spilled["marketing"])
    unlinked_details = None
    if judge.settings.enabled("UNLINKED"):
        unlinked_details = _spilled_unlinked_details(judge, spilled, repeated)
    compare = judge.settings.enabled("ATTR_MISMATCH")
    judged, counted, repeats = [], [], []
    failures: dict[str, list[pd.DataFrame]] = {s: [] for s in SYSTEMS}
    memories: dict[str, list[incremental.ValidityMemory]] = {s: [] for s in SYSTEMS}
    digests = {s: incremental.DigestBuilder(recent_from) for s in SYSTEMS}
    with ThreadPoolExecutor(1, thread_name_prefix="gridrecon-validate") as validating:
        for partition in range(spilled["pms"].count):
            loaded = {s: spilled[s].load(partition) for s in SYSTEMS}
            codes = IdCodes.of(loaded["pms"], loaded["marketing"])
            codes = codes.with_repeated_marketing(repeated[loaded["marketing"].index.to_numpy()])
            duplicated = {(s, asset_type): codes.duplicated(s) for s in SYSTEMS}
            # Great Expectations validates the partition in its worker while this thread matches
            validated = validating.submit(
                judge.validate,
                {(s, asset_type): loaded[s] for s in SYSTEMS},
                lambda duplicated=duplicated: duplicated,
            )
            try:
                hashes = {s: record_key_hashes(loaded[s]) for s in SYSTEMS}
                for system in SYSTEMS:
                    digests[system].add(loaded[system], hashes[system])
                pms, marketing = matched_records(
                    loaded["pms"], loaded["marketing"], codes, *parents
                )
                match = paired(asset_type, pms, marketing, codes)
                differences = judge.pair_differences(match) if compare else None
            finally:
                wait([validated])
            validated.result()  # raises what validation raised
            for system in SYSTEMS:
                key = (system, asset_type)
                kept = judge.judged[key]  # the records validated: those whose id is not repeated
                memory = remember_validity(
                    {key: kept},
                    {key: judge.failures[key]},
                    {key: hashes[system][~duplicated[key]]},
                )
                memories[system].append(memory[key])
                failures[system].append(judge.failures[key])
            del loaded, hashes
            piece = judge.judge_asset(match, unlinked_details, differences, marketing_repeats=False)
            judged.append(piece)
            counted.append(asset_counts(match, piece.unfinalized(), piece.deadlines))
            piece.deadlines = piece.deadlines.iloc[:0]  # counted: a national run has millions
            repeats.append(marketing.loc[marketing["duplicate_id"], _REPEAT_COLUMNS])
            del match, pms, marketing  # before the next partition is loaded
            gc.collect()  # frames in reference cycles wait for a full collection otherwise
            release_freed_memory()  # what it took goes back: the next takes as much again
    if judge.settings.enabled("DUPLICATE_ID"):
        together = pd.concat(repeats).sort_index()  # in the order they were read
        judged[-1].parts.append(judge.duplicate_ids("marketing", asset_type, together))
        judged[-1].parts = [p for p in judged[-1].parts if len(p)]
    return SpilledJudgement(
        judged=judged,
        counts=merge_counts(counted),
        invalid={(s, asset_type): pd.concat(failures[s], ignore_index=True) for s in SYSTEMS},
        validity={(s, asset_type): incremental.merged_memory(memories[s]) for s in SYSTEMS},
        digests={(s, asset_type): digests[s].digest() for s in SYSTEMS},
    )


# what DUPLICATE_ID reads of marketing records repeating their own id
_REPEAT_COLUMNS = ["duplicate_id", "source_id", "source_table", "pms_id", "name", "org_code"]


def _spilled_unlinked_details(
    judge: Judge, spilled: dict[str, SpilledRecords], repeated: np.ndarray
) -> pd.Series:
    """The UNLINKED detail of every marketing record it applies to, the candidates searched
    among all PMS records of the orgs those records belong to: a pass over the partitions'
    files reading only the columns the search needs, before any partition is judged."""
    wanted = ["source_id", "pms_id", "status", "org_code", "voltage_kv", "name_key", "name"]
    unlinked = []
    for partition in range(spilled["marketing"].count):
        marketing = spilled["marketing"].load(partition, wanted)
        about = (  # as rules._unlinked: in service, no PMS id, its own id not repeated
            marketing["pms_id"].isna()
            & (marketing["status"] == "in_service")
            & ~repeated[marketing.index.to_numpy()]
        )
        unlinked.append(marketing[about.to_numpy()])
    unlinked = pd.concat(unlinked).sort_index()
    if unlinked.empty:
        return pd.Series(dtype="str")
    orgs = unlinked["org_code"].dropna().unique()
    pool = []
    for partition in range(spilled["pms"].count):
        pms = spilled["pms"].load(
            partition, ["source_id", "name", "name_key", "org_code", "voltage_kv"]
        )
        # a PMS id's records and every record carrying it share a partition: counted here
        repeated = _repeated_ids(pms["source_id"], spilled["pms"].own_hashes[pms.index])
        pms = pms[~repeated & _among(pms["org_code"], orgs) & pms["name_key"].notna().to_numpy()]
        links = spilled["marketing"].load(partition, ["pms_id"])["pms_id"].dropna()
        # the few links to the PMS records kept first: a hash table of those, not of every link
        linking = links[_among(links, pms["source_id"])]
        pms["linked"] = _among(pms["source_id"], linking)
        pms["duplicate_id"] = False
        pool.append(pms)
    return judge.candidate_details(unlinked, pd.concat(pool).sort_index())


def _repeated_ids(ids: pd.Series, hashes: np.ndarray) -> np.ndarray:
    """duplicated_ids(ids), asked of text only where the ids' hashes repeat: every repeated id
    is among those, and they are few."""
    maybe = np.flatnonzero(repeated_hashes(hashes))
    repeated = np.zeros(len(ids), dtype=bool)
    repeated[maybe] = duplicated_ids(ids.iloc[maybe]).to_numpy()
    return repeated


def _among(values: pd.Series, wanted: Any) -> np.ndarray:
    """values.isin(wanted), by Arrow's hash table (pandas' isin of Arrow text goes through
    Python objects: seconds over a national partition's ids)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = pa.array(pd.Series(wanted, dtype="str").unique(), type=pa.large_string())
    found = pc.is_in(pa.array(values.astype("str"), type=pa.large_string()), value_set=wanted)
    return found.to_numpy(zero_copy_only=False)


def _newest(pulled: Pulled) -> dt.datetime | None:
    """The newest update time among everything read."""
    stamps = [a.newest_update for read in pulled.reads.values() for a in read.assets.values()]
    return max((s for s in stamps if s is not None), default=None)


def _future_from(invalid: dict[tuple[str, str], pd.DataFrame]) -> dt.date | None:
    """The earliest commissioning day judged to lie in the future, if any."""
    days = [
        failures.loc[failures["check"] == "commissioned_on_not_future", "value"].min()
        for failures in invalid.values()
        if len(failures)
    ]
    days = [d for d in days if isinstance(d, str)]
    return dt.date.fromisoformat(min(days)) if days else None


def reconcile(
    config: Config, as_of: dt.date | None = None, fail_on: str | None = None
) -> RunResult:
    """Pull, match, judge and measure, without the state store: nothing is written anywhere."""
    settings = RuleSettings.parse(config.rules, config.path)
    calendar = WorkingCalendar.load(config.calendar_overrides)
    started_at = dt.datetime.now(config.timezone)
    pulled = pull(config)
    try:
        as_of = as_of or today(config)
        return conclude(config, settings, calendar, pulled, as_of, started_at, fail_on)
    finally:
        pulled.remove_spill()


def run(
    config: Config,
    as_of: dt.date | None = None,
    fail_on: str | None = None,
    progress: Progress | None = None,
    full: bool = False,
) -> tuple[RunResult, Path]:
    """One whole reconciliation (SPEC §8), remembered in the state store.

    Pull, judge, apply history and waivers, and write the run folder, all inside one state-store
    transaction that commits at the very end; only then does `latest/` move. A run that fails at
    any point leaves the store as it was. A source that looks broken makes the run inconclusive
    (exit 3): it is recorded, but no finding is created or resolved.
    """
    from .reports.output import point_latest, write_run_folder
    from .sync import persist
    from .sync.store import StateStore

    settings = RuleSettings.parse(config.rules, config.path)
    calendar = WorkingCalendar.load(config.calendar_overrides)
    as_of = as_of or today(config)
    store = StateStore(config.state_url)
    began = time.monotonic()
    records: incremental.RecordsWriter | None = None  # the snapshot's records, being written
    pulled: Pulled | None = None
    try:
        store.ensure_schema()
        started_at = dt.datetime.now(config.timezone)
        run_id = new_run_id(started_at)
        with store.lock(run_id), store.transaction() as connection:
            log.info(
                "run started",
                extra={"event": "run_started", "run_id": run_id, "as_of": as_of.isoformat()},
            )
            previous = store.previous_completed(connection)
            fingerprint = config_fingerprint(config, settings, _mappings(config))
            plan = incremental.plan_read(
                config.incremental.enabled,
                config.snapshot_dir,
                fingerprint,
                started_at,
                config.incremental.lag_minutes,
                config.incremental.full_sweep_days,
                force_full=full,
                first_run=previous is None,
            )
            log.info(
                "reading %s: %s",
                plan.mode,
                plan.reason,
                extra={"event": "read_plan", "run_id": run_id, "mode": plan.mode},
            )
            carry = None
            if plan.snapshot is not None and plan.snapshot.carried is not None:
                if plan.snapshot.carried.holds_on(as_of, settings.future_tolerance_days):
                    carry = plan.snapshot.carried
            pulled = pull(config, progress, plan, carry)
            if pulled.carried is not None:
                stop_worker()  # nothing is validated tonight: one started early is not needed
            if plan.mode == "incremental" and pulled.fresh is None and pulled.carried is None:
                why = "the snapshot's records could not be read"
                if plan.snapshot.spilled:
                    why = "rows changed, and the records are too many to load whole"
                plan = incremental.ReadPlan("full", why)
            if pulled.carried is not None:
                plan = dataclasses.replace(
                    plan, reason=f"{plan.reason}; no row changed, the last judgement holds"
                )
            keep: dict[str, Any] = {}  # what the next incremental run builds on
            for system, summary in pulled.summaries.items():
                log.info(
                    "%s rows read from %s: %s",
                    system,
                    summary.url,
                    ", ".join(f"{t} {n}" for t, n in summary.rows.items()),
                    extra={
                        "event": "rows_read",
                        "run_id": run_id,
                        "system": system,
                        "source": summary.url,
                        "rows": summary.rows,
                    },
                )
            broken = persist.broken_sources(pulled.summaries, previous, config.min_row_share)
            if broken:
                result = persist.inconclusive_result(
                    config, settings, pulled, as_of, started_at, run_id, fail_on, broken
                )
            else:
                if pulled.carried is None:
                    persist.fill_first_seen(
                        connection, pulled, started_at, first_run=previous is None
                    )
                result = conclude(
                    config, settings, calendar, pulled, as_of, started_at, fail_on, keep
                )
                if config.incremental.enabled and pulled.carried is None:
                    records = _start_records(config, pulled, keep, started_at)
                pulled.remove_spill()  # unless the snapshot's records took it over
                result.run_id = run_id
                result.notes.append(f"read: {plan.mode} ({plan.reason})")
                persist.remember(connection, result, previous, as_of)
            result.finished_at = dt.datetime.now(config.timezone)
            persist.record_run(connection, result)
            folder = write_run_folder(result, config.report_dir)
            _test_pause("before-commit")
        if result.status == "completed":
            point_latest(config.report_dir, result.run_id)
            if records is not None:
                _keep_snapshot(config, plan, records, keep, fingerprint, started_at)
                records = None
        counts = result.counts()
        log.info(
            "run ended: %s, exit %d, %.1f s, open findings by severity %s",
            result.status,
            result.exit_code,
            time.monotonic() - began,
            counts["by_severity"],
            extra={
                "event": "run_ended",
                "run_id": result.run_id,
                "status": result.status,
                "exit_code": result.exit_code,
                "duration_s": round(time.monotonic() - began, 3),
                "by_severity": counts["by_severity"],
                "open": counts["open"],
            },
        )
        return result, folder
    except GridreconError as exc:
        log.error(
            "run failed: %s",
            exc.message,
            extra={
                "event": "run_failed",
                "exit_code": exc.exit_code,
                "duration_s": round(time.monotonic() - began, 3),
            },
        )
        raise
    finally:
        if records is not None:  # the run did not complete: the snapshot stays the last one's
            records.abandon()
        if pulled is not None:
            pulled.remove_spill()
        stop_worker()  # a run that failed before validating leaves no worker behind
        store.dispose()


def _mappings(config: Config) -> dict[str, Mapping]:
    from .connectors.mapping import load_mapping

    return {system: load_mapping(config.source(system).mapping, system) for system in SYSTEMS}


def _start_records(
    config: Config, pulled: Pulled, keep: dict[str, Any], started_at: dt.datetime
) -> incremental.RecordsWriter:
    """Start writing what this run read, for the next incremental run: in a thread, while the
    run stores its findings and writes its reports. Records read to disk by partition are
    written already: the writer takes their folder over."""
    stored = StoredRecords(
        records={
            system: {t: read.records(t) for t in ASSET_TYPES}
            for system, read in pulled.reads.items()
        },
        validity=keep.get("validity", {}),
    )
    if pulled.spill is not None:
        stored.digests = keep.get("digests", {})
        for asset_type in ASSET_TYPES:
            for system, spilled in (pulled.spilled(asset_type) or {}).items():
                files = [path.name for paths in spilled.files for path in paths]
                if files:
                    stored.spilled[(system, asset_type)] = files
        stored.spill_folder, pulled.spill = pulled.spill.path, None
    return incremental.RecordsWriter(config.snapshot_dir, started_at, stored)


def _keep_snapshot(
    config: Config,
    plan: incremental.ReadPlan,
    records: incremental.RecordsWriter,
    keep: dict[str, Any],
    fingerprint: str,
    started_at: dt.datetime,
) -> None:
    """The snapshot naming this run's records, for the next incremental run (after the commit:
    a failed run keeps the previous snapshot, which still matches the store)."""
    swept = plan.snapshot.full_sweep_at if plan.mode == "incremental" else started_at
    try:
        incremental.save(
            records,
            fingerprint,
            swept,
            keep.get("carried"),
            config.incremental.lag_minutes,
            keep.get("hashes"),
        )
    except (OSError, incremental.SnapshotError) as exc:  # the run is done; the next reads all
        incremental.discard(config.snapshot_dir)
        log.warning("could not keep the snapshot for incremental runs: %s", exc)


# -- the state store: runs, findings, waivers -------------------------------------------------


def _store(config: Config):
    from .sync.store import StateStore

    store = StateStore(config.state_url)
    store.ensure_schema()
    return store


def list_runs(config: Config, limit: int = 20) -> pd.DataFrame:
    from .sync import store as tables

    store = _store(config)
    try:
        with store.reading() as connection:
            frame = tables.list_runs(connection, limit)
    finally:
        store.dispose()
    frame["started_at"] = frame["started_at"].map(
        lambda t: t.astimezone(config.timezone).isoformat(timespec="seconds"), na_action="ignore"
    )
    return frame


def show_run(config: Config, run_id: str) -> dict:
    from .core.errors import ConfigError
    from .sync import store as tables

    store = _store(config)
    try:
        with store.reading() as connection:
            if run_id == "latest":
                latest = tables.list_runs(connection, 1)
                run_id = latest["run_id"].iloc[0] if len(latest) else run_id
            record = tables.get_run(connection, run_id)
    finally:
        store.dispose()
    if record is None:
        raise ConfigError(f"no run '{run_id}' in the state store; `gridrecon runs list` shows them")
    for key in ("started_at", "finished_at"):
        if record[key] is not None:
            record[key] = record[key].astimezone(config.timezone).isoformat(timespec="seconds")
    return record


def finding_ages(frame: pd.DataFrame, config: Config, as_of: dt.date | None = None) -> pd.DataFrame:
    """Add age_days and age_working_days (since first seen, up to as_of or today)."""
    as_of = as_of or today(config)
    calendar = WorkingCalendar.load(config.calendar_overrides)
    firsts = [t.astimezone(config.timezone).date() for t in frame["first_seen"]]
    frame = frame.copy()
    frame["age_days"] = [(as_of - first).days for first in firsts]
    frame["age_working_days"] = [calendar.working_days_between(first, as_of) for first in firsts]
    return frame


def list_findings(config: Config, **filters: Any) -> pd.DataFrame:
    from .sync import store as tables

    store = _store(config)
    try:
        with store.reading() as connection:
            frame = tables.query_findings(connection, **filters)
    finally:
        store.dispose()
    for column in ("first_seen", "last_seen", "resolved_at"):
        frame[column] = frame[column].map(
            lambda t: t.astimezone(config.timezone), na_action="ignore"
        )
    return finding_ages(frame, config)


def show_finding(config: Config, finding_id: str) -> tuple[dict, pd.DataFrame]:
    from .core.errors import ConfigError
    from .sync import store as tables

    store = _store(config)
    try:
        with store.reading() as connection:
            frame = tables.query_findings(connection, finding_id=finding_id)
            history = tables.finding_events(connection, finding_id)
    finally:
        store.dispose()
    if frame.empty:
        raise ConfigError(f"no finding '{finding_id}' in the state store")
    return finding_ages(frame, config).iloc[0].to_dict(), history


def waive(
    config: Config, ids: list[str], reason: str, by: str, until: dt.date | None = None
) -> int:
    from .sync.waivers import Waiver, add_waivers

    return _write_waivers(
        config, lambda c, now: add_waivers(c, [Waiver(i, reason, by, until) for i in ids], now)
    )


def waive_from_csv(config: Config, path: Path, by: str) -> int:
    from .sync.waivers import add_waivers, read_waiver_csv

    waivers = read_waiver_csv(path, by)
    return _write_waivers(config, lambda c, now: add_waivers(c, waivers, now))


def unwaive(config: Config, ids: list[str]) -> int:
    from .sync.waivers import remove_waivers

    return _write_waivers(config, lambda c, now: remove_waivers(c, ids))


def _write_waivers(config: Config, change) -> int:
    store = _store(config)
    try:
        with store.transaction() as connection:
            return change(connection, dt.datetime.now(config.timezone))
    finally:
        store.dispose()
