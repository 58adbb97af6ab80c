"""The command line every ``service_*_queue`` command shares (the loop is in ``worker``).

Kept apart from the loop, with its heavy imports (the ORM, the queue engine) deferred until the
options and the configuration are good: ``--help``, a bad option or a bad configuration value
answer in a fraction of the time a worker takes to start.
"""

from __future__ import annotations

import argparse
import gc
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from fits_storage.service.daemon import EXIT_FAILURE, Daemon, run_daemon

if TYPE_CHECKING:
    from fits_storage.service.worker import WorkFunction


def run_queue_service(
    command: str,
    queue_name: str,
    work: WorkFunction,
    *,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: list[str] | None = None,
    preload: tuple[str, ...] = (),
) -> int:
    """The whole life of a ``service_*_queue`` command.

    ``preload``: modules the work needs, imported once the options and configuration are good
    and before the first claim (an :class:`ImportedWork`'s module too): an installation that
    cannot import them stops the worker at start, instead of failing every entry it claims."""

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--empty", action="store_true", help="exit when the queue has nothing ready to process"
        )
        parser.add_argument("--oneshot", action="store_true", help="process one entry, then exit")
        if add_arguments:
            add_arguments(parser)

    def body(daemon: Daemon) -> int | None:
        from fits_storage.queues import get_queue
        from fits_storage.service.worker import DatabaseUnreachable, QueueLoop

        modules = (*preload, *([work.module] if isinstance(work, ImportedWork) else []))
        for module in modules:
            importlib.import_module(module)
        # What start-up made lives as long as the process: frozen, the cyclic collector's full
        # collections no longer walk it (astropy, numpy, SQLAlchemy: 50-70 ms a collection in
        # the ingest worker, measured at start-up), only what came after.
        gc.freeze()
        try:
            return QueueLoop(daemon, get_queue(queue_name, daemon.config), work).run()
        except DatabaseUnreachable as exc:
            daemon.logger.critical("%s", exc)
            return EXIT_FAILURE

    def synchronous_commit() -> bool:
        from fits_storage.queues.definitions import REDOABLE

        return queue_name not in REDOABLE

    return run_daemon(
        command,
        description,
        body,
        add_arguments=arguments,
        argv=argv,
        synchronous_commit=synchronous_commit,
        generic_plans=True,
    )


class ImportedWork:
    """The work function ``module.name``, imported by :func:`run_queue_service` once the
    options and configuration are good: ``--help`` and a bad setting never pay for what only
    the work needs (astropy, numpy)."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self.__qualname__ = f"{module}.{name}"

    def __call__(self, *args):  # type: ignore[no-untyped-def]
        return getattr(importlib.import_module(self.module), self.name)(*args)


def imported_work(module: str, name: str) -> ImportedWork:
    """``module.name`` as a work function, imported before the first claim."""
    return ImportedWork(module, name)
