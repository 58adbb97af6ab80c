"""add_to_calcache_queue: queue present files for their calibration associations."""

from __future__ import annotations

import argparse
import logging
import sys

from fits_storage.cli.common import load_config_or_exit, queue_selection, setup_console_logging
from fits_storage.queues import get_queue
from fits_storage.scan import SelectionError
from fits_storage.scan.present import (
    FitsSelection,
    add_selection_arguments,
    report_missing,
    selection_terms,
)

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
    add_selection_arguments(p, "only files under this path ('' for the top)")
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_console_logging(args.debug)
    try:
        selection = FitsSelection(**selection_terms(args, logging.getLogger(COMMAND)))
    except SelectionError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return 2
    config = load_config_or_exit(COMMAND)
    queue = get_queue("calcache", config)
    files, added = queue_selection(
        COMMAND,
        config,
        selection,
        lambda session, files: queue.add_many(
            session, ({"filename": f, "path": p} for f, p in files)
        ),
    )
    print(
        f"{COMMAND}: {len(files)} file(s) selected: {added} queued, "
        f"{len(files) - added} already waiting"
    )
    report_missing(COMMAND, args.filename, files, "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
