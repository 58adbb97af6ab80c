"""The rows of the first version of a new file, written in one statement on PostgreSQL.

Ingesting a new name writes five rows (``file``, ``diskfile``, ``header``, ``fulltextheader``,
``diskfilereport``), each depending on the id of the one before: through the ORM that is five
round trips. On PostgreSQL data-modifying CTEs chain them in one statement: the ``file``
insert (``ON CONFLICT DO NOTHING``) feeds the ``diskfile`` insert by ``INSERT ... SELECT``, so a
name that already exists inserts nothing at all, and the caller takes the ordinary path.

Rows are given as ORM objects, and their values taken as a flush would: attributes set
explicitly (None included) as they are, others from the column's default, or left to the
server's default. Each value is a bound parameter cast to its column's type (``INSERT ...
SELECT`` gives parameters no type of their own); strings are cast to unbounded ``VARCHAR`` so an
over-long value still fails as it would through the ORM rather than being cut.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, cast, insert, inspect, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.schema import Column

from fits_storage.orm import Base, DiskFile, File


def _values(row: Base, skip: tuple[str, ...]) -> dict[str, ColumnElement[Any]]:
    """Column name -> SQL value of ``row``'s insert, as the ORM would write it."""
    state = inspect(row)
    values: dict[str, ColumnElement[Any]] = {}
    for attr in state.mapper.column_attrs:
        column = attr.columns[0]
        if not isinstance(column, Column) or column.name in skip:
            continue
        if attr.key in state.dict:
            value = state.dict[attr.key]
        elif column.default is not None and column.default.is_scalar:
            value = column.default.arg  # type: ignore[attr-defined]
        elif column.default is not None and column.default.is_callable:
            value = column.default.arg(None)  # type: ignore[attr-defined]
        elif column.default is not None and column.default.is_clause_element:
            values[column.name] = column.default.arg  # type: ignore[attr-defined]
            continue
        elif column.server_default is not None or column.primary_key:
            continue
        else:
            value = None
        if isinstance(value, ClauseElement):  # a SQL expression set on the attribute
            values[column.name] = value
            continue
        kind = String() if isinstance(column.type, String) else column.type
        values[column.name] = cast(bindparam(None, value, type_=column.type), kind)
    return values


def insert_first_version(
    session: Session, name: str, diskfile: DiskFile, dependents: list[Base]
) -> tuple[int, int] | None:
    """(file id, diskfile id) of a new ``name`` with its first version ``diskfile`` and the
    rows that hang on it (each with a ``diskfile_id`` column), all in one statement; None,
    with nothing written, when ``name`` already exists. PostgreSQL only."""
    new_file = (
        postgresql.insert(File)
        .values(name=name)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(File.id)
        .cte("new_file")
    )
    version_values = _values(diskfile, ("id", "file_id"))
    version = (
        insert(DiskFile)
        .from_select(
            ["file_id", *version_values], select(new_file.c.id, *version_values.values())
        )
        .returning(DiskFile.id, DiskFile.file_id)
        .cte("version")
    )
    others = []
    for index, row in enumerate(dependents):
        values = _values(row, ("id", "diskfile_id"))
        table = inspect(row).mapper.local_table
        others.append(
            insert(table)
            .from_select(["diskfile_id", *values], select(version.c.id, *values.values()))
            .cte(f"dependent_{index}")
        )
    found = session.execute(select(version.c.file_id, version.c.id).add_cte(*others)).first()
    return (found[0], found[1]) if found is not None else None
