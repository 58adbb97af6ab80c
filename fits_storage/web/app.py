"""The archive's HTTP application: upload, file lists, files, health, metrics.

``create_app(config)`` makes its own engine and data store, so any ASGI server can run it
(``fits_storage_web`` runs it under uvicorn). It does not start on a database without the
current schema (the daemons' "run create_tables" rule), and it removes the temporary files of
uploads cut short by a crash, at start-up and every quarter of their age limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.db.schema import schema_problem
from fits_storage.storage import get_store
from fits_storage.storage.atomic import STALE_SECONDS, remove_stale_parts
from fits_storage.web import (
    auth,
    calibrations,
    filelist,
    files,
    health,
    metrics,
    previews,
    qastate,
    queuestatus,
    summitfiles,
    update_headers,
    upload,
)
from fits_storage.web.guard import RefuseControlCharacters
from fits_storage.web.state import AppState

log = logging.getLogger("fits_storage.web")


class NotStarting(RuntimeError):
    """The application must not serve: the message says why and what to do."""


def startup_problem(engine: Engine) -> str | None:
    """Why the application must not serve this database (as the daemons decide), or None.
    A database that cannot be reached yet is not a reason: ``/healthz`` reports it."""
    try:
        return schema_problem(engine)
    except OperationalError as exc:
        log.warning("database unreachable at start-up (%s)", " ".join(str(exc).split())[:300])
        return None


def sweep_staging(config: Config) -> None:
    for path in remove_stale_parts(config.upload_staging_dir):
        log.info("removed %s, left by an upload cut short", path)


def create_app(config: Config) -> FastAPI:
    """The application for ``config``; its database engine is disposed when it shuts down."""
    engine = make_engine(config.database_url)
    state = AppState(config, engine, make_session_factory(engine), get_store(config))
    config.upload_staging_dir.mkdir(parents=True, exist_ok=True)

    async def sweep_every_while() -> None:
        while True:
            await asyncio.sleep(STALE_SECONDS / 4)
            await run_in_threadpool(sweep_staging, config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            if problem := await run_in_threadpool(startup_problem, engine):
                log.error("not starting: %s", problem)
                raise NotStarting(problem)
            await run_in_threadpool(sweep_staging, config)
            sweeper = asyncio.create_task(sweep_every_while())
            try:
                yield
            finally:
                sweeper.cancel()
                with suppress(asyncio.CancelledError):
                    await sweeper
        finally:
            engine.dispose()

    app = FastAPI(
        title="fits_storage",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.fits = state
    app.add_middleware(RefuseControlCharacters)
    for module in (
        upload,
        filelist,
        files,
        health,
        metrics,
        auth,
        queuestatus,
        previews,
        calibrations,
        update_headers,
        qastate,
        summitfiles,
    ):
        app.include_router(module.router)
    return app
