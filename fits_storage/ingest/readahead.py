"""What a worker's ingest prepares for the entry it will most likely be given next.

On PostgreSQL a worker's write leases its next entry and also names the entry after that
(:class:`~fits_storage.ingest.rows.Waiting`, not leased). While the next write runs, the
worker reads that file as ingest would (stat, md5, fitsverify, astropy: no database), and if
the write then leases that very entry, its ingest uses what was read, provided the file's size
and modification time are still those read. Another worker may lease it first: the reading is
then wasted, and :class:`ReadAheadPace` reads ahead less often while that keeps happening.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from fits_storage.ingest.digest import Digest
from fits_storage.ingest.fitsread import FitsContents
from fits_storage.ingest.present import KnownPresent
from fits_storage.ingest.rows import Waiting
from fits_storage.ingest.source import StoredStat
from fits_storage.ingest.verify import VerifyReport

# Files larger than this are not read ahead: another worker may lease them first, and the
# round trip the reading hides is the same whatever the size.
READ_AHEAD_MAX_BYTES = 8 * 1024 * 1024


class FileRead(NamedTuple):
    """What ingest reads of a FITS file: its md5, its contents and fitsverify's report."""

    digest: Digest
    contents: FitsContents
    fitsverify: VerifyReport | None


@dataclass(frozen=True)
class ReadAhead:
    """A plain FITS file on local disk as ingest reads it, and the stat it was read at."""

    entry_id: int
    filename: str
    path: str
    stat: StoredStat
    read: FileRead

    def usable_for(self, filename: str, path: str, stat: StoredStat) -> bool:
        """The same file, its size and modification time unchanged since it was read."""
        return (self.filename, self.path, self.stat) == (filename, path, stat)


@dataclass(frozen=True)
class Prepared:
    """What the write that leased an entry learnt for its ingest: the file's present version
    (None: read it), the file read ahead (None: read it) and the entry after it."""

    present: KnownPresent | None = None
    contents: ReadAhead | None = None
    after: Waiting | None = None


class ReadAheadPace:
    """Read ahead after every write while it pays; after each entry another worker took
    first, skip twice as many writes as the last time (at most ``most``), until one pays."""

    def __init__(self, most: int = 64) -> None:
        self.most = most
        self._skip = 0
        self._penalty = 0

    def allows(self) -> bool:
        if self._skip > 0:
            self._skip -= 1
            return False
        return True

    def record(self, used: bool) -> None:
        if used:
            self._penalty = 0
        else:
            self._penalty = min(self.most, max(1, 2 * self._penalty))
            self._skip = self._penalty
