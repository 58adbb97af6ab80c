"""What exporting one queue entry is: make sure one file is at one destination, verified.

The steps (docs/export.md):

1. ask the destination for the file; the same data md5 there means done, nothing sent; an
   ingest pending there means try again shortly (not counted as an attempt);
2. otherwise send it bz2-compressed (an already-``.bz2`` file as it is), stating the md5 of the
   bytes sent, and accept only an answer echoing that size and md5.

Only the bytes the present diskfile describes are ever sent. Before anything goes out the
file's size must be the recorded one, and its md5 too: a plain file is hashed as it is
compressed to the spool (no second read); an unchanged ``.bz2`` (same size and mtime) is sent
stating the recorded md5, which the destination checks against what it receives; a touched one
is hashed first. A mismatch (a file truncated or rewritten since its ingest) fails the entry
with the reason, and nothing is sent: re-ingesting the file records and exports the new bytes.

Network errors, timeouts and "unavailable" answers put the whole destination into backoff (see
``destinations``); other 5xx answers to an upload retry this file with its own backoff. Neither
counts as an attempt, so an outage of any length fails nothing. A 4xx is a failure for good,
with the server's message; so is an answer that does not confirm the bytes sent.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.export.client import (
    BadAnswer,
    DestinationClient,
    DestinationRefused,
    DestinationUnavailable,
    UploadServerError,
)
from fits_storage.export.destinations import DestinationHealth
from fits_storage.export.spool import BZ2_LEVEL, Payload, clean_spool, spool_compressed
from fits_storage.orm.file import DiskFile
from fits_storage.queues import Backoff, Entry, PermanentError, TransientError
from fits_storage.scan.names import FileKind, file_kind, miscfile_meta_name
from fits_storage.storage.base import StoredFile, file_md5

log = logging.getLogger(__name__)


class ExportFailed(PermanentError):
    """The export cannot succeed by retrying: refused, unconfirmed, or nothing to send."""


@dataclass(frozen=True)
class ExportSettings:
    """The knobs of an exporter process (command-line options of ``service_export_queue``)."""

    spool_dir: Path
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    pending_delay: float = 10.0
    backoff_base: float = 5.0
    backoff_cap: float = 600.0
    bz2_level: int = BZ2_LEVEL


@dataclass
class Outcome:
    """What happened to one export, for the log and for tests."""

    action: str  # "sent" or "already there"
    remote_name: str
    bytes_sent: int = 0
    seconds: float = 0.0


def sent_as_is(filename: str) -> bool:
    """Observing logs and miscfiles go as they are: small, or already packed, and the
    archive reads them as the summit does. FITS files go bz2-compressed."""
    return file_kind(filename) in (FileKind.OBSLOG, FileKind.MISCFILE)


def remote_name_for(filename: str) -> str:
    """FITS files are stored compressed on the archive: the name gets ``.bz2`` unless it has
    it; the summit's other files keep their names."""
    if sent_as_is(filename) or filename.lower().endswith(".bz2"):
        return filename
    return f"{filename}.bz2"


def default_spool_dir() -> Path:
    """Under $TMPDIR: spool files are the compressed size, and go as soon as they are sent."""
    return Path(tempfile.gettempdir()) / "fits_storage_export_spool"


