"""Storing and reading the calibration cache.

A frame's rows are replaced together with its stamp, in the caller's transaction (the queue
entry's), so a reader sees the old answer or the new one, never a mix. A cached answer is
fresh when it was computed after the frame's own ingest and after the ingest of every file of
the same instrument within the widest time window of its rules, and every calibration it
names is still the canonical present version; otherwise the API computes the answer on the
spot (and the re-queue after each calibration's ingest brings the cache up to date).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.orm import Session

from fits_storage.cal.associate import Found
from fits_storage.cal.instruments import ruleset_for
from fits_storage.orm import CalCache, CalCacheStamp, DiskFile, Header

RECENT_LIMIT = 1000  # files ingested since an answer, past which it is recomputed


def store(
    session: Session, obs_hid: int, answer: Mapping[str, Sequence[Found]], computed: datetime
) -> int:
    """Replace the frame's rows and stamp; returns how many rows were written."""
    session.execute(delete(CalCache).where(CalCache.obs_hid == obs_hid))
    session.execute(delete(CalCacheStamp).where(CalCacheStamp.obs_hid == obs_hid))
    rows = [
        {"obs_hid": obs_hid, "cal_hid": found.id, "caltype": caltype, "rank": rank}
        for caltype, founds in answer.items()
        for rank, found in enumerate(founds)
    ]
    if rows:
        session.execute(insert(CalCache), rows)
    session.add(CalCacheStamp(obs_hid=obs_hid, computed=computed))
    session.flush()
    return len(rows)


def widest_window(instrument: str | None) -> timedelta | None:
    """The widest time window of the instrument's rules; None when one has no window."""
    windows = [rule.window_days for rule in ruleset_for(instrument).rules]
    if any(days is None for days in windows):
        return None
    return timedelta(days=max(windows, default=0))  # type: ignore[type-var]


def cached(session: Session, frame: Found) -> dict[str, list[tuple[int, int]]] | None:
    """The frame's cached answer, ``{caltype: [(rank, cal_hid)…]}``, or None when there is
    none or it is stale."""
    computed = session.scalar(
        select(CalCacheStamp.computed).where(CalCacheStamp.obs_hid == frame.id)
    )
    if computed is None or computed < frame.entrytime:
        return None
    if _ingested_since(session, frame, computed):
        return None
    rows = session.execute(
        select(
            CalCache.caltype,
            CalCache.rank,
            CalCache.cal_hid,
            DiskFile.canonical,
            DiskFile.present,
        )
        .join(Header, Header.id == CalCache.cal_hid)
        .join(DiskFile, DiskFile.id == Header.diskfile_id)
        .where(CalCache.obs_hid == frame.id)
        .order_by(CalCache.caltype, CalCache.rank)
    ).all()
    answer: dict[str, list[tuple[int, int]]] = {}
    for caltype, rank, cal_hid, canonical, present in rows:
        if not (canonical and present):
            return None
        answer.setdefault(caltype, []).append((rank, cal_hid))
    return answer


def _ingested_since(session: Session, frame: Found, computed: datetime) -> bool:
    """Whether a file of the frame's instrument within its rules' widest window was ingested
    after ``computed``. The files ingested since are read first, from the entry-time index
    (few when the answer is recent); past ``RECENT_LIMIT`` of them the answer is treated as
    stale: recomputing costs less than proving it fresh."""
    recent = session.scalars(
        select(DiskFile.id)
        .where(DiskFile.entrytime > computed, DiskFile.canonical)
        .limit(RECENT_LIMIT + 1)
    ).all()
    if not recent:
        return False
    if len(recent) > RECENT_LIMIT:
        return True
    newer = select(Header.id).where(
        Header.diskfile_id.in_(recent), Header.instrument == frame.fields["instrument"]
    )
    window, when = widest_window(frame.fields["instrument"]), frame.fields["ut_datetime"]
    if window is not None and when is not None:
        newer = newer.where(Header.ut_datetime > when - window, Header.ut_datetime < when + window)
    return bool(session.scalar(select(exists(newer))))


def is_stamped(session: Session, obs_hid: int) -> bool:
    return session.scalar(select(exists().where(CalCacheStamp.obs_hid == obs_hid))) or False
