"""The configuration object (docs/configuration.md).

Layered INI files, later wins: built-in defaults, ``/etc/fits_storage.conf``,
``~/.fits_storage.conf``, then ``$FITS_STORAGE_CONFIG``. A section named after the host
overrides ``[DEFAULT]``. Environment variables win over files: ``FITS_STORAGE_ROOT``,
``FITS_STORAGE_DB_URL`` and ``FITS_STORAGE_<KEY>``. Values are typed and checked once, at
start-up, so a bad value is reported by its key name rather than as a traceback later.
"""

from __future__ import annotations

import ast
import configparser
import difflib
import math
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

SYSTEM_CONFIG_FILES = ("/etc/fits_storage.conf", "~/.fits_storage.conf")
ENV_PREFIX = "FITS_STORAGE_"
# The system's own files under storage_root: hidden, so no data name can reach them.
SYSTEM_DIR = ".fits_storage"
SQLITE_NAME = "fits_storage.db"
SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")
ENV_ALIASES = {"FITS_STORAGE_ROOT": "storage_root", "FITS_STORAGE_DB_URL": "database_url"}
# Variables with the prefix that are not configuration keys (the test suite's and benchmarks').
ENV_NOT_KEYS = ("FITS_STORAGE_CONFIG", "FITS_STORAGE_TEST_PG_URL", "FITS_STORAGE_BENCH_PG_URL")
SUPPORTED_DATABASES = ("sqlite", "postgresql")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _parse_list(text: str) -> tuple[str, ...]:
    """Python-style list as in the existing config files, or a comma-separated value."""
    stripped = text.strip()
    if not stripped:
        return ()
    if stripped.startswith(("[", "(")):
        value = ast.literal_eval(stripped)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of strings, got {text!r}")
        return tuple(v.strip() for v in value if v.strip())
    return tuple(part.strip() for part in stripped.split(",") if part.strip())


def _parse_path(text: str) -> Path | None:
    stripped = text.strip()
    return Path(os.path.expanduser(stripped)) if stripped else None


def _parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _parse_non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a number of seconds of at least 0, got {text!r}")
    return value


