"""fits_storage: the observatory's FITS data-flow system (DHS copy, ingest, export, archive)."""

__version__ = "0.1.0"
