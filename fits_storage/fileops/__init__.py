"""File operations: header edits asked for through ``POST /update_headers``, applied by
``service_fileops_queue`` (``docs/header_updates.md``)."""
