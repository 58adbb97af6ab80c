"""The database server's clock, as a SQL expression.

Leases are judged by comparing timestamps written by different hosts. If each host wrote its own
clock, a host 90 s ahead would see every other worker's fresh heartbeat as 90 s old and take its
entry. Every timestamp the queue protocol compares is therefore written and read with the one
clock all workers share: the database's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, DateTime
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

# The layout SQLAlchemy stores SQLite DateTime values in, so text comparisons with them hold.
_SQLITE_FORMAT = "'%Y-%m-%d %H:%M:%f000'"


class server_now(FunctionElement[Any]):  # noqa: N801 - reads as the SQL function it stands for
    """The server's time now in naive UTC (the form every timestamp column holds), optionally
    shifted by a number of seconds: ``server_now(bindparam("offset"))``.

    PostgreSQL uses ``statement_timestamp()``: ``now()`` would be the start of the transaction,
    which for a completion riding in a long work's transaction is long past.
    """

    type = DateTime()
    inherit_cache = True
    name = "server_now"


@compiles(server_now, "postgresql")
def _postgresql(element: server_now, compiler: Any, **kw: Any) -> str:
    now = "(statement_timestamp() AT TIME ZONE 'UTC')"
    offset = _offset(element, compiler, **kw)
    return now if offset is None else f"({now} + make_interval(secs => {offset}))"


@compiles(server_now, "sqlite")
def _sqlite(element: server_now, compiler: Any, **kw: Any) -> str:
    offset = _offset(element, compiler, **kw)
    if offset is None:
        return f"strftime({_SQLITE_FORMAT}, 'now')"
    return f"strftime({_SQLITE_FORMAT}, 'now', printf('%+.6f seconds', {offset}))"


def _offset(element: server_now, compiler: Any, **kw: Any) -> str | None:
    clauses: list[ColumnElement[Any]] = list(element.clauses)
    return compiler.process(clauses[0], **kw) if clauses else None
