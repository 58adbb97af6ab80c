"""The rows of the first version of a new file, written in one statement on PostgreSQL.

Ingesting a new name writes five rows (``file``, ``diskfile``, ``header``, ``fulltextheader``,
``diskfilereport``), each depending on the id of the one before: through the ORM that is five
round trips. On PostgreSQL data-modifying CTEs chain them in one statement: the ``file``
insert (``ON CONFLICT DO NOTHING``) feeds the ``diskfile`` insert by ``INSERT ... SELECT``, so a
name that already exists inserts nothing at all, and the caller takes the ordinary path.

A queue worker's ingest goes one step further (:func:`write_first_version_completing`): the
same statement, in autocommit, also adds the fan-out's queue entries and completes the entry
being worked on, that completion fenced as the queue's own and gated on the version having
been written. A new file then costs one write round trip and no transaction.

Rows are given as ORM objects, and their values taken as a flush would: attributes set
explicitly (None included) as they are, others from the column's default, or left to the
server's default. Each value is a bound parameter cast to its column's type (``INSERT ...
SELECT`` gives parameters no type of their own); strings are cast to unbounded ``VARCHAR`` so an
over-long value still fails as it would through the ORM rather than being cut.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    String,
    Table,
    bindparam,
    cast,
    func,
    insert,
    inspect,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.schema import Column
from sqlalchemy.sql.selectable import CTE

from fits_storage.db.overlapped import overlapped
from fits_storage.db.positional import Positional, execute_positional, positional
from fits_storage.ingest.present import (
    PRESENT_COLUMNS,
    PresentVersion,
    file_name_sql,
    present_query,
    version_of,
)
from fits_storage.orm import Base, DiskFile, File
from fits_storage.queues import Entry, Queue, RunTimeExceeded, Worker
from fits_storage.queues import statements as sql

_OMIT = object()  # left to the server's default


def _row_values(row: Base, skip: tuple[str, ...]) -> dict[Column[Any], Any]:
    """Column -> value of ``row``'s insert as the ORM would write it: a Python value, a SQL
    expression, or ``_OMIT``."""
    state = inspect(row)
    given = state.dict
    values: dict[Column[Any], Any] = {}
    for key, column, call, default in _insert_plan(state.mapper, skip):
        if key in given:
            values[column] = given[key]
        else:
            values[column] = default(None) if call else default
    return values


# (attribute key, column, whether the default is called, the default or what makes it)
_Planned = tuple[str, Column[Any], bool, Any]


@functools.cache
def _insert_plan(mapper: Mapper[Any], skip: tuple[str, ...]) -> tuple[_Planned, ...]:
    """What each column an insert of ``mapper``'s rows writes takes when a row leaves it unset:
    worked out once, not for every row of every file (a header row has some 70 columns)."""
    plan: list[_Planned] = []
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        if not isinstance(column, Column) or column.name in skip:
            continue
        default = column.default
        if default is not None and default.is_callable:
            plan.append((attr.key, column, True, default.arg))  # type: ignore[attr-defined]
        elif default is not None and (default.is_scalar or default.is_clause_element):
            plan.append((attr.key, column, False, default.arg))  # type: ignore[attr-defined]
        elif column.server_default is not None or column.primary_key:
            plan.append((attr.key, column, False, _OMIT))
        else:
            plan.append((attr.key, column, False, None))
    return tuple(plan)


def _typed(column: Column[Any], parameter: BindParameter[Any]) -> ColumnElement[Any]:
    kind = String() if isinstance(column.type, String) else column.type
    return cast(parameter, kind)


def _statement(
    version: dict[Column[Any], ColumnElement[Any]],
    dependents: list[tuple[Table, dict[Column[Any], ColumnElement[Any]]]],
    name: ColumnElement[Any],
    completes: CompletionShape | None = None,
) -> Select[Any]:
    """The chain of inserts, values given as SQL; with ``completes``, also the completion of
    a queue entry and the entries added with it (:func:`_completing`)."""
    new_file = (
        postgresql.insert(File)
        .values(name=name)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(File.id)
        .cte("new_file")
    )
    inserted = (
        insert(DiskFile)
        .from_select(
            ["file_id", *(c.name for c in version)], select(new_file.c.id, *version.values())
        )
        .returning(DiskFile.id, DiskFile.file_id)
        .cte("version")
    )
    others = [
        insert(table)
        .from_select(
            ["diskfile_id", *(c.name for c in values)], select(inserted.c.id, *values.values())
        )
        .cte(f"dependent_{index}")
        for index, (table, values) in enumerate(dependents)
    ]
    if completes is None:
        return select(inserted.c.file_id, inserted.c.id).add_cte(*others)
    return _completing(inserted, others, completes)


def _completing(inserted: CTE, others: list[CTE], shape: CompletionShape) -> Select[Any]:
    """The inserts, the fenced completion of the entry (only if the version was written: a
    name that exists completes nothing, and the caller takes the ordinary path), the entries
    added (``a<index>_<column>``, one per version row) and a wake-up of their workers."""
    table, key, adds, claims = shape
    written = select(literal_column("1")).select_from(inserted).exists()
    done, cleared = sql.finish_if(table, key, written)
    added = [
        sql.entry_from(add_table, columns, f"a{index}_", inserted).cte(f"added_{index}")
        for index, (add_table, columns) in enumerate(adds)
    ]
    finished = select(func.count()).select_from(done).scalar_subquery()
    empty = literal_column("''")
    wake = [func.pg_notify(bindparam(f"a{index}__channel"), empty) for index in range(len(adds))]
    columns = [inserted.c.file_id, inserted.c.id, finished.label("finished"), *wake]
    if claims is None:
        return select(*columns).add_cte(*others, cleared, *added)
    held = select(literal_column("1")).select_from(done).exists()
    claimed = sql.claim_if(table, claims, held)
    # the present version of the leased entry's file, read in the same statement: the next
    # ingest needs no read of its own (the statement's snapshot: see ``Written``)
    present = present_query(file_name_sql(claimed.c.filename)).lateral("present")
    # and the entry after it, which the worker may read while its next write runs
    after = sql.next_waiting(table, claims, claimed.c.id).lateral("after")
    return (
        select(
            *columns,
            *(claimed.c[name] for name in sql.claimed_columns(table)),
            *present.c,
            *after.c,
        )
        .select_from(
            inserted.outerjoin(claimed, true()).outerjoin(present, true()).outerjoin(after, true())
        )
        .add_cte(*others, cleared, *added)
    )


@functools.cache
def _prepared(tables: tuple[Table, ...], completes: CompletionShape | None = None) -> Select[Any]:
    """The statement for plain values, built once per process: parameters named
    ``v_<column>`` (the version) and ``d<index>_<column>`` (the dependents)."""
    version = {
        c: _typed(c, bindparam(f"v_{c.name}", type_=c.type))
        for c in DiskFile.__table__.columns
        if c.name not in _VERSION_SKIP
    }
    dependents = [
        (
            table,
            {
                c: _typed(c, bindparam(f"d{i}_{c.name}", type_=c.type))
                for c in table.columns
                if c.name not in _DEPENDENT_SKIP
            },
        )
        for i, table in enumerate(tables)
    ]
    return _statement(version, dependents, bindparam("name", type_=File.name.type), completes)


@functools.cache
def _positional(tables: tuple[Table, ...], completes: CompletionShape | None = None) -> Positional:
    """:func:`_prepared` in ``$n`` form. Run through SQLAlchemy, a statement of some 70
    parameters costs more client time than the insert itself (its cache key is computed from
    the whole tree on every execution, each parameter processed, and psycopg splits the long
    query again each time): about 2 ms a file. The values are plain Python values the driver
    adapts itself, cast in the SQL."""
    return positional(_prepared(tables, completes))


_VERSION_SKIP = ("id", "file_id")
_DEPENDENT_SKIP = ("id", "diskfile_id")


def _plain(values: dict[Column[Any], Any]) -> bool:
    return not any(v is _OMIT or isinstance(v, ClauseElement) for v in values.values())


def _as_sql(values: dict[Column[Any], Any]) -> dict[Column[Any], ColumnElement[Any]]:
    return {
        c: v if isinstance(v, ClauseElement) else _typed(c, bindparam(None, v, type_=c.type))
        for c, v in values.items()
        if v is not _OMIT
    }


# (queue table, its key columns, ((table, columns) of each entry added with the completion),
# the queue's exclusive columns when the next entry is claimed in the same statement, or None)
CompletionShape = tuple[
    Table, tuple[str, ...], tuple[tuple[Table, tuple[str, ...]], ...], tuple[str, ...] | None
]


@dataclass(frozen=True)
class Completion:
    """A claimed queue entry to complete in the statement that writes a new name's rows, the
    entries to add with them (``queue``, its columns as ``Queue.entry_values`` gives) and,
    with ``claim_for``, the next entry to lease to that worker once this one is complete."""

    queue: Queue
    entry: Entry
    adds: tuple[tuple[Queue, dict[str, Any]], ...] = ()
    claim_for: Worker | None = None

    @property
    def shape(self) -> CompletionShape:
        adds = tuple((queue.table, tuple(values)) for queue, values in self.adds)
        claims = self.queue.exclusive if self.claim_for is not None else None
        return self.queue.table, self.queue.key, adds, claims

    def params(self) -> dict[str, Any]:
        entry = self.entry
        params = {
            "fence_id": entry.id,
            "fence_worker": entry.worker,
            "fence_attempts": entry.attempts,
            **{f"key_{column}": entry[column] for column in self.queue.key},
        }
        for index, (queue, values) in enumerate(self.adds):
            params |= {f"a{index}_{column}": value for column, value in values.items()}
            params[f"a{index}__channel"] = queue.channel
        if self.claim_for is not None:
            params |= self.queue.lease_params(self.claim_for)
        return params


class Waiting(NamedTuple):
    """A waiting queue entry, named, not leased."""

    id: int
    filename: str
    path: str


@dataclass(frozen=True)
class Written:
    file_id: int
    diskfile_id: int
    completed: bool  # the entry completed in the same statement
    claimed: Entry | None = None  # the next entry, leased in the same statement
    # The present version of ``claimed``'s file, as the statement's snapshot saw it: that
    # snapshot does not hold the rows the statement itself wrote, so it is stale if
    # ``claimed`` names the same file as the rows written.
    claimed_present: PresentVersion | None = None
    # The entry a claim would lease after ``claimed``, as that snapshot saw it (not leased).
    after: Waiting | None = None


def _values_of(
    diskfile: DiskFile, dependents: list[Base]
) -> tuple[dict[Column[Any], Any], list[tuple[Table, dict[Column[Any], Any]]]]:
    version = _row_values(diskfile, _VERSION_SKIP)
    rows = [(inspect(r).mapper.local_table, _row_values(r, _DEPENDENT_SKIP)) for r in dependents]
    return version, rows


def _params(
    name: str, version: dict[Column[Any], Any], rows: list[tuple[Table, dict[Column[Any], Any]]]
) -> dict[str, Any]:
    params = {"name": name} | {f"v_{c.name}": v for c, v in version.items()}
    for index, (_, values) in enumerate(rows):
        params |= {f"d{index}_{c.name}": v for c, v in values.items()}
    return params


def write_first_version_completing(
    session: Session,
    name: str,
    diskfile: DiskFile,
    dependents: list[Base],
    done: Completion,
    meanwhile: Callable[[], object] | None = None,
) -> Written | None:
    """:func:`insert_first_version` and the completion of ``done.entry`` (with its added
    entries) in one autocommit statement: no BEGIN, no separate completion, no COMMIT. None,
    with nothing written or completed, when ``name`` exists or a value is not plain (the
    caller then takes the ordinary, transactional path). ``session`` must have no transaction
    open. If the lease was lost meanwhile the rows stand (``completed`` False): another
    ingest of the file finds them unchanged. ``meanwhile``: work for this thread while the
    statement runs (:func:`~fits_storage.db.overlapped.overlapped`). PostgreSQL only."""
    version, rows = _values_of(diskfile, dependents)
    if not (_plain(version) and all(_plain(values) for _, values in rows)):
        return None
    connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    tables = tuple(table for table, _ in rows)
    values = _params(name, version, rows)
    try:
        row = _write(connection, tables, values, done, meanwhile)
    except IntegrityError:
        if done.claim_for is None:
            raise
        # Most likely the claim met the unique in-progress index (another worker leased an
        # entry of the same file at this very moment): nothing was written; write without it.
        done = replace(done, claim_for=None)
        row = _write(connection, tables, values, done)
    session.commit()  # ends the session's hold on the autocommit connection
    if row is None:
        return None
    claimed, present, after = _claimed(done, row)
    return Written(row[0], row[1], bool(row[2]), claimed, present, after)


def _write(
    connection: Connection,
    tables: tuple[Table, ...],
    values: dict[str, Any],
    done: Completion,
    meanwhile: Callable[[], object] | None = None,
) -> Sequence[Any] | None:
    statement, params = _positional(tables, done.shape), values | done.params()
    if meanwhile is None:
        return execute_positional(connection, statement, params)
    driver = connection.connection.driver_connection
    # What runs meanwhile (reading the next file ahead) is optional: a run-time limit that
    # interrupts it once the statement has succeeded leaves the written rows and completion
    # standing, rather than failing an entry that is complete.
    return overlapped(
        lambda: execute_positional(connection, statement, params),
        meanwhile,
        cancel=getattr(driver, "cancel_safe", None) or driver.cancel,
        spare=(RunTimeExceeded,),
    )


def _claimed(
    done: Completion, row: Sequence[Any]
) -> tuple[Entry | None, PresentVersion | None, Waiting | None]:
    """The entry the statement leased, its file's present version and the entry after it:
    their columns end the row, in that order (all NULL where there is none)."""
    if done.claim_for is None:
        return None, None, None
    names = sql.claimed_columns(done.queue.table)
    after_at = len(row) - len(Waiting._fields)
    present_at = after_at - PRESENT_COLUMNS
    leased = dict(zip(names, row[present_at - len(names) : present_at], strict=True))
    if leased["id"] is None:
        return None, None, None
    after = Waiting(*row[after_at:]) if row[after_at] is not None else None
    entry = done.queue.claimed_entry(leased, done.claim_for)
    return entry, version_of(row[present_at:after_at]), after


def insert_first_version(
    session: Session, name: str, diskfile: DiskFile, dependents: list[Base]
) -> tuple[int, int] | None:
    """(file id, diskfile id) of a new ``name`` with its first version ``diskfile`` and the
    rows that hang on it (each with a ``diskfile_id`` column), all in one statement; None,
    with nothing written, when ``name`` already exists. PostgreSQL only.

    Plain values (the usual case) use a statement built once per process; a row with a SQL
    expression or a server default builds its own."""
    version, rows = _values_of(diskfile, dependents)
    if _plain(version) and all(_plain(values) for _, values in rows):
        statement = _positional(tuple(table for table, _ in rows))
        found = execute_positional(session.connection(), statement, _params(name, version, rows))
    else:
        statement = _statement(
            _as_sql(version),
            [(table, _as_sql(values)) for table, values in rows],
            bindparam(None, name, type_=File.name.type),
        )
        found = session.execute(statement).first()
    return (found[0], found[1]) if found is not None else None
