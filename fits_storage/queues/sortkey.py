"""Sort keys: newest data first, from the file name alone."""

from __future__ import annotations

import re

# Observatory names: N20251123S0042.fits, S20160319S0018.fits.bz2, also with a prefix letter
# run (e.g. 'rg' for reduced). The UT date and frame number order them in time.
_OBSERVATORY_NAME = re.compile(r"(?:^|[^0-9])([NS])(\d{8})[A-Z](\d{3,5})")


def sortkey_for_filename(filename: str) -> str:
    """A key whose descending order puts the newest observation first.

    Observatory names sort by UT date then frame number, ahead of any other name; other names
    sort by the name itself.
    """
    match = _OBSERVATORY_NAME.search(filename)
    if match:
        _site, date, frame = match.groups()
        return f"z{date}{int(frame):06d}{filename}"
    return f"a{filename}"