@dataclass
class Exporter:
    """One process's exporter: HTTP clients and backoff state shared across entries.

    Call it as the work function of the export queue: ``exporter(session, entry, context)``.
    """

    config: Config
    settings: ExportSettings
    health: DestinationHealth = field(init=False)
    _clients: dict[str, DestinationClient] = field(init=False, default_factory=dict)
    _file_failures: dict[tuple[str, str, str], int] = field(init=False, default_factory=dict)
    logger: logging.Logger = field(init=False, default=log)

    def __post_init__(self) -> None:
        backoff = Backoff(self.settings.backoff_base, self.settings.backoff_cap)
        self.health = DestinationHealth(backoff=backoff)
        self._file_backoff = backoff
        removed = clean_spool(self.settings.spool_dir)
        if removed:
            self.logger.info("removed %d spool file(s) left by exporters that stopped", removed)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def client(self, destination: str) -> DestinationClient:
        if destination not in self._clients:
            self._clients[destination] = DestinationClient(
                destination,
                self.config.export_auth_cookie,
                connect_timeout=self.settings.connect_timeout,
                read_timeout=self.settings.read_timeout,
            )
        return self._clients[destination]

    def __call__(self, session: Session, entry: Entry, context: Any = None) -> Outcome:
        """The work function of the export queue (``fits_storage.service.worker``)."""
        if context is not None:
            self.logger = context.logger
        return self.export(session, entry.filename, entry.path, entry["destination"])

    # -- one export ---------------------------------------------------------------------------

    def export(
        self,
        session: Session,
        filename: str,
        path: str,
        destination: str,
    ) -> Outcome:
        """Make sure ``path/filename`` is at ``destination``; raise what the queue should do."""
        logger = self.logger
        if not destination:
            raise ExportFailed("export entry has no destination")
        self._skip_if_down(destination)
        diskfile = present_diskfile(session, filename, path)
        source = self.config.storage_root / path / filename
        if self.config.using_s3:
            raise ExportFailed("export from a server using S3 is not supported")
        if not source.is_file():
            raise ExportFailed(f"{source} is not there (diskfile {diskfile.id} says present)")
        # The size costs nothing to check: a truncated file fails before the destination is asked.
        _check_against(diskfile, source, StoredFile(source.stat().st_size, diskfile.file_md5))
        remote_name = remote_name_for(filename)
        client = self.client(destination)
        if file_kind(filename) is FileKind.MISCFILE:
            self._send_miscfile_meta(client, destination, source, path, filename)

        there = self._guard(destination, lambda: client.file_list(remote_name))
        if any(item.get("data_md5") == diskfile.data_md5 for item in there):
            logger.info(
                "%s already at %s with data md5 %s", remote_name, destination, diskfile.data_md5
            )
            return Outcome("already there", remote_name)
        if any(item.get("pending_ingest") for item in there):
            raise TransientError(
                f"{remote_name} has an ingest pending at {destination}; asking again shortly",
                delay=self.settings.pending_delay,
                counts=False,
            )

        started = time.monotonic()
        before = _signature(source)
        payload = self._payload(source, diskfile)
        try:
            logger.info("transferring %s to %s (%d bytes)", remote_name, destination, payload.size)
            receipt = self._guard(
                destination,
                lambda: client.upload(path, remote_name, payload),
                file_key=(destination, path, filename),
                source=(source, before),
            )
        finally:
            payload.discard()
        if receipt.size != payload.size or receipt.md5 != payload.md5:
            self._raise_if_changed(source, before)
            raise ExportFailed(
                f"{destination} confirms {receipt.size} bytes with md5 {receipt.md5} for "
                f"{remote_name}, but {payload.size} bytes with md5 {payload.md5} were sent"
            )
        self._file_failures.pop((destination, path, filename), None)
        seconds = time.monotonic() - started
        logger.info(
            "transferred %s to %s: %d bytes (%d uncompressed) in %.2fs, md5 %s confirmed",
            remote_name,
            destination,
            payload.size,
            diskfile.data_size,
            seconds,
            payload.md5,
        )
        return Outcome("sent", remote_name, payload.size, seconds)

    def _send_miscfile_meta(
        self, client: DestinationClient, destination: str, source: Path, path: str, filename: str
    ) -> None:
        """A miscfile's metadata goes first, every time (a few hundred bytes): the archive's
        ingest of the miscfile reads it, and a changed one reaches the archive this way."""
        meta = source.with_name(miscfile_meta_name(filename))
        try:
            stored = file_md5(meta)
        except FileNotFoundError as exc:
            raise ExportFailed(f"{meta} is missing: a miscfile is exported with it") from exc
        payload = Payload(meta, stored.size, stored.md5, spooled=False)
        receipt = self._guard(
            destination,
            lambda: client.upload(path, meta.name, payload),
            file_key=(destination, path, meta.name),
        )
        if (receipt.size, receipt.md5) != (payload.size, payload.md5):
            raise ExportFailed(
                f"{destination} confirms {receipt.size} bytes with md5 {receipt.md5} for "
                f"{meta.name}, but {payload.size} bytes with md5 {payload.md5} were sent"
            )
        self.logger.info("transferred %s to %s (%d bytes)", meta.name, destination, payload.size)

    def _skip_if_down(self, destination: str) -> None:
        if self.health.wait_left(destination) > 0:
            delay = self.health.requeue_delay(destination)
            raise TransientError(
                f"{destination} is unavailable ({self.health.last_error(destination)}); "
                f"next try in {delay:.0f}s",
                delay=delay,
                counts=False,
                quiet=True,  # the failure itself was logged once, when the backoff began
                alike=("destination",),  # and the rest of its backlog waits as long
            )

    def _guard(
        self,
        destination: str,
        call: Any,
        file_key: tuple[str, str, str] | None = None,
        source: tuple[Path, tuple[int, int]] | None = None,
    ) -> Any:
        """Run one HTTP exchange and turn its failure into what the queue should do."""
        try:
            result = call()
        except DestinationUnavailable as exc:
            delay = self.health.failed(destination, str(exc), exc.retry_after)
            failures = self.health.failures(destination)
            raise TransientError(
                f"{destination} unavailable ({failures} in a row): {exc}; backing off {delay:.0f}s",
                delay=delay,
                counts=False,
                alike=("destination",),  # its whole backlog waits, in one statement
            ) from exc
        except UploadServerError as exc:
            self._answered(destination)
            assert file_key is not None
            failures = self._file_failures.get(file_key, 0) + 1
            self._file_failures[file_key] = failures
            delay = self._file_backoff.delay(failures)
            raise TransientError(
                f"{exc}; retrying this file in {delay:.0f}s", delay=delay, counts=False
            ) from exc
        except DestinationRefused as exc:
            self._answered(destination)
            if source is not None:
                self._raise_if_changed(*source)
            raise ExportFailed(f"refused: {exc}") from exc
        except BadAnswer as exc:
            self._answered(destination)
            raise ExportFailed(str(exc)) from exc
        self._answered(destination)
        return result

    def _answered(self, destination: str) -> None:
        """Any answer at all means the destination is up again."""
        recovered = self.health.succeeded(destination)
        if recovered:
            self.logger.info("%s answers again after %d failure(s)", destination, recovered)

    @staticmethod
    def _raise_if_changed(source: Path, before: tuple[int, int]) -> None:
        """A file rewritten while it was read explains a refusal or mismatch: send it again."""
        if _signature(source) != before:
            raise TransientError(f"{source} changed while it was being sent; sending it again")

    def _payload(self, source: Path, diskfile: DiskFile) -> Payload:
        """The bytes to send and their md5, known before sending (the server checks it), made
        only from bytes that match ``diskfile`` (ExportFailed otherwise, nothing left over)."""
        if remote_name_for(source.name) != source.name:
            payload = spool_compressed(source, self.settings.spool_dir, self.settings.bz2_level)
            try:
                _check_against(diskfile, source, payload.source or StoredFile(-1, ""))
            except BaseException:
                payload.discard()
                raise
            return payload
        stat = source.stat()
        if stat.st_size == diskfile.file_size and stat.st_mtime_ns == diskfile.mtime_ns:
            # Unchanged since ingest measured it: the destination checks the bytes it receives
            # against the recorded md5 stated with them.
            return Payload(source, diskfile.file_size, diskfile.file_md5, spooled=False)
        stored = file_md5(source)
        _check_against(diskfile, source, stored)
        return Payload(source, stored.size, stored.md5, spooled=False)


def _check_against(diskfile: DiskFile, source: Path, found: StoredFile) -> None:
    """The bytes about to be sent must be those the present diskfile records."""
    if (found.size, found.md5) == (diskfile.file_size, diskfile.file_md5):
        return
    what = f"{found.size} bytes" if found.size != diskfile.file_size else f"md5 {found.md5}"
    raise ExportFailed(
        f"{source} does not match its present diskfile {diskfile.id} ({what} where "
        f"{diskfile.file_size} bytes with md5 {diskfile.file_md5} were recorded): it changed "
        "since it was ingested; not exported (re-ingest it to export the new bytes)"
    )


def _signature(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


def present_diskfile(session: Session, filename: str, path: str) -> DiskFile:
    """The present version of a file; exporting something the database does not hold fails."""
    diskfile = session.scalars(
        select(DiskFile)
        .where(DiskFile.filename == filename, DiskFile.path == path, DiskFile.present)
        .order_by(DiskFile.id.desc())
        .limit(1)
    ).first()
    if diskfile is None:
        raise ExportFailed(f"no present diskfile for {os.path.join(path, filename)}")
    return diskfile
