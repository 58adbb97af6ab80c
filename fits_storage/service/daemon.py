"""The daemon runner every long-running command shares.

It owns what the system we replace repeated in every script: the common options, the instance
lock, logging, ``--demon``, signal handling and systemd notification. A command supplies a body
that loops until ``daemon.stopping`` is set.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fits_storage.config import Config, ConfigError, get_config
from fits_storage.service.lock import AlreadyRunning, InstanceLock
from fits_storage.service.logs import one_line, setup_logging
from fits_storage.service.sdnotify import SystemdNotifier

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass
class Daemon:
    """What a running service instance has: its options, configuration, database and stop flag."""

    command: str
    name: str
    args: argparse.Namespace
    config: Config
    logger: logging.Logger
    engine: Engine
    session_factory: sessionmaker[Session]
    notifier: SystemdNotifier = field(default_factory=SystemdNotifier)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def one_shot(self) -> bool:
        """A run that ends by itself (``--empty``, ``--oneshot``, ``--once``), as from cron."""
        return any(getattr(self.args, name, False) for name in ("empty", "oneshot", "once"))

    def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop (keeping the systemd watchdog fed); False if stopping."""
        deadline = seconds
        step = self.notifier.watchdog_interval or seconds
        while deadline > 0 and not self.stopping.is_set():
            self.notifier.watchdog()
            chunk = min(step / 2 if step else deadline, deadline)
            if self.stopping.wait(chunk):
                break
            deadline -= chunk
        return not self.stopping.is_set()


def base_parser(command: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=command, description=description)
    parser.add_argument(
        "--name",
        default="default",
        help="instance name, used in the log file (<command>-<name>.log in log_dir), the lock "
        "file and as the worker name recorded on claimed queue entries (default: %(default)s)",
    )
    parser.add_argument(
        "--lockfile",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="hold an exclusive lock so only one copy of this instance runs; without PATH the "
        "lock is <lockfile_dir>/<command>-<name>.lock",
    )
    parser.add_argument(
        "--demon", action="store_true", help="run as a background daemon; log to the log file only"
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level")
    return parser


def run_daemon(
    command: str,
    description: str,
    body: Callable[[Daemon], int | None],
    *,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: list[str] | None = None,
    synchronous_commit: bool | Callable[[], bool] = True,
    generic_plans: bool = False,
) -> int:
    """Parse options, take the lock, set up logging and signals, then run ``body``.

    ``synchronous_commit=False``: the engine's commits do not wait for the disk (only for
    work that can be redone: ``fits_storage.db.engine``). It may be a function that decides,
    called once options and configuration are good (what decides may be slow to import).
    ``generic_plans=True``: prepared statements are planned once (a queue worker's fixed
    statements: ``make_engine``)."""
    parser = base_parser(command, description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = get_config()
    except ConfigError as exc:
        print(f"{command}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    lock = None
    if args.lockfile:
        path = (
            config.lockfile_dir / f"{command}-{args.name}.lock"
            if args.lockfile is True
            else Path(args.lockfile)
        )
        lock = InstanceLock(path)
        try:
            lock.acquire()
        except AlreadyRunning as exc:
            print(f"{command}: not starting: {exc}", file=sys.stderr)
            return EXIT_FAILURE

    handlers = setup_logging(
        config.log_dir,
        command,
        args.name,
        debug=args.debug,
        console=not args.demon,
        alerts=config,
    )
    logger = logging.getLogger(command)
    for warning in config.warnings:
        logger.warning("configuration: %s", warning)

    # The database's modules only now: --help and a bad option or configuration answer fast.
    from sqlalchemy.exc import OperationalError

    from fits_storage.db.engine import make_engine, make_session_factory
    from fits_storage.db.schema import schema_problem

    if callable(synchronous_commit):
        synchronous_commit = synchronous_commit()
    # Checked before --demon detaches, so that the one who started it sees why it did not.
    engine = make_engine(
        config.database_url,
        pre_ping=False,
        synchronous_commit=synchronous_commit,
        generic_plans=generic_plans,
    )
    try:
        problem = schema_problem(engine)
    except OperationalError as exc:  # not reachable yet: the loop retries with backoff
        logger.warning("database unreachable at start-up (%s); will keep trying", one_line(exc))
        problem = None
    engine.dispose()  # no pooled connection crosses the fork of --demon
    if problem:
        logger.error("not starting: %s", problem)
        if args.demon:  # otherwise the log line above is on the terminal already
            print(f"{command}: not starting: {problem}", file=sys.stderr)
        if lock:
            lock.release()
        return EXIT_FAILURE
    if args.demon:
        _daemonize(handlers, lock)
    daemon = Daemon(command, args.name, args, config, logger, engine, make_session_factory(engine))
    _install_signal_handlers(daemon)
    logger.info(
        "starting (config from %s; database %s)",
        ", ".join(config.sources) or "defaults and environment",
        engine.url,
    )
    try:
        result = body(daemon)
    except Exception:
        logger.critical("giving up: stopping on an unexpected error", exc_info=True)
        return EXIT_FAILURE
    finally:
        daemon.notifier.stopping()
        engine.dispose()
        if lock:
            lock.release()
    logger.info("stopped")
    return EXIT_OK if result is None else result


def _daemonize(handlers: list[logging.Handler], lock: InstanceLock | None) -> None:
    """Detach; the starting process returns only once the daemon holds the instance lock with
    its own pid written in it, so whatever started it (systemd, a script, a test) never reads
    the starter's pid there."""
    import daemon as python_daemon  # python-daemon

    ready, tell = os.pipe()
    if os.fork() > 0:  # the starter: wait for the daemon's word, or its end
        os.close(tell)
        answer = os.read(ready, 1)
        os._exit(EXIT_OK if answer == b"1" else EXIT_FAILURE)
    os.close(ready)
    os.setsid()
    if os.fork() > 0:
        os._exit(EXIT_OK)  # the session leader goes, so the daemon can never regain a terminal
    keep: list[Any] = [getattr(h, "stream", None) for h in handlers] + [tell]
    if lock and lock.fd is not None:
        keep.append(lock.fd)
    context = python_daemon.DaemonContext(
        detach_process=False,
        files_preserve=[k for k in keep if k is not None],
        signal_map={},
        working_directory="/",
        umask=_current_umask(),  # stored files honour the umask the service was started with
    )
    context.open()
    if lock:
        lock.rewrite_pid()
    os.write(tell, b"1")
    os.close(tell)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _install_signal_handlers(daemon: Daemon) -> None:
    def stop(signum: int, _frame: Any) -> None:
        daemon.logger.info(
            "%s received: stopping after the item in hand", signal.Signals(signum).name
        )
        daemon.stopping.set()
        # A second signal acts at once (the lease mechanism recovers any item in hand).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
