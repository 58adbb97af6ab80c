"""copy_from_dhs: copy complete files from the DHS disk into storage_root and queue their ingest.

Polls ``dhs_perm`` every ``--interval`` seconds. A file is copied only when it is complete (older
than ``min_dhs_age_seconds``, unchanged across two scans, a complete FITS file); the copy is
verified and renamed into place atomically, then queued for ingest. Nothing on the DHS disk is
ever modified or deleted. After downtime it catches up against the database by itself.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from fits_storage.cli.common import positive_number
from fits_storage.service.daemon import Daemon, run_daemon

if TYPE_CHECKING:
    from fits_storage.dhs import DhsPoller

COMMAND = "copy_from_dhs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dryrun",
        action="store_true",
        help="only log what would be copied and queued; write nothing anywhere",
    )
    parser.add_argument(
        "--oneshot",
        "--once",
        dest="oneshot",
        action="store_true",
        help="one pass, then exit: scan twice (--interval apart, as the completeness rule "
        "needs two looks) and act (--once is the older name)",
    )
    parser.add_argument(
        "--empty",
        action="store_true",
        help="exit once a pass leaves nothing to do: every file on the DHS disk copied, "
        "already there or rejected, none still settling",
    )
    parser.add_argument(
        "--interval",
        type=positive_number,
        default=5.0,
        metavar="SECONDS",
        help="pause between scans of the DHS disk (default: %(default)s)",
    )


def body(daemon: Daemon) -> int | None:
    # Imported here, once options and configuration are good: --help needs none of it.
    from fits_storage.dhs import DhsPoller, remove_stale_temporaries
    from fits_storage.queues import Worker
    from fits_storage.queues.checks import DHS_COPIER
    from fits_storage.queues.registry import WorkerStats
    from fits_storage.service.registration import Registration

    config, log, args = daemon.config, daemon.logger, daemon.args
    if not config.dhs_perm.is_dir():
        log.error("dhs_perm %s is not a directory", config.dhs_perm)
        return 1
    config.storage_root.mkdir(parents=True, exist_ok=True)
    if not args.dryrun:
        for name in remove_stale_temporaries(config.storage_root):
            log.info("Removed stale temporary file %s left by an interrupted copy", name)
    poller = DhsPoller(
        config,
        daemon.session_factory,
        log,
        dryrun=args.dryrun,
        tick=daemon.notifier.watchdog,
        stopping=daemon.stopping,
    )
    log.info("Watching %s, copying to %s", config.dhs_perm, config.storage_root)
    daemon.notifier.ready()
    if args.dryrun:  # writes nothing anywhere, not even its heartbeat
        return _poll(daemon, poller)
    # In the worker registry, so check_queues and /health can tell that it runs.
    registration = Registration(
        daemon, Worker(f"{COMMAND}-{daemon.name}"), DHS_COPIER, WorkerStats()
    )
    registration.start()
    try:
        return _poll(daemon, poller)
    finally:
        registration.stop()


def _poll(daemon: Daemon, poller: DhsPoller) -> int | None:
    from fits_storage.service.worker import DatabaseOutage

    log, args = daemon.logger, daemon.args
    passes = 0
    outage = DatabaseOutage(daemon)
    while not daemon.stopping.is_set():
        daemon.notifier.watchdog()
        try:
            result = poller.run_pass()
        except Exception as exc:
            if not outage.back_off(exc):
                raise
            continue
        outage.over()
        passes += 1
        if result.copied or result.queued or result.rejected:
            would = "would be " if args.dryrun else ""
            log.info(
                "Pass complete: %d files on the DHS disk, %d %scopied, %d %squeued, "
                "%d rejected, %d still settling",
                result.seen,
                len(result.copied),
                would,
                len(result.queued),
                would,
                len(result.rejected),
                result.pending,
            )
        # a first pass only looks: completeness needs a second look
        if passes >= 2 and (args.oneshot or (args.empty and result.pending == 0)):
            break
        log.debug("Pass complete, sleeping")
        if not daemon.sleep(args.interval):
            break
        log.debug("Re-scanning")
    return None


def main(argv: list[str] | None = None) -> int:
    return run_daemon(
        COMMAND,
        __doc__.strip().splitlines()[0].split(": ", 1)[1],
        body,
        add_arguments=add_arguments,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
