"""add_to_export_queue: (re-)queue present files for export to one or more destinations."""

from __future__ import annotations

import argparse
import logging
import sys

from sqlalchemy.orm import Session

from fits_storage.cli.common import load_config_or_exit, queue_selection, setup_console_logging
from fits_storage.export import queue_exports
from fits_storage.queues import get_queue
from fits_storage.scan import SelectionError
from fits_storage.scan.present import (
    PresentSelection,
    add_selection_arguments,
    report_missing,
    selection_terms,
)

COMMAND = "add_to_export_queue"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=COMMAND,
        description="Queue files the database holds as present for export, one entry per "
        "destination. A file already waiting for a destination is not queued twice; one already "
        "at the destination with the same data md5 is not sent again.",
    )
    add_selection_arguments(
        p, "only files under this path in storage_root ('' for the top)", lastdays=False
    )
    p.add_argument(
        "--destination",
        action="append",
        default=[],
        help="destination base URL (may be repeated; default: every export_destinations entry)",
    )
    p.add_argument(
        "--all", action="store_true", help="every present file (needed when nothing else selects)"
    )
    p.add_argument(
        "--dry-run",
        "--dryrun",
        dest="dry_run",
        action="store_true",
        help="say what would be queued; queue nothing",
    )
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_console_logging(args.debug)
    if not (args.file_re or args.filename or args.path is not None or args.all):
        print(
            "add_to_export_queue: say what to export: --file-re, --filename, --path or --all",
            file=sys.stderr,
        )
        return 2
    config = load_config_or_exit(COMMAND)
    destinations = tuple(dict.fromkeys(d.rstrip("/") for d in args.destination)) or tuple(
        d.rstrip("/") for d in config.export_destinations
    )
    if not destinations:
        print(
            "add_to_export_queue: no --destination given and export_destinations is empty",
            file=sys.stderr,
        )
        return 2
    try:
        selection = PresentSelection(**selection_terms(args, logging.getLogger(COMMAND)))
    except SelectionError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return 2
    queue = get_queue("export", config)

    def enqueue(session: Session, files: list[tuple[str, str]]) -> int:
        if not args.dry_run:
            return queue_exports(session, queue, files, destinations)
        for filename, path in files:
            print(f"would queue {path + '/' if path else ''}{filename}")
        return 0

    files, added = queue_selection(COMMAND, config, selection, enqueue)
    wanted = len(files) * len(destinations)
    print(
        f"add_to_export_queue: {len(files)} file(s) selected for {len(destinations)} "
        f"destination(s) ({', '.join(destinations)}): {added} entr{'y' if added == 1 else 'ies'} "
        f"queued, {wanted - added if not args.dry_run else 0} already waiting"
        + (" (dry run)" if args.dry_run else "")
    )
    report_missing(COMMAND, args.filename, files, "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
