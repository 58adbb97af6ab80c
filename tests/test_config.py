"""The configuration contract (DESIGN.md §5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fits_storage.config import ConfigError, load_config


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_defaults_put_everything_under_storage_root(tmp_path: Path) -> None:
    config = load_config(environ={"FITS_STORAGE_ROOT": str(tmp_path)}, files=[])
    assert config.storage_root == tmp_path
    system = tmp_path / ".fits_storage"  # hidden: no data name can reach it
    assert config.database_url == f"sqlite:///{system / 'fits_storage.db'}"
    assert config.log_dir == system / "logs"
    assert config.lockfile_dir == system / "locks"
    assert config.upload_staging_dir == system / "upload_staging"
    assert config.export_destinations == ()
    assert config.queue_lease_seconds == 60 and config.queue_max_attempts == 5


def test_a_database_made_at_the_old_default_place_is_kept(tmp_path: Path) -> None:
    (tmp_path / "fits_storage.db").write_bytes(b"")
    config = load_config(environ={"FITS_STORAGE_ROOT": str(tmp_path)}, files=[])
    assert config.database_url == f"sqlite:///{tmp_path / 'fits_storage.db'}"
    assert tmp_path / "fits_storage.db-wal" in config.system_paths()


def test_files_layer_later_wins_and_host_section_overrides_default(tmp_path: Path) -> None:
    first = write(tmp_path / "a.conf", "[DEFAULT]\nstorage_root = /one\nis_archive = yes\n")
    second = write(
        tmp_path / "b.conf",
        "[DEFAULT]\nstorage_root = /two\ndefer_delay = 7\n\n[summit1]\ndefer_delay = 9\n"
        "export_destinations = ['https://archive.example.org', 'https://mirror.example.org']\n",
    )
    config = load_config(environ={}, hostname="summit1", files=[first, second])
    assert config.storage_root == Path("/two")
    assert config.is_archive is True
    assert config.defer_delay == 9.0
    assert config.export_destinations == (
        "https://archive.example.org",
        "https://mirror.example.org",
    )
    other = load_config(environ={}, hostname="elsewhere", files=[first, second])
    assert other.defer_delay == 7.0 and other.export_destinations == ()


def test_environment_wins_over_files(tmp_path: Path) -> None:
    conf = write(tmp_path / "a.conf", "[DEFAULT]\nstorage_root = /one\nusing_previews = true\n")
    config = load_config(
        environ={
            "FITS_STORAGE_CONFIG": conf,
            "FITS_STORAGE_ROOT": str(tmp_path),
            "FITS_STORAGE_DB_URL": "postgresql://u@h/db",
            "FITS_STORAGE_USING_PREVIEWS": "false",
            "FITS_STORAGE_EXPORT_DESTINATIONS": "https://a, https://b",
            "FITS_STORAGE_UPLOAD_AUTH_COOKIE": "['s1', 's2']",
        },
        files=None,
    )
    assert conf in config.sources
    assert config.storage_root == tmp_path
    assert config.database_url == "postgresql://u@h/db"
    assert config.using_previews is False
    assert config.export_destinations == ("https://a", "https://b")
    assert config.upload_auth_cookie == ("s1", "s2")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("queue_max_attempts", "0"),
        ("queue_lease_seconds", "soon"),
        ("using_s3", "maybe"),
        ("defer_threshold", "-1"),
        ("export_destinations", "['unterminated"),
    ],
)
def test_bad_value_is_reported_by_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(environ={f"FITS_STORAGE_{key.upper()}": value}, files=[])


def test_unknown_key_in_file_is_reported(tmp_path: Path) -> None:
    conf = write(tmp_path / "a.conf", "[DEFAULT]\nstorage_rot = /x\n")
    with pytest.raises(ConfigError, match="storage_rot"):
        load_config(environ={}, files=[conf])


def test_missing_config_file_named_by_environment_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FITS_STORAGE_CONFIG"):
        load_config(environ={"FITS_STORAGE_CONFIG": str(tmp_path / "nope.conf")})


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ConfigError, match="s3_bucket_name"):
        load_config(environ={"FITS_STORAGE_USING_S3": "true"}, files=[])
