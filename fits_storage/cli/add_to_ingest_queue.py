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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TextIO

from fits_storage.cli.common import (
    load_config_or_exit,
    open_database,
    setup_command_logging,
)
from fits_storage.queues import get_queue
from fits_storage.scan import Selection, SelectionError, special_value_warning
from fits_storage.scan.select import SPECIAL_DAYS

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
        description="Add FITS files under storage_root to the ingest queue. Temporary files "
        "(names starting with '.' or 'tmp', ending with '~', '.tmp' or '.part') and non-FITS "
        "names (not .fits, .fits.bz2, .fits.gz or .fit) are always skipped. A file already "
        "waiting in the queue is not queued twice.",
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

    def line(self) -> str:
        return (
            f"found {self.found}, queued {self.queued}, already queued {self.already_queued}, "
            f"skipped {self.skipped}"
        )


class ProgressBar:
    """A one-line bar on stderr, drawn only when stderr is a terminal (never under cron)."""

    def __init__(self, total: int, stream: TextIO, enabled: bool, width: int = 40) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.enabled = enabled and total > 0
        self.done = 0
        self._last = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            filled = self.width * self.done // self.total
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} queued")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _chunks(items: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _split(base: str, name: str) -> tuple[str, str]:
    """A listed name may carry a sub-directory: 'sub/N2025...fits' under --path."""
    pure = PurePosixPath(name)
    parent = str(PurePosixPath(base) / pure.parent) if str(pure.parent) != "." else base
    return (parent if parent != "." else ""), pure.name


def select_files(
    storage_root: Path, path: str, selection: Selection, names: Iterable[str] | None
) -> tuple[list[tuple[str, str]], Summary]:
    """(path, filename) of every selected file, and the counts so far."""
    summary = Summary()
    chosen: list[tuple[str, str]] = []
    if names is None:
        results: Iterable[tuple[str, str, str | None]] = (
            (path, name, reason) for name, reason in selection.scan(storage_root / path)
        )
    else:
        results = (
            (sub, filename, reason)
            for sub, filename in (_split(path, n) for n in names)
            for _, reason in selection.check_names(storage_root / sub, [filename])
        )
    # A file the user named and that is not queued deserves a word at the default level.
    level = logging.DEBUG if names is None else logging.WARNING
    for sub, name, reason in results:
        summary.found += 1
        if reason:
            summary.skipped += 1
            log.log(level, "Not queueing %s: %s", storage_root / sub / name, reason)
        else:
            chosen.append((sub, name))
    return chosen, summary


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
        if not directory.is_dir():
            raise UsageError(f"no such directory: {directory}")
    except (UsageError, SelectionError) as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return 2

    engine, session_factory = open_database(config, COMMAND)
    if args.file_re and (warning := special_value_warning(args.file_re)):
        log.warning("%s", warning)
    started = time.monotonic()
    log.info("Scanning %s", directory)
    chosen, summary = select_files(config.storage_root, path, selection, names)
    extra = {"after": after, "force": args.force, "force_md5": args.force_md5}
    items = [{"filename": name, "path": sub, **extra} for sub, name in chosen]
    queue = get_queue("ingest", config)
    progress = ProgressBar(len(items), sys.stderr, enabled=not args.demon and sys.stderr.isatty())
    try:
        for chunk in _chunks(items, CHUNK):
            with session_factory() as session:
                added = queue.add_many(session, chunk)
                session.commit()
            summary.queued += added
            summary.already_queued += len(chunk) - added
            progress.advance(len(chunk))
    finally:
        progress.close()
        engine.dispose()
    log.info("%s (%.1fs)", summary.line(), time.monotonic() - started)
    if not args.demon:
        print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
