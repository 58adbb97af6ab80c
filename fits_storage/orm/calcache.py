"""The calibration cache: which calibrations go with each frame (``calcache``), and when each
frame's answer was computed (``calcachestamp``), which tells whether it is still fresh."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fits_storage.orm.base import Base, BigIntPK, utcnow
from fits_storage.orm.file import DiskFile


class CalCache(Base):
    """One calibration (``cal_hid``) of one frame (``obs_hid``), both header ids; ``rank`` 0 is
    the best of its ``caltype``."""

    __tablename__ = "calcache"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    obs_hid: Mapped[int] = mapped_column(ForeignKey("header.id"), index=True)
    cal_hid: Mapped[int] = mapped_column(ForeignKey("header.id"), index=True)
    caltype: Mapped[str] = mapped_column(String(40))
    rank: Mapped[int] = mapped_column(Integer)


class CalCacheStamp(Base):
    """When a frame's associations were last stored (a frame with none has a stamp too), so a
    reader can tell a cached answer from one never computed or made stale by a later ingest."""

    __tablename__ = "calcachestamp"

    obs_hid: Mapped[int] = mapped_column(ForeignKey("header.id"), primary_key=True)
    computed: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# Whether a cached answer is fresh asks for the files ingested since it was computed: few, read
# from this index, rather than every header of the instrument in the rules' widest window.
Index("ix_diskfile_entrytime", DiskFile.entrytime)
