"""rollcall: check that every file the database holds as present is still in the data store.

For cron (nightly, say): a file gone from the disk or bucket has its present version marked not
present, so the archive stops advertising and serving it; one whose bytes changed without an
ingest is queued for ingest. ``--dryrun`` only reports.
"""

from __future__ import annotations

import argparse
import logging
import sys

from fits_storage.cli.common import (
    EXIT_FAILURE,
    add_cron_arguments,
    open_database,
    start_cron_command,
)
from fits_storage.storage import StorageError, get_store

COMMAND = "rollcall"
log = logging.getLogger(COMMAND)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Check that every present diskfile is still in the data store (storage_root "
        "or the S3 bucket) with its recorded size. Missing files are marked not present; "
        "changed ones are queued for ingest. Prints a summary; each finding is logged as a "
        "warning (<log_dir>/rollcall.log).",
    )
    parser.add_argument(
        "--md5",
        action="store_true",
        help="also read every file and compare its md5 with the recorded one (slow: reads all "
        "the data)",
    )
    parser.add_argument(
        "--dryrun",
        "--dry-run",
        dest="dryrun",
        action="store_true",
        help="only report what would be marked or queued; change nothing",
    )
    parser.add_argument(
        "--max-missing",
        type=int,
        default=100,
        metavar="N",
        help="with more than N files missing, mark none and exit 1: an unmounted disk or a "
        "wrong bucket looks like every file gone (default: %(default)s)",
    )
    add_cron_arguments(parser, "findings and the summary go")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = start_cron_command(COMMAND, args)
    from fits_storage.ingest.rollcall import TooManyMissing, rollcall  # after --help and config

    engine, session_factory = open_database(config, COMMAND)
    try:
        result = rollcall(
            config,
            session_factory,
            get_store(config),
            log,
            md5=args.md5,
            dryrun=args.dryrun,
            max_missing=args.max_missing,
        )
    except TooManyMissing as exc:
        log.error("%s", exc)  # on the terminal too, unless --demon
        return EXIT_FAILURE
    except StorageError as exc:
        log.error("data store error: %s", exc)
        return EXIT_FAILURE
    finally:
        engine.dispose()
    summary = result.line(args.dryrun)
    log.info("%s", summary)
    if not args.demon:
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
