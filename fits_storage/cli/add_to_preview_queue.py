"""add_to_preview_queue: queue present files for their preview JPEGs."""

from __future__ import annotations

import argparse
import logging
import sys

from fits_storage.cli.common import load_config_or_exit, queue_selection, setup_console_logging
from fits_storage.preview.selection import PreviewSelection, queue_previews
from fits_storage.queues import get_queue
from fits_storage.scan import SelectionError
from fits_storage.scan.present import (
    add_selection_arguments,
    report_missing,
    selection_terms,
)

COMMAND = "add_to_preview_queue"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=COMMAND,
        description="Queue files the database holds as present for their previews. Without "
        "--force, only files whose present version has no preview yet (nor a note saying why "
        "it has none) are queued. A file already waiting is not queued twice.",
        epilog="Examples: add_to_preview_queue --lastdays=2  |  add_to_preview_queue "
        "--file-re=N2025112 --force  |  add_to_preview_queue --filename=N20251123S0042.fits",
    )
    add_selection_arguments(p, "only files under this path ('' for the top)")
    p.add_argument(
        "--force", action="store_true", help="make the previews again even where they exist"
    )
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_console_logging(args.debug)
    try:
        terms = selection_terms(args, logging.getLogger(COMMAND))
    except SelectionError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return 2
    config = load_config_or_exit(COMMAND)
    selection = PreviewSelection(**terms, force=args.force)
    queue = get_queue("preview", config)
    files, added = queue_selection(
        COMMAND,
        config,
        selection,
        lambda session, files: queue_previews(session, queue, files, args.force),
    )
    print(
        f"{COMMAND}: {len(files)} file(s) selected: {added} queued, "
        f"{len(files) - added} already waiting"
    )
    reason = "" if args.force else " needing a preview (--force to redo)"
    report_missing(COMMAND, args.filename, files, reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
