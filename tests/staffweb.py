"""Helpers of the staff page tests: a served application with one staff user, logins, and a
queue seeded with waiting, failed and in-progress entries."""

from __future__ import annotations

import re

import requests
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.queues import Worker, get_queue
from fits_storage.staff.accounts import add_user

USER, PASSWORD = "alice", "correct horse battery"


def sessions_for(config: Config) -> sessionmaker[Session]:
    return make_session_factory(make_engine(config.database_url))


def add_staff(config: Config, username: str = USER, password: str = PASSWORD) -> None:
    factory = sessions_for(config)
    with factory.begin() as session:
        add_user(session, username, password)
    factory.kw["bind"].dispose()


def login(url: str, username: str = USER, password: str = PASSWORD) -> requests.Session:
    """A client logged in through the login form (raises if the login was refused)."""
    client = requests.Session()
    answer = client.post(
        f"{url}/login",
        data={"username": username, "password": password, "next": "/queuestatus"},
        allow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client


def csrf_token(client: requests.Session, url: str) -> str:
    page = client.get(f"{url}/queuestatus", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def seed(config: Config, waiting: int = 3, failed: int = 2, in_progress: int = 1) -> dict:
    """The preview queue with ``failed`` failed entries (error and traceback), ``in_progress``
    claimed by worker ``w1``, and ``waiting`` waiting; the ingest queue with one waiting.
    Returns the names and the failed entries' ids."""
    factory = sessions_for(config)
    queue = get_queue("preview", config)
    failed_ids = {}
    with factory() as session:
        for i in range(failed):
            name = f"N20251123S{i:04d}.fits"
            queue.add(session, name)
            entry = queue.claim(session, Worker("w0", host="summit1"))
            queue.fail(
                session,
                entry,
                f"ValueError: bad header in {name}",
                "Traceback (most recent call last):\n"
                f'  File "ingest.py", line 7\nValueError: {name}',
            )
            failed_ids[name] = entry.id
        for i in range(in_progress):
            queue.add(session, f"N20251124S{i:04d}.fits")
            queue.claim(session, Worker("w1", host="summit2"))
        queue.add_many(session, [{"filename": f"N20251125S{i:04d}.fits"} for i in range(waiting)])
        get_queue("ingest", config).add(session, "S20251126S0001.fits")
        session.commit()
    factory.kw["bind"].dispose()
    return failed_ids
