"""Logging for a service instance: one file per instance, the instance name on every line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from fits_storage.config import Config

# Libraries whose INFO lines are not ours to show.
NOISY_LOGGERS = ("sqlalchemy", "botocore", "boto3", "urllib3", "s3transfer", "alembic")
FORMAT = "%(asctime)s %(process)d:%(name)s:%(lineno)d %(levelname)s [{instance}] %(message)s"


def setup_logging(
    log_dir: Path,
    command: str,
    instance: str,
    *,
    debug: bool,
    console: bool,
    alerts: Config | None = None,
) -> list[logging.Handler]:
    """Log to ``<log_dir>/<command>-<instance>.log`` (and stderr unless daemonized); with
    ``alerts``, CRITICAL records are also mailed as that configuration says.

    Returns the handlers, whose streams a daemon must keep open.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.FileHandler(log_dir / f"{command}-{instance}.log", encoding="utf-8")
    ]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    add_alerts(handlers, alerts)
    install_handlers(handlers, f"{command}-{instance}", debug=debug)
    return handlers


def install_handlers(handlers: list[logging.Handler], instance: str, *, debug: bool) -> None:
    """Make ``handlers`` the root logger's only ones, each line naming ``instance``."""
    formatter = logging.Formatter(FORMAT.format(instance=instance))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_alerts(handlers: list[logging.Handler], config: Config | None) -> None:
    """Add the alert mail handler to ``handlers`` when ``config`` names someone to mail."""
    from fits_storage.service.alerts import alert_handler

    handler = alert_handler(config) if config is not None else None
    if handler is not None:
        handlers.append(handler)


def one_line(exc: BaseException) -> str:
    """An exception as one log line: its type and the first line of its message (a database
    error's message runs on over several lines, with the SQL and a link)."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
