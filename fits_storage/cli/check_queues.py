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
    load_config_or_exit,
    open_database,
    setup_command_logging,
)
from fits_storage.queues.checks import queue_problems

COMMAND = "check_queues"
log = logging.getLogger(COMMAND)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.strip().splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "--demon",
        action="store_true",
        help="for cron: nothing on the terminal; findings go to the log file (and the mail)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config_or_exit(COMMAND)
    setup_command_logging(
        config.log_dir, COMMAND, debug=args.debug, demon=args.demon, alerts=config
    )
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
