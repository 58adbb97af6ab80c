"""Every statement of the queue protocol, in one place, so the protocol can be reviewed at once.

Each builder takes the queue's table and returns a Core statement with named bind parameters;
builders are cached, so SQLAlchemy's compiled-statement cache is hit on every call.

Fencing: a claim increments ``attempts`` and records ``worker``; every later change to a
claimed entry (complete, fail, retry, release, heartbeat) is conditioned on ``id``, ``status``,
``worker`` and ``attempts`` all still matching, so a worker whose lease expired and whose entry
was handed to another worker can no longer touch it, nor anything else in its name.

Time: every timestamp the protocol writes or compares is the database server's
(``server_now``), so the hosts' own clocks never decide who holds an entry.

Ready and deferred: a waiting entry with ``after`` set is deferred and sits in its own index;
claims read only the ready ones (``after IS NULL``), so a deferred backlog costs a claim
nothing. ``promote_due`` makes deferred entries ready once their time has come.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Delete,
    Dialect,
    Insert,
    Select,
    Table,
    TextClause,
    Update,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.selectable import CTE

from fits_storage.db.clock import server_now
from fits_storage.orm.queues import QueueEntryMixin
from fits_storage.queues.status import Status

CORE_COLUMNS = frozenset(c for c in QueueEntryMixin.__annotations__ if not c.startswith("_"))
# What a claim returns of the core columns: who holds the entry and the fence. The rest
# (timestamps, error, traceback) is for the status page, and a claim need not fetch it.
CLAIMED_CORE = ("id", "filename", "path", "attempts", "worker", "host", "pid")


@cache
def claimed_columns(table: Table) -> tuple[str, ...]:
    """The columns a claim returns: ``CLAIMED_CORE`` and every column of the queue's own."""
    return CLAIMED_CORE + tuple(c.name for c in table.c if c.name not in CORE_COLUMNS)


def _const(value: str | int) -> ColumnElement:
    """A constant written into the SQL text rather than bound.

    The server then sees ``status = 'waiting'`` itself: it can match the partial indexes and
    cache one plan for a prepared statement, instead of planning every execution afresh (a
    bound status costs about 0.3 ms per claim on PostgreSQL).
    """
    return literal_column(f"'{value}'" if isinstance(value, str) else str(int(value)))


def _fence(table: Table):  # type: ignore[no-untyped-def]
    return and_(
        table.c.id == bindparam("fence_id"),
        table.c.status == _const(Status.IN_PROGRESS),
        table.c.worker == bindparam("fence_worker"),
        table.c.attempts == bindparam("fence_attempts"),
    )


@cache
def compiled(statement: ClauseElement, dialect: Dialect) -> str:
    """The statement as the driver's SQL text, for ``exec_driver_sql`` on the hottest path.

    Going past SQLAlchemy's statement cache and parameter processing saves about 40 µs of
    client CPU per entry (a tenth of a busy worker's); it is only for statements whose every
    parameter is a plain value the driver adapts itself, which holds for ``finish_and_claim``.
    """
    compiled = statement.compile(dialect=dialect)
    if any(value is not None for value in compiled.params.values()):
        raise ValueError("a statement run as driver SQL must bind no constants")
    return str(compiled)


@cache
def insert_entries(table: Table, dialect: str, columns: tuple[str, ...]) -> Insert | TextClause:
    """Bulk add; rows that would duplicate a waiting entry are silently dropped by the database.

    ``RETURNING id`` reports only the rows really inserted, so its length is the count of new
    entries. PostgreSQL takes one array per column through ``unnest`` (one statement, one
    round trip for thousands of rows: about seven times faster than multi-row VALUES); SQLite
    takes the rows as an executemany, which SQLAlchemy batches into multi-row statements.
    """
    if dialect != "postgresql":
        return sqlite.insert(table).on_conflict_do_nothing().returning(table.c.id)
    pg = postgresql.dialect()
    names = ", ".join(f'"{name}"' for name in columns)
    arrays = ", ".join(
        f"CAST(:{name} AS {table.c[name].type.compile(dialect=pg)}[])" for name in columns
    )
    return text(
        f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT DO NOTHING RETURNING id"
    )


