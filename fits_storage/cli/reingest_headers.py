"""reingest_headers: recompute the ``header`` fields of stored files after a descriptor change,
from the stored full-text headers (the files are read only where that text is missing)."""

from __future__ import annotations

import argparse
import logging
import re
import sys

from fits_storage.cli.common import load_config_or_exit, open_database, setup_console_logging
from fits_storage.scan import special_dates_regex, special_value_warning
from fits_storage.service.logs import one_line

COMMAND = "reingest_headers"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=COMMAND,
        description="Recompute the header fields (descriptors: types, reduction, binning, ROI, "
        "read mode…) of the present versions of stored files, from the full-text headers "
        "ingest kept; a file is read again only when that text is missing. Rows are rewritten "
        "only where a value changed. Give --all, --file-re or --instrument.",
        epilog="Examples: reingest_headers --instrument=GMOS-S --dryrun  |  reingest_headers "
        "--file-re=N2025112  |  reingest_headers --all",
    )
    p.add_argument(
        "--file-re",
        help="regular expression searched in the file name (or today, twoday, fourday, tenday, "
        "twentyday: the last N UT dates)",
    )
    p.add_argument("--instrument", help="only headers of this instrument (INSTRUME, any case)")
    p.add_argument("--all", action="store_true", help="every present file")
    p.add_argument(
        "--dryrun", action="store_true", help="compute and report, write nothing to the database"
    )
    p.add_argument(
        "--batch", type=int, default=500, help="rows per transaction and progress line (500)"
    )
    p.add_argument("--debug", action="store_true", help="also log each changed file's columns")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_console_logging(args.debug)
    log = logging.getLogger(COMMAND)
    if not (args.all or args.file_re or args.instrument):
        print(f"{COMMAND}: say which files: --all, --file-re or --instrument", file=sys.stderr)
        return 2
    if args.batch < 1:
        print(f"{COMMAND}: --batch must be at least 1", file=sys.stderr)
        return 2
    try:
        pattern = (
            re.compile(special_dates_regex(args.file_re) or args.file_re) if args.file_re else None
        )
    except re.error as exc:
        print(f"{COMMAND}: bad --file-re {args.file_re!r}: {exc}", file=sys.stderr)
        return 2
    config = load_config_or_exit(COMMAND)
    from sqlalchemy.exc import SQLAlchemyError

    from fits_storage.descriptors.reingest import Progress, Selection, reingest_headers

    if args.file_re and (warning := special_value_warning(args.file_re)):
        log.warning("%s", warning)
    selection = Selection(pattern, args.instrument)
    engine, sessions = open_database(config, COMMAND)
    progress = Progress()
    try:
        with sessions() as session:
            for progress in reingest_headers(
                session, config, selection, dryrun=args.dryrun, batch=args.batch, log=log
            ):
                log.info("%s", progress.line(args.dryrun))
    except SQLAlchemyError as exc:
        print(f"{COMMAND}: database error: {one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    dry = " (dry run: nothing written)" if args.dryrun else ""
    print(f"{COMMAND}: {progress.line(args.dryrun)}{dry}")
    return 1 if progress.failed else 0


if __name__ == "__main__":
    sys.exit(main())
