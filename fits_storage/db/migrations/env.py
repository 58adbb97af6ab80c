"""Alembic environment: runs on the connection ``create_tables`` hands it."""

from alembic import context

import fits_storage.orm  # noqa: F401  (registers every table)
from fits_storage.orm.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through fits_storage.db.schema.create_tables")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
