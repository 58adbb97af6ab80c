"""Which daemons a configuration calls for: one table, read by ``fits_storage_run``.

Each row names a command, the module that runs it and the configuration test that decides
whether this host needs it. Adding a daemon to the one-host run means adding one row.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from fits_storage.config import Config


@dataclass(frozen=True)
class DaemonRow:
    command: str
    module: str
    wanted: Callable[[Config], bool]
    why: str  # the configuration that calls for it, for the start-up banner and the docs


DAEMONS: tuple[DaemonRow, ...] = (
    DaemonRow(
        "copy_from_dhs", "fits_storage.cli.copy_from_dhs", lambda c: not c.is_archive, "summit"
    ),
    DaemonRow(
        "service_ingest_queue", "fits_storage.cli.service_ingest_queue", lambda c: True, "always"
    ),
    DaemonRow(
        "service_export_queue",
        "fits_storage.cli.service_export_queue",
        lambda c: bool(c.export_destinations),
        "export_destinations",
    ),
    DaemonRow(
        "ingest_uploaded_file",
        "fits_storage.cli.ingest_uploaded_file",
        lambda c: c.is_archive,
        "is_archive",
    ),
    DaemonRow(
        "service_preview_queue",
        "fits_storage.cli.service_preview_queue",
        lambda c: c.using_previews,
        "using_previews",
    ),
    DaemonRow(
        "service_calcache_queue",
        "fits_storage.cli.service_calcache_queue",
        lambda c: c.using_calcache,
        "using_calcache",
    ),
)


def installed(row: DaemonRow) -> bool:
    """Whether this version of the package has the row's command (a later issue may add it)."""
    return importlib.util.find_spec(row.module) is not None


def daemons_for(config: Config) -> list[DaemonRow]:
    """The rows ``config`` calls for, in the table's order."""
    return [row for row in DAEMONS if row.wanted(config)]
