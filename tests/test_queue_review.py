"""The status page's reading of a queue (capped counts, lists) and the staff actions, on SQLite
and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.orm import PreviewQueue
from fits_storage.queues import Worker, get_queue
from fits_storage.queues.engine import COUNT_CAP
from fits_storage.queues.review import (
    get_entry,
    listed,
    remove_failed,
    retry_all_failed,
    retry_failed,
)


def fail_some(session: Session, config: Config, names: list[str]) -> list[int]:
    """Add, claim and fail each file, one after the other; their entries' ids in that order."""
    queue = get_queue("preview", config)
    ids = []
    for name in names:
        queue.add(session, name)
        entry = queue.claim(session, Worker("w"))
        assert entry is not None and entry.filename == name
        queue.fail(session, entry, f"broken {name}", "Traceback: line 1\nValueError")
        ids.append(entry.id)
    session.commit()
    return ids


def test_counts_lists_and_traceback(session: Session, config: Config) -> None:
    queue = get_queue("preview", config)
    ids = fail_some(session, config, ["N20250101S0001.fits", "N20250101S0002.fits"])
    queue.add_many(session, [{"filename": f"N20250102S{i:04d}.fits"} for i in range(5)])
    held = queue.claim(session, Worker("busy", host="h1"))
    session.commit()
    counts = queue.counts(session)
    assert (counts.waiting, counts.in_progress, counts.failed) == (4, 1, 2)
    assert counts.estimated == ()
    shown = listed(queue, session, rows=3)
    assert [e["filename"] for e in shown["waiting"]] == [
        f"N20250102S{i:04d}.fits" for i in (3, 2, 1)
    ]
    assert [e["id"] for e in shown["failed"]] == ids[::-1]
    assert "traceback" not in shown["failed"][0]
    [busy] = shown["in_progress"]
    assert (busy["worker"], busy["host"], busy["id"]) == ("busy", "h1", held.id)
    assert busy["claimed_at"] is not None and busy["heartbeat"] is not None
    entry = get_entry(queue, session, ids[0])
    assert entry["error"] == "broken N20250101S0001.fits" and "ValueError" in entry["traceback"]


def test_counts_above_the_cap_are_flagged_estimates(session: Session, config: Config) -> None:
    queue = get_queue("preview", config)
    queue.add_many(session, [{"filename": f"f{i}.fits"} for i in range(COUNT_CAP + 50)])
    session.execute(update(PreviewQueue).where(PreviewQueue.id % 2 == 0).values(status="failed"))
    session.execute(
        text("ANALYZE") if session.bind.dialect.name == "postgresql" else text("select 1")
    )
    session.commit()
    counts = queue.counts(session)
    assert counts.estimated == ()  # about 5,025 of each: exact
    queue.add_many(session, [{"filename": f"g{i}.fits"} for i in range(COUNT_CAP)])
    session.commit()
    counts = queue.counts(session)
    assert counts.estimated == ("waiting",)
    assert counts.waiting >= COUNT_CAP and counts.failed == (COUNT_CAP + 50) // 2


def test_retry_remove_and_retry_all(session: Session, config: Config) -> None:
    queue = get_queue("preview", config)
    first, second, third = fail_some(session, config, ["a.fits", "b.fits", "c.fits"])
    assert retry_failed(queue, session, first)
    assert not retry_failed(queue, session, first)  # already waiting: nothing to retry
    assert get_entry(queue, session, first)["status"] == "waiting"
    assert get_entry(queue, session, first)["attempts"] == 0
    assert remove_failed(queue, session, second)
    assert not remove_failed(queue, session, second)
    assert get_entry(queue, session, second) is None
    queue.add(session, "c.fits")  # a failed file that is also waiting: the retry settles it
    session.commit()
    assert retry_failed(queue, session, third)
    assert get_entry(queue, session, third) is None
    fail_some(session, config, ["d.fits"])
    fail_some(session, config, ["d.fits"])  # twice failed: one waiting entry comes of it
    fail_some(session, config, ["e.fits"])
    queue.add(session, "e.fits")
    session.commit()
    assert queue.counts(session).failed == 3
    assert retry_all_failed(queue, session) == 3
    session.commit()
    counts = queue.counts(session)
    assert (counts.waiting, counts.failed) == (4, 0)  # a, c, d, e


def test_count_text_says_when_a_count_is_an_estimate() -> None:
    from fits_storage.web.queuestatus import count_text

    assert count_text(1234, estimated=False) == "1,234"
    assert count_text(COUNT_CAP, estimated=True) == "≥10,000"
    assert count_text(1_234_567, estimated=True) == "~1.2M"
    assert count_text(2_000_000, estimated=True) == "~2M"
    assert count_text(45_300, estimated=True) == "~45.3k"
