"""service_preview_queue: make the preview JPEGs of the files in the preview queue.

Ingest queues every new version when ``using_previews`` is set; ``add_to_preview_queue``
queues files by hand. Run several instances (``--name=spq1``...) to work through a backlog.
"""

from __future__ import annotations

import argparse
import sys

from fits_storage.preview.picture import STRETCHES
from fits_storage.preview.work import preview_work
from fits_storage.service.queue_service import run_queue_service

COMMAND = "service_preview_queue"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stretch",
        choices=STRETCHES,
        default="zscale",
        help="display limits: zscale (default) or robust percentiles (0.5-99.5%%)",
    )
    parser.add_argument(
        "--asinh",
        action="store_true",
        help="apply an asinh stretch after the limits (faint structure beside bright stars)",
    )


def main(argv: list[str] | None = None) -> int:
    return run_queue_service(
        COMMAND,
        "preview",
        preview_work,
        description="Make the preview JPEGs (a full preview up to 1024 pixels and a 256-pixel "
        "thumbnail) of the files in the preview queue, or record why a file has none.",
        add_arguments=add_arguments,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
