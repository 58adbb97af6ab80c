"""service_export_queue: send ingested files to the export destinations, verified by md5."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy.orm import Session

from fits_storage.cli.common import positive_number
from fits_storage.export import Exporter, ExportSettings, default_spool_dir
from fits_storage.queues import Entry, WorkContext
from fits_storage.service.queue_service import run_queue_service

DESCRIPTION = (
    "Service the export queue: for each entry ask the destination whether it has the file "
    "(same data md5: nothing to do), otherwise upload it bz2-compressed and check the size "
    "and md5 the destination confirms. A destination that is down is backed off as a whole "
    "(exponential, with jitter, capped) and its entries wait without using up attempts."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spool-dir",
        default=None,
        help="where files are compressed before sending (their compressed size; removed once "
        f"sent; default {default_spool_dir()})",
    )
    parser.add_argument(
        "--connect-timeout",
        type=positive_number,
        default=10.0,
        help="seconds to wait for a connection to a destination (default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_number,
        default=300.0,
        help="seconds without progress on a request before it is abandoned (default %(default)s)",
    )
    parser.add_argument(
        "--pending-delay",
        type=positive_number,
        default=10.0,
        help="seconds before asking again about a file with an ingest pending at the "
        "destination (default %(default)s)",
    )
    parser.add_argument(
        "--backoff-base",
        type=positive_number,
        default=5.0,
        help="first backoff, in seconds, of a destination that is down (default %(default)s)",
    )
    parser.add_argument(
        "--backoff-cap",
        type=positive_number,
        default=600.0,
        help="longest backoff, in seconds, of a destination that is down (default %(default)s)",
    )


class ExportWork:
    """Builds the process's one Exporter on first use (the configuration comes with it)."""

    def __init__(self) -> None:
        self.exporter: Exporter | None = None

    def __call__(self, session: Session, entry: Entry, context: WorkContext) -> None:
        if self.exporter is None:
            args = context.args
            spool = Path(args.spool_dir).expanduser() if args.spool_dir else default_spool_dir()
            settings = ExportSettings(
                spool_dir=spool,
                connect_timeout=args.connect_timeout,
                read_timeout=args.timeout,
                pending_delay=args.pending_delay,
                backoff_base=args.backoff_base,
                backoff_cap=args.backoff_cap,
            )
            self.exporter = Exporter(context.config, settings)
        self.exporter(session, entry, context)


def main(argv: list[str] | None = None) -> int:
    return run_queue_service(
        "service_export_queue",
        "export",
        ExportWork(),
        description=DESCRIPTION,
        add_arguments=add_arguments,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
