"""Recomputing the ``header`` rows of stored files after a descriptor change.

The headers ingest read are kept whole in ``fulltextheader`` (one card a line, each HDU
introduced by a ``--- HDU n: NAME`` line), so the fields can be computed again from that
text without touching the files: a descriptor change over an archive costs a database pass,
not a re-read of every byte. Only a version without that text (or with text that no longer
parses) is read again from the data store.

Each batch of rows is one transaction; a row is written only when a value changed.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from astropy.io import fits
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.ingest.fitsheader import HeaderFields, extract_header_fields
from fits_storage.ingest.source import local_copy
from fits_storage.orm import DiskFile, FullTextHeader, Header
from fits_storage.queues import get_queue

HDU_MARKER = re.compile(r"^--- HDU \d+:.*$", re.MULTILINE)
# Notes ingest adds while reading the bytes (cards it had to clean), not from the fields:
# they stay true of the bytes, so a recomputation from the text keeps them.
BYTE_NOTES = re.compile(r"(NUL byte|non-printable byte) removed from the card")


class UnusableText(ValueError):
    """The stored full-text header cannot give back the headers."""


def headers_from_fulltext(text: str) -> list[fits.Header]:
    """The headers of every HDU from their stored full text."""
    markers = list(HDU_MARKER.finditer(text))
    if not markers:
        raise UnusableText("no HDU marker line")
    headers = []
    for marker, following in zip(markers, [*markers[1:], None], strict=True):
        end = following.start() if following is not None else len(text)
        body = text[marker.end() : end].strip("\n")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                headers.append(fits.Header.fromstring(body, sep="\n"))
        except Exception as exc:  # noqa: BLE001 - astropy raises assorted errors on bad text
            raise UnusableText(f"HDU {len(headers)}: {exc}") from exc
    return headers


@dataclass(frozen=True)
class Selection:
    """Which present versions' headers to recompute."""

    file_re: re.Pattern[str] | None = None
    instrument: str | None = None

    def matches(self, filename: str) -> bool:
        return self.file_re is None or self.file_re.search(filename) is not None


@dataclass
class Progress:
    """What a pass did: rows seen, changed, read from files, failed; columns that changed."""

    seen: int = 0
    changed: int = 0
    from_files: int = 0
    failed: int = 0
    columns: Counter[str] = field(default_factory=Counter)

    def line(self, dryrun: bool) -> str:
        verb = "would change" if dryrun else "changed"
        text = (
            f"{self.seen} header(s) recomputed: {self.changed} {verb}, "
            f"{self.from_files} read from their files, {self.failed} failed"
        )
        if self.columns:
            text += "; columns: " + ", ".join(
                f"{name} {count}" for name, count in sorted(self.columns.items())
            )
        return text


@dataclass
class _Row:
    header_id: int
    diskfile_id: int
    filename: str
    path: str
    notes: str | None
    values: dict[str, Any]
    fulltext: str | None = None


def _rows(session: Session, selection: Selection, after: int, limit: int) -> tuple[list[_Row], int]:
    """The selected header rows of present versions among the next ``limit`` with id above
    ``after``, with their stored text; and the last id looked at (0: none left)."""
    names = _field_columns()
    query = (
        select(
            Header.id,
            Header.diskfile_id,
            DiskFile.filename,
            DiskFile.path,
            Header.notes,
            *(getattr(Header, name) for name in names),
        )
        .join(DiskFile, DiskFile.id == Header.diskfile_id)
        .where(DiskFile.present, Header.id > after)
        .order_by(Header.id)
        .limit(limit)
    )
    if selection.instrument:
        query = query.where(func.upper(Header.instrument) == selection.instrument.upper())
    fetched = session.execute(query).all()
    if not fetched:
        return [], 0
    rows = [
        _Row(r[0], r[1], r[2], r[3], r[4], dict(zip(names, r[5:], strict=True)))
        for r in fetched
        if selection.matches(r[2])
    ]
    if rows:
        texts = dict(
            session.execute(
                select(FullTextHeader.diskfile_id, FullTextHeader.fulltext).where(
                    FullTextHeader.diskfile_id.in_([r.diskfile_id for r in rows])
                )
            ).all()
        )
        for row in rows:
            row.fulltext = texts.get(row.diskfile_id)
    return rows, fetched[-1][0]


def _field_columns() -> list[str]:
    """Every ``header`` column the descriptors compute (all but ids and notes)."""
    return [
        c.name for c in Header.__table__.columns if c.name not in ("id", "diskfile_id", "notes")
    ]


def _from_file(config: Config, row: _Row) -> HeaderFields:
    with local_copy(config, row.path, row.filename) as local, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(local, memmap=False, lazy_load_hdus=False) as hdulist:
            return extract_header_fields(hdulist, row.filename)


def recompute(config: Config, row: _Row, log: logging.Logger) -> tuple[HeaderFields, bool]:
    """The fields of ``row``'s version, from its stored text when that suffices (else from
    its file: True as the second value)."""
    if row.fulltext:
        try:
            fields = extract_header_fields(headers_from_fulltext(row.fulltext), row.filename)
        except UnusableText as exc:
            log.info("%s: stored header text unusable (%s); reading the file", row.filename, exc)
        else:
            kept = [n for n in (row.notes or "").splitlines() if BYTE_NOTES.search(n)]
            fields.notes[:0] = kept
            return fields, False
    return _from_file(config, row), True


def _changes(row: _Row, fields: HeaderFields) -> dict[str, Any]:
    new = {name: fields.values.get(name) for name in _field_columns()}
    new["notes"] = "\n".join(fields.notes) or None
    old = {**row.values, "notes": row.notes}
    return {name: value for name, value in new.items() if not _same(old[name], value)}


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, float):
        return abs(old - new) <= 1e-9 * max(1.0, abs(old))
    return old == new


def reingest_headers(
    session: Session,
    config: Config,
    selection: Selection,
    *,
    dryrun: bool = False,
    batch: int = 500,
    log: logging.Logger | None = None,
) -> Iterator[Progress]:
    """Recompute the selected headers, one committed batch at a time; yields the running
    totals after each batch (for progress lines)."""
    log = log or logging.getLogger("reingest_headers")
    progress = Progress()
    after = 0
    while True:
        rows, after = _rows(session, selection, after, batch)
        session.rollback()  # no transaction held while computing
        if not after:
            return
        updates = []
        changed: list[dict[str, str]] = []
        for row in rows:
            progress.seen += 1
            try:
                fields, read_file = recompute(config, row, log)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the pass
                progress.failed += 1
                log.warning("%s: cannot recompute its header: %s", row.filename, exc)
                continue
            progress.from_files += read_file
            changes = _changes(row, fields)
            if changes:
                progress.changed += 1
                progress.columns.update(changes.keys())
                log.debug("%s: %s", row.filename, ", ".join(sorted(changes)))
                updates.append({"id": row.header_id, **changes})
                changed.append({"filename": row.filename, "path": row.path})
        if updates and not dryrun:
            for values in updates:
                session.execute(
                    update(Header)
                    .where(Header.id == values["id"])
                    .values({k: v for k, v in values.items() if k != "id"})
                )
            if config.using_calcache:
                # A row rewritten in place keeps its id and ingest time: the calibration
                # cache cannot see the change, so its frames are queued with it.
                get_queue("calcache", config).add_many(session, changed)
            session.commit()
        yield progress
