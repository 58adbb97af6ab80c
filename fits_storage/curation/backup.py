"""Database dumps with pruning: ``pg_dump -Fc`` for PostgreSQL, the sqlite3 backup API for
SQLite (a consistent copy while the daemons write).

A dump is written under a temporary name in the backup directory, fsynced and renamed, so a
dump under its real name is always complete. Old dumps are pruned only after a new one
succeeded, and only files with the names this module gives (``fits_storage-<UTC time>.dump``
or ``.sqlite``); anything else in the directory is left alone. Without the queue tables' data
(``no_queues``) a dump is smaller and restores to an idle system: the definitions stay.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url

from fits_storage.config import sqlite_file
from fits_storage.queues.definitions import DEFINITIONS
from fits_storage.storage.base import fsync_dir

PREFIX = "fits_storage-"
NAME_RE = re.compile(r"^fits_storage-\d{8}T\d{6}Z\.(dump|sqlite)$")
PART_SUFFIX = ".part"
SEARCH_PATH_RE = re.compile(r"-c\s*search_path\s*=\s*([A-Za-z_][A-Za-z0-9_]*)")


class BackupError(RuntimeError):
    """The dump could not be made; nothing was pruned."""


@dataclass
class BackupResult:
    dump: Path | None = None
    size: int = 0
    pruned: list[Path] = field(default_factory=list)
    command: list[str] = field(default_factory=list)

    def line(self, dryrun: bool) -> str:
        if dryrun:
            return f"would write {self.dump} and prune {len(self.pruned)} old dump(s)"
        return f"wrote {self.dump} ({self.size} bytes); pruned {len(self.pruned)} old dump(s)"


def queue_tables() -> list[str]:
    return sorted(model.__tablename__ for model in DEFINITIONS.values())


def dump_name(now: datetime, suffix: str) -> str:
    return f"{PREFIX}{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.{suffix}"


def schema_of(url: URL) -> str | None:
    """The schema a URL puts first on the search path (``options=-csearch_path=x``), if any:
    the system's tables live there, so that is what is dumped."""
    options = url.query.get("options")
    text = " ".join(options) if isinstance(options, tuple) else (options or "")
    match = SEARCH_PATH_RE.search(unquote(text))
    return match.group(1) if match else None


def pg_dump_command(url: URL, target: Path, no_queues: bool) -> tuple[list[str], dict[str, str]]:
    """The pg_dump command line and the libpq environment it needs. The password travels in
    ``PGPASSWORD``, never on the command line (which every local user can read)."""
    env = {}
    for variable, value in (
        ("PGHOST", url.host or url.query.get("host")),  # ?host=/var/run/postgresql: a socket
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
        ("PGSSLMODE", url.query.get("sslmode")),
    ):
        if value is not None:
            env[variable] = str(value)
    command = ["pg_dump", "-Fc", "--no-password", "-f", str(target)]
    schema = schema_of(url)
    if schema:
        command.append(f"--schema={schema}")
    if no_queues:
        prefix = f"{schema}." if schema else ""
        command += [f"--exclude-table-data={prefix}{table}" for table in queue_tables()]
    return command, env


def old_dumps(directory: Path, keep: int) -> list[Path]:
    """This module's dumps in ``directory`` beyond the newest ``keep`` (their names sort by
    time)."""
    dumps = sorted(p for p in directory.iterdir() if NAME_RE.match(p.name) and p.is_file())
    return dumps[: max(0, len(dumps) - keep)]


def backup_database(
    database_url: str,
    directory: Path,
    keep: int,
    *,
    no_queues: bool = False,
    dryrun: bool = False,
    now: datetime | None = None,
) -> BackupResult:
    """Dump the database into ``directory``, then prune to the newest ``keep`` dumps."""
    now = now or datetime.now(UTC)
    url = make_url(database_url)
    sqlite = url.get_backend_name() == "sqlite"
    result = BackupResult(dump=directory / dump_name(now, "sqlite" if sqlite else "dump"))
    assert result.dump is not None
    if sqlite:
        source = sqlite_file(database_url)
        if source is None:
            raise BackupError("an in-memory SQLite database cannot be backed up")
        result.command = ["sqlite3 backup", str(source)]
    else:
        result.command, _ = pg_dump_command(url, result.dump, no_queues)
    if dryrun:
        if directory.is_dir():
            # The new dump would count among the ones kept.
            result.pruned = old_dumps(directory, keep - 1)
        return result
    directory.mkdir(parents=True, exist_ok=True)
    if result.dump.exists():
        raise BackupError(f"{result.dump} already exists: one dump per second at most")
    part = directory / f".{result.dump.name}{PART_SUFFIX}"
    try:
        if sqlite:
            _sqlite_backup(source, part, no_queues)  # type: ignore[arg-type]
        else:
            _pg_dump(url, part, no_queues)
        with open(part, "rb") as handle:
            os.fsync(handle.fileno())
        os.rename(part, result.dump)
        fsync_dir(directory)
    finally:
        part.unlink(missing_ok=True)
    result.size = result.dump.stat().st_size
    result.pruned = old_dumps(directory, keep)
    for old in result.pruned:
        old.unlink(missing_ok=True)
    return result


def _pg_dump(url: URL, target: Path, no_queues: bool) -> None:
    command, env = pg_dump_command(url, target, no_queues)
    try:
        done = subprocess.run(
            command, env={**os.environ, **env}, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise BackupError("pg_dump is not installed (Debian: postgresql-client)") from exc
    if done.returncode != 0:
        message = " ".join(done.stderr.split())[-1000:]
        raise BackupError(f"pg_dump failed (exit {done.returncode}): {message}")


def _sqlite_backup(source: Path, target: Path, no_queues: bool) -> None:
    """A consistent copy through SQLite's online backup, whatever writes meanwhile."""
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        if no_queues:
            for table in queue_tables():
                dst.execute(f'DELETE FROM "{table}"')
            dst.commit()
            dst.execute("VACUUM")
        dst.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {source} failed: {exc}") from exc
    finally:
        dst.close()
        src.close()
