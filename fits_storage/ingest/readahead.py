"""Reading the next file beside the worker, on the machine's other core.

An ingest worker claims the entry after the one in hand before it works on that one (the queue
loop's read-ahead) and offers the next file to a process of its own: astropy's open, its
verification and the header fields (:func:`read_fits`, most of what a small file costs) then
run there while the worker checksums and records the file in hand.

The worker uses a result only if it describes the very bytes the worker has just checksummed:
the same size and mtime before and after the reader's pass, and the same md5. Otherwise, and
whenever the reader is not ready yet, has died, took too long or could not read the file, the
worker reads the file itself, so a bad file is reported the one way it always is. Only plain
files on local disk are offered: compressed files are decompressed once, by the worker, and S3
objects are fetched by it. A run of offers that the worker never needed (files found
unchanged) makes the reader pause, so a re-queue of unchanged files costs the second core
nothing.

The reader runs as ``python -m fits_storage.ingest.reader FD``, FD its end of a socket pair.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from fits_storage.ingest.digest import compression_of
from fits_storage.ingest.source import describe, store_for
from fits_storage.scan.names import FileKind, file_kind
from fits_storage.service.logs import one_line
from fits_storage.storage.local import LocalStore

if TYPE_CHECKING:
    from fits_storage.config import Config
    from fits_storage.ingest.fitsread import FitsContents

log = logging.getLogger(__name__)
READY = "ready"
MAX_PENDING = 3  # offers the reader may be behind by (the queue loop holds two ahead)
TAKE_TIMEOUT_SECONDS = 60.0  # then the reader is ended and the worker reads the file itself
PAUSE_AFTER_WASTED = 4  # consecutive offers never taken
PROBE_EVERY = 8  # while paused, one offer in this many, to notice new files again
CHUNK = 1 << 20

Fingerprint = tuple[int, int]  # size, mtime_ns


@dataclass(frozen=True)
class Request:
    local: str
    filename: str
    label: str


@dataclass(frozen=True)
class Result:
    """What the reader saw: the file's size and mtime before and after its pass, the md5 of
    the bytes it hashed, and what ``read_fits`` made of them (None if it raised)."""

    before: Fingerprint | None
    after: Fingerprint | None
    md5: str | None
    contents: FitsContents | None  # None also when astropy could not read the file


@dataclass
class _Offer:
    local: str
    number: int


class ReadAhead:
    """The worker's side: offers files to the reader and takes back what it read."""

    def __init__(self, take_timeout: float = TAKE_TIMEOUT_SECONDS) -> None:
        self.take_timeout = take_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._sent: deque[_Offer] = deque()  # offers whose results are still to come, in order
        self._offers = 0
        self._taken = 0
        self._wasted_run = 0
        self._paused_offers = 0

    def start(self) -> None:
        """Start the reader process now rather than at the first offer."""
        try:
            self._connection()
        except OSError as exc:
            self._end(f"cannot start it: {exc}")

    def offer(self, local: Path, filename: str, label: str) -> bool:
        """Have the reader read ``local`` (a regular file) if it can take it now."""
        self._offers += 1
        self._drop_wasted()
        if len(self._sent) >= MAX_PENDING or self._paused():
            return False
        try:
            regular = stat.S_ISREG(os.lstat(local).st_mode)
        except OSError:
            return False  # gone, or not ours to read: the worker says why
        if not regular:
            return False  # FIFOs, devices, symlinks: the worker's own checks apply
        try:
            conn = self._connection()
            conn.send(Request(str(local), filename, label))
        except (OSError, ValueError) as exc:
            self._end(f"cannot hand it {local}: {exc}")
            return False
        self._sent.append(_Offer(str(local), self._offers))
        return True

    def take(self, local: Path, fingerprint: Fingerprint, md5: str) -> FitsContents | None:
        """The reader's ``read_fits`` of ``local`` if it read exactly these bytes, else None."""
        key = str(local)
        if not any(offer.local == key for offer in self._sent):
            return None
        self._wasted_run = 0
        deadline = time.monotonic() + self.take_timeout
        if not self._wait_ready(deadline):
            return None
        while self._sent:
            offer = self._sent[0]
            result = self._next_result(deadline, key)
            if result is None:
                return None
            self._sent.popleft()
            if offer.local != key:
                continue  # an earlier offer the worker never needed
            same = result.before == result.after == fingerprint and result.md5 == md5
            if same and result.contents is not None:
                self._taken += 1
                return result.contents
            return None
        return None

    def close(self) -> None:
        if self._offers:
            log.info("read ahead: %d of %d files read beside the worker", self._taken, self._offers)
            self._offers = self._taken = 0
        self._end(None)

    def _next_result(self, deadline: float, key: str) -> Result | None:
        conn = self._conn
        assert conn is not None
        try:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                self._end(f"no answer for {key} in {self.take_timeout:g}s")
                return None
            return conn.recv()
        except Exception as exc:  # noqa: BLE001 - gone, or an answer that cannot be read
            self._end(f"it went away ({one_line(exc)})")
            return None

    def _drop_wasted(self) -> None:
        """Results the worker did not take by the time ``MAX_PENDING`` more offers were made:
        files it found unchanged (or handled otherwise). Their answers are read off as they
        arrive."""
        while self._sent and self._sent[0].number <= self._offers - MAX_PENDING:
            conn = self._conn
            try:
                if conn is None or not self._is_ready() or not conn.poll(0):
                    return
                conn.recv()
            except (EOFError, OSError) as exc:
                self._end(f"it went away ({one_line(exc)})")
                return
            self._sent.popleft()
            self._wasted_run += 1

    def _paused(self) -> bool:
        if self._wasted_run < PAUSE_AFTER_WASTED:
            self._paused_offers = 0
            return False
        self._paused_offers += 1
        return self._paused_offers % PROBE_EVERY != 0

    def _wait_ready(self, deadline: float) -> bool:
        """Wait for a reader still starting (it was started with the worker, so only the first
        files of a run wait, and no longer than the worker's own start-up takes)."""
        while not self._is_ready():
            if self._conn is None:
                return False
            try:
                waited = self._conn.poll(max(0.0, deadline - time.monotonic()))
            except OSError as exc:
                self._end(f"it did not start ({one_line(exc)})")
                return False
            if not waited:
                self._end(f"not started after {self.take_timeout:g}s")
                return False
        return True

    def _is_ready(self) -> bool:
        if not self._ready and self._conn is not None:
            try:
                if self._conn.poll(0) and self._conn.recv() == READY:
                    self._ready = True
            except (EOFError, OSError) as exc:
                self._end(f"it did not start ({one_line(exc)})")
        return self._ready

    def _connection(self) -> Connection:
        if self._conn is not None and self._process is not None and self._process.poll() is None:
            return self._conn
        self._end(None)
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "fits_storage.ingest.reader", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
            self._conn = Connection(ours.detach())
        return self._conn

    def _end(self, why: str | None) -> None:
        if why is not None:
            log.warning("read-ahead process: %s; the worker reads files itself meanwhile", why)
        process, conn = self._process, self._conn
        self._process, self._conn, self._ready = None, None, False
        self._sent.clear()
        if conn is not None:
            conn.close()
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


