"""A new name's rows in one statement (PostgreSQL): the same rows the ORM writes, or none."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.ingest import IngestAction, ingest_file
from fits_storage.ingest.rows import insert_first_version
from fits_storage.orm import DiskFile, DiskFileReport, File, FullTextHeader, Header
from tests.fitsdata import copy_astropy_file, copy_gmos_file

DEPENDENTS = (Header, FullTextHeader, DiskFileReport)


def _values(session: Session, model: type, diskfile_id: int) -> dict[str, Any]:
    column = DiskFile.id if model is DiskFile else model.diskfile_id
    row = session.scalars(select(model).where(column == diskfile_id)).one()
    skip = {"id", "diskfile_id", "entrytime", "present", "canonical"}
    return {a.key: getattr(row, a.key) for a in inspect(model).column_attrs if a.key not in skip}


@pytest.fixture
def db_url(pg_db_url: str) -> str:
    """PostgreSQL only: the one-statement insert is PostgreSQL's; SQLite takes the ORM path."""
    return pg_db_url


@pytest.mark.parametrize("source", ["gmos", "verify.fits", "test0.fits"])
def test_one_statement_rows_equal_the_orm_rows(
    session: Session, config: Config, source: str
) -> None:
    if source == "gmos":
        path = copy_gmos_file(config.storage_root)
    else:
        path = copy_astropy_file(source, config.storage_root)
    first = ingest_file(session, config, path.name)  # a new name: one statement
    session.commit()
    again = ingest_file(session, config, path.name, force=True)  # an existing name: the ORM
    session.commit()
    assert (first.action, again.action) == (IngestAction.NEW, IngestAction.NEW_VERSION)
    assert first.file_id == again.file_id and first.diskfile_id != again.diskfile_id
    for model in (DiskFile, *DEPENDENTS):
        assert _values(session, model, first.diskfile_id) == _values(
            session, model, again.diskfile_id
        ), model.__name__
    older = session.get(DiskFile, first.diskfile_id)
    assert older is not None and not older.present and not older.canonical


def _version(filename: str) -> DiskFile:
    return DiskFile(
        filename=filename,
        file_size=1,
        file_md5="0" * 32,
        lastmod=func.now(),
        mtime_ns=1,
        data_size=1,
        data_md5="0" * 32,
    )


def test_defaults_apply_as_in_a_flush_and_an_existing_name_writes_nothing(
    session: Session,
) -> None:
    rows = [Header(), FullTextHeader(fulltext="x"), DiskFileReport(astropy_ok=True)]
    found = insert_first_version(session, "N1.fits", _version("N1.fits"), rows)
    assert found is not None
    file_id, diskfile_id = found
    diskfile = session.get(DiskFile, diskfile_id)
    assert diskfile is not None and diskfile.file_id == file_id
    # column defaults of attributes never set: path "", present, canonical, entrytime now
    assert (diskfile.path, diskfile.present, diskfile.canonical) == ("", True, True)
    assert diskfile.entrytime is not None and not diskfile.compressed
    report = session.scalars(select(DiskFileReport)).one()
    assert (report.diskfile_id, report.astropy_report, report.fitsverify_ok) == (
        diskfile_id,
        "",
        None,
    )
    assert session.scalar(select(func.count()).select_from(Header)) == 1

    again = insert_first_version(session, "N1.fits", _version("N1.fits"), [Header()])
    assert again is None
    for model in (File, DiskFile, Header, FullTextHeader, DiskFileReport):
        assert session.scalar(select(func.count()).select_from(model)) == 1, model.__name__


def test_an_over_long_value_fails_as_through_the_orm(session: Session) -> None:
    with pytest.raises(DataError, match="too long"):
        insert_first_version(session, "N2.fits", _version("N" * 300), [Header()])
