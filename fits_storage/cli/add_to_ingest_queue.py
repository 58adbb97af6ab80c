"""add_to_ingest_queue: queue files under storage_root for (re-)ingestion.

Run by hand and from cron (``--file-re=fourday`` every 15 minutes, ``--file-re=twentyday``
hourly, ``--path=masks`` ...) so that files changed in place on the dataflow disk get picked up:
re-ingesting an unchanged file is a cheap no-op, so queueing generously is safe.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TextIO

from fits_storage.cli.common import (
    load_config_or_exit,
    open_database,
    setup_command_logging,
)
from fits_storage.scan import Selection, SelectionError, special_value_warning
from fits_storage.scan.select import SPECIAL_DAYS
from fits_storage.storage import StorageError

if TYPE_CHECKING:
    from fits_storage.storage.s3 import S3Store

COMMAND = "add_to_ingest_queue"
CHUNK = 5000
log = logging.getLogger(COMMAND)


class UsageError(ValueError):
    """A bad option value; reported in one line with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    special = ", ".join(
        f"{k} (last {v} UT date{'s' if v > 1 else ''})" for k, v in SPECIAL_DAYS.items()
    )
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Add files under storage_root (or, on a using_s3 host, in the bucket) to "
        "the ingest queue: FITS files (.fits, .fits.bz2, .fits.gz, .fit), observing logs "
        "(*_obslog.txt) and miscfiles (miscfile_*, whose .json metadata is read with them). "
        "Temporary files (names starting with '.' or 'tmp', ending with '~', '.tmp' or '.part') "
        "and other names are always skipped. A file already waiting in the queue is not queued "
        "twice. A --path or --file-re that matches nothing ingestable is warned about.",
        epilog="Examples: add_to_ingest_queue --file-re=fourday --demon  |  add_to_ingest_queue "
        "--path=masks  |  add_to_ingest_queue --file-re='N2016031[89]S' --force_md5",
    )
    parser.add_argument(
        "--file-re",
        dest="file_re",
        metavar="REGEX",
        help="Python regular expression searched in each file name. Special values select the "
        f"files of the last few UT dates (YYYYMMDD in the name): {special}",
    )
    parser.add_argument(
        "--path",
        default="",
        help="directory to scan, relative to storage_root (default: storage_root itself; "
        "not recursive)",
    )
    parser.add_argument(
        "--force", action="store_true", help="re-ingest these files unconditionally"
    )
    parser.add_argument(
        "--force_md5",
        "--force-md5",
        dest="force_md5",
        action="store_true",
        help="decide whether a file changed by its md5, not just its size and modification time",
    )
    parser.add_argument(
        "--after",
        metavar="DATETIME",
        help="ingest only after this date-time, ISO format (2026-03-18T14:00:00; local time of "
        "this host unless it carries an offset such as Z or -10:00)",
    )
    parser.add_argument(
        "--newfiles",
        type=float,
        metavar="N",
        help="only queue files modified in the last N days",
    )
    parser.add_argument(
        "--filename",
        action="append",
        default=[],
        metavar="NAME",
        help="queue this file (in --path) instead of scanning the directory; may be repeated",
    )
    parser.add_argument(
        "--listfile",
        metavar="FILE",
        help="queue the files named in FILE, one per line (blank lines and # comments ignored)",
    )
    parser.add_argument(
        "--s3filepre",
        metavar="PREFIX",
        help="on a using_s3 host: only the keys starting with PREFIX (under --path); the "
        "bucket is listed a page at a time, with --file-re and --newfiles applied to each key",
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "--demon",
        action="store_true",
        help="for cron: no output on the terminal, no progress bar; the summary goes to the log "
        "file (<log_dir>/add_to_ingest_queue.log) only",
    )
    return parser


