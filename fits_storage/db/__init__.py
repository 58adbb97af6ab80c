"""Engines, sessions and schema management."""

from fits_storage.db.engine import make_engine, make_session_factory, session_scope

__all__ = ["make_engine", "make_session_factory", "session_scope"]