@cache
def claim_waiting(table: Table, exclusive: tuple[str, ...], skip_locked: bool) -> Update:
    """Take the newest ready waiting entry whose file is not already in progress.

    One statement: the row is chosen, locked (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so
    concurrent claimers pass over each other's rows instead of queueing; SQLite: the whole
    transaction holds the write lock from ``BEGIN IMMEDIATE``) and marked as leased. Two
    PostgreSQL claimers can still pick two entries of one file at the same moment (the
    ``blocked`` test reads a snapshot); the unique in-progress index then refuses the second,
    and the engine looks again.
    """
    candidate = _waiting_candidate(table, exclusive, skip_locked)
    return _lease(table, table.c.id == candidate.scalar_subquery())


def _waiting_candidate(
    table: Table,
    exclusive: tuple[str, ...],
    skip_locked: bool,
    *gates: ColumnElement[bool],
    besides: ColumnElement | None = None,
) -> Select:
    """The id of the next entry to lease (``besides``: an id it must not be)."""
    q = table.alias("q")
    if besides is not None:
        gates = (*gates, q.c.id != besides)
    busy = table.alias("busy")
    blocked = (
        select(_const(1))
        .where(busy.c.status == _const(Status.IN_PROGRESS))
        .where(*(busy.c[col] == q.c[col] for col in exclusive))
        .exists()
    )
    candidate = (
        select(q.c.id)
        .where(*gates)
        .where(q.c.status == _const(Status.WAITING))
        .where(q.c.after.is_(None))
        .where(~blocked)
        .order_by(q.c.sortkey.desc(), q.c.id.desc())
        .limit(_const(1))
    )
    if skip_locked:
        candidate = candidate.with_for_update(skip_locked=True, of=q)
    return candidate


@cache
def claim_stale(table: Table, skip_locked: bool) -> Update:
    """Take over one entry whose worker stopped heartbeating (crashed, killed, cut off)."""
    s = table.alias("s")
    candidate = (
        select(s.c.id)
        .where(s.c.status == _const(Status.IN_PROGRESS))
        .where(s.c.heartbeat < _stale_before())
        .where(s.c.attempts < bindparam("max_attempts"))
        .order_by(s.c.heartbeat)
        .limit(_const(1))
    )
    if skip_locked:
        candidate = candidate.with_for_update(skip_locked=True, of=s)
    return _lease(table, table.c.id == candidate.scalar_subquery())


def _lease(table: Table, where) -> Update:  # type: ignore[no-untyped-def]
    return (
        update(table)
        .where(where)
        .values(
            status=_const(Status.IN_PROGRESS),
            worker=bindparam("worker"),
            host=bindparam("host"),
            pid=bindparam("pid"),
            claimed_at=server_now(),
            heartbeat=server_now(),
            attempts=table.c.attempts + _const(1),
        )
        .returning(*(table.c[name] for name in claimed_columns(table)))
    )


def _stale_before() -> ColumnElement:
    return server_now(bindparam("stale_offset"))  # minus the lease


@cache
def fail_abandoned(table: Table) -> Update:
    """Entries whose workers died holding them ``max_attempts`` times: stop handing them out."""
    return _fail_in_progress(
        table,
        table.c.heartbeat < _stale_before(),
        table.c.attempts >= bindparam("max_attempts"),
    )


@cache
def fail_overrun(table: Table) -> Update:
    """Entries held longer than the queue's maximum run time (a hung work, a FIFO, a dead NFS
    mount): fail them, so their file is free and the rest of the queue flows. The holder's own
    timer normally acts first; this is for a holder that cannot."""
    return _fail_in_progress(table, table.c.claimed_at < server_now(bindparam("overrun_offset")))


def _fail_in_progress(table: Table, *conditions: ColumnElement[bool]) -> Update:
    return (
        update(table)
        .where(table.c.status == _const(Status.IN_PROGRESS), *conditions)
        .values(
            status=_const(Status.FAILED),
            failed_at=server_now(),
            error=bindparam("error"),
            traceback=null(),
        )
    )


@cache
def promote_due(table: Table) -> Update:
    """Deferred entries whose ``after`` has come: make them ready (one index range scan)."""
    return (
        update(table)
        .where(table.c.status == _const(Status.WAITING))
        .where(table.c.after.is_not(None))
        .where(table.c.after <= server_now())
        .values(after=null())
    )


@cache
def defer_alike(table: Table, columns: tuple[str, ...]) -> Update:
    """Defer every waiting entry that shares ``columns`` with the one in hand, in one statement:
    a destination that is down parks its whole backlog instead of deferring it one claim at a
    time (which made the total work grow with the square of the backlog). Each gets the error
    that held them back, so a status page says why they wait."""
    until = server_now(bindparam("delay"))
    return (
        update(table)
        .where(table.c.status == _const(Status.WAITING))
        .where(*(table.c[col] == bindparam(f"alike_{col}") for col in columns))
        .where(or_(table.c.after.is_(None), table.c.after < until))
        .values(after=until, error=bindparam("error"))
    )


