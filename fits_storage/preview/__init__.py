"""Previews: the JPEG pictures staff and astronomers look at before downloading a file.

``make`` decides what picture a file gets (or a note why none), ``work`` is the preview
queue's work function, ``selection`` chooses files for ``add_to_preview_queue``.

Each name is imported at its first use: ``add_to_preview_queue`` needs only ``selection``, and
``make`` brings in astropy, numpy and Pillow (about a second at each start of the command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fits_storage.lazy import lazy_names

if TYPE_CHECKING:
    from fits_storage.preview.errors import PreviewError
    from fits_storage.preview.make import Picture, PreviewResult, make_previews

_HOME = {
    "PreviewError": "errors",
    "Picture": "make",
    "PreviewResult": "make",
    "make_previews": "make",
}

__all__ = ["Picture", "PreviewError", "PreviewResult", "make_previews"]


__getattr__ = lazy_names(__name__, _HOME)