_reader: ReadAhead | None = None


def start_reader(config: Config) -> None:
    """Start this process's reader now (it takes about a second to import astropy), if the
    data store is local disk: S3 objects are never offered."""
    _local_store(config)


def offer_next(config: Config, path: str, filename: str) -> None:
    """Offer the stored file ``path/filename`` to this process's reader, when it is a plain
    FITS file on local disk (the queue loop calls this with the entry it claimed next)."""
    if compression_of(filename) is not None or file_kind(filename) is not FileKind.FITS:
        return
    store = _local_store(config)
    if store is None or _reader is None:
        return
    try:
        local = store.path_of(filename, path)
    except ValueError:
        return  # a name the store refuses: the ingest says why
    _reader.offer(local, filename, describe(path, filename))


def _local_store(config: Config) -> LocalStore | None:
    """The local data store, with this process's reader started; None for S3, and on a
    machine with one core (where a second process only adds the cost of handing files over)."""
    global _reader
    store = store_for(config)
    if not isinstance(store, LocalStore) or len(os.sched_getaffinity(0)) < 2:
        return None
    if _reader is None:
        _reader = ReadAhead()
        atexit.register(_reader.close)
        _reader.start()
    return store


def taken(local: Path, fingerprint: Fingerprint, md5: str) -> FitsContents | None:
    """What the reader made of ``local``, if it was offered and read exactly these bytes."""
    return _reader.take(local, fingerprint, md5) if _reader is not None else None