@cache
def notify() -> Select:
    """Wake listening workers (PostgreSQL); delivered when the adding transaction commits."""
    return select(func.pg_notify(bindparam("channel"), ""))


@cache
def complete(table: Table) -> Delete:
    return delete(table).where(_fence(table))


@cache
def clear_failures(table: Table, key: tuple[str, ...]) -> Delete:
    """After a success: the file's earlier failures go (run only once the fenced delete hit)."""
    return delete(table).where(_failures(table, key))


def _failures(table: Table, key: tuple[str, ...]) -> ColumnElement[bool]:
    return and_(
        table.c.status == _const(Status.FAILED),
        *(table.c[col] == bindparam(f"key_{col}") for col in key),
    )


def _finished(table: Table, key: tuple[str, ...], *gates: ColumnElement[bool]) -> tuple:  # type: ignore[type-arg]
    """The CTEs of a PostgreSQL success: ``done`` (the fenced delete of the entry, if every one
    of ``gates`` holds) and ``cleared`` (the file's failures, deleted only if ``done`` hit, so a
    completion whose lease was lost changes nothing even in autocommit)."""
    done = delete(table).where(_fence(table), *gates).returning(table.c.id).cte("done")
    held = select(_const(1)).select_from(done).exists()
    cleared = (
        delete(table).where(_failures(table, key)).where(held).returning(table.c.id).cte("cleared")
    )
    return done, cleared, held


@cache
def finish(table: Table, key: tuple[str, ...]) -> Select:
    """PostgreSQL: success in one statement; returns ``finished`` (1, or 0 if the lease was
    lost). SQLite runs ``complete`` and then ``clear_failures`` in its one transaction."""
    done, cleared, _ = _finished(table, key)
    finished = select(func.count()).select_from(done).scalar_subquery()
    touched = select(func.count()).select_from(cleared).scalar_subquery()
    return select(finished.label("finished"), touched.label("cleared"))


def finish_if(table: Table, key: tuple[str, ...], gate: ColumnElement[bool]) -> tuple:  # type: ignore[type-arg]
    """PostgreSQL: the ``done`` and ``cleared`` CTEs of :func:`finish`, ``done`` only if
    ``gate`` holds, for a work that writes its rows and completes its entry in one autocommit
    statement (``ingest/rows.py``): the entry completes only if the rows were written."""
    done, cleared, _ = _finished(table, key, gate)
    return done, cleared


def entry_from(
    table: Table, columns: tuple[str, ...], prefix: str, source: ClauseElement
) -> Insert:
    """PostgreSQL: one entry added for each row of ``source`` (a CTE of the same statement),
    values bound as ``<prefix><column>``; like ``insert_entries``, a duplicate of a waiting
    entry is dropped."""
    values = [cast(bindparam(f"{prefix}{name}"), table.c[name].type) for name in columns]
    return (
        postgresql.insert(table)
        .from_select(list(columns), select(*values).select_from(source))
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )


@cache
def finish_and_claim(table: Table, key: tuple[str, ...], exclusive: tuple[str, ...]) -> Select:
    """PostgreSQL: ``finish`` one entry and, only if that succeeded, ``claim_waiting`` the next.

    One statement, so a busy worker pays one round trip per entry instead of two. It always
    returns one row: ``finished`` (1 if the held entry was removed, 0 if its lease was lost)
    and the claimed entry's columns (all NULL when nothing was claimed). All parts of a
    statement share one snapshot, so the entry being finished still counts as in progress for
    the claim: a re-added entry for the same file waits for the next claim, as it would if the
    claim came a moment earlier.
    """
    done, cleared, held = _finished(table, key)
    claimed = claim_if(table, exclusive, held)
    finished = select(func.count()).select_from(done).scalar_subquery()
    touched = select(func.count()).select_from(cleared).scalar_subquery()
    one = select(_const(1).label("one")).subquery("one")
    return select(finished.label("finished"), touched.label("cleared"), *claimed.c).select_from(
        one.outerjoin(claimed, true())
    )


def claim_if(table: Table, exclusive: tuple[str, ...], gate: ColumnElement[bool]) -> CTE:
    """PostgreSQL: the ``claimed`` CTE of :func:`finish_and_claim`, leasing the next ready entry
    only if ``gate`` holds (the held entry was finished): its columns, or no row. Parameters:
    ``worker``, ``host``, ``pid``."""
    candidate = _waiting_candidate(table, exclusive, True, gate)
    return _lease(table, table.c.id == candidate.scalar_subquery()).cte("claimed")


