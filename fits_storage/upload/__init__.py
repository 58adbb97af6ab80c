"""The archive's receiving side after the web app: staged uploads into the data store."""

from fits_storage.upload.store import StoreOutcome, store_upload, upload_work

__all__ = ["StoreOutcome", "store_upload", "upload_work"]
