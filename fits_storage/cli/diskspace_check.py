"""diskspace_check: warn, and alert, when a file system the system writes to runs low.

For cron (every 15 minutes, say). Below diskspace_min_free bytes or diskspace_min_free_percent
free, a CRITICAL record is logged (e-mailed to email_errors_to by the alert handler) and the
exit status is 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fits_storage.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    add_cron_arguments,
    start_cron_command,
)
from fits_storage.config import parse_key
from fits_storage.curation.diskspace import (
    Threshold,
    default_paths,
    human,
    measure,
    one_per_filesystem,
)

COMMAND = "diskspace_check"
log = logging.getLogger(COMMAND)


def _typed(key: str):  # type: ignore[no-untyped-def]
    """argparse type parsing a value as the configuration key ``key`` is parsed."""

    def convert(text: str) -> object:
        try:
            value = parse_key(key, text)
            if key == "diskspace_min_free_percent" and value > 100:
                raise ValueError(f"a percentage is at most 100, got {text!r}")
            return value
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Check the free space of the file systems this server writes to (by "
        "default storage_root, log_dir, lockfile_dir, upload_staging_dir, database_backup_dir "
        "and the SQLite database's directory, each file system once). Below the threshold, log "
        "a CRITICAL record (e-mailed to email_errors_to) and exit 1.",
    )
    parser.add_argument(
        "--path",
        action="append",
        type=Path,
        metavar="DIR",
        help="check the file system holding DIR instead (repeatable)",
    )
    parser.add_argument(
        "--min-free",
        type=_typed("diskspace_min_free"),
        metavar="SIZE",
        help="bytes that must stay free, such as 50G (default: diskspace_min_free)",
    )
    parser.add_argument(
        "--min-free-percent",
        type=_typed("diskspace_min_free_percent"),
        metavar="PERCENT",
        help="percentage that must stay free (default: diskspace_min_free_percent)",
    )
    parser.add_argument(
        "--dryrun",
        "--dry-run",
        dest="dryrun",
        action="store_true",
        help="report only: a shortfall is logged as a warning, not a CRITICAL alert "
        "(the exit status is the same)",
    )
    add_cron_arguments(parser, "results go")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = start_cron_command(COMMAND, args)
    threshold = Threshold(
        config.diskspace_min_free if args.min_free is None else args.min_free,
        config.diskspace_min_free_percent
        if args.min_free_percent is None
        else args.min_free_percent,
    )
    paths = one_per_filesystem(args.path or default_paths(config))
    if not paths:
        log.error("no directory to check")
        return EXIT_USAGE
    low = 0
    for path in paths:
        try:
            space = measure(path)
        except OSError as exc:
            log.critical("cannot measure the free space of %s: %s", path, exc)
            low += 1
            continue
        problem = threshold.shortfall(space)
        if problem is None:
            log.info(
                "%s: %s free of %s (%.1f%%)",
                path,
                human(space.free),
                human(space.total),
                space.free_percent,
            )
            continue
        low += 1
        level = logging.WARNING if args.dryrun else logging.CRITICAL
        log.log(level, "low disk space: %s", problem)
    summary = f"checked {len(paths)} file system(s): {low} below the threshold"
    log.info("%s", summary)
    if not args.demon:
        print(summary)
    return EXIT_FAILURE if low else 0


if __name__ == "__main__":
    sys.exit(main())
