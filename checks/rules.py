"""The rule suites of SPEC §6, judging matched canonical records.

Each rule is a function from the matched records to a frame of findings. How the rules meet each
other (SPEC §6) is settled here: records with a duplicated id are judged only by DUPLICATE_ID; a
field invalid on either side of a pair is not compared; an invalid commissioning date gets no
timeliness finding; out-of-scope rows never reach this module at all.
"""

from __future__ import annotations

import datetime as dt
import difflib
import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from ..connectors.mapping import Mapping
from ..connectors.normalize import (
    arrow_text,
    in_sorted,
    local_day,
    record_key_hashes,
    record_keys,
)
from ..sync.matching import LINK_DANGLING, LINK_NONE, AssetMatch, duplicated_ids
from . import findings
from .calendar import WorkingCalendar
from .findings import as_text
from .settings import COMPARED_FIELDS, RuleSettings
from .validity import (
    Validation,
    ValiditySettings,
    columns_read,
    run_validations,
    with_known_failures,
)

SYSTEM_LABEL = {"pms": "PMS", "marketing": "marketing"}


@dataclass
class Judgement:
    """What the rules concluded for one run, before history is applied."""

    findings: pd.DataFrame
    invalid: dict[tuple[str, str], pd.DataFrame]  # (system, asset type) -> validity failures
    deadlines: dict[str, pd.Series]  # asset type -> ARCHIVE_OVERDUE deadline per PMS row
    # What the findings are made of, split by whether they depend on as_of; a night on which
    # no record changed builds its findings from these (see sync/incremental.py):
    undated: pd.DataFrame  # every rule's findings but ARCHIVE_OVERDUE/PENDING, unfinalized
    unarchived: dict[str, pd.DataFrame]  # asset type -> in-service PMS assets not in marketing


@dataclass
class AssetJudgement:
    """What the rules found in one asset type's records, or in one partition of them."""

    parts: list[pd.DataFrame]  # findings that hold whatever the date, unfinalized
    deadlines: pd.Series  # ARCHIVE_OVERDUE deadline per judged PMS row
    unarchived: pd.DataFrame  # in-service PMS assets not in marketing

    def unfinalized(self) -> pd.DataFrame:
        return pd.concat(self.parts, ignore_index=True) if self.parts else findings.empty()


def _unlinked(marketing: pd.DataFrame) -> pd.Series:
    """The marketing records UNLINKED is about: in service, no PMS id, their own id not repeated."""
    return (
        ~marketing["duplicate_id"]
        & (marketing["status"] == "in_service")
        & (marketing["link"] == LINK_NONE)
    )


def _joined(pieces: list[Any]) -> Any:
    return pieces[0] if len(pieces) == 1 else pd.concat(pieces)


def _failures_in(failures: pd.DataFrame, rows: pd.Index) -> pd.DataFrame:
    """The validity failures of the records at these row labels (a partition's)."""
    if failures.empty:
        return failures
    return failures[rows.get_indexer(failures["row"].to_numpy()) >= 0]


def _unchanged(failures: pd.DataFrame) -> pd.DataFrame:
    return failures


def _failures_without(failures: pd.DataFrame, rows: pd.Index) -> pd.DataFrame:
    """The failures of records at other row labels than `rows`."""
    return failures[~failures["row"].isin(rows)].reset_index(drop=True)


def _without(frame: pd.DataFrame, dropped: np.ndarray) -> pd.DataFrame:
    """frame without the rows marked; not copied when none is (as with most ids)."""
    return frame[~dropped] if dropped.any() else frame


