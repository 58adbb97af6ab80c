"""What every route needs: configuration, database sessions and the data store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.storage import Store


@dataclass(frozen=True)
class AppState:
    config: Config
    engine: Engine
    session_factory: sessionmaker[Session]
    store: Store


def app_state(request: Request) -> AppState:
    return request.app.state.fits


@contextmanager
def read_session(state: AppState) -> Iterator[Session]:
    """A session that only reads: on SQLite a deferred transaction, so it never waits for the
    write lock the queue workers take."""
    with state.session_factory() as session:
        session.connection(execution_options={"sqlite_begin": "DEFERRED"})
        yield session
