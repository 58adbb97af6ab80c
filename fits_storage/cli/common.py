"""What every command does at its edge: load the configuration, open the database, log, and
turn what goes wrong into one line on stderr and an exit status (2: bad configuration or
options; 1: the database cannot be used)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from fits_storage.config import Config, ConfigError, get_config, parse_positive_seconds
from fits_storage.service.logs import NOISY_LOGGERS, add_alerts, install_handlers, one_line

if TYPE_CHECKING:  # the database's modules are imported where a command opens it, so that
    # --help and a bad option or configuration answer without them
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from fits_storage.scan.present import PresentSelection

EXIT_FAILURE = 1
EXIT_USAGE = 2


def fail(command: str, message: str, status: int = EXIT_FAILURE) -> NoReturn:
    """Stop the command with ``message`` as one line on stderr."""
    print(f"{command}: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(status)


def positive_number(text: str) -> float:
    """argparse type of an option giving seconds (or days) to wait: finite, more than 0."""
    try:
        return parse_positive_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def load_config_or_exit(command: str) -> Config:
    """The configuration, with its warnings on stderr; or one line naming the bad key, exit 2."""
    try:
        config = get_config()
    except ConfigError as exc:
        fail(command, f"configuration error: {exc}", EXIT_USAGE)
    for warning in config.warnings:
        print(f"{command}: configuration warning: {warning}", file=sys.stderr)
    return config


def open_database(config: Config, command: str) -> tuple[Engine, sessionmaker[Session]]:
    """The engine and sessions of a database that answers and has this code's schema; else
    one line (unreachable, or "run create_tables") and exit status 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from fits_storage.db.engine import make_engine, make_session_factory
    from fits_storage.db.schema import schema_problem

    engine = make_engine(config.database_url)
    try:
        problem = schema_problem(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        fail(command, f"cannot use the database {engine.url!r}: {one_line(exc)}")
    if problem:
        engine.dispose()
        fail(command, problem)
    return engine, make_session_factory(engine)


def setup_console_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def setup_command_logging(
    log_dir: Path, command: str, *, debug: bool, demon: bool, alerts: Config | None = None
) -> None:
    """For commands run by hand and from cron: everything to ``<log_dir>/<command>.log``; on
    the terminal warnings only (everything with ``debug``; nothing with ``demon``). CRITICAL
    records are mailed as ``alerts`` says, by default the process's configuration (which
    ``load_config_or_exit`` has loaded), so no command can forget its alerts."""
    if alerts is None:
        try:
            alerts = get_config()
        except ConfigError:  # the command reports it itself
            alerts = None
    log_dir.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.FileHandler(log_dir / f"{command}.log", encoding="utf-8")
    ]
    if not demon:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.DEBUG if debug else logging.WARNING)
        handlers.append(console)
    add_alerts(handlers, alerts)
    install_handlers(handlers, command, debug=debug)


def add_cron_arguments(parser: argparse.ArgumentParser, demon_output: str) -> None:
    """--debug and --demon, as every command run from cron has them; ``demon_output`` says
    what goes to the log file instead of the terminal."""
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "--demon",
        action="store_true",
        help=f"for cron: nothing on the terminal; {demon_output} to the log file",
    )


def start_cron_command(command: str, args: argparse.Namespace) -> Config:
    """The configuration, with logging to ``<log_dir>/<command>.log`` and alerts installed."""
    config = load_config_or_exit(command)
    setup_command_logging(
        config.log_dir, command, debug=args.debug, demon=args.demon, alerts=config
    )
    return config


def queue_selection(
    command: str,
    config: Config,
    selection: PresentSelection,
    enqueue: Callable[[Session, list[tuple[str, str]]], int],
) -> tuple[list[tuple[str, str]], int]:
    """The files ``selection`` picks and how many new entries ``enqueue`` made of them, in one
    transaction; a database error ends the command with one line (exit 1)."""
    from sqlalchemy.exc import SQLAlchemyError

    engine, sessions = open_database(config, command)
    try:
        with sessions() as session:
            files = list(selection.files(session))
            added = enqueue(session, files)
            session.commit()
    except SQLAlchemyError as exc:
        fail(command, f"database error: {one_line(exc)}")
    finally:
        engine.dispose()
    return files, added
