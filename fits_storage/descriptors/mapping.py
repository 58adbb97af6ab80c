"""The declarative pieces an instrument mapping is made of, and how a mapping is applied.

A mapping names, for every ``header`` column, where its value comes from:

* :class:`Keywords`: keywords in order of trust, each through one parser. A missing keyword
  falls back to the next; a malformed one is noted and falls back too; NULL when none is
  usable (with a ``K1/K2: missing`` note unless the field is optional for that instrument).
* :class:`Constant`: a value fixed by the instrument (an IR array is never binned).
* :class:`Derived`: a function of the frame and the fields computed before it (``types``
  from the tag rules, ``mode`` from the types, ``central_wavelength`` only with a disperser).

Fields are computed in the mapping's order; an instrument's mapping is the generic one with
some fields replaced (in place, so the order stays) and tag rules added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fits_storage.descriptors import parsers
from fits_storage.descriptors.frame import Frame, where

TagRule = Callable[[Frame], Iterable[str]]


EXTENSIONS = -1  # in ``Keywords.hdus``: every extension, in order


@dataclass(frozen=True)
class Keywords:
    """The first usable value of ``keywords`` (in order of trust) through ``parse``.

    ``hdus``: where to look, in order: 0 is the primary header, n the nth extension,
    ``EXTENSIONS`` every extension in turn (raw files of some instruments carry CCDSUM in the
    extensions, processed ones in the primary header: ``(1, 0)``). Within one HDU every
    keyword is tried before the next HDU. ``optional``: no note when all are missing;
    ``raw_only``: a note only for raw frames (processed ones may lack the keyword).
    """

    keywords: tuple[str, ...]
    parse: Callable[[Any], Any] = parsers.text
    hdus: tuple[int, ...] = (0,)
    optional: bool = False
    raw_only: bool = False

    def _hdus(self, frame: Frame) -> list[int]:
        found = []
        for hdu in self.hdus:
            if hdu == EXTENSIONS:
                found.extend(range(1, frame.extension_count + 1))
            elif hdu <= frame.extension_count:
                found.append(hdu)
        return found

    def compute(self, frame: Frame) -> Any:
        hdus = self._hdus(frame)
        present = False
        for hdu in hdus:
            for keyword in self.keywords:
                raw = frame.get(keyword, hdu)
                if raw is None:
                    continue
                present = True
                try:
                    return self.parse(raw)
                except parsers.Malformed as exc:
                    frame.note(f"{keyword}: {exc}{where(hdu)}")
        if not present and not self.optional:
            first = self.hdus[0]
            suffix = " (extensions)" if first == EXTENSIONS else where(first if hdus else 0)
            message = f"{'/'.join(self.keywords)}: missing{suffix}"
            (frame.missing if self.raw_only else frame.note)(message)
        return None


@dataclass(frozen=True)
class Constant:
    """A value fixed by the instrument."""

    value: Any

    def compute(self, frame: Frame) -> Any:
        return self.value


@dataclass(frozen=True)
class Derived:
    """A value computed by ``function(frame)`` (``frame.values`` holds the fields before it)."""

    function: Callable[[Frame], Any]

    def compute(self, frame: Frame) -> Any:
        return self.function(frame)


Field = Keywords | Constant | Derived


@dataclass(frozen=True)
class InstrumentMapping:
    """How the ``header`` columns of one instrument's frames are computed.

    ``instruments``: the INSTRUME values (upper case) this mapping serves; ``tags``: rules
    giving the frame's type tags (``types``), on top of the generic ones.
    """

    name: str
    instruments: tuple[str, ...]
    fields: dict[str, Field]
    tags: tuple[TagRule, ...] = ()
    gemini: bool = True

    def extend(
        self,
        name: str,
        instruments: tuple[str, ...],
        fields: dict[str, Field] | None = None,
        tags: tuple[TagRule, ...] = (),
    ) -> InstrumentMapping:
        """This mapping with ``fields`` replaced (unknown names are an error: every column
        has its place in the generic order) and ``tags`` added."""
        merged = dict(self.fields)
        for column, spec in (fields or {}).items():
            if column not in merged:
                raise KeyError(f"{name}: {column} is not a field of {self.name}")
            merged[column] = spec
        return InstrumentMapping(name, instruments, merged, self.tags + tags, gemini=True)


@dataclass
class Description:
    """The computed column values of one frame, and what was wrong with its headers."""

    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def apply(mapping: InstrumentMapping, frame: Frame) -> dict[str, Any]:
    """Compute every field of ``mapping`` for ``frame`` (into ``frame.values``)."""
    frame.mapping = mapping
    values = frame.values
    for column, spec in mapping.fields.items():
        values[column] = spec.compute(frame)
    return values
