"""The tests a candidate calibration must pass, each usable two ways: as SQL on the ``header``
columns (the one query per frame and calibration type) and in Python on a row already read
(``?explain=1`` says which test a rejected candidate failed, and the re-queue after a new
calibration asks whether a frame would accept it). Both ways must agree; tests/test_cal_rules.py
holds them side by side.

A check compares a calibration's field with a value that is usually the frame's own, or a
constant of the rule. ``None`` from the frame behaves as FitsStorage's query builder did:
equality with ``None`` asks for NULL, a tolerance around ``None`` is skipped.

In SQL the values are bound parameters: a check's ``shape`` says what decides the form of its
SQL (the operator, and how many values it binds: none for a NULL), so that a rule's statement
is built once per shape and reused for every frame (associate.py), which keeps the Python side
of a query well under a millisecond.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, literal_column, or_, true

Params = tuple[Any, ...]


def like_escape(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


class Op:
    """How a calibration's value relates to the check's value. ``bind`` gives the values of
    the bound parameters, ``sql`` the condition on them; ``test`` is the same in Python."""

    name = ""

    def bind(self, value: Any) -> Params:
        return () if value is None else (value,)

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        raise NotImplementedError

    def test(self, cal: Any, value: Any) -> bool:
        raise NotImplementedError

    def describe(self, value: Any) -> str:
        return f"{self.name} {value!r}"


class Equal(Op):
    name = "=="

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        return column.is_(None) if not params else column == params[0]

    def test(self, cal: Any, value: Any) -> bool:
        return cal == value


class NotEqual(Op):
    """NULL passes: an unknown value is not the excluded one (``qa_state != 'Fail'``)."""

    name = "!="

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        if not params:
            return column.is_not(None)
        return or_(column.is_(None), column != params[0])

    def test(self, cal: Any, value: Any) -> bool:
        return cal != value


class NotTrue(Op):
    """The flag is false or unknown (engineering data only for engineering frames)."""

    name = "not true"

    def bind(self, value: Any) -> Params:
        return ()

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        return or_(column.is_(None), column.is_(False))

    def test(self, cal: Any, value: Any) -> bool:
        return cal is not True

    def describe(self, value: Any) -> str:
        return "not true"


class AtLeast(Op):
    name = ">="

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        return column >= params[0] if params else false()

    def test(self, cal: Any, value: Any) -> bool:
        return cal is not None and cal >= value


class OneOf(Op):
    name = "in"

    def bind(self, value: Any) -> Params:
        return tuple(value)

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        return column.in_(params)

    def test(self, cal: Any, value: Any) -> bool:
        return cal in value


class Contains(Op):
    """The calibration's text contains the value (a science ROI's amplifiers among the
    calibration's). SQL LIKE: case-insensitive on SQLite; the names compared are in a fixed
    case, so this does not matter."""

    name = "contains"

    def bind(self, value: Any) -> Params:
        return () if value is None else (f"%{like_escape(value)}%",)

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        return column.like(params[0], escape="/") if params else false()

    def test(self, cal: Any, value: Any) -> bool:
        return cal is not None and value is not None and value in cal


class HasTag(Op):
    """``types`` (space-separated tags) holds the tag."""

    name = "has tag"

    def bind(self, value: Any) -> Params:
        return (f"% {like_escape(value)} %",)

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        space = literal_column("' '")
        return space.op("||")(column).op("||")(space).like(params[0], escape="/")

    def test(self, cal: Any, value: Any) -> bool:
        return cal is not None and value in cal.split()


class Like(Op):
    """SQL LIKE with ``%`` and ``_`` (FitsStorage's ``G_-CAL%`` program ids, ``%arcsec``)."""

    name = "like"

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        return column.like(params[0])

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

    def bind(self, value: Any) -> Params:
        return () if value is None else (value - self.tolerance, value + self.tolerance)

    @staticmethod
    def sql(column: Any, params: Params) -> ColumnElement[bool]:
        if not params:
            return true()
        return and_(column > params[0], column < params[1])

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

    def shape(self) -> tuple[str, type[Op], int]:
        """What decides the form of the SQL: the field, the operator and how many values it
        binds (none for a NULL test, one per list item...)."""
        return (self.field, type(self.op), len(self.params()))

    def params(self) -> Params:
        return self.op.bind(self.value)

    def test(self, row: Any) -> bool:
        return self.op.test(_get(row, self.field), self.value)

    def describe(self) -> str:
        return f"{self.field} {self.op.describe(self.value)}"


def _get(row: Any, field: str) -> Any:
    return row.get(field) if isinstance(row, dict) else getattr(row, field)
