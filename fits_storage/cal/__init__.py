"""Calibration association: declarative rules per instrument (rules.py, gmos.py, igrins2.py,
default.py), one SQL query per frame and type (associate.py), the cache (cache.py), its queue
work (work.py) and the re-queue after a calibration's ingest (requeue.py)."""

from fits_storage.cal.associate import Found, associate, associate_all, explain, find_frame
from fits_storage.cal.instruments import applicable, plan_for, ruleset_for
from fits_storage.cal.rules import CALTYPES

__all__ = [
    "CALTYPES",
    "Found",
    "applicable",
    "associate",
    "associate_all",
    "explain",
    "find_frame",
    "plan_for",
    "ruleset_for",
]
