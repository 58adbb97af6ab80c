"""The generated GMOS-S night (tests/fitsdata.py GMOS_NIGHT) as database rows, and what each
science frame must get: shared by the calibration tests."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fits_storage.orm import DiskFile, File, Header
from tests.fitsdata import night_name

# Per science frame (by number) and calibration type: the frames (by number) expected, best
# first. Types not listed must come back empty.
EXPECTED: dict[int, dict[str, list[int]]] = {
    101: {"bias": [11, 12], "flat": [21], "arc": [31]},  # bias 15 is read fast; flat 24 too old
    102: {"bias": [13], "flat": [22], "arc": [32]},
    103: {"bias": [14], "flat": [23], "arc": [33]},
}
SCIENCE_TYPES = [
    "bias",
    "processed_bias",
    "arc",
    "processed_arc",
    "flat",
    "processed_flat",
    "standard",
    "processed_standard",
]


def expected(number: int) -> dict[str, list[str]]:
    """Every applicable type of science frame ``number`` with its expected file names."""
    answer = {caltype: [] for caltype in SCIENCE_TYPES}
    for caltype, numbers in EXPECTED[number].items():
        answer[caltype] = [night_name(n) for n in numbers]
    return answer


def add_frame(
    session: Session,
    name: str,
    fields: Mapping[str, Any],
    entrytime: datetime = datetime(2025, 11, 24, 10, 0),
) -> Header:
    """A file, its canonical present version and its header row, as ingest leaves them."""
    file = File(name=name)
    session.add(file)
    session.flush()
    md5 = hashlib.md5(name.encode()).hexdigest()
    diskfile = DiskFile(
        file_id=file.id,
        filename=name,
        path="",
        present=True,
        canonical=True,
        file_size=100,
        file_md5=md5,
        lastmod=entrytime,
        mtime_ns=0,
        compressed=False,
        data_size=100,
        data_md5=md5,
        entrytime=entrytime,
    )
    session.add(diskfile)
    session.flush()
    header = Header(diskfile_id=diskfile.id, **fields)
    session.add(header)
    session.flush()
    return header


def header_id(session: Session, name: str) -> int:
    return session.scalar(
        select(Header.id)
        .join(DiskFile, DiskFile.id == Header.diskfile_id)
        .where(DiskFile.filename == name, DiskFile.canonical)
    )
