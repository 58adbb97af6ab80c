"""check_queues: log CRITICAL (mailed to email_errors_to) when the flow is stuck; for cron.

A queue whose oldest waiting entry is older than ``queue_alert_age_seconds``, one with more
than ``queue_alert_failures`` failed entries, and on the summit a DHS copier that has not run
for ``dhs_alert_seconds``. Exit status 1 when any is found, 0 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys

from fits_storage.cli.common import (
    EXIT_FAILURE,
    add_cron_arguments,
    open_database,
    start_cron_command,
)

COMMAND = "check_queues"
log = logging.getLogger(COMMAND)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.strip().splitlines()[0])
    add_cron_arguments(parser, "findings go (and the mail)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = start_cron_command(COMMAND, args)
    from fits_storage.queues.checks import queue_problems  # after --help and config

    engine, session_factory = open_database(config, COMMAND)
    try:
        with session_factory() as session:
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            problems = queue_problems(session, config)
    finally:
        engine.dispose()
    for problem in problems:
        log.critical("%s", problem)
    if problems:
        return EXIT_FAILURE
    log.info("queues and DHS copier fine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
