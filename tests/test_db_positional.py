"""Statements run with ``$n`` placeholders through psycopg's raw cursor, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    Time,
    bindparam,
    cast,
    event,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from fits_storage.db.engine import make_engine
from fits_storage.db.errors import is_database_lost
from fits_storage.db.positional import execute_positional, positional


@pytest.fixture
def pg_engine(pg_db_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_db_url)
    yield engine
    engine.dispose()


def test_parameters_go_by_name_to_their_places_a_repeated_one_once() -> None:
    statement = positional(
        select(
            cast(bindparam("a"), Integer) - cast(bindparam("b"), Integer),
            cast(bindparam("a"), Integer),
        )
    )
    assert statement.names == ("a", "b")
    assert "$1" in statement.sql and "$2" in statement.sql and "%(" not in statement.sql


def test_a_bound_constant_is_refused() -> None:
    with pytest.raises(ValueError, match="bind no constants"):
        positional(select(bindparam("a", 5, type_=Integer)))


def test_values_are_adapted_by_the_driver(pg_engine: Engine) -> None:
    statement = positional(
        select(
            cast(bindparam("n"), Integer) * literal_column("2"),
            cast(bindparam("s"), String),
            cast(bindparam("t"), DateTime),
        )
    )
    stamp = datetime(2026, 12, 3, 1, 2, 3, 400000)
    with pg_engine.connect() as conn:
        row = execute_positional(conn, statement, {"n": 21, "s": "it's 100%", "t": stamp})
    assert row is not None and tuple(row) == (42, "it's 100%", stamp)


# One parameter of each kind sent as text, cast as ingest casts its values.
KINDS = {
    "i": Integer(),
    "big": BigInteger(),
    "f": Float(),
    "b": Boolean(),
    "ts": DateTime(),
    "tz": DateTime(timezone=True),
    "d": Date(),
    "t": Time(),
    "s": String(),
}
ZONE = timezone(timedelta(hours=-3))
STAMP = datetime(2026, 12, 3, 1, 2, 3, 456789)
CASES = [
    {
        "i": 1,
        "big": 2**40,
        "f": 1.5,
        "b": True,
        "ts": STAMP,
        "tz": STAMP.replace(tzinfo=ZONE),
        "d": date(2026, 12, 3),
        "t": time(1, 2, 3, 456789),
        "s": "it's 100%",
    },
    {
        "i": -40000,
        "big": -5,
        "f": 1e-300,
        "b": False,
        "ts": None,
        "tz": STAMP,
        "d": None,
        "t": time(23, 59, 59),
        "s": "",
    },
    # an int where a float goes; a float where an int goes and a timestamp with a zone where
    # one without goes (both left to the driver: the cast converts them)
    {
        "i": 2.5,
        "big": None,
        "f": 7,
        "b": None,
        "ts": STAMP.replace(tzinfo=ZONE),
        "tz": None,
        "d": date(1, 1, 1),
        "t": None,
        "s": None,
    },
    {
        "i": None,
        "big": 0,
        "f": float("inf"),
        "b": True,
        "ts": STAMP,
        "tz": STAMP,
        "d": date(9999, 12, 31),
        "t": time(0, 0),
        "s": "x",
    },
    *(
        dict.fromkeys(KINDS) | {"i": 0, "big": 1, "f": f, "b": False}
        for f in (float("-inf"), float("nan"), -0.0)
    ),
]


def _kinds_select():  # type: ignore[no-untyped-def]
    return select(*(cast(bindparam(n, type_=t), t).label(n) for n, t in KINDS.items()))


@pytest.mark.parametrize("values", CASES)
def test_each_value_arrives_as_the_driver_would_have_sent_it(
    pg_engine: Engine, values: dict
) -> None:
    statement = _kinds_select()
    with pg_engine.connect() as conn:
        expected = conn.execute(statement, values).one()
        row = execute_positional(conn, positional(statement), values)
    assert row is not None
    assert [repr(v) for v in row] == [repr(v) for v in expected]  # nan, -0.0 and zones too


def test_a_statement_is_prepared_once_whatever_its_values_types(pg_engine: Engine) -> None:
    """psycopg prepares a statement per combination of its parameters' types, which it takes
    from the values: ints of three sizes and None would make three, none executed five times."""
    statement = positional(_kinds_select())
    with pg_engine.connect() as conn:
        for values in CASES * 2:
            execute_positional(conn, statement, values)
        prepared = conn.execute(
            text("SELECT count(*) FROM pg_prepared_statements WHERE statement = :sql"),
            {"sql": statement.sql},
        ).scalar()
    assert prepared == 1


def test_errors_are_sqlalchemys_and_the_transaction_is_the_connections(
    pg_engine: Engine,
) -> None:
    with pg_engine.connect() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE t (n integer PRIMARY KEY)"))
        insert = positional(
            text("INSERT INTO t (n) VALUES (:n) RETURNING n").bindparams(bindparam("n"))
        )
        assert tuple(execute_positional(conn, insert, {"n": 1}) or ()) == (1,)
        with pytest.raises(IntegrityError) as raised:
            execute_positional(conn, insert, {"n": 1})
        assert not is_database_lost(raised.value)
        conn.rollback()  # the failed statement aborted the connection's transaction
        tables = text("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
        assert conn.execute(tables).scalar() == 0


def test_a_lost_connection_is_invalidated(pg_engine: Engine) -> None:
    statement = positional(select(cast(bindparam("n"), Integer)))
    with pg_engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        conn.commit()
        with pg_engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(OperationalError) as raised:
            execute_positional(conn, statement, {"n": 1})
        assert is_database_lost(raised.value)
        assert conn.invalidated
    with pg_engine.connect() as conn:  # the pool hands out a working connection
        assert tuple(execute_positional(conn, statement, {"n": 7}) or ()) == (7,)


def test_the_engines_listeners_see_the_statement(pg_engine: Engine) -> None:
    """The worker's run-time limit learns of a running statement from these events, to cancel
    it on the server when it interrupts it."""
    seen: list[tuple[str, str]] = []
    statement = positional(select(cast(bindparam("n"), Integer)))

    def before(conn, cursor, sql, *_):  # type: ignore[no-untyped-def]
        seen.append(("before", sql))

    def after(conn, cursor, sql, *_):  # type: ignore[no-untyped-def]
        seen.append(("after", sql))

    event.listen(pg_engine, "before_cursor_execute", before)
    event.listen(pg_engine, "after_cursor_execute", after)
    with pg_engine.connect() as conn:
        execute_positional(conn, statement, {"n": 1})
    assert seen == [("before", statement.sql), ("after", statement.sql)]
