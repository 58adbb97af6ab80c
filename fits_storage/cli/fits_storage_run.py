"""fits_storage_run: the whole system on one host, with one command.

Creates the tables, then runs every daemon the configuration calls for (the table in
``fits_storage.service.daemons``) and the web server as child processes, restarting any
that crash, until Ctrl-C or SIGTERM stops them all. On the embedded default everything lives
under one directory: the DHS disk to drop files into, the dataflow disk, and the SQLite
database, logs and locks in its hidden ``.fits_storage/``.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fits_storage.cli.common import fail, load_config_or_exit, positive_number
from fits_storage.config import Config
from fits_storage.service.daemons import daemons_for, installed
from fits_storage.service.lock import AlreadyRunning, InstanceLock
from fits_storage.service.logs import one_line, setup_logging

if TYPE_CHECKING:  # the rest is imported once options and configuration are good
    from sqlalchemy.orm import Session, sessionmaker

    from fits_storage.service.supervisor import ChildSpec

COMMAND = "fits_storage_run"
INSTANCE = "run"
FIRST_USER = "admin"
WEB_NAME = "fits_storage_web"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Run fits_storage on one host: create the tables, then run every daemon "
        "the configuration calls for and the web server, until Ctrl-C. Drop FITS files into "
        "the DHS directory it prints and watch them flow on the status page.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        metavar="DIR",
        help="keep everything under DIR: the DHS directory DIR/dhs and the storage root "
        "DIR/dataflow, with its SQLite database (default: the configuration's dhs_perm and "
        "storage_root, ~/fits_storage/dhs and ~/fits_storage/dataflow)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="web server address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="web server port (8000)")
    parser.add_argument(
        "--interval",
        type=positive_number,
        default=2.0,
        metavar="SECONDS",
        help="pause between scans of the DHS directory (default: %(default)s)",
    )
    parser.add_argument(
        "--stop-timeout",
        dest="stop_timeout",
        type=positive_number,
        default=30.0,
        metavar="SECONDS",
        help="on Ctrl-C, how long each daemon may take to finish the item in hand before it "
        "is killed (default: %(default)s)",
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level, children too")
    return parser.parse_args(argv)


def use_root(root: Path) -> None:
    """Point this process and its children at ``root`` (variables win over config files)."""
    root = root.expanduser().absolute()
    os.environ["FITS_STORAGE_ROOT"] = str(root / "dataflow")
    os.environ["FITS_STORAGE_DHS_PERM"] = str(root / "dhs")


def first_login_lines(config: Config, session_factory: sessionmaker[Session]) -> list[str]:
    """Lines telling the operator how to log in to the status page. With no staff account yet,
    one is made with a random password, shown once on the terminal (never logged): a newcomer
    sees the page at once, and nobody gets a well-known default password."""
    from fits_storage.staff.accounts import add_user, list_users

    with session_factory.begin() as session:
        if list_users(session):
            return [
                "Staff login: an existing account (fits_storage_user list; "
                "fits_storage_user passwd NAME sets a new password)"
            ]
        password = secrets.token_urlsafe(12)
        add_user(session, FIRST_USER, password)
    return [
        f"Staff login: {FIRST_USER} / {password}  (shown once; change it with "
        f"fits_storage_user passwd {FIRST_USER})"
    ]


def child_specs(config: Config, args: argparse.Namespace, log: logging.Logger) -> list[ChildSpec]:
    """The daemons ``config`` calls for that this version has, then the web server."""
    from fits_storage.service.supervisor import ChildSpec

    common = [f"--name={INSTANCE}"] + (["--debug"] if args.debug else [])
    specs = []
    for row in daemons_for(config):
        if not installed(row):
            log.warning("%s (%s) is not part of this version: not started", row.command, row.why)
            continue
        extra = [f"--interval={args.interval:g}"] if row.command == "copy_from_dhs" else []
        specs.append(ChildSpec(row.command, [sys.executable, "-m", row.module, *common, *extra]))
    web = [sys.executable, "-m", "fits_storage.cli.web", f"--host={args.host}"]
    web += [f"--port={args.port}"] + (["--debug"] if args.debug else [])
    specs.append(ChildSpec(WEB_NAME, web))
    return specs


def port_problem(host: str, port: int) -> str | None:
    """Why the web server could not listen on ``host:port`` (taken, or not an address here)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return f"the web server cannot listen on {host}:{port} ({reason}): use --host or --port"
    return None


def status_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/queuestatus"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.root is not None:
        use_root(args.root)
    config = load_config_or_exit(COMMAND)
    for directory in (config.storage_root, config.dhs_perm):
        directory.mkdir(parents=True, exist_ok=True)
    # One run per configuration: a second would start a second copy of every daemon.
    lock = InstanceLock(config.lockfile_dir / f"{COMMAND}-{INSTANCE}.lock")
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        fail(COMMAND, f"not starting: {exc}")
    if problem := port_problem(args.host, args.port):
        fail(COMMAND, f"not starting: {problem}")
    setup_logging(config.log_dir, COMMAND, INSTANCE, debug=args.debug, console=True)
    log = logging.getLogger(COMMAND)

    from sqlalchemy.exc import SQLAlchemyError

    from fits_storage.db.engine import make_engine, make_session_factory
    from fits_storage.db.schema import create_tables
    from fits_storage.service.supervisor import Supervisor

    engine = make_engine(config.database_url)
    try:
        create_tables(engine)
        login = first_login_lines(config, make_session_factory(engine))
    except SQLAlchemyError as exc:
        fail(COMMAND, f"cannot use the database {engine.url!r}: {one_line(exc)}")
    finally:
        engine.dispose()

    specs = child_specs(config, args, log)
    lines = [
        f"Database: {engine.url!r}",
        f"Storage root: {config.storage_root}",
    ]
    if any(spec.name == "copy_from_dhs" for spec in specs):
        lines.append(f"Drop FITS files into: {config.dhs_perm}")
    if config.is_archive:
        base = status_url(args.host, args.port).removesuffix("/queuestatus")
        lines.append(f"Uploads: POST {base}/upload_file/<path>/<filename>")
    lines += [
        f"Status page: {status_url(args.host, args.port)}",
        *login,
        f"Logs: {config.log_dir}",
        f"Running: {', '.join(spec.name for spec in specs)}. Stop with Ctrl-C.",
    ]
    supervisor = Supervisor(specs, log, stop_timeout=args.stop_timeout)
    supervisor.install_signal_handlers()
    print("\n".join(lines), flush=True)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