class Judge:
    """Runs every enabled rule over the matched records of all asset types."""

    def __init__(
        self,
        mappings: dict[str, Mapping],
        calendar: WorkingCalendar,
        settings: RuleSettings,
        as_of: dt.date,
        memory: dict[tuple[str, str], Any] | None = None,
        fresh: dict[tuple[str, str], pd.Series] | None = None,
    ):
        """memory / fresh (incremental runs): an earlier run's validity results by record key,
        and which records were read tonight, per (system, asset type)."""
        self.mappings = mappings
        self.calendar = calendar
        self.settings = settings
        self.as_of = as_of
        self.as_of_ts = pd.Timestamp(as_of)
        self.memory = memory or {}
        self.fresh = fresh or {}
        self.judged: dict[tuple[str, str], pd.DataFrame] = {}  # the records validated, keys
        self._invalid: dict[tuple[str, str], pd.DataFrame] = {}  # and their failures

    @property
    def failures(self) -> dict[tuple[str, str], pd.DataFrame]:
        """The validity failures validate() found, per (system, asset type) last validated."""
        return self._invalid

    # -- helpers -----------------------------------------------------------------------------

    def _mapped_fields(self, system: str, asset_type: str) -> frozenset[str]:
        asset = self.mappings[system].assets[asset_type]
        fields = {f.name for table in asset.tables for f in table.fields}
        return frozenset(fields)

    def _has_parent(self, system: str, asset_type: str) -> bool:
        return self.mappings[system].assets[asset_type].has_parent

    def _column_of(self, system: str, asset_type: str, table: str, field: str) -> str:
        asset = self.mappings[system].assets[asset_type]
        spec = next((t for t in asset.tables if t.table == table), asset.tables[0])
        if field == "parent":
            if asset.hops:
                return " -> ".join(
                    [spec.parent_column or "?"] + [f"{h.table}.{h.to_column}" for h in asset.hops]
                )
            return spec.parent_column or "?"
        found = spec.field(field)
        return found.column if found else field

    # -- the run -----------------------------------------------------------------------------

    def validate(
        self,
        records: dict[tuple[str, str], pd.DataFrame],
        duplicated: Callable[[], dict[tuple[str, str], np.ndarray]] | None = None,
    ) -> None:
        """Find the invalid values of each (system, asset type)'s records, those with a
        duplicated id aside, all in one Great Expectations validation. All of Great
        Expectations' part of a run: done before the rules, its worker process can end before
        the rest of the run needs the memory.

        duplicated: gives which records' ids are repeated, where the caller knows (it may still
        be working them out: it is asked as late as it can be, once the validation has run,
        unless an earlier run's validity memory needs them first)."""
        repeated: dict[tuple[str, str], np.ndarray] = {}

        def repeated_in(key: tuple[str, str], frame: pd.DataFrame) -> np.ndarray:
            if key not in repeated and duplicated is not None:
                repeated.update(duplicated())
            if key not in repeated:
                repeated[key] = duplicated_ids(frame["source_id"]).to_numpy()
            return repeated[key]

        pending = []
        for (system, asset_type), frame in records.items():
            key = (system, asset_type)
            # Only the columns validation reads (and the record keys).
            read = columns_read(**self._validity_arguments(system, asset_type))
            read = [c for c in frame.columns if c in {"source_id", "source_table", *read}]
            if key in self.memory:
                judged = _without(frame[read], repeated_in(key, frame))
            else:  # every record's values, then the repeated ones' failures dropped: no copy
                judged = frame[read]
            validation, finish = self._validation(system, asset_type, judged)
            pending.append((key, frame, validation, finish))
        run_validations([validation for _, _, validation, _ in pending])  # all in one suite
        for key, frame, validation, finish in pending:
            found = repeated_in(key, frame)
            if key not in self.memory and found.any():
                finish = partial(_failures_without, rows=frame.index[found])
            self._invalid[key] = finish(validation.result())
            # Kept to remember the results by record key (sync/incremental.py): the keys only.
            self.judged[key] = _without(frame[["source_id", "source_table"]], found)

    def judge(self, matches: dict[str, AssetMatch]) -> Judgement:
        self.validate(
            {
                (system, asset_type): frame
                for asset_type, match in matches.items()
                for system, frame in (("pms", match.pms), ("marketing", match.marketing))
                if (system, asset_type) not in self._invalid
            }
        )
        return self.conclude({t: [self.judge_asset(match)] for t, match in matches.items()})

    def judge_asset(
        self,
        match: AssetMatch,
        unlinked_details: pd.Series | None = None,
        differences: dict[str, np.ndarray] | None = None,
        marketing_repeats: bool = True,
    ) -> AssetJudgement:
        """Every rule over one asset type's matched records, or one partition of them (see
        sync/partition.py): validate() has run over all of them.

        unlinked_details: the UNLINKED detail per marketing row label, where the caller found the
        candidates over every PMS record (a partition holds only some of them).
        differences: pair_differences(match), where the caller has it already.
        marketing_repeats: False where DUPLICATE_ID judges marketing's repeated ids elsewhere,
        over all their records (a partition of a spilled read holds only some of them)."""
        parts: list[pd.DataFrame] = []
        asset_type = match.asset_type
        invalid = {
            (system, asset_type): _failures_in(self._invalid[(system, asset_type)], frame.index)
            for system, frame in (("pms", match.pms), ("marketing", match.marketing))
        }
        enabled = self.settings.enabled
        for system, frame in (("pms", match.pms), ("marketing", match.marketing)):
            # Records whose id is repeated are judged by DUPLICATE_ID alone: validate() left
            # out their failures, parents_missing() leaves them out (the frame is not copied
            # without them: a copy of every column of half a million records).
            if enabled("DUPLICATE_ID") and (system == "pms" or marketing_repeats):
                parts.append(self.duplicate_ids(system, asset_type, frame))
            if enabled("INVALID_VALUE"):
                parts.append(
                    self.invalid_values(system, asset_type, frame, invalid[(system, asset_type)])
                )
            if enabled("PARENT_MISSING"):
                parts.append(self.parents_missing(system, asset_type, frame))
        parts.extend(self.links(match, unlinked_details))
        if enabled("ATTR_MISMATCH"):
            parts.append(self.attribute_mismatches(match, invalid, differences))
        late, deadlines, unarchived = self.timeliness(match, invalid)
        parts.extend(late)
        return AssetJudgement([p for p in parts if len(p)], deadlines, unarchived)

    def conclude(self, judged: dict[str, list[AssetJudgement]]) -> Judgement:
        """The run's Judgement from each asset type's judgements (one, or one per partition)."""
        parts: list[pd.DataFrame] = []
        deadlines: dict[str, pd.Series] = {}
        unarchived: dict[str, pd.DataFrame] = {}
        for asset_type, pieces in judged.items():
            for piece in pieces:
                parts.extend(piece.parts)
            deadlines[asset_type] = _joined([p.deadlines for p in pieces])
            unarchived[asset_type] = _joined([p.unarchived for p in pieces])
        undated = pd.concat(parts or [findings.empty()], ignore_index=True)
        return Judgement(
            findings=self.findings(undated, unarchived),
            invalid=self._invalid,
            deadlines=deadlines,
            undated=undated,
            unarchived=unarchived,
        )

    def findings(self, undated: pd.DataFrame, unarchived: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """The run's findings: those that hold whatever the date, and the deadlines as of
        as_of of the assets still not in marketing."""
        parts = [undated]
        for asset_type, assets in unarchived.items():
            parts.extend(self.deadline_findings(asset_type, assets))
        severity = {rule: self.settings.severity(rule) for rule in self.settings.rules}
        return findings.finalize(parts, severity, self.settings.owner)

    def _validation(
        self, system: str, asset_type: str, judged: pd.DataFrame
    ) -> tuple[Validation, Callable[[pd.DataFrame], pd.DataFrame]]:
        """The validation of the judged records, and what turns its result into their validity
        failures. With a memory of an earlier run, only the records read tonight go through
        Great Expectations, and the failures remembered for the others are added (see
        sync/incremental.py)."""
        validate = dict(
            asset_type=asset_type, as_of=self.as_of, **self._validity_arguments(system, asset_type)
        )
        memory = self.memory.get((system, asset_type))
        if memory is None:
            return Validation(judged, **validate), _unchanged
        keys = record_keys(judged)
        fresh = self.fresh[(system, asset_type)].reindex(judged.index, fill_value=True)
        validated = in_sorted(record_key_hashes(judged), memory.validated)
        known = pd.Series(validated, index=judged.index) & ~fresh & keys.notna()
        finish = partial(
            with_known_failures,
            judged,
            known=known,
            failures=memory.failures,
            keys=keys,
            as_of=self.as_of,
            settings=validate["settings"],
        )
        return Validation(judged[~known], **validate), finish

    def _validity_arguments(self, system: str, asset_type: str) -> dict[str, Any]:
        return dict(
            mapped_fields=self._mapped_fields(system, asset_type),
            has_parent=self._has_parent(system, asset_type),
            settings=ValiditySettings(
                enabled_checks=self.settings.validity_checks,
                future_tolerance_days=self.settings.future_tolerance_days,
            ),
        )

    # -- DUPLICATE_ID ------------------------------------------------------------------------

    def duplicate_ids(self, system: str, asset_type: str, frame: pd.DataFrame) -> pd.DataFrame:
        dups = frame[frame["duplicate_id"]]
        if dups.empty:
            return findings.empty()
        grouped = dups.groupby("source_id", sort=True)
        first = grouped.first()
        count = grouped.size()
        tables = grouped["source_table"].agg(lambda t: ", ".join(sorted(set(t))))
        ids = pd.Series(first.index, index=first.index)
        detail = (
            f"{SYSTEM_LABEL[system]} id occurs "
            + count.astype("str")
            + " times (in "
            + tables
            + ")"
        )
        return findings.build(
            "DUPLICATE_ID",
            asset_type,
            system,
            first.index,
            pms_id=ids if system == "pms" else first["pms_id"],
            marketing_id=ids if system == "marketing" else None,
            asset_name=first["name"],
            org_code=first["org_code"],
            detail=detail,
        )

    # -- INVALID_VALUE -----------------------------------------------------------------------

    def invalid_values(
        self, system: str, asset_type: str, frame: pd.DataFrame, failures: pd.DataFrame
    ) -> pd.DataFrame:
        if failures.empty:
            return findings.empty()
        rows = frame.loc[failures["row"].to_numpy()]
        index = failures.index
        tables = rows["source_table"].to_numpy()
        columns = [
            self._column_of(system, asset_type, table, field)
            for table, field in zip(tables, failures["field"], strict=True)
        ]
        shown = pd.Series(
            ["null" if pd.isna(v) else repr(v) for v in failures["value"].astype(object)],
            index=index,
            dtype="str",
        )
        detail = (
            pd.Series(tables, index=index)
            + "."
            + pd.Series(columns, index=index)
            + " = "
            + shown
            + ": "
            + failures["reason"]
        )
        value = failures["value"].astype("str")
        ids = pd.Series(rows["source_id"].to_numpy(), index=index)
        return findings.build(
            "INVALID_VALUE",
            asset_type,
            system,
            index,
            pms_id=ids if system == "pms" else pd.Series(rows["pms_id"].to_numpy(), index=index),
            marketing_id=ids if system == "marketing" else None,
            asset_name=pd.Series(rows["name"].to_numpy(), index=index),
            org_code=pd.Series(rows["org_code"].to_numpy(), index=index),
            field=failures["field"],
            pms_value=value if system == "pms" else None,
            marketing_value=value if system == "marketing" else None,
            detail=detail,
        )

    # -- PARENT_MISSING ----------------------------------------------------------------------

    def parents_missing(self, system: str, asset_type: str, frame: pd.DataFrame) -> pd.DataFrame:
        if not self._has_parent(system, asset_type):
            return findings.empty()
        orphans = frame[
            frame["parent_source_id"].notna() & ~frame["parent_found"] & ~frame["duplicate_id"]
        ]
        parent_type = {"line": "substation", "transformer": "line"}[asset_type]
        detail = (
            f"parent {parent_type} "
            + orphans["parent_source_id"]
            + f" is not among the in-scope {SYSTEM_LABEL[system]} {parent_type}s"
        )
        value = orphans["parent_source_id"]
        return findings.build(
            "PARENT_MISSING",
            asset_type,
            system,
            orphans.index,
            pms_id=orphans["source_id"] if system == "pms" else orphans["pms_id"],
            marketing_id=orphans["source_id"] if system == "marketing" else None,
            asset_name=orphans["name"],
            org_code=orphans["org_code"],
            field=system,
            pms_value=value if system == "pms" else None,
            marketing_value=value if system == "marketing" else None,
            detail=detail,
        )

    # -- MISSING_IN_PMS, UNLINKED, DUPLICATE_LINK -------------------------------------------

    def links(
        self, match: AssetMatch, unlinked_details: pd.Series | None = None
    ) -> list[pd.DataFrame]:
        asset_type = match.asset_type
        marketing = match.marketing  # masks, not a copy of the records without repeated ids
        judged = ~marketing["duplicate_id"]
        in_service = judged & (marketing["status"] == "in_service")
        out = []
        if self.settings.enabled("MISSING_IN_PMS"):
            dangling = marketing[in_service & (marketing["link"] == LINK_DANGLING)]
            out.append(
                findings.build(
                    "MISSING_IN_PMS",
                    asset_type,
                    "marketing",
                    dangling.index,
                    pms_id=dangling["pms_id"],
                    marketing_id=dangling["source_id"],
                    asset_name=dangling["name"],
                    org_code=dangling["org_code"],
                    marketing_value=dangling["pms_id"],
                    detail="stored PMS id "
                    + dangling["pms_id"]
                    + f" matches no in-scope PMS {asset_type}",
                )
            )
        if self.settings.enabled("UNLINKED"):
            unlinked = marketing[_unlinked(marketing)]
            out.append(
                findings.build(
                    "UNLINKED",
                    asset_type,
                    "marketing",
                    unlinked.index,
                    marketing_id=unlinked["source_id"],
                    asset_name=unlinked["name"],
                    org_code=unlinked["org_code"],
                    detail=(
                        self._candidates(unlinked, match.pms)
                        if unlinked_details is None
                        else unlinked_details.reindex(unlinked.index)
                    ),
                )
            )
        if self.settings.enabled("DUPLICATE_LINK"):
            shared = marketing[judged & marketing["duplicate_link"]]
            group = shared.groupby("pms_id")["source_id"].transform(
                lambda ids: ", ".join(sorted(ids.dropna()))
            )
            out.append(
                findings.build(
                    "DUPLICATE_LINK",
                    asset_type,
                    "marketing",
                    shared.index,
                    pms_id=shared["pms_id"],
                    marketing_id=shared["source_id"],
                    asset_name=shared["name"],
                    org_code=shared["org_code"],
                    marketing_value=shared["pms_id"],
                    detail="PMS id "
                    + shared["pms_id"]
                    + " is carried by marketing records "
                    + group.astype("str"),
                )
            )
        return out

    def candidate_details(self, unlinked: pd.DataFrame, pms: pd.DataFrame) -> pd.Series:
        """The UNLINKED detail of each of `unlinked` (the records UNLINKED is about), candidates
        searched among `pms` (duplicate_id, linked, org_code, voltage_kv, name_key, name,
        source_id)."""
        return self._candidates(unlinked, pms)

    def unlinked_details(self, marketing: pd.DataFrame, pms: pd.DataFrame) -> pd.Series:
        """The UNLINKED detail of each marketing record it applies to, candidates searched among
        all of `pms`. Both carry the columns matching adds (duplicate_id, link; linked)."""
        return self._candidates(marketing[_unlinked(marketing)], pms)

    def _candidates(self, unlinked: pd.DataFrame, pms: pd.DataFrame) -> pd.Series:
        """Most likely PMS records for each unlinked one: same org and voltage, closest name."""
        limit = self.settings.unlinked_candidates
        pool = pms[
            ~pms["duplicate_id"]
            & pms["org_code"].isin(unlinked["org_code"].dropna().unique())
            & pms["name_key"].notna()
        ]
        groups = {key: group for key, group in pool.groupby(["org_code", "voltage_kv"])}
        details = []
        for org, voltage, key in zip(
            unlinked["org_code"], unlinked["voltage_kv"], unlinked["name_key"], strict=True
        ):
            if limit == 0:
                details.append("no PMS id stored; candidates not searched")
                continue
            group = groups.get((org, voltage))
            if group is None or not isinstance(key, str):
                details.append("no PMS record with the same org and voltage")
                continue
            scores = _similarities(key, group["name_key"], limit)
            ranked = (
                group.assign(score=scores)
                .sort_values(["score", "source_id"], ascending=[False, True])
                .head(limit)
            )
            shown = [
                f"{name} (PMS {pid}{', already linked' if linked else ''}, {score:.2f})"
                for name, pid, linked, score in zip(
                    ranked["name"],
                    ranked["source_id"],
                    ranked["linked"],
                    ranked["score"],
                    strict=True,
                )
            ]
            details.append("candidates: " + "; ".join(shown))
        return pd.Series(details, index=unlinked.index, dtype="str")

    # -- ATTR_MISMATCH -----------------------------------------------------------------------

    def pair_differences(self, match: AssetMatch) -> dict[str, np.ndarray]:
        """Per compared field: the pairs (positions) whose two values are both there and differ
        (beyond the tolerance, for numbers). Validity plays no part yet, so a run compares the
        pairs while Great Expectations validates (api._judge); attribute_mismatches then leaves
        out the values found invalid."""
        pairs = match.pairs
        asset_type = match.asset_type
        differences: dict[str, np.ndarray] = {}
        if pairs.empty:
            return differences
        pms_fields = self._mapped_fields("pms", asset_type)
        mkt_fields = self._mapped_fields("marketing", asset_type)
        for field in COMPARED_FIELDS:
            if field == "parent":
                if not (
                    self._has_parent("pms", asset_type)
                    and self._has_parent("marketing", asset_type)
                ):
                    continue
            elif field not in pms_fields or field not in mkt_fields:
                continue
            # Names compare by their keys, and a name is there where its key is: the names'
            # own text is not taken for half a million pairs.
            column = "name_key" if field == "name" else field
            left, right = pairs[_pair_column(column, "pms")], pairs[_pair_column(column, "mkt")]
            comparable = left.notna() & right.notna()
            if field in ("voltage_kv", "capacity_kva"):
                tolerance = self.settings.tolerance.get(field, 0.0)
                differs = (
                    left.astype("float64") - right.astype("float64")
                ).abs() > tolerance + 1e-9
            else:
                differs = left != right
            differences[field] = np.flatnonzero(comparable & differs.fillna(False))
        return differences

    def attribute_mismatches(
        self,
        match: AssetMatch,
        invalid: dict[tuple[str, str], pd.DataFrame],
        differences: dict[str, np.ndarray] | None = None,
    ) -> pd.DataFrame:
        """ATTR_MISMATCH: a finding per pair and compared field whose two values differ, unless
        validation found either value invalid (INVALID_VALUE reports it instead).

        differences: pair_differences(match), where the caller has it already."""
        asset_type = match.asset_type
        if differences is None:
            differences = self.pair_differences(match)
        bad_pms = _invalid_pairs(invalid[("pms", asset_type)])
        bad_mkt = _invalid_pairs(invalid[("marketing", asset_type)])
        out = []
        for field, differing in differences.items():
            values = [_pair_column(field, "pms"), _pair_column(field, "mkt")]
            shown = ["source_id_pms", "source_id_mkt", "name_pms", "org_code_pms"]
            if field == "parent":
                shown.append("parent_source_id_mkt")
            hit = match.pairs.frame(
                ["row_pms", "row_mkt", *dict.fromkeys([*values, *shown])], differing
            )
            hit = hit[
                ~_flagged(hit["row_pms"], field, bad_pms)
                & ~_flagged(hit["row_mkt"], field, bad_mkt)
            ]
            if hit.empty:
                continue
            pms_value, mkt_value = as_text(hit[values[0]]), as_text(hit[values[1]])
            if field == "parent":
                detail = (
                    "PMS parent "
                    + pms_value
                    + "; marketing parent "
                    + hit["parent_source_id_mkt"].astype("str")
                    + " links to PMS "
                    + mkt_value
                )
            else:
                detail = (
                    f"{field}: PMS " + pms_value.fillna("") + " ≠ marketing " + mkt_value.fillna("")
                )
            out.append(
                findings.build(
                    "ATTR_MISMATCH",
                    asset_type,
                    "pair",
                    hit.index,
                    pms_id=hit["source_id_pms"],
                    marketing_id=hit["source_id_mkt"],
                    asset_name=hit["name_pms"],
                    org_code=hit["org_code_pms"],
                    field=field,
                    pms_value=pms_value,
                    marketing_value=mkt_value,
                    detail=detail,
                )
            )
        return pd.concat(out, ignore_index=True) if out else findings.empty()

    # -- ARCHIVE_OVERDUE, ARCHIVE_PENDING, ARCHIVE_LATE ------------------------------------

    def timeliness(
        self, match: AssetMatch, invalid: dict[tuple[str, str], pd.DataFrame]
    ) -> tuple[list[pd.DataFrame], pd.Series, pd.DataFrame]:
        """ARCHIVE_LATE findings, each judged asset's ARCHIVE_OVERDUE deadline, and the judged
        assets not in marketing (deadline_findings turns them into findings as of as_of)."""
        asset_type = match.asset_type
        pms = match.pms
        bad_dates = _invalid_pairs(invalid[("pms", asset_type)])
        judged = (
            ~pms["duplicate_id"]
            & (pms["status"] == "in_service")
            & pms["commissioned_on"].notna()
            & ~_flagged(pd.Series(pms.index, index=pms.index), "commissioned_on", bad_dates)
        )
        if self.settings.timeliness_since is not None:
            judged &= pms["commissioned_on"] >= pd.Timestamp(self.settings.timeliness_since)
        # Dates only: the text of a finding is taken for the few assets it is about.
        subjects = pms.loc[judged, ["commissioned_on", "recorded_at", "linked"]]
        n_due = self.settings.rules["ARCHIVE_OVERDUE"].deadline_working_days
        due = self.calendar.deadlines(subjects["commissioned_on"], n_due)
        due = pd.to_datetime(due).astype("datetime64[us]")
        unlinked = subjects.index[~subjects["linked"]]
        unarchived = pms.loc[unlinked, ["source_id", "name", "org_code", "commissioned_on"]].assign(
            due=due[unlinked]
        )
        late = []
        if self.settings.enabled("ARCHIVE_LATE"):
            late = self._late(match, subjects, judged.to_numpy())
        return late, due, unarchived

    def deadline_findings(self, asset_type: str, unarchived: pd.DataFrame) -> list[pd.DataFrame]:
        """ARCHIVE_OVERDUE and ARCHIVE_PENDING as of as_of, for assets not in marketing."""
        out: list[pd.DataFrame] = []
        n_due = self.settings.rules["ARCHIVE_OVERDUE"].deadline_working_days
        due = unarchived["due"]
        between = self.calendar.working_days_between
        for rule, unarchived_now, count, wording in (
            (
                "ARCHIVE_OVERDUE",
                unarchived[due < self.as_of_ts],
                lambda day: between(day, self.as_of),
                (", not in marketing; ", " working days overdue"),
            ),
            (
                "ARCHIVE_PENDING",
                unarchived[due >= self.as_of_ts],
                lambda day: between(self.as_of, day),
                (", not in marketing yet; ", " working days left"),
            ),
        ):
            if not self.settings.enabled(rule) or unarchived_now.empty:
                continue
            days = [count(d.date()) for d in unarchived_now["due"]]
            out.append(
                findings.build(
                    rule,
                    asset_type,
                    "pms",
                    unarchived_now.index,
                    pms_id=unarchived_now["source_id"],
                    asset_name=unarchived_now["name"],
                    org_code=unarchived_now["org_code"],
                    detail=_due_text(
                        unarchived_now["commissioned_on"], unarchived_now["due"], n_due
                    )
                    + wording[0]
                    + pd.Series(days, index=unarchived_now.index).astype("str")
                    + wording[1],
                )
            )
        return out

    def _late(
        self, match: AssetMatch, subjects: pd.DataFrame, judged: np.ndarray
    ) -> list[pd.DataFrame]:
        """ARCHIVE_LATE findings of the `subjects`: the PMS records `judged` marks."""
        asset_type = match.asset_type
        n_late = self.settings.rules["ARCHIVE_LATE"].deadline_working_days
        deadline = pd.to_datetime(
            self.calendar.deadlines(subjects["commissioned_on"], n_late)
        ).astype("datetime64[us]")
        out = []
        recorded = local_day(subjects["recorded_at"])
        late_rows = subjects.index[recorded > deadline]
        late_pms = match.pms.loc[late_rows, ["source_id", "name", "org_code", "commissioned_on"]]
        if len(late_pms):
            out.append(
                findings.build(
                    "ARCHIVE_LATE",
                    asset_type,
                    "pms",
                    late_pms.index,
                    pms_id=late_pms["source_id"],
                    asset_name=late_pms["name"],
                    org_code=late_pms["org_code"],
                    field="pms",
                    pms_value=as_text(recorded[late_pms.index]),
                    detail=_due_text(late_pms["commissioned_on"], deadline[late_pms.index], n_late)
                    + "; recorded in PMS on "
                    + as_text(recorded[late_pms.index]),
                )
            )
        # The pairs' times first, the text of a finding only for the few pairs late: copying
        # half a million pairs' ids and names to find a handful costs more than the judging.
        # By position: each PMS record's deadline in an array, looked up by the pairs' rows.
        pms_rows = match.pairs.rows("pms")
        subject_pairs = np.flatnonzero(judged[pms_rows])
        by_row = np.full(len(judged), np.datetime64("NaT"), dtype=deadline.dtype)
        by_row[judged] = deadline.to_numpy()
        timed = match.pairs.frame(["recorded_at_mkt"], subject_pairs)
        if len(timed):
            pair_deadline = pd.Series(by_row[pms_rows[subject_pairs]], index=timed.index)
            mkt_recorded = local_day(timed["recorded_at_mkt"])
            shown = [
                "source_id_pms",
                "source_id_mkt",
                "name_pms",
                "org_code_pms",
                "commissioned_on_pms",
            ]
            late = match.pairs.frame(shown, timed.index[mkt_recorded > pair_deadline].to_numpy())
            if len(late):
                out.append(
                    findings.build(
                        "ARCHIVE_LATE",
                        asset_type,
                        "marketing",
                        late.index,
                        pms_id=late["source_id_pms"],
                        marketing_id=late["source_id_mkt"],
                        asset_name=late["name_pms"],
                        org_code=late["org_code_pms"],
                        field="marketing",
                        marketing_value=as_text(mkt_recorded[late.index]),
                        detail=_due_text(
                            late["commissioned_on_pms"], pair_deadline[late.index], n_late
                        )
                        + "; recorded in marketing on "
                        + as_text(mkt_recorded[late.index]),
                    )
                )
        return out


def _similarities(key: str, others: pd.Series, keep: int) -> list[float]:
    """difflib's ratio of `key` to each of `others` (text), except where a name cannot be among
    the `keep` most similar: -1 there (never shown). Thousands of PMS names share an org and
    voltage. Each name's upper bound, difflib's quick_ratio (twice the characters both names
    hold, over their lengths), is counted for all of them at once in Arrow, one character of
    `key` at a time; the ratio itself is then asked best bound first, only until no name left
    can reach the `keep` best ratios."""
    import pyarrow.compute as pc

    text = arrow_text(others)
    shared = np.zeros(len(text), dtype=np.int64)
    for character, count in Counter(key).items():
        held = pc.count_substring(text, character).to_numpy(zero_copy_only=False)
        shared += np.minimum(held, count)
    lengths = pc.utf8_length(text).to_numpy(zero_copy_only=False) + len(key)
    bounds = np.where(lengths > 0, 2.0 * shared / np.maximum(lengths, 1), 1.0)
    matcher = difflib.SequenceMatcher(None, key)
    best: list[float] = []  # a min-heap of the `keep` best ratios so far
    scores = np.full(len(text), -1.0)
    for position in np.argsort(-bounds, kind="stable"):
        if len(best) == keep and bounds[position] < best[0]:
            break  # this bound and every one after it are below the `keep` best ratios
        matcher.set_seq2(text[position].as_py())
        score = matcher.ratio()
        scores[position] = score
        if len(best) < keep:
            heapq.heappush(best, score)
        elif score > best[0]:
            heapq.heapreplace(best, score)
    return scores.tolist()


def _due_text(commissioned: pd.Series, deadline: pd.Series, n: int) -> pd.Series:
    return (
        "commissioned "
        + as_text(commissioned)
        + ", deadline "
        + as_text(deadline)
        + f" ({n} working days)"
    )


def _invalid_pairs(failures: pd.DataFrame) -> dict[str, pd.Index]:
    """field -> the row labels whose value of that field failed validation."""
    return {field: pd.Index(group["row"]) for field, group in failures.groupby("field")}


def _pair_column(field: str, side: str) -> str:
    """The pair column holding a compared field's value of one side ("pms" or "mkt")."""
    return f"{'parent_pms_id' if field == 'parent' else field}_{side}"


def _flagged(rows: pd.Series, field: str, bad: dict[str, pd.Index]) -> pd.Series:
    """True where the record at that row label has an invalid `field`."""
    if field not in bad:
        return pd.Series(False, index=rows.index)
    return rows.isin(bad[field])
