"""Choosing files the database holds as present: what every ``add_to_*_queue`` command shares.

One selection (names, a regex searched in the name, a path, an ingest age) and one set of
options for it, so the commands cannot drift apart in what ``--file-re`` or ``--path`` means.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from fits_storage.orm import DiskFile, utcnow
from fits_storage.scan.select import SelectionError, special_dates_regex, special_value_warning


@dataclass(frozen=True)
class PresentSelection:
    """Present files by exact name(s), a regex searched in the name, a path, and/or ingested
    in the last ``lastdays`` days. Subclasses add their own conditions in ``restrict``."""

    filenames: tuple[str, ...] = ()
    file_re: re.Pattern[str] | None = None
    path: str | None = None
    lastdays: float | None = None

    def restrict(self, query: Select) -> Select:
        """The query narrowed by what only one command cares about (none here)."""
        return query

    def files(self, session: Session) -> Iterator[tuple[str, str]]:
        """(filename, path) of every present diskfile selected, newest names first."""
        query = select(DiskFile.filename, DiskFile.path).where(DiskFile.present)
        if self.filenames:
            query = query.where(DiskFile.filename.in_(self.filenames))
        if self.path is not None:
            query = query.where(DiskFile.path == self.path.strip("/"))
        if self.lastdays is not None:
            query = query.where(DiskFile.entrytime >= utcnow() - timedelta(days=self.lastdays))
        query = self.restrict(query)
        seen: set[tuple[str, str]] = set()
        for filename, path in session.execute(query.order_by(DiskFile.filename.desc())):
            if self.file_re is not None and not self.file_re.search(filename):
                continue
            if (filename, path) not in seen:
                seen.add((filename, path))
                yield filename, path


def add_selection_arguments(
    p: argparse.ArgumentParser, path_help: str, lastdays: bool = True
) -> None:
    """The options that build a ``PresentSelection``: --file-re, --filename, --path, --lastdays."""
    p.add_argument(
        "--file-re",
        help="regular expression searched in the file name (or today, twoday, fourday, tenday, "
        "twentyday: the last N UT dates)",
    )
    p.add_argument(
        "--filename", action="append", default=[], help="exact file name (may be repeated)"
    )
    p.add_argument("--path", help=path_help)
    if lastdays:
        p.add_argument(
            "--lastdays", type=float, metavar="N", help="only files ingested in the last N days"
        )


def selection_terms(args: argparse.Namespace, log: logging.Logger) -> dict[str, object]:
    """The ``PresentSelection`` fields the options ask for; SelectionError says what is wrong."""
    lastdays = getattr(args, "lastdays", None)
    if lastdays is not None and not (0 < lastdays < math.inf):
        raise SelectionError("--lastdays must be a positive number of days")
    pattern = None
    if args.file_re:
        try:
            pattern = re.compile(special_dates_regex(args.file_re) or args.file_re)
        except re.error as exc:
            raise SelectionError(f"bad --file-re {args.file_re!r}: {exc}") from exc
        if warning := special_value_warning(args.file_re):
            log.warning("%s", warning)
    return {
        "filenames": tuple(args.filename),
        "file_re": pattern,
        "path": args.path,
        "lastdays": lastdays,
    }


def report_missing(command: str, wanted: list[str], files: list[tuple[str, str]], why: str) -> None:
    """One line on stderr for each name asked for by --filename that selected nothing."""
    for name in sorted(set(wanted) - {name for name, _ in files}):
        print(f"{command}: {name}: no present file of that name{why}", file=sys.stderr)