def next_waiting(table: Table, exclusive: tuple[str, ...], leased: ColumnElement) -> Select:
    """PostgreSQL: the entry a claim would lease after ``leased`` (an entry id leased in the
    same statement, which the statement's snapshot still shows waiting): its ``id``,
    ``filename`` and ``path``, read without a lock. A worker may prepare for that entry while
    its statement runs; another worker may lease it first."""
    candidate = _waiting_candidate(table, exclusive, False, besides=leased)
    return select(table.c.id, table.c.filename, table.c.path).where(
        table.c.id == candidate.scalar_subquery()
    )


@cache
def fail(table: Table) -> Update:
    return (
        update(table)
        .where(_fence(table))
        .values(
            status=_const(Status.FAILED),
            failed_at=server_now(),
            error=bindparam("error"),
            traceback=bindparam("tb"),
        )
    )


@cache
def requeue(table: Table, key: tuple[str, ...], deferred: bool) -> Update:
    """Put a claimed entry back to waiting: deferred by ``delay`` seconds (a retry), or ready at
    once (a release on shutdown).

    Skipped when the file was re-added while in progress: that waiting entry covers it, and a
    second waiting entry is what the unique index forbids.
    """
    other = table.alias("other")
    duplicate = (
        select(_const(1))
        .where(other.c.status == _const(Status.WAITING))
        .where(*(other.c[col] == table.c[col] for col in key))
        .exists()
    )
    return (
        update(table)
        .where(_fence(table))
        .where(~duplicate)
        .values(
            status=_const(Status.WAITING),
            after=server_now(bindparam("delay")) if deferred else null(),
            attempts=bindparam("next_attempts"),
            error=bindparam("error"),
            traceback=bindparam("tb"),
            worker=null(),
            host=null(),
            pid=null(),
            heartbeat=null(),
        )
    )


@cache
def heartbeat(table: Table) -> Update:
    return update(table).where(_fence(table)).values(heartbeat=server_now())


@cache
def counts(table: Table, cap: int) -> Select:
    """The figures a status page shows, in one round trip, each read from a partial index that
    holds only its rows; a count stops at ``cap`` + 1 rows (the caller then estimates), so a
    million failed or waiting rows cost what ten thousand do."""

    def capped(*where: ColumnElement[bool]) -> ColumnElement:
        rows = select(_const(1)).where(*where).limit(_const(cap + 1)).subquery()
        return select(func.count()).select_from(rows).scalar_subquery()

    waiting = table.c.status == _const(Status.WAITING)
    return select(
        capped(waiting).label("waiting"),
        capped(table.c.status == _const(Status.IN_PROGRESS)).label("in_progress"),
        capped(table.c.status == _const(Status.FAILED)).label("failed"),
        capped(waiting, table.c.after.is_not(None)).label("deferred"),
        select(func.min(table.c.added)).where(waiting).scalar_subquery().label("oldest"),
        select(func.min(table.c.after))
        .where(waiting, table.c.after.is_not(None))
        .scalar_subquery()
        .label("next_due"),
    )


@cache
def estimate_rows(table: Table, status: str) -> TextClause:
    """PostgreSQL's planner estimate of a status's rows (``EXPLAIN``: reads statistics, not
    rows), for counts above the cap."""
    return text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table.name} WHERE status = '{status}'")


@cache
def list_entries(table: Table) -> Select:
    return (
        select(table)
        .where(table.c.status == bindparam("status"))
        .order_by(table.c.sortkey.desc(), table.c.id.desc())
        .limit(bindparam("limit"))
    )


# -- the status page: lists and staff actions ---------------------------------------------------

LISTED_CORE = (
    "id", "filename", "path", "sortkey", "status", "added", "after", "attempts", "worker",
    "host", "pid", "claimed_at", "heartbeat", "failed_at", "error",
)  # fmt: skip


def _listed(table: Table) -> list[ColumnElement]:
    """What a status page list shows: everything but the traceback (fetched one at a time)."""
    return [c for c in table.c if c.name in LISTED_CORE or c.name not in CORE_COLUMNS]


@cache
def list_ready(table: Table) -> Select:
    """Ready waiting entries in the order workers take them (the claim index, read backwards)."""
    return (
        select(*_listed(table))
        .where(table.c.status == _const(Status.WAITING), table.c.after.is_(None))
        .order_by(table.c.sortkey.desc(), table.c.id.desc())
        .limit(bindparam("limit"))
    )


