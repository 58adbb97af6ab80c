"""add_to_calcache_queue: queue present files for their calibration associations."""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys

from sqlalchemy.exc import SQLAlchemyError

from fits_storage.cli.common import load_config_or_exit, open_database, setup_console_logging
from fits_storage.queues import get_queue
from fits_storage.scan import special_value_warning
from fits_storage.scan.present import PresentSelection, compile_file_re
from fits_storage.service.worker import one_line

COMMAND = "add_to_calcache_queue"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=COMMAND,
        description="Queue files the database holds as present for their calibration "
        "associations (service_calcache_queue stores them in the calcache table). A file "
        "already waiting is not queued twice. New calibrations re-queue the frames they may "
        "change by themselves: this is for a change of rules or a repair.",
        epilog="Examples: add_to_calcache_queue --lastdays=2  |  add_to_calcache_queue "
        "--file-re=N2025112  |  add_to_calcache_queue --filename=N20251123S0042.fits",
    )
    p.add_argument(
        "--file-re",
        help="regular expression searched in the file name (or today, twoday, fourday, tenday, "
        "twentyday: the last N UT dates)",
    )
    p.add_argument(
        "--filename", action="append", default=[], help="exact file name (may be repeated)"
    )
    p.add_argument("--path", help="only files under this path ('' for the top)")
    p.add_argument(
        "--lastdays", type=float, metavar="N", help="only files ingested in the last N days"
    )
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_console_logging(args.debug)
    if args.lastdays is not None and not (0 < args.lastdays < math.inf):
        print(f"{COMMAND}: --lastdays must be a positive number of days", file=sys.stderr)
        return 2
    try:
        pattern = compile_file_re(args.file_re)
    except re.error as exc:
        print(f"{COMMAND}: bad --file-re {args.file_re!r}: {exc}", file=sys.stderr)
        return 2
    config = load_config_or_exit(COMMAND)
    if args.file_re and (warning := special_value_warning(args.file_re)):
        logging.getLogger(COMMAND).warning("%s", warning)
    selection = PresentSelection(tuple(args.filename), pattern, args.path, args.lastdays)
    engine, sessions = open_database(config, COMMAND)
    try:
        with sessions() as session:
            files = list(selection.files(session))
            rows = ({"filename": name, "path": path} for name, path in files)
            added = get_queue("calcache", config).add_many(session, rows)
            session.commit()
    except SQLAlchemyError as exc:
        print(f"{COMMAND}: database error: {one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(
        f"{COMMAND}: {len(files)} file(s) selected: {added} queued, "
        f"{len(files) - added} already waiting"
    )
    for name in sorted(set(args.filename) - {name for name, _ in files}):
        print(f"{COMMAND}: {name}: no present file of that name", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
