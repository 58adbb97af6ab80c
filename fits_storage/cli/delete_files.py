"""delete_files: free the summit's dataflow disk of files the archive already holds.

For cron (nightly): a present file older than delete_min_age_days is deleted only when every
archive (export_destinations, or --archive) lists it with the md5 of the bytes on disk; each
decision is logged (<log_dir>/delete_files.log). ``--dryrun`` only reports.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys

from fits_storage.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    add_cron_arguments,
    fail,
    load_config_or_exit,
    open_database,
    setup_command_logging,
)

COMMAND = "delete_files"
log = logging.getLogger(COMMAND)


def _days(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of days of at least 0, got {text!r}")
    return value


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"bad regular expression {text!r}: {exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Delete files from the dataflow disk (storage_root) once the archive holds "
        "them: a present file older than delete_min_age_days is deleted only if every archive "
        "lists it with the md5 of the bytes on disk (asked through its /jsonfilelist), and no "
        "ingest or export of it is pending. The deleted version is marked not present. An "
        "archive that does not answer stops the run (exit 1) with nothing more deleted.",
    )
    parser.add_argument(
        "--archive",
        action="append",
        metavar="URL",
        help="base URL of an archive that must hold the file (repeatable; default: every "
        "export_destinations entry)",
    )
    parser.add_argument(
        "--min-age-days",
        type=_days,
        metavar="DAYS",
        help="only files whose mtime is at least this old (default: delete_min_age_days)",
    )
    parser.add_argument(
        "--file-re", type=_regex, metavar="REGEX", help="only file names matching this regex"
    )
    parser.add_argument(
        "--max-files", type=int, metavar="N", help="delete at most N files in this run"
    )
    parser.add_argument(
        "--dryrun",
        "--dry-run",
        dest="dryrun",
        action="store_true",
        help="ask the archive and report what would be deleted; delete nothing",
    )
    add_cron_arguments(parser, "decisions and the summary go")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config_or_exit(COMMAND)
    from fits_storage.curation.archive import ArchiveChecker, ArchiveUnreachable
    from fits_storage.curation.delete import DeleteRules, delete_files

    if config.using_s3:
        fail(
            COMMAND,
            "this server stores its data in S3: delete_files frees a local dataflow disk only",
            EXIT_USAGE,
        )
    archives = tuple(args.archive or config.export_destinations)
    if not archives:
        fail(COMMAND, "no archive to ask: set export_destinations or give --archive", EXIT_USAGE)
    setup_command_logging(
        config.log_dir, COMMAND, debug=args.debug, demon=args.demon, alerts=config
    )
    engine, session_factory = open_database(config, COMMAND)
    min_age = config.delete_min_age_days if args.min_age_days is None else args.min_age_days
    rules = DeleteRules(min_age, args.file_re, args.max_files)
    checker = ArchiveChecker(archives)
    try:
        result = delete_files(config, session_factory, checker, rules, log, dryrun=args.dryrun)
    except ArchiveUnreachable as exc:
        log.error("archive unreachable, stopping with nothing more deleted: %s", exc)
        return EXIT_FAILURE
    finally:
        checker.close()
        engine.dispose()
    summary = result.line(args.dryrun)
    log.info("%s", summary)
    if not args.demon:
        print(summary)
    return EXIT_FAILURE if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
