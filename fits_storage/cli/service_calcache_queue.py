"""service_calcache_queue: store the calibrations of the files in the calibration cache queue.

Ingest queues every new version when ``using_calcache`` is set; a calibration's first pass
queues the frames it may change; ``add_to_calcache_queue`` queues files by hand.
"""

from __future__ import annotations

import sys

from fits_storage.service.queue_service import imported_work, run_queue_service

COMMAND = "service_calcache_queue"


def main(argv: list[str] | None = None) -> int:
    return run_queue_service(
        COMMAND,
        "calcache",
        imported_work("fits_storage.cal.work", "calcache_work"),
        description="Associate each queued frame with its calibrations (bias, flat, arc...) "
        "by the instrument's rules and store them in the calcache table, replacing its old "
        "rows; a newly ingested calibration re-queues the frames whose answer it may change.",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
