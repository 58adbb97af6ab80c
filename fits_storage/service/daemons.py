"""Every long-running command of the system, with the server role and configuration that call
for it: one table for the systemd units and targets (``systemd/``), their tests, and the
one-host runner, so that adding a daemon is one line here and one unit file.

A summit server (``is_archive`` false) copies from the DHS and exports; an archive server
receives uploads and makes previews and calibration associations. Both ingest and serve the
web application (``/queuestatus`` on each).
"""

from __future__ import annotations

from dataclasses import dataclass

from fits_storage.config import Config

SUMMIT = "summit"
ARCHIVE = "archive"
BOTH = frozenset({SUMMIT, ARCHIVE})


@dataclass(frozen=True)
class Daemon:
    """One daemon command; a systemd template unit ``fits-<command>@.service`` runs each
    instance (instance name = worker name, ``--name``)."""

    command: str
    module: str
    roles: frozenset[str]  # the targets (fits-<role>.target) that start its instances
    needs: str = ""  # a Config attribute (true or non-empty) that decides instead of the role
    instances: tuple[str, ...] = ()  # the instances those targets start

    @property
    def unit(self) -> str:
        return f"fits-{self.command}@.service"

    def instance_units(self) -> list[str]:
        return [f"fits-{self.command}@{name}.service" for name in self.instances]

    def wanted(self, config: Config) -> bool:
        """Whether a server with ``config`` runs this daemon: its flag decides when it has one
        (a summit making previews, an archive exporting on), else the server's role."""
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
)

# The web application runs once per server under its own (non-template) unit.
WEB_COMMAND = "fits_storage_web"
WEB_UNIT = "fits-web.service"


def role_of(config: Config) -> str:
    return ARCHIVE if config.is_archive else SUMMIT


def daemons_for(config: Config) -> list[Daemon]:
    """The daemons a server with ``config`` runs, in start-up order."""
    return [daemon for daemon in DAEMONS if daemon.wanted(config)]


def target_units(role: str) -> list[str]:
    """The units ``fits-<role>.target`` wants: the web application and each daemon instance
    of that role."""
    units = [WEB_UNIT]
    for daemon in DAEMONS:
        if role in daemon.roles:
            units += daemon.instance_units()
    return units
