"""Which database errors mean "the database is lost" and which belong to the statement.

The difference decides what a worker does. A lost database (server gone, connection cut, SQLite
busy beyond its timeout) says nothing about the entry in hand: the worker gives the entry back
and waits for the database. Every other error (a statement timeout, a lock timeout, a deadlock,
a serialization failure, a missing table, a constraint) is raised by what the work asked for, so
it is the entry's failure: retried with backoff, counted, then failed with its traceback. Taking
those for "database lost" made a poison entry loop for ever with its attempts given back.
"""

from __future__ import annotations

import importlib
import sqlite3
from functools import cache

from sqlalchemy.exc import DBAPIError, InterfaceError

# SQLSTATE class 08 (connection exception) and the server shutting the session down.
_LOST_PREFIX = "08"
_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin shutdown, crash, cannot connect now
_SQLITE_LOST = ("database is locked", "database is busy", "unable to open database file")


def is_database_lost(exc: BaseException) -> bool:
    """True if ``exc`` means the connection or the server is gone, not that a statement failed."""
    orig: BaseException = exc
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        if isinstance(exc, InterfaceError):
            return True  # a closed connection or cursor: never the statement's fault
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state:
        return state.startswith(_LOST_PREFIX) or state in _LOST_STATES
    if isinstance(orig, sqlite3.Error):
        message = str(orig).lower()
        return isinstance(orig, sqlite3.OperationalError) and message.startswith(_SQLITE_LOST)
    # A PostgreSQL driver's error without a SQLSTATE never came from the server: the
    # connection failed (refused, closed, "server closed the connection unexpectedly").
    return isinstance(orig, _pg_connection_errors())


@cache
def _pg_connection_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for name in ("psycopg", "psycopg2"):
        try:
            driver = importlib.import_module(name)
        except ImportError:
            continue
        found += [driver.OperationalError, driver.InterfaceError]
    return tuple(found)
