"""Free space on the file systems the system writes to, against a threshold.

Free means what an unprivileged process can still write (``f_bavail``), which is what the
daemons, running as the data user, can use. Below the threshold a CRITICAL record is logged,
which the alert handler e-mails to ``email_errors_to``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fits_storage.config import Config, sqlite_file


@dataclass(frozen=True)
class Space:
    """One file system, named by a path on it."""

    path: Path
    total: int
    free: int

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free / self.total if self.total else 0.0


@dataclass(frozen=True)
class Threshold:
    """Both limits must be met: at least ``min_free`` bytes and ``min_free_percent`` free."""

    min_free: int
    min_free_percent: float

    def shortfall(self, space: Space) -> str | None:
        """Why ``space`` is below the threshold, or None when it is not."""
        problems = []
        if space.free < self.min_free:
            problems.append(f"less than {human(self.min_free)}")
        if space.free_percent < self.min_free_percent:
            problems.append(f"less than {self.min_free_percent:g}%")
        if not problems:
            return None
        return (
            f"{space.path}: only {human(space.free)} free of {human(space.total)} "
            f"({space.free_percent:.1f}%), " + " and ".join(problems)
        )


def human(size: int) -> str:
    """``12.3 GiB``: sizes in the log as people read them."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def measure(path: Path) -> Space:
    """The file system holding ``path`` (OSError if it cannot be reached)."""
    usage = shutil.disk_usage(path)
    return Space(path, usage.total, usage.free)


def default_paths(config: Config) -> list[Path]:
    """Where the system writes: data, logs, locks, staging, backups and the SQLite database
    (the ones that exist)."""
    paths = [
        config.storage_root,
        config.log_dir,
        config.lockfile_dir,
        config.upload_staging_dir,
        config.database_backup_dir,
    ]
    database = sqlite_file(config.database_url)
    if database is not None:
        paths.append(database.parent)
    return [path for path in paths if path.exists()]


def one_per_filesystem(paths: Iterable[Path]) -> list[Path]:
    """The first path named on each file system (by device), so each is reported once."""
    seen: set[int] = set()
    chosen = []
    for path in paths:
        try:
            device = os.stat(path).st_dev
        except OSError:
            chosen.append(path)  # measure() reports it
            continue
        if device not in seen:
            seen.add(device)
            chosen.append(path)
    return chosen
