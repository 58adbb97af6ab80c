"""The tests a candidate calibration must pass, each usable two ways: as SQL on the ``header``
columns (the one query per frame and calibration type) and in Python on a row already read
(``?explain=1`` says which test a rejected candidate failed, and the re-queue after a new
calibration asks whether a frame would accept it). Both ways must agree; tests/test_cal_rules.py
holds them side by side.

A check compares a calibration's field with a value that is usually the frame's own (a
``Match``), or a constant of the rule. ``None`` from the frame behaves as FitsStorage's query
builder did: equality with ``None`` asks for NULL, a tolerance around ``None`` is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, literal, or_, true


class Op:
    """How a calibration's value ``cal`` relates to ``value``; ``describe`` is for explain."""

    name = ""

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        raise NotImplementedError

    def test(self, cal: Any, value: Any) -> bool:
        raise NotImplementedError

    def describe(self, value: Any) -> str:
        return f"{self.name} {value!r}"


class Equal(Op):
    name = "=="

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        return column.is_(None) if value is None else column == value

    def test(self, cal: Any, value: Any) -> bool:
        return cal == value


class NotEqual(Op):
    """NULL passes: an unknown value is not the excluded one (``qa_state != 'Fail'``)."""

    name = "!="

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        return or_(column.is_(None), column != value)

    def test(self, cal: Any, value: Any) -> bool:
        return cal != value


class NotTrue(Op):
    """The flag is false or unknown (engineering data only for engineering frames)."""

    name = "not true"

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        return or_(column.is_(None), column.is_(False))

    def test(self, cal: Any, value: Any) -> bool:
        return cal is not True

    def describe(self, value: Any) -> str:
        return "not true"


class AtLeast(Op):
    name = ">="

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        return column >= value

    def test(self, cal: Any, value: Any) -> bool:
        return cal is not None and cal >= value


class OneOf(Op):
    name = "in"

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        return column.in_(value)

    def test(self, cal: Any, value: Any) -> bool:
        return cal in value


class Contains(Op):
    """The calibration's text contains the value (a science ROI's amplifiers among the
    calibration's). SQL LIKE: case-insensitive on SQLite, as the names compared are upper or
    fixed case this does not matter."""

    name = "contains"

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        return column.contains(value, autoescape=True)

    def test(self, cal: Any, value: Any) -> bool:
        return cal is not None and value is not None and value in cal


class HasTag(Op):
    """``types`` (space-separated tags) holds the tag."""

    name = "has tag"

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        padded = literal(" ").op("||")(column).op("||")(literal(" "))
        return padded.contains(f" {value} ", autoescape=True)

    def test(self, cal: Any, value: Any) -> bool:
        return cal is not None and value in cal.split()


class Like(Op):
    """SQL LIKE with ``%`` and ``_`` (FitsStorage's ``G_-CAL%`` program ids, ``%arcsec``)."""

    name = "like"

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        return column.like(value)

    def test(self, cal: Any, value: Any) -> bool:
        if cal is None:
            return False
        pattern = "".join(
            ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value
        )
        return re.fullmatch(pattern, cal, re.IGNORECASE | re.DOTALL) is not None


class Within(Op):
    """Strictly within ``tolerance`` of the value (central wavelength, exposure time, the time
    window); a frame value of None adds no condition."""

    name = "within"

    def __init__(self, tolerance: float | timedelta) -> None:
        self.tolerance = tolerance

    def sql(self, column: Any, value: Any) -> ColumnElement[bool]:
        if value is None:
            return true()
        return and_(column > value - self.tolerance, column < value + self.tolerance)

    def test(self, cal: Any, value: Any) -> bool:
        if value is None:
            return True
        return cal is not None and value - self.tolerance < cal < value + self.tolerance

    def describe(self, value: Any) -> str:
        if isinstance(value, datetime):
            return f"within {self.tolerance} of {value.isoformat(sep=' ')}"
        return f"within {self.tolerance} of {value!r}"


EQUAL = Equal()
NOT_EQUAL = NotEqual()
NOT_TRUE = NotTrue()
AT_LEAST = AtLeast()
ONE_OF = OneOf()
CONTAINS = Contains()
HAS_TAG = HasTag()
LIKE = Like()


@dataclass(frozen=True)
class Check:
    """``field`` of the calibration ``op`` ``value`` (already resolved for one frame)."""

    field: str
    op: Op
    value: Any = None

    def sql(self, columns: Any) -> ColumnElement[bool]:
        return self.op.sql(getattr(columns, self.field), self.value)

    def test(self, row: Any) -> bool:
        return self.op.test(_get(row, self.field), self.value)

    def describe(self) -> str:
        return f"{self.field} {self.op.describe(self.value)}"


def _get(row: Any, field: str) -> Any:
    return row.get(field) if isinstance(row, dict) else getattr(row, field)