def parse_positive_seconds(text: str) -> float:
    """Seconds a loop waits or a lease lasts: 0 would make a loop spin, so more than 0."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a number greater than 0, got {text!r}")
    return value


def _parse_database_url(text: str) -> str:
    """An SQLAlchemy URL of a database this system runs on, whose driver is installed."""
    stripped = text.strip()
    if not stripped:
        return ""  # the default, an SQLite file in storage_root
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(stripped)
    except ArgumentError as exc:
        raise ValueError("not a database URL such as postgresql://user@host/db") from exc
    if url.get_backend_name() not in SUPPORTED_DATABASES:
        raise ValueError(
            f"unsupported database {url.get_backend_name()!r}: fits_storage runs on "
            + " or ".join(f"{name}://" for name in SUPPORTED_DATABASES)
        )
    try:
        url.get_dialect().import_dbapi()
    except (ArgumentError, ImportError) as exc:  # NoSuchModuleError is an ArgumentError
        raise ValueError(f"no driver {url.drivername!r} is installed") from exc
    return stripped


def _parse_mode(text: str) -> int | None:
    """Octal permissions such as ``0664``; empty means "the process umask decides"."""
    stripped = text.strip()
    if not stripped:
        return None
    value = int(stripped, 8)
    if not 0 <= value <= 0o777:
        raise ValueError(f"expected octal permissions such as 0664, got {text!r}")
    return value


_BYTE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _parse_bytes(text: str) -> int:
    """A size in bytes: a whole number, or one with a K, M, G or T suffix (powers of 1024)."""
    stripped = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = stripped[-1:] if stripped[-1:] in _BYTE_UNITS else ""
    value = int(stripped[: len(stripped) - len(unit)].strip()) * _BYTE_UNITS[unit]
    if value < 1:
        raise ValueError(f"expected a size of at least 1 byte, such as 4G, got {text!r}")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str.strip,
    "database_url": _parse_database_url,
    "positive_seconds": parse_positive_seconds,
    "bool": _parse_bool,
    "list": _parse_list,
    "dir": _parse_path,
    "posint": _parse_positive_int,
    "seconds": _parse_non_negative_float,
    "mode": _parse_mode,
    "bytes": _parse_bytes,
}

# key: (type, built-in default as it would be written in a file)
KEYS: dict[str, tuple[str, str]] = {
    "storage_root": ("dir", "~/fits_storage/dataflow"),
    "dhs_perm": ("dir", "~/fits_storage/dhs"),
    "min_dhs_age_seconds": ("seconds", "5"),
    "upload_staging_dir": ("dir", ""),
    "database_url": ("database_url", ""),
    "is_archive": ("bool", "false"),
    "using_s3": ("bool", "false"),
    "s3_bucket_name": ("str", ""),
    "s3_endpoint_url": ("str", ""),
    "using_previews": ("bool", "false"),
    "using_calcache": ("bool", "false"),
    "export_destinations": ("list", ""),
    "export_auth_cookie": ("str", ""),
    "upload_auth_cookie": ("list", ""),
    "log_dir": ("dir", ""),
    "lockfile_dir": ("dir", ""),
    "defer_threshold": ("seconds", "4"),
    "defer_delay": ("positive_seconds", "5"),
    "queue_lease_seconds": ("positive_seconds", "60"),
    "queue_max_attempts": ("posint", "5"),
    "queue_poll_seconds": ("positive_seconds", "2"),
    "queue_max_run_seconds": ("positive_seconds", "3600"),
    "one_shot_db_patience": ("positive_seconds", "30"),
    "file_mode": ("mode", ""),
    "max_uncompressed_bytes": ("bytes", "4G"),
    "upload_read_timeout": ("positive_seconds", "60"),
    "delete_min_age_days": ("posint", "14"),
    "diskspace_min_free": ("bytes", "10G"),
    "diskspace_min_free_percent": ("posint", "5"),
    "database_backup_dir": ("dir", ""),
    "database_backup_keep": ("posint", "7"),
    "email_errors_to": ("list", ""),
    "smtp_server": ("str", "localhost"),
    "email_from": ("str", ""),
    "alert_max_mails": ("posint", "5"),
    "alert_window_seconds": ("positive_seconds", "3600"),
    "queue_alert_age_seconds": ("positive_seconds", "3600"),
    "queue_alert_failures": ("posint", "100"),
    "dhs_alert_seconds": ("positive_seconds", "900"),
    "web_secret_key": ("str", ""),
    "web_session_seconds": ("positive_seconds", "43200"),
    "queuestatus_rows": ("posint", "50"),
    "api_auth_cookie": ("list", ""),
}


@dataclass(frozen=True)
class Config:
    """Typed, validated configuration. Paths left empty are derived from storage_root."""

    storage_root: Path
    dhs_perm: Path
    min_dhs_age_seconds: float
    upload_staging_dir: Path
    database_url: str
    is_archive: bool
    using_s3: bool
    s3_bucket_name: str
    s3_endpoint_url: str
    using_previews: bool
    using_calcache: bool
    export_destinations: tuple[str, ...]
    export_auth_cookie: str
    upload_auth_cookie: tuple[str, ...]
    log_dir: Path
    lockfile_dir: Path
    defer_threshold: float
    defer_delay: float
    queue_lease_seconds: float
    queue_max_attempts: int
    queue_poll_seconds: float
    queue_max_run_seconds: float
    one_shot_db_patience: float
    file_mode: int | None
    max_uncompressed_bytes: int
    upload_read_timeout: float
    delete_min_age_days: int
    diskspace_min_free: int
    diskspace_min_free_percent: int
    database_backup_dir: Path
    database_backup_keep: int
    email_errors_to: tuple[str, ...]
    smtp_server: str
    email_from: str
    alert_max_mails: int
    alert_window_seconds: float
    queue_alert_age_seconds: float
    queue_alert_failures: int
    dhs_alert_seconds: float
    web_secret_key: str
    web_session_seconds: float
    queuestatus_rows: int
    api_auth_cookie: tuple[str, ...]
    sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # unknown keys, sections and variables, for the commands

    @property
    def system_dir(self) -> Path:
        """The hidden directory of storage_root holding what the system owns by default."""
        return self.storage_root / SYSTEM_DIR

    def system_paths(self) -> tuple[Path, ...]:
        """Everything on local disk the system owns (database, logs, locks, staging, the DHS
        disk): no uploaded or copied file name may reach any of these (DESIGN §4)."""
        paths = [
            self.system_dir,
            self.upload_staging_dir,
            self.log_dir,
            self.lockfile_dir,
            self.dhs_perm,
        ]
        database = sqlite_file(self.database_url)
        if database is not None:
            paths += [database.with_name(database.name + s) for s in SQLITE_SIDECARS]
        return tuple(paths)

    def replace(self, **changes: Any) -> Config:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Config(**values)


def closest(word: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the known word nearest ``word``, or nothing."""
    match = difflib.get_close_matches(word.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
    if not match:
        return ""
    original = next(k for k in known if k.lower() == match[0])
    return f" (did you mean {original!r}?)"


def _parse_file(path: Path) -> configparser.ConfigParser:
    """The file's sections, ``[DEFAULT]`` as an ordinary one: each holds only its own keys."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00")
    try:
        parser.read(path, encoding="utf-8")
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"{path}: line {exc.lineno} comes before any section header: start the file "
            "with [DEFAULT] (or a section named after the host)"
        ) from exc
    except configparser.Error as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{path}: cannot parse configuration file: {reason}") from exc
    return parser


def _read_files(
    paths: Sequence[str], hostname: str, raw: dict[str, tuple[str, str]], warnings: list[str]
) -> list[str]:
    """Fold each readable file into ``raw`` (key -> (text, where)); return the files read.

    ``[DEFAULT]`` is used, then the section named after this host. Other sections belong to
    other hosts sharing the file (``[summit2]`` beside ``[summit1]``), unless the name is close
    to ``DEFAULT`` (``[default]``, ``[DEFAUT]``): that gets a warning. Keys are checked in
    every section.
    """
    used = (configparser.DEFAULTSECT, hostname)
    read = []
    for name in paths:
        path = Path(os.path.expanduser(name))
        if not path.is_file():
            continue
        parser = _parse_file(path)
        for section in parser.sections():
            if section not in used and (hint := closest(section, [configparser.DEFAULTSECT])):
                warnings.append(
                    f"{path}: section [{section}] is neither [DEFAULT] nor this host's "
                    f"[{hostname}], so it is not used{hint}"
                )
            for key in parser[section]:
                if key not in KEYS:
                    warnings.append(
                        f"{path} [{section}]: unknown configuration key {key!r} ignored"
                        f"{closest(key, list(KEYS))}"
                    )
        for section in used:
            if parser.has_section(section):
                for key, value in parser[section].items():
                    if key in KEYS:
                        raw[key] = (value, f"{path} [{section}]")
        read.append(str(path))
    return read


def _read_environment(
    environ: Mapping[str, str], raw: dict[str, tuple[str, str]], warnings: list[str]
) -> None:
    known = list(ENV_ALIASES) + list(ENV_NOT_KEYS) + [ENV_PREFIX + k.upper() for k in KEYS]
    for env_name, value in environ.items():
        if not env_name.startswith(ENV_PREFIX) or env_name in ENV_NOT_KEYS:
            continue
        key = ENV_ALIASES.get(env_name) or env_name[len(ENV_PREFIX) :].lower()
        if key in KEYS:
            raw[key] = (value, f"environment {env_name}")
        else:
            warnings.append(
                f"unknown environment variable {env_name} ignored{closest(env_name, known)}"
            )


def load_config(
    environ: Mapping[str, str] | None = None,
    hostname: str | None = None,
    files: Sequence[str] | None = None,
) -> Config:
    """Build the configuration from files and environment; raise ConfigError naming a bad key."""
    environ = os.environ if environ is None else environ
    hostname = hostname or socket.gethostname()
    raw: dict[str, tuple[str, str]] = {k: (v, "built-in default") for k, (_, v) in KEYS.items()}
    if files is None:
        files = list(SYSTEM_CONFIG_FILES)
        if environ.get("FITS_STORAGE_CONFIG"):
            config_file = environ["FITS_STORAGE_CONFIG"]
            if not Path(os.path.expanduser(config_file)).is_file():
                raise ConfigError(f"FITS_STORAGE_CONFIG names {config_file!r}, which is not a file")
            files.append(config_file)
    warnings: list[str] = []
    sources = _read_files(files, hostname, raw, warnings)
    _read_environment(environ, raw, warnings)
    values: dict[str, Any] = {}
    for key, (kind, _) in KEYS.items():
        text, where = raw[key]
        try:
            values[key] = _PARSERS[kind](text)
        except (ValueError, SyntaxError) as exc:
            message = f"configuration key {key!r} ({where}): bad value {text!r}: {exc}"
            raise ConfigError(message) from exc
    root = values["storage_root"]
    if root is None:
        raise ConfigError("configuration key 'storage_root' must not be empty")
    system = root / SYSTEM_DIR
    values["upload_staging_dir"] = values["upload_staging_dir"] or system / "upload_staging"
    values["log_dir"] = values["log_dir"] or system / "logs"
    values["lockfile_dir"] = values["lockfile_dir"] or system / "locks"
    values["dhs_perm"] = values["dhs_perm"] or root / "dhs"
    values["database_backup_dir"] = values["database_backup_dir"] or system / "backups"
    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{default_sqlite_file(root)}"
    if values["diskspace_min_free_percent"] > 100:
        raise ConfigError(
            "configuration key 'diskspace_min_free_percent' "
            f"({raw['diskspace_min_free_percent'][1]}): a percentage, at most 100"
        )
    if values["using_s3"] and not values["s3_bucket_name"]:
        raise ConfigError("configuration key 's3_bucket_name' must be set when using_s3 is true")
    for key, (kind, _) in KEYS.items():
        if kind == "dir" and values[key].exists() and not values[key].is_dir():
            where = raw[key][1] if raw[key][0].strip() else "derived from storage_root"
            raise ConfigError(
                f"configuration key {key!r} ({where}): {values[key]} is not a directory"
            )
    return Config(**values, sources=tuple(sources), warnings=tuple(warnings))


def default_sqlite_file(root: Path) -> Path:
    """``storage_root/.fits_storage/fits_storage.db``, or the database an earlier version made
    at ``storage_root/fits_storage.db`` while it is the only one (its name is then reserved)."""
    current, earlier = root / SYSTEM_DIR / SQLITE_NAME, root / SQLITE_NAME
    return earlier if earlier.is_file() and not current.exists() else current


def sqlite_file(database_url: str) -> Path | None:
    """The file of an SQLite database URL, or None (another database, or in memory)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).absolute()


_current: Config | None = None


def get_config() -> Config:
    """The process's configuration, loaded once."""
    global _current
    if _current is None:
        _current = load_config()
    return _current


def set_config(config: Config | None) -> None:
    """Install (or forget, with None) the process's configuration; for commands and tests."""
    global _current
    _current = config


def parse_key(key: str, text: str) -> Any:
    """``text`` parsed as the configuration key ``key`` is (ValueError if it is not valid):
    for command-line options that override a key."""
    return _PARSERS[KEYS[key][0]](text)
