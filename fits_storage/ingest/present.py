"""The present version of a file as recorded: what ingest compares a stored file with.

One query, built for a name given as a parameter (:func:`read_present_version`) or as a SQL
expression: ingest's write on PostgreSQL asks it for the next entry it leases
(:mod:`~fits_storage.ingest.rows`), so that the next file costs no read of its own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, case, func, literal_column, select
from sqlalchemy.orm import Session

from fits_storage.db.positional import Positional, execute_positional, positional
from fits_storage.orm import DiskFile, File

COMPRESSED_SUFFIX = ".bz2"


@dataclass(frozen=True)
class PresentVersion:
    """The present version of a file as recorded, read before any file I/O."""

    id: int
    file_id: int
    filename: str
    path: str
    size: int
    mtime_ns: int
    md5: str


@dataclass(frozen=True)
class KnownPresent:
    """The present version of the file called ``name`` (None: there is none), already read."""

    name: str
    version: PresentVersion | None


def file_name_for(filename: str) -> str:
    """The ``file.name`` of a stored file: its name with ``.bz2`` trimmed."""
    return filename.removesuffix(COMPRESSED_SUFFIX)


def file_name_sql(filename: ColumnElement[Any]) -> ColumnElement[Any]:
    """:func:`file_name_for` in SQL (constants written into the text, none bound)."""
    suffix = len(COMPRESSED_SUFFIX)
    return case(
        (
            func.right(filename, literal_column(str(suffix)))
            == literal_column(f"'{COMPRESSED_SUFFIX}'"),
            func.left(filename, literal_column(str(-suffix))),
        ),
        else_=filename,
    )


def present_query(name: ColumnElement[Any]) -> Select[Any]:
    """The columns of :class:`PresentVersion` of the file called ``name``, or no row."""
    return (
        select(
            DiskFile.id,
            DiskFile.file_id,
            DiskFile.filename,
            DiskFile.path,
            DiskFile.file_size,
            DiskFile.mtime_ns,
            DiskFile.file_md5,
        )
        .join(File, File.id == DiskFile.file_id)
        .where(File.name == name, DiskFile.present)
        .order_by(DiskFile.id.desc())
        .limit(literal_column("1"))
    )


_PRESENT = present_query(bindparam("name"))
PRESENT_COLUMNS = len(_PRESENT.selected_columns)


@functools.cache
def present_positional() -> Positional:
    return positional(_PRESENT)


def read_present_version(session: Session, name: str) -> PresentVersion | None:
    """Run on the session's connection as a Core statement (on PostgreSQL compiled once and
    run through the driver's raw cursor): the ORM's execution path cost more than the query
    itself."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        row = execute_positional(connection, present_positional(), {"name": name})
    else:
        row = connection.execute(_PRESENT, {"name": name}).first()
    return version_of(row)


def version_of(row: Any) -> PresentVersion | None:
    """The version in ``row`` (the query's columns), None for no row or a row of NULLs."""
    if row is None or row[0] is None:
        return None
    return PresentVersion(*row)
