"""Selecting files in one directory by name pattern, age and the name rules.

Walks with ``os.scandir`` (one ``getdents`` stream, no per-file ``stat`` unless ``--newfiles``
asks for modification times), so a directory of 100,000 files is listed in well under a second.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fits_storage.config import closest
from fits_storage.scan.names import ingest_skip_reason

# The established special values of --file-re: the last N UT dates, today included.
SPECIAL_DAYS = {"today": 1, "twoday": 2, "fourday": 4, "tenday": 10, "twentyday": 20}


class SelectionError(ValueError):
    """A selection that cannot be used (bad regular expression, bad number of days)."""


def special_dates_regex(value: str, now: datetime | None = None) -> str | None:
    """The regex for a special --file-re value (e.g. fourday), or None for an ordinary regex.

    The dates are UT dates as YYYYMMDD, counted back from ``now`` (default: the current time).
    """
    days = SPECIAL_DAYS.get(value.strip().lower())
    if days is None:
        return None
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    dates = [(now - timedelta(days=n)).strftime("%Y%m%d") for n in range(days)]
    return "(?:" + "|".join(dates) + ")"


def special_value_warning(file_re: str) -> str | None:
    """Why a --file-re that looks like a special value but is none (``fiveday``) deserves a
    warning: it is searched as a regular expression, which no data file name matches."""
    word = file_re.strip().lower()
    if word in SPECIAL_DAYS or not word.isalpha():
        return None
    hint = closest(word, list(SPECIAL_DAYS))
    if not (hint or word.endswith("day")):
        return None
    return (
        f"--file-re {file_re!r} is not one of the special values ({', '.join(SPECIAL_DAYS)}), "
        f"so it is searched in file names as a regular expression{hint}"
    )


@dataclass
class Selection:
    """What to pick from a directory: a regex searched in the name and/or a maximum age."""

    file_re: str | None = None
    newfiles_days: float | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    pattern: re.Pattern[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.file_re:
            text = special_dates_regex(self.file_re, self.now) or self.file_re
            try:
                self.pattern = re.compile(text)
            except re.error as exc:
                raise SelectionError(f"bad --file-re {self.file_re!r}: {exc}") from exc
        if self.newfiles_days is not None and not (0 < self.newfiles_days < math.inf):
            raise SelectionError(
                f"--newfiles must be a positive number of days, got {self.newfiles_days}"
            )

    @property
    def oldest_mtime(self) -> float | None:
        """Files last modified before this POSIX time are too old for --newfiles."""
        if self.newfiles_days is None:
            return None
        return self.now.timestamp() - self.newfiles_days * 86400

    def reason_to_skip(self, name: str, mtime: float | None = None) -> str | None:
        """Why ``name`` is not selected, or None when it is. ``mtime`` is needed for --newfiles."""
        reason = ingest_skip_reason(name)
        if reason:
            return reason
        if self.pattern is not None and not self.pattern.search(name):
            return "not matching --file-re"
        oldest = self.oldest_mtime
        if oldest is not None and (mtime is None or mtime < oldest):
            return "older than --newfiles"
        return None

    def scan(self, directory: Path) -> Iterator[tuple[str, str | None]]:
        """Every regular file in ``directory`` (not recursive): (name, reason skipped or None)."""
        needs_mtime = self.newfiles_days is not None
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if not entry.is_file():
                        continue
                    mtime = entry.stat().st_mtime if needs_mtime else None
                except FileNotFoundError:
                    continue  # vanished while we looked
                yield entry.name, self.reason_to_skip(entry.name, mtime)

    def check_names(
        self, directory: Path, names: Iterable[str]
    ) -> Iterator[tuple[str, str | None]]:
        """Named files (--filename, --listfile) go through the same rules, and must exist."""
        for name in names:
            try:
                stat = (directory / name).stat()
            except OSError:
                yield name, "no such file"
                continue
            yield name, self.reason_to_skip(name, stat.st_mtime)