def parse_after(text: str) -> datetime:
    """ISO date-time to the naive UTC the queue stores; naive input is this host's local time."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise UsageError(f"--after: not an ISO date-time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.astimezone()  # local time of this host
    return value.astimezone(UTC).replace(tzinfo=None)


def clean_path(text: str) -> str:
    """A directory relative to storage_root, as the queue records it ('' for the root)."""
    path = PurePosixPath(text.strip())
    if path.is_absolute() or ".." in path.parts:
        raise UsageError(f"--path must be relative to storage_root, without '..': {text!r}")
    cleaned = str(path)
    return "" if cleaned == "." else cleaned


def read_listfile(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
    except OSError as exc:
        raise UsageError(f"--listfile: cannot read {path}: {exc.strerror}") from exc
    return [line for line in lines if line and not line.startswith("#")]


@dataclass
class Summary:
    found: int = 0
    queued: int = 0
    already_queued: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"found {self.found}, queued {self.queued}, already queued {self.already_queued}, "
            f"skipped {self.skipped}"
        )

    def nothing_line(self, what: str) -> str:
        """The warning for a selection that matched nothing this system ingests."""
        if not self.found:
            return f"{what} matched nothing to ingest: no file found there"
        why = ", ".join(f"{count} {reason}" for reason, count in self.reasons.most_common())
        return f"{what} matched nothing to ingest: {self.found} file(s) found, all skipped ({why})"


class ProgressBar:
    """A one-line bar on stderr, drawn only when stderr is a terminal (never under cron).
    Without a ``total`` (a bucket listed page by page) it shows the count so far."""

    def __init__(
        self, total: int | None, stream: TextIO, enabled: bool, width: int = 40
    ) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.enabled = enabled and total != 0
        self.done = 0
        self._last = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if self.enabled and (now - self._last > 0.1 or finished):
            self._last = now
            if self.total is None:
                self.stream.write(f"\r[listing...] {self.done} queued")
            else:
                filled = self.width * min(self.done, self.total) // self.total
                bar = "#" * filled + "." * (self.width - filled)
                self.stream.write(f"\r[{bar}] {self.done}/{self.total} queued")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()


def _batches(items: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _split(base: str, name: str) -> tuple[str, str]:
    """A listed name may carry a sub-directory: 'sub/N2025...fits' under --path."""
    pure = PurePosixPath(name)
    parent = str(PurePosixPath(base) / pure.parent) if str(pure.parent) != "." else base
    return (parent if parent != "." else ""), pure.name


Found = Iterable[tuple[str, str, str | None]]  # (path, filename, reason skipped or None)


def disk_results(
    storage_root: Path, path: str, selection: Selection, names: Iterable[str] | None
) -> Found:
    """The files under ``storage_root/path`` (or the named ones), with why each is skipped."""
    if names is None:
        return ((path, name, reason) for name, reason in selection.scan(storage_root / path))
    return (
        (sub, filename, reason)
        for sub, filename in (_split(path, n) for n in names)
        for _, reason in selection.check_names(storage_root / sub, [filename])
    )


def s3_results(
    store: S3Store, path: str, prefix: str, selection: Selection, names: Iterable[str] | None
) -> Found:
    """The same from a bucket: keys listed page by page under ``path/prefix`` (or the named
    ones, looked up one by one), never all held at once."""
    if names is not None:
        for sub, filename in (_split(path, n) for n in names):
            stat = store.stat(filename, sub)
            if stat is None:
                yield sub, filename, "no such key"
            else:
                yield sub, filename, selection.reason_to_skip(filename, stat.mtime_ns / 1e9)
        return
    base = f"{path}/" if path else ""
    for key, mtime in store.list_keys(base + prefix):
        sub, _, filename = key.rpartition("/")
        yield sub, filename, selection.reason_to_skip(filename, mtime)


def select_files(
    results: Found, summary: Summary, storage_root: Path | str, named: bool
) -> Iterator[tuple[str, str]]:
    """(path, filename) of every selected file, counting the rest in ``summary``."""
    # A file the user named and that is not queued deserves a word at the default level.
    level = logging.WARNING if named else logging.DEBUG
    for sub, name, reason in results:
        summary.found += 1
        if reason:
            summary.skipped += 1
            summary.reasons[reason] += 1
            log.log(level, "Not queueing %s/%s: %s", storage_root, relative(sub, name), reason)
        else:
            yield sub, name


def relative(path: str, filename: str) -> str:
    return f"{path}/{filename}" if path else filename


def given_selection(args: argparse.Namespace) -> str | None:
    """The options that chose where to look, as typed, for the nothing-matched warning."""
    given = [
        f"{option}={value}"
        for option, value in (
            ("--path", args.path),
            ("--file-re", args.file_re),
            ("--s3filepre", args.s3filepre),
        )
        if value
    ]
    return " ".join(given) or None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config_or_exit(COMMAND)
    setup_command_logging(
        config.log_dir, COMMAND, debug=args.debug, demon=args.demon, alerts=config
    )
    try:
        path = clean_path(args.path)
        after = parse_after(args.after) if args.after else None
        selection = Selection(file_re=args.file_re, newfiles_days=args.newfiles)
        names: list[str] | None = None
        if args.filename or args.listfile:
            names = list(args.filename) + (read_listfile(args.listfile) if args.listfile else [])
        directory = config.storage_root / path
        if args.s3filepre and not config.using_s3:
            raise UsageError("--s3filepre needs using_s3 (this host's data store is a disk)")
        if not config.using_s3 and not directory.is_dir():
            raise UsageError(f"no such directory: {directory}")
    except (UsageError, SelectionError) as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return 2

    engine, session_factory = open_database(config, COMMAND)
    if args.file_re and (warning := special_value_warning(args.file_re)):
        log.warning("%s", warning)
    started = time.monotonic()
    summary = Summary()
    where: Path | str
    if config.using_s3:
        from fits_storage.storage.s3 import S3Store

        store = S3Store(config.s3_bucket_name, config.s3_endpoint_url or None)
        where = f"s3://{config.s3_bucket_name}"
        log.info("Listing %s/%s%s", where, f"{path}/" if path else "", args.s3filepre or "")
        results = s3_results(store, path, args.s3filepre or "", selection, names)
        chosen: Iterable[tuple[str, str]] = select_files(
            results, summary, where, names is not None
        )
        total = None
    else:
        where = config.storage_root
        log.info("Scanning %s", directory)
        results = disk_results(config.storage_root, path, selection, names)
        chosen = list(select_files(results, summary, where, names is not None))
        total = len(chosen)
    extra = {"after": after, "force": args.force, "force_md5": args.force_md5}
    from fits_storage.queues import get_queue

    queue = get_queue("ingest", config)
    progress = ProgressBar(total, sys.stderr, enabled=not args.demon and sys.stderr.isatty())
    try:
        for batch in _batches(chosen, CHUNK):
            items = [{"filename": name, "path": sub, **extra} for sub, name in batch]
            with session_factory() as session:
                added = queue.add_many(session, items)
                session.commit()
            summary.queued += added
            summary.already_queued += len(items) - added
            progress.advance(len(items))
    except StorageError as exc:
        log.error("data store error: %s", exc)
        return 1
    finally:
        progress.close()
        engine.dispose()
    if summary.queued + summary.already_queued == 0 and (what := given_selection(args)):
        log.warning("%s", summary.nothing_line(what))
    log.info("%s (%.1fs)", summary.line(), time.monotonic() - started)
    if not args.demon:
        print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
