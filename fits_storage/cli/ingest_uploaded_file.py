"""ingest_uploaded_file: move uploads received by the archive into the data store, then queue
them for ingest (the worker of the upload queue)."""

from __future__ import annotations

import sys

from fits_storage.service.queue_service import imported_work, run_queue_service


def main(argv: list[str] | None = None) -> int:
    return run_queue_service(
        "ingest_uploaded_file",
        "upload",
        imported_work("fits_storage.upload", "upload_work"),
        description="Move files uploaded to this archive (upload_staging_dir) into the data "
        "store (storage_root, or S3 when using_s3) and add them to the ingest queue.",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
