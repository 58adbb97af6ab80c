"""Which stored file a header-update item names: by filename (preferred) or data label.

A filename names a file whatever its compression (``N20251123S0042.fits`` finds
``N20251123S0042.fits.bz2``). A data label names an observation's datasets; the raw one is
meant unless the filename says otherwise: among the present, canonical versions carrying the
label, the one whose ``header.reduction`` is RAW where the descriptors recorded it, else the
one whose name has no processed suffix (``_flat``, ``_stack``...).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fits_storage.ingest.ingest import file_name_for
from fits_storage.orm import DiskFile, File, FullTextHeader, Header


class NotFound(LookupError):
    """No stored file matches, or the match is ambiguous; the message says which."""


@dataclass(frozen=True)
class Target:
    filename: str
    path: str
    diskfile_id: int


def is_raw_name(filename: str) -> bool:
    """Whether the name is a raw file's: no ``_suffix`` a reduction step adds."""
    stem = file_name_for(filename).removesuffix(".gz")
    stem = stem[: -len(".fits")] if stem.endswith(".fits") else stem
    return "_" not in stem


def by_filename(session: Session, filename: str) -> Target:
    row = session.execute(
        select(DiskFile.filename, DiskFile.path, DiskFile.id)
        .join(File, File.id == DiskFile.file_id)
        .where(File.name == file_name_for(filename), DiskFile.present)
        .order_by(DiskFile.id.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFound(f"no present file named {filename!r}")
    return Target(*row)


# The reduction state (RAW, PREPARED, PROCESSED_...) of the descriptors, in schemas that have it.
REDUCTION = getattr(Header, "reduction", None)


def _is_raw(filename: str, reduction: str | None) -> bool:
    return reduction == "RAW" if reduction is not None else is_raw_name(filename)


def by_data_label(session: Session, data_label: str) -> Target:
    columns = [DiskFile.filename, DiskFile.path, DiskFile.id]
    rows = session.execute(
        select(*columns, *([REDUCTION] if REDUCTION is not None else []))
        .join(Header, Header.diskfile_id == DiskFile.id)
        .where(Header.data_label == data_label, DiskFile.present, DiskFile.canonical)
        .order_by(DiskFile.filename)
    ).all()
    if not rows:
        raise NotFound(f"no present file has the data label {data_label!r}")
    raw = [
        Target(*row[:3]) for row in rows if _is_raw(row[0], row[3] if len(row) > 3 else None)
    ]
    if not raw:
        names = ", ".join(row.filename for row in rows)
        raise NotFound(
            f"data label {data_label!r} names no raw file (only {names}): give the filename"
        )
    if len(raw) > 1:
        names = ", ".join(t.filename for t in raw)
        raise NotFound(f"data label {data_label!r} names {len(raw)} raw files ({names}): "
                       "give the filename")  # fmt: skip
    return raw[0]


def primary_keywords(session: Session, diskfile_id: int) -> set[str] | None:
    """The keywords of the version's primary header as ingest recorded them, or None when
    it recorded no text."""
    text = session.scalar(
        select(FullTextHeader.fulltext).where(FullTextHeader.diskfile_id == diskfile_id)
    )
    if text is None:
        return None
    keywords = set()
    for line in text.splitlines()[1:]:
        if line.startswith("--- HDU "):
            break
        keyword = line[:8].strip()
        if keyword:
            keywords.add(keyword)
    return keywords