@cache
def list_deferred(table: Table) -> Select:
    """Deferred entries, the first due first (the deferred index)."""
    return (
        select(*_listed(table))
        .where(table.c.status == _const(Status.WAITING), table.c.after.is_not(None))
        .order_by(table.c.after)
        .limit(bindparam("limit"))
    )


@cache
def list_failed(table: Table) -> Select:
    """The newest failures first (the ``failed_at`` index, read backwards)."""
    return (
        select(*_listed(table))
        .where(table.c.status == _const(Status.FAILED))
        .order_by(table.c.failed_at.desc(), table.c.id.desc())
        .limit(bindparam("limit"))
    )


@cache
def list_in_progress(table: Table) -> Select:
    return (
        select(*_listed(table))
        .where(table.c.status == _const(Status.IN_PROGRESS))
        .order_by(table.c.claimed_at, table.c.id)
        .limit(bindparam("limit"))
    )


@cache
def get_entry(table: Table) -> Select:
    return select(table).where(table.c.id == bindparam("entry_id"))


def _no_waiting_twin(table: Table, key: tuple[str, ...]) -> ColumnElement[bool]:
    other = table.alias("other")
    return ~(
        select(_const(1))
        .where(other.c.status == _const(Status.WAITING))
        .where(*(other.c[col] == table.c[col] for col in key))
        .exists()
    )


_FRESH = dict(
    status=_const(Status.WAITING),
    after=null(),
    attempts=0,
    worker=null(),
    host=null(),
    pid=null(),
    claimed_at=null(),
    heartbeat=null(),
    failed_at=null(),
    error=null(),
    traceback=null(),
)


@cache
def retry_failed(table: Table, key: tuple[str, ...]) -> Update:
    """A failed entry waits again, as if just added (attempts from 0); skipped when the file
    already has a waiting entry, which then covers it."""
    return (
        update(table)
        .where(table.c.id == bindparam("entry_id"), table.c.status == _const(Status.FAILED))
        .where(_no_waiting_twin(table, key))
        .values(**_FRESH)
    )


@cache
def retry_all_failed(table: Table, key: tuple[str, ...]) -> Update:
    """Every failed file waits again: its newest failure becomes the waiting entry, unless the
    file already has one."""
    newest = table.alias("newest")
    newest_id = (
        select(func.max(newest.c.id))
        .where(newest.c.status == _const(Status.FAILED))
        .where(*(newest.c[col] == table.c[col] for col in key))
        .scalar_subquery()
    )
    return (
        update(table)
        .where(table.c.status == _const(Status.FAILED), table.c.id == newest_id)
        .where(_no_waiting_twin(table, key))
        .values(**_FRESH)
    )


@cache
def drop_covered_failures(table: Table, key: tuple[str, ...], one: bool) -> Delete:
    """Failures of files that now have a waiting entry, which stands for them: the one with
    ``entry_id`` (``one``), or all of them."""
    statement = (
        delete(table)
        .where(table.c.status == _const(Status.FAILED))
        .where(~_no_waiting_twin(table, key))
    )
    return statement.where(table.c.id == bindparam("entry_id")) if one else statement


@cache
def remove_failed(table: Table) -> Delete:
    return delete(table).where(
        table.c.id == bindparam("entry_id"), table.c.status == _const(Status.FAILED)
    )


@cache
def listing(tables: tuple[Table, ...]) -> Select:
    """The four lists above of every table in one round trip. Each row is tagged with its
    table's position (``queue``) and its ``part``; a column one table lacks is NULL in its rows.
    The order within a part is the caller's to restore (a union promises none)."""
    columns: dict[str, ColumnElement] = {}
    for table in tables:
        for column in _listed(table):
            columns.setdefault(column.name, column)
    selects = []
    for position, table in enumerate(tables):
        parts = {
            "ready": list_ready(table),
            "deferred": list_deferred(table),
            "failed": list_failed(table),
            "in_progress": list_in_progress(table),
        }
        for name, statement in parts.items():
            rows = statement.subquery(f"{table.name}_{name}")
            values = [
                rows.c[column] if column in rows.c else cast(null(), typed.type).label(column)
                for column, typed in columns.items()
            ]
            selects.append(
                select(_const(position).label("queue"), _const(name).label("part"), *values)
            )
    return union_all(*selects)  # type: ignore[return-value]
