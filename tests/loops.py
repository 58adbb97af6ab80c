"""Running the worker loop in-process, for tests of what it does with each outcome."""

from __future__ import annotations

import argparse
import logging

from sqlalchemy import Engine

from fits_storage.config import Config
from fits_storage.db.engine import make_session_factory
from fits_storage.queues import Queue, WorkContext, get_queue
from fits_storage.service.daemon import Daemon
from fits_storage.service.worker import QueueLoop, WorkFunction

__all__ = ["WorkContext", "fill", "make_loop"]


def make_loop(
    engine: Engine, config: Config, work: WorkFunction, queue: Queue | None = None
) -> QueueLoop:
    """A loop over the preview queue (or ``queue``) that exits when nothing is ready."""
    daemon = Daemon(
        command="test_loop",
        name="t",
        args=argparse.Namespace(empty=True, oneshot=False),
        config=config,
        logger=logging.getLogger("test_loop"),
        engine=engine,
        session_factory=make_session_factory(engine),
    )
    return QueueLoop(daemon, queue or get_queue("preview", config), work)


def fill(engine: Engine, config: Config, names: list[str]) -> None:
    with make_session_factory(engine)() as session:
        get_queue("preview", config).add_many(session, [{"filename": n} for n in names])
        session.commit()
