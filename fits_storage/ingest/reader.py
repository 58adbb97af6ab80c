"""The read-ahead process: ``python -m fits_storage.ingest.reader FD`` (see ``readahead``).

Apart from ``readahead`` so that the worker can start it before importing astropy itself, and so
that what it sends is pickled under ``readahead``'s names, not ``__main__``'s.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from fits_storage.ingest.fitsread import read_fits
from fits_storage.ingest.readahead import CHUNK, READY, Fingerprint, Request, Result


def _fingerprint(path: str) -> Fingerprint:
    found = os.stat(path)
    return found.st_size, found.st_mtime_ns


def read(request: Request) -> Result:
    """The reader's pass over one file; never raises."""
    try:
        before = _fingerprint(request.local)
        md5 = hashlib.md5()
        with open(request.local, "rb") as handle:
            while chunk := handle.read(CHUNK):
                md5.update(chunk)
        contents = read_fits(Path(request.local), before[0], request.label, request.filename)
        return Result(before, _fingerprint(request.local), md5.hexdigest(), contents)
    except Exception:  # noqa: BLE001 - the worker reads it again and reports it properly
        return Result(None, None, None, None)


def serve(conn: Connection) -> None:
    """The reader's loop: one result per request, in order, until the worker hangs up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the worker's to handle
    conn.send(READY)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        conn.send(read(request))


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
