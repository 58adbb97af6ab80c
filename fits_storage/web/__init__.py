"""The HTTP application: ``create_app(config)``."""

from fits_storage.web.app import create_app

__all__ = ["create_app"]
