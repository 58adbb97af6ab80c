"""Every long-running command of the system, with the server role and configuration that call
for it: one table for the systemd units and targets (``systemd/``), their tests, and the
one-host runner, so that adding a daemon is one line here (and its unit file).

A summit server (``is_archive`` false) copies from the DHS and exports; an archive server
receives uploads and makes previews and calibration associations. Both ingest and serve the
web application (``/queuestatus`` on each). A daemon with a configuration flag runs wherever
that flag is set (a summit making previews, an archive exporting on); the others follow the
role.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from fits_storage.config import Config

SUMMIT = "summit"
ARCHIVE = "archive"
BOTH = frozenset({SUMMIT, ARCHIVE})


@dataclass(frozen=True)
class Daemon:
    """One daemon command; the systemd template unit ``fits-<command>@.service`` runs each
    instance (instance name = worker name, ``--name``)."""

    command: str
    module: str
    roles: frozenset[str]  # the targets (fits-<role>.target) that start its instances
    needs: str = ""  # a Config attribute (true or non-empty) that decides instead of the role
    instances: tuple[str, ...] = ()  # the instances those targets start
    unit_shipped: bool = True  # False for a later issue's daemon until its command exists

    @property
    def unit(self) -> str:
        return f"fits-{self.command}@.service"

    @property
    def why(self) -> str:
        """The configuration that calls for it, for start-up banners and docs."""
        return self.needs or ("always" if self.roles == BOTH else " or ".join(sorted(self.roles)))

    def instance_units(self) -> list[str]:
        return [f"fits-{self.command}@{name}.service" for name in self.instances]

    def wanted(self, config: Config) -> bool:
        """Whether a server with ``config`` runs this daemon."""
        if self.needs:
            return bool(getattr(config, self.needs))
        return role_of(config) in self.roles


DAEMONS: tuple[Daemon, ...] = (
    Daemon("copy_from_dhs", "fits_storage.cli.copy_from_dhs", frozenset({SUMMIT}), "", ("cfd",)),
    Daemon(
        "service_ingest_queue", "fits_storage.cli.service_ingest_queue", BOTH, "", ("siq1", "siq2")
    ),
    Daemon(
        "service_export_queue",
        "fits_storage.cli.service_export_queue",
        frozenset({SUMMIT}),
        "export_destinations",
        ("seq1", "seq2"),
    ),
    Daemon(
        "ingest_uploaded_file",
        "fits_storage.cli.ingest_uploaded_file",
        frozenset({ARCHIVE}),
        "",
        ("iuf1",),
    ),
    Daemon(
        "service_preview_queue",
        "fits_storage.cli.service_preview_queue",
        frozenset({ARCHIVE}),
        "using_previews",
        ("spq1",),
    ),
    Daemon(
        "service_calcache_queue",
        "fits_storage.cli.service_calcache_queue",
        frozenset({ARCHIVE}),
        "using_calcache",
        ("scq1",),
    ),
    Daemon(
        "service_fileops_queue",
        "fits_storage.cli.service_fileops_queue",
        BOTH,
        "api_auth_cookie",
        ("sfq1",),
    ),
)

# The web application: a template too, its instance being the port it listens on.
WEB_COMMAND = "fits_storage_web"
WEB_TEMPLATE = "fits-web@.service"
WEB_UNIT = "fits-web@8000.service"


def role_of(config: Config) -> str:
    return ARCHIVE if config.is_archive else SUMMIT


def installed(daemon: Daemon) -> bool:
    """Whether this version of the package has the daemon's command (a later issue may add
    it)."""
    return importlib.util.find_spec(daemon.module) is not None


def daemons_for(config: Config) -> list[Daemon]:
    """The daemons a server with ``config`` runs, in the table's (start-up) order."""
    return [daemon for daemon in DAEMONS if daemon.wanted(config)]


def target_units(role: str) -> list[str]:
    """The units ``fits-<role>.target`` wants: the web application and each daemon instance
    of that role whose unit is shipped."""
    units = [WEB_UNIT]
    for daemon in DAEMONS:
        if role in daemon.roles and daemon.unit_shipped:
            units += daemon.instance_units()
    return units
