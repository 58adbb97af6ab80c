"""copy_from_dhs's work: watching the DHS disk and copying complete files into storage_root."""

from fits_storage.dhs.copy import CopyError, copy_verified, remove_stale_temporaries
from fits_storage.dhs.fitscheck import NotCompleteFits, check_complete_fits
from fits_storage.dhs.poller import Action, DhsPoller, PassResult

__all__ = [
    "Action",
    "CopyError",
    "DhsPoller",
    "NotCompleteFits",
    "PassResult",
    "check_complete_fits",
    "copy_verified",
    "remove_stale_temporaries",
]
