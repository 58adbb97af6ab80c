"""What ingest reads from the summit's files that are not FITS (docs/summit_files.md).

An observing log, ``<YYYYMMDD>_<program>_obslog.txt``, gives its UT date and program from its
name and its text from its bytes. A miscellaneous file, ``miscfile_<name>`` (any bytes: a
tarball, a PDF), is opaque; its metadata comes from ``miscfile_<name>.json`` beside it, in
FitsStorage's keys: ``release`` (a date), ``description``, ``program``, ``filename``. Both are
read through the data store, so they are ingested the same from disk and from S3.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fits_storage.config import Config
from fits_storage.ingest.errors import IngestError
from fits_storage.ingest.source import describe, store_for
from fits_storage.orm import MiscFile, Obslog
from fits_storage.queues.errors import TransientError
from fits_storage.scan.names import miscfile_meta_name
from fits_storage.storage import NotInStore, StorageError, StorageUnavailable

OBSLOG_NAME = re.compile(r"^(\d{8})_(.+)_obslog\.txt$")
# Older logs (Phoenix) carry only a date with the month's name: 2006Apr03_obslog.txt.
OBSLOG_MONTH_NAME = re.compile(r"^(\d{4})([A-Za-z]{3})(\d{2})_obslog\.txt$")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MAX_OBSLOG_BYTES = 16 * 1024 * 1024  # a night's log is a few kB; more is not a log
MAX_META_BYTES = 1024 * 1024
META_RETRY_SECONDS = 60.0


def obslog_date_and_program(filename: str) -> tuple[date | None, str | None]:
    """The UT date and program an observing log's name states (None where it states none)."""
    if match := OBSLOG_NAME.match(filename):
        try:
            day = datetime.strptime(match.group(1), "%Y%m%d").date()
        except ValueError:
            day = None
        return day, match.group(2)
    if match := OBSLOG_MONTH_NAME.match(filename):
        month = match.group(2).lower()
        if month in MONTHS:
            try:
                return date(int(match.group(1)), MONTHS.index(month) + 1, int(match.group(3))), None
            except ValueError:
                pass
    return None, None


@dataclass(frozen=True)
class ObslogContents:
    date: date | None
    program_id: str | None
    text: str

    def row(self, diskfile_id: int) -> Obslog:
        return Obslog(
            diskfile_id=diskfile_id, date=self.date, program_id=self.program_id, text=self.text
        )


def read_obslog(local: Path, filename: str, label: str) -> ObslogContents:
    """The log's fields; IngestError if it is too big to be a log. Bytes that are not UTF-8
    (old logs are Latin-1) are kept, replaced, rather than refused."""
    with open(local, "rb") as handle:
        data = handle.read(MAX_OBSLOG_BYTES + 1)
    if len(data) > MAX_OBSLOG_BYTES:
        raise IngestError(f"{label}: more than {MAX_OBSLOG_BYTES} bytes: not an observing log")
    day, program = obslog_date_and_program(filename)
    text = data.decode("utf-8", errors="replace").replace("\x00", "")
    return ObslogContents(day, program, text)


@dataclass(frozen=True)
class MiscMeta:
    """A miscfile's metadata as recorded in its row; ``meta_md5`` tells a changed JSON."""

    release: datetime | None
    description: str | None
    program_id: str | None
    original_name: str | None
    meta_md5: str

    def values(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "description": self.description,
            "program_id": self.program_id,
            "original_name": self.original_name,
            "meta_md5": self.meta_md5,
        }

    def row(self, diskfile_id: int) -> MiscFile:
        return MiscFile(diskfile_id=diskfile_id, **self.values())


def _text(meta: dict, key: str, label: str) -> str | None:
    value = meta.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IngestError(f"{label}: metadata {key!r} must be a string, not {value!r}")
    return value


def parse_miscfile_meta(data: bytes, label: str) -> MiscMeta:
    """The metadata of a ``.json``; IngestError naming the key that is wrong."""
    try:
        meta = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"{label}: metadata is not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise IngestError(f"{label}: metadata must be a JSON object")
    release = None
    if (text := _text(meta, "release", label)) is not None:
        try:
            release = datetime.fromisoformat(text.strip())
        except ValueError as exc:
            raise IngestError(
                f"{label}: metadata 'release' is not a date (YYYY-MM-DD): {text!r}"
            ) from exc
        if release.tzinfo is not None:
            release = release.astimezone(UTC).replace(tzinfo=None)
    return MiscMeta(
        release=release,
        description=_text(meta, "description", label),
        program_id=_text(meta, "program", label),
        original_name=_text(meta, "filename", label),
        meta_md5=hashlib.md5(data).hexdigest(),
    )


def read_miscfile_meta(config: Config, filename: str, path: str) -> MiscMeta:
    """The metadata beside ``path/filename`` in the data store. Not there (yet: it is written,
    or uploaded, after its file) is a TransientError, retried; bad JSON an IngestError."""
    meta_name = miscfile_meta_name(filename)
    label = f"{describe(path, filename)}: {meta_name}"
    store = store_for(config)
    try:
        with store.open(meta_name, path) as handle:
            data = handle.read(MAX_META_BYTES + 1)
    except (NotInStore, FileNotFoundError) as exc:
        raise TransientError(
            f"{describe(path, filename)}: its metadata {meta_name} is not there (yet)",
            delay=META_RETRY_SECONDS,
        ) from exc
    except StorageUnavailable as exc:
        raise TransientError(f"{label}: data store unavailable: {exc}") from exc
    except (StorageError, OSError) as exc:
        raise IngestError(f"{label}: cannot read: {exc}") from exc
    if len(data) > MAX_META_BYTES:
        raise IngestError(f"{label}: more than {MAX_META_BYTES} bytes of metadata")
    return parse_miscfile_meta(data, label)
