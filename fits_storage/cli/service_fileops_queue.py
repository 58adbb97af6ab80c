"""service_fileops_queue: apply the header updates of the fileops queue.

``POST /update_headers`` queues them; each is applied to a copy of the file, checked, renamed
over it (on S3: uploaded over it), logged in ``updatelog`` and queued for ingest, so the new
version is recorded and exported as usual (``docs/header_updates.md``).
"""

from __future__ import annotations

import sys

from fits_storage.service.queue_service import imported_work, run_queue_service

COMMAND = "service_fileops_queue"


def main(argv: list[str] | None = None) -> int:
    return run_queue_service(
        COMMAND,
        "fileops",
        imported_work("fits_storage.fileops.work", "fileops_work"),
        description="Apply the header updates of the fileops queue (POST /update_headers): "
        "each file is edited on a checked copy that replaces it atomically, the edit is logged "
        "in updatelog and the file queued for ingest.",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
