"""After a calibration is ingested: which frames' answers may change, to be queued again.

For each rule of the calibration's instrument that could select it (its ``kind`` checks pass),
the frames in its time window whose matched fields equal the calibration's are read in one
query; each is then asked, in Python with the same checks, whether its own plan accepts the
calibration, whether it needs that type at all, and whether the calibration would rank among
the ones kept (fewer than ``howmany`` cached, or closer than the farthest). Frames whose
cached answer names any version of the file are queued too: a calibration re-ingested with a
failed QA state must leave their answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fits_storage.cal.associate import Found, base_query, found_by_id, score, to_found
from fits_storage.cal.instruments import applicable, plan_for, ruleset_for
from fits_storage.cal.rules import Plan, Rule
from fits_storage.orm import CalCache, DiskFile, Header

BATCH = 500  # frame ids per IN list


def _within(column: Any, value: Any, tolerance: Any) -> Any:
    """The frames whose tolerance check could pass: a frame with no value skips it."""
    if value is None:
        return column.is_(None)
    return column.is_(None) | ((column > value - tolerance) & (column < value + tolerance))


def _could_select(rule: Rule, cal: Found) -> bool:
    return all(check.test(cal.fields) for check in rule.kind)


def _prefilter(rule: Rule, cal: Found) -> Any:
    """Frames that could take ``cal`` under ``rule``: the SQL half of the test."""
    fields = cal.fields
    statement = base_query().where(Header.id != cal.id)
    if rule.same_instrument:
        statement = statement.where(Header.instrument == fields["instrument"])
    for name in rule.match:
        value = fields[name]
        column = getattr(Header, name)
        statement = statement.where(column.is_(None) if value is None else column == value)
    for name, tolerance in rule.within.items():
        statement = statement.where(_within(getattr(Header, name), fields[name], tolerance))
    if rule.window_days is not None:
        if fields["ut_datetime"] is None:
            return None  # outside every frame's window
        window = timedelta(days=rule.window_days)
        statement = statement.where(
            Header.ut_datetime > fields["ut_datetime"] - window,
            Header.ut_datetime < fields["ut_datetime"] + window,
        )
    return statement


def _would_rank(
    session: Session, caltype: str, taking: list[tuple[Found, Plan]], cal: Found
) -> set[int]:
    """The frames (of ``taking``, which accept the calibration) for which it would be among
    the kept ones, judged on their cached answers (none cached, or one of them gone: the
    answer may change). Two queries, however many frames."""
    cached: dict[int, list[int]] = {frame.id: [] for frame, _plan in taking}
    for start in range(0, len(taking), BATCH):
        ids = [frame.id for frame, _plan in taking[start : start + BATCH]]
        rows = session.execute(
            select(CalCache.obs_hid, CalCache.cal_hid).where(
                CalCache.obs_hid.in_(ids), CalCache.caltype == caltype
            )
        )
        for obs_hid, cal_hid in rows:
            cached[obs_hid].append(cal_hid)
    kept = found_by_id(session, {hid for hids in cached.values() for hid in hids})
    changed = set()
    for frame, plan in taking:
        hids = cached[frame.id]
        if len(hids) < plan.howmany or any(hid not in kept for hid in hids):
            changed.add(frame.id)
        elif score(plan, cal.fields) <= max(score(plan, kept[hid].fields) for hid in hids):
            changed.add(frame.id)
    return changed


def frames_to_requeue(session: Session, cal: Found) -> Iterator[Found]:
    """Each frame (canonical present version) whose answer the calibration may change, once."""
    seen: set[int] = {cal.id}
    ruleset = ruleset_for(cal.fields["instrument"])
    for rule in ruleset.rules:
        if not _could_select(rule, cal):
            continue
        statement = _prefilter(rule, cal)
        if statement is None:
            continue
        taking = []
        for row in session.execute(statement):
            frame = to_found(row)
            if frame.id in seen or rule.caltype not in applicable(frame.fields):
                continue
            plan = plan_for(frame.fields, rule.caltype)
            if plan is None or plan.rule is not rule or plan.failures(cal.fields):
                continue
            taking.append((frame, plan))
        changed = _would_rank(session, rule.caltype, taking, cal)
        for frame, _plan in taking:
            if frame.id in changed and frame.id not in seen:
                seen.add(frame.id)
                yield frame
    versions = (
        select(Header.id)
        .join(DiskFile, DiskFile.id == Header.diskfile_id)
        .where(DiskFile.file_id == cal.file_id)
    )
    holders = select(CalCache.obs_hid).where(CalCache.cal_hid.in_(versions)).distinct()
    held = [hid for hid in session.scalars(holders) if hid not in seen]
    yield from found_by_id(session, held).values()
