"""The configuration object (DESIGN.md §5).

Layered INI files, later wins: built-in defaults, ``/etc/fits_storage.conf``,
``~/.fits_storage.conf``, then ``$FITS_STORAGE_CONFIG``. A section named after the host
overrides ``[DEFAULT]``. Environment variables win over files: ``FITS_STORAGE_ROOT``,
``FITS_STORAGE_DB_URL`` and ``FITS_STORAGE_<KEY>``. Values are typed and checked once, at
start-up, so a bad value is reported by its key name rather than as a traceback later.
"""

from __future__ import annotations

import ast
import configparser
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

SYSTEM_CONFIG_FILES = ("/etc/fits_storage.conf", "~/.fits_storage.conf")
# The system's own files under storage_root: hidden, so no data name can reach them.
SYSTEM_DIR = ".fits_storage"
SQLITE_NAME = "fits_storage.db"
SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")
ENV_ALIASES = {"FITS_STORAGE_ROOT": "storage_root", "FITS_STORAGE_DB_URL": "database_url"}


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
    if value < 0:
        raise ValueError(f"expected a number of at least 0, got {text!r}")
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
    "bool": _parse_bool,
    "list": _parse_list,
    "path": _parse_path,
    "posint": _parse_positive_int,
    "seconds": _parse_non_negative_float,
    "bytes": _parse_bytes,
}

# key: (type, built-in default as it would be written in a file)
KEYS: dict[str, tuple[str, str]] = {
    "storage_root": ("path", "~/fits_storage/dataflow"),
    "dhs_perm": ("path", "~/fits_storage/dhs"),
    "min_dhs_age_seconds": ("seconds", "5"),
    "upload_staging_dir": ("path", ""),
    "database_url": ("str", ""),
    "is_archive": ("bool", "false"),
    "using_s3": ("bool", "false"),
    "s3_bucket_name": ("str", ""),
    "s3_endpoint_url": ("str", ""),
    "using_previews": ("bool", "false"),
    "using_calcache": ("bool", "false"),
    "export_destinations": ("list", ""),
    "export_auth_cookie": ("str", ""),
    "upload_auth_cookie": ("list", ""),
    "log_dir": ("path", ""),
    "lockfile_dir": ("path", ""),
    "defer_threshold": ("seconds", "4"),
    "defer_delay": ("seconds", "5"),
    "queue_lease_seconds": ("seconds", "60"),
    "queue_max_attempts": ("posint", "5"),
    "queue_poll_seconds": ("seconds", "2"),
    "max_uncompressed_bytes": ("bytes", "4G"),
    "upload_read_timeout": ("seconds", "60"),
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
    max_uncompressed_bytes: int
    upload_read_timeout: float
    sources: tuple[str, ...] = ()

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


def _read_files(paths: Sequence[str], hostname: str, raw: dict[str, tuple[str, str]]) -> list[str]:
    """Fold each readable file into ``raw`` (key -> (text, where)); return the files read."""
    read = []
    for name in paths:
        path = Path(os.path.expanduser(name))
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigError(f"{path}: cannot parse configuration file: {exc}") from exc
        sections = [configparser.DEFAULTSECT]
        if parser.has_section(hostname):
            sections.append(hostname)
        for section in sections:
            items = parser.defaults() if section == configparser.DEFAULTSECT else parser[section]
            for key, value in items.items():
                if key not in KEYS:
                    raise ConfigError(f"{path} [{section}]: unknown configuration key {key!r}")
                raw[key] = (value, f"{path} [{section}]")
        read.append(str(path))
    return read


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
    sources = _read_files(files, hostname, raw)
    for env_name, value in environ.items():
        if env_name in ENV_ALIASES:
            raw[ENV_ALIASES[env_name]] = (value, f"environment {env_name}")
        elif env_name.startswith("FITS_STORAGE_") and env_name != "FITS_STORAGE_CONFIG":
            key = env_name[len("FITS_STORAGE_") :].lower()
            if key in KEYS:
                raw[key] = (value, f"environment {env_name}")
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
    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{default_sqlite_file(root)}"
    if values["using_s3"] and not values["s3_bucket_name"]:
        raise ConfigError("configuration key 's3_bucket_name' must be set when using_s3 is true")
    return Config(**values, sources=tuple(sources))


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
