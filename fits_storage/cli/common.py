"""What every command does at its edge: load the configuration, open the database, report."""

from __future__ import annotations

import logging
import sys

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config, ConfigError, get_config
from fits_storage.db.engine import make_engine, make_session_factory


def load_config_or_exit() -> Config:
    """The configuration, or a one-line message naming the bad key and exit status 2."""
    try:
        return get_config()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def open_database(config: Config) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(config.database_url)
    return engine, make_session_factory(engine)


def setup_console_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
