"""Choosing files from a directory: the name rules and the selections shared by the summit tools."""

from fits_storage.scan.names import is_fits_name, is_temporary, skip_reason
from fits_storage.scan.select import (
    Selection,
    SelectionError,
    special_dates_regex,
    special_value_warning,
)

__all__ = [
    "Selection",
    "SelectionError",
    "is_fits_name",
    "is_temporary",
    "skip_reason",
    "special_dates_regex",
    "special_value_warning",
]
