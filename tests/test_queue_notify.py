"""The Waker: LISTEN on PostgreSQL, and how it gets back to listening after a failure."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from fits_storage.queues.notify import Waker, psycopg_conninfo
from tests.conftest import PG_URL, require_postgresql


@pytest.fixture
def channel() -> str:
    require_postgresql()
    return f"test_{uuid.uuid4().hex[:12]}"


def notify(channel: str) -> None:
    with psycopg.connect(psycopg_conninfo(PG_URL), autocommit=True) as conn:
        conn.execute(f'NOTIFY "{channel}"')


def test_notification_wakes_the_waiter(channel: str) -> None:
    waker = Waker(PG_URL, channel)
    try:
        assert waker.wait(5) is True  # the first call connects: look at the queue
        notify(channel)
        assert waker.wait(10) is True
        assert waker.wait(0.2) is False  # nothing since
    finally:
        waker.close()


def test_connection_cut_before_listen_is_retried_promptly(
    channel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection cut between connecting and LISTEN (a server restart, an admin's
    pg_terminate_backend) is closed and tried again after a short backoff: the caller is told
    to look at the queue rather than left waiting a whole poll interval, and the next call
    listens again."""
    real_connect = psycopg.connect
    cut: list[psycopg.Connection] = []

    def connect_then_cut(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        if not cut:
            with real_connect(psycopg_conninfo(PG_URL), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
            cut.append(conn)
        return conn

    monkeypatch.setattr(psycopg, "connect", connect_then_cut)
    waker = Waker(PG_URL, channel)
    try:
        # A long timeout: a waker that sat out the whole of it would return False.
        assert waker.wait(3) is True
        assert cut and cut[0].closed, "the failed connection was left open"
        assert waker.failures == 1
        assert waker.wait(5) is True  # connects and listens
        assert waker.failures == 0
        notify(channel)
        assert waker.wait(10) is True
    finally:
        waker.close()
