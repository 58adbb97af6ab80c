"""Choosing files the database holds as present, for the ``add_to_*_queue`` commands: by exact
name(s), a regex searched in the name (with the special values of ``--file-re``), a path,
and/or ingested in the last N days."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from fits_storage.orm import DiskFile, utcnow
from fits_storage.scan.select import special_dates_regex


def compile_file_re(file_re: str | None) -> re.Pattern[str] | None:
    """The pattern of a ``--file-re`` value (``today``... or a regex); raises re.error."""
    if not file_re:
        return None
    return re.compile(special_dates_regex(file_re) or file_re)


@dataclass(frozen=True)
class PresentSelection:
    filenames: tuple[str, ...] = ()
    file_re: re.Pattern[str] | None = None
    path: str | None = None
    lastdays: float | None = None

    def query(self) -> Select[Any]:
        query = select(DiskFile.filename, DiskFile.path).where(DiskFile.present)
        if self.filenames:
            query = query.where(DiskFile.filename.in_(self.filenames))
        if self.path is not None:
            query = query.where(DiskFile.path == self.path.strip("/"))
        if self.lastdays is not None:
            query = query.where(DiskFile.entrytime >= utcnow() - timedelta(days=self.lastdays))
        return query

    def files(self, session: Session) -> Iterator[tuple[str, str]]:
        """(filename, path) of every present diskfile selected, newest names first."""
        seen: set[tuple[str, str]] = set()
        for filename, path in session.execute(self.query().order_by(DiskFile.filename.desc())):
            if self.file_re is not None and not self.file_re.search(filename):
                continue
            if (filename, path) not in seen:
                seen.add((filename, path))
                yield filename, path
