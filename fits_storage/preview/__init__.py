"""Previews: the JPEG pictures staff and astronomers look at before downloading a file.

``make`` decides what picture a file gets (or a note why none), ``work`` is the preview
queue's work function, ``selection`` chooses files for ``add_to_preview_queue``.
"""

from fits_storage.preview.errors import PreviewError
from fits_storage.preview.make import Picture, PreviewResult, make_previews

__all__ = ["Picture", "PreviewError", "PreviewResult", "make_previews"]
