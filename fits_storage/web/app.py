"""The archive's HTTP application: upload, file lists, files, health.

``create_app(config)`` makes its own engine and data store, so any ASGI server can run it
(``fits_storage_web`` runs it under uvicorn).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.storage import get_store
from fits_storage.web import filelist, files, health, upload
from fits_storage.web.state import AppState


def create_app(config: Config) -> FastAPI:
    """The application for ``config``; its database engine is disposed when it shuts down."""
    engine = make_engine(config.database_url)
    state = AppState(config, engine, make_session_factory(engine), get_store(config))
    config.upload_staging_dir.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
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
    for module in (upload, filelist, files, health):
        app.include_router(module.router)
    return app
