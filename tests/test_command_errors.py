"""Every command, run as a real process, answers a bad set-up with one line and an exit status,
never a traceback: a bad or unsupported database_url, a database without the tables, seconds
that are NaN, infinite or 0, a directory key naming a file, a file without a section header.
Unknown keys and variables, and --file-re words that look like special values, warn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fits_storage.config import Config
from tests.conftest import make_test_config
from tests.processes import environ_for

COMMANDS = {
    "create_tables": [],
    "add_to_ingest_queue": [],
    "add_to_export_queue": ["--all", "--destination=http://127.0.0.1:9"],
    "rollcall": [],
    "copy_from_dhs": ["--oneshot", "--interval=0.1"],
    "service_ingest_queue": ["--empty"],
    "service_export_queue": ["--empty"],
    "ingest_uploaded_file": ["--empty"],
    "web": ["--port=9"],
    "delete_files": ["--archive=http://127.0.0.1:9"],
    "fits_storage_run": ["--port=9"],
    "check_queues": [],
    "fits_storage_user": ["list"],
    "service_preview_queue": ["--empty"],
    "add_to_preview_queue": [],
    "reingest_headers": ["--all"],
    "service_calcache_queue": ["--empty"],
    "add_to_calcache_queue": [],
    "service_fileops_queue": ["--empty"],
}
ALL = sorted(COMMANDS)
NEED_TABLES = sorted(set(COMMANDS) - {"create_tables", "web", "fits_storage_run"})


def run(config: Config, command: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"fits_storage.cli.{command}", *COMMANDS[command], *args],
        env=environ_for(config, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture
def plain_config(tmp_path: Path) -> Config:
    return make_test_config(tmp_path, f"sqlite:///{tmp_path / 'fits_storage.db'}")


@pytest.mark.parametrize("command", ALL)
@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("DB_URL", "nonsense", "not a database URL"),
        ("DB_URL", "mysql://u@h/db", "unsupported database 'mysql'"),
        ("QUEUE_POLL_SECONDS", "0", "greater than 0"),
        ("QUEUE_LEASE_SECONDS", "nan", "greater than 0"),
        ("DEFER_THRESHOLD", "inf", "at least 0"),
    ],
)
def test_bad_value_is_one_line_exit_2(
    plain_config: Config, command: str, key: str, value: str, says: str
) -> None:
    result = run(plain_config, command, **{f"FITS_STORAGE_{key}": value})
    assert result.returncode == 2
    assert one_line(result).startswith(f"{command.replace('web', 'fits_storage_web')}: ")
    assert says in result.stderr


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("copy_from_dhs", "--interval=0"),
        ("service_export_queue", "--timeout=nan"),
        ("service_export_queue", "--backoff-cap=inf"),
        ("add_to_ingest_queue", "--newfiles=nan"),
    ],
)
def test_seconds_options_must_be_finite_and_above_0(
    plain_config: Config, command: str, option: str
) -> None:
    result = run(plain_config, command, option)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "greater than 0" in result.stderr or "positive number" in result.stderr


@pytest.mark.parametrize("command", ["add_to_ingest_queue", "service_ingest_queue", "rollcall"])
def test_directory_key_naming_a_file_and_file_without_section(
    tmp_path: Path, plain_config: Config, command: str
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    result = run(plain_config, command, FITS_STORAGE_LOG_DIR=str(a_file))
    assert result.returncode == 2
    assert one_line(result).endswith(
        f"configuration key 'log_dir' (environment "
        f"FITS_STORAGE_LOG_DIR): {a_file} is not a directory"
    )
    conf = tmp_path / "site.conf"
    conf.write_text("storage_root = /somewhere\n")
    result = run(plain_config, command, FITS_STORAGE_CONFIG=str(conf))
    assert result.returncode == 2
    assert "line 1 comes before any section header" in one_line(result)


@pytest.fixture
def config_without_tables(tmp_path: Path, empty_db_url: str) -> Config:
    """A database that answers but has no fits_storage tables, on each backend."""
    return make_test_config(tmp_path, empty_db_url)


@pytest.mark.parametrize("command", NEED_TABLES)
def test_missing_tables_say_run_create_tables(config_without_tables: Config, command: str) -> None:
    result = run(config_without_tables, command)
    assert result.returncode == 1
    assert one_line(result).endswith("has no fits_storage tables: run create_tables")


def test_unknown_variable_and_file_re_word_warn(plain_config: Config) -> None:
    run(plain_config, "create_tables")
    result = run(
        plain_config, "add_to_ingest_queue", "--file-re=fiveday", FITS_STORAGE_DEFER_DLAY="3"
    )
    assert result.returncode == 0, result.stderr
    assert (
        "add_to_ingest_queue: configuration warning: unknown environment variable "
        "FITS_STORAGE_DEFER_DLAY ignored (did you mean 'FITS_STORAGE_DEFER_DELAY'?)"
    ) in result.stderr
    assert "--file-re 'fiveday' is not one of the special values" in result.stderr
    export = run(plain_config, "add_to_export_queue", "--file-re=twentydays")
    assert export.returncode == 0, export.stderr
    assert "--file-re 'twentydays' is not one of the special values" in export.stderr
    daemon = run(plain_config, "service_ingest_queue", FITS_STORAGE_DEFER_DLAY="3")
    assert daemon.returncode == 0, daemon.stderr
    assert "configuration: unknown environment variable FITS_STORAGE_DEFER_DLAY" in daemon.stderr
