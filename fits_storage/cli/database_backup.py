"""database_backup: dump the database (``pg_dump -Fc``; SQLite: a consistent copy) into
database_backup_dir, keeping the newest database_backup_keep dumps. For cron (nightly)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fits_storage.cli.common import (
    EXIT_FAILURE,
    add_cron_arguments,
    start_cron_command,
)

COMMAND = "database_backup"
log = logging.getLogger(COMMAND)


def _keep(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Dump the database into database_backup_dir as "
        "fits_storage-<UTC time>.dump (PostgreSQL: pg_dump -Fc, restore with pg_restore) or "
        ".sqlite (SQLite: a consistent copy), then delete the oldest of these dumps beyond "
        "database_backup_keep. Old dumps are pruned only after a new one succeeded.",
    )
    parser.add_argument(
        "--dir", type=Path, metavar="DIR", help="write here (default: database_backup_dir)"
    )
    parser.add_argument(
        "--keep", type=_keep, metavar="N", help="dumps to keep (default: database_backup_keep)"
    )
    parser.add_argument(
        "--no-queues",
        dest="no_queues",
        action="store_true",
        help="leave out the rows of the queue tables (their definitions stay): smaller, and a "
        "restore starts with empty queues",
    )
    parser.add_argument(
        "--dryrun",
        "--dry-run",
        dest="dryrun",
        action="store_true",
        help="print what would be dumped and pruned; write and delete nothing",
    )
    add_cron_arguments(parser, "the result goes")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = start_cron_command(COMMAND, args)
    from fits_storage.curation.backup import BackupError, backup_database

    directory = args.dir or config.database_backup_dir
    keep = args.keep or config.database_backup_keep
    try:
        result = backup_database(
            config.database_url, directory, keep, no_queues=args.no_queues, dryrun=args.dryrun
        )
    except (BackupError, OSError) as exc:
        log.error("backup failed, nothing pruned: %s", exc)
        return EXIT_FAILURE
    if args.dryrun:
        log.info("would run: %s", " ".join(result.command))
    for old in result.pruned:
        log.info("%s %s", "would prune" if args.dryrun else "pruned", old)
    summary = result.line(args.dryrun)
    log.info("%s", summary)
    if not args.demon:
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
