"""The configuration contract (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fits_storage.config import SYSTEM_DIR, ConfigError, load_config


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
        # seconds: never NaN or infinite; where 0 would make a loop spin, more than 0
        ("defer_threshold", "nan"),
        ("min_dhs_age_seconds", "inf"),
        ("queue_poll_seconds", "0"),
        ("queue_poll_seconds", "NaN"),
        ("queue_lease_seconds", "0"),
        ("queue_lease_seconds", "-inf"),
        ("defer_delay", "0"),
        # a database this system cannot use
        ("database_url", "nonsense"),
        ("database_url", "mysql://u@h/db"),
        ("database_url", "postgresql+nosuchdriver://u@h/db"),
        ("file_mode", "rw-rw-r--"),
        ("file_mode", "1777"),
        ("max_uncompressed_bytes", "lots"),
        ("max_uncompressed_bytes", "0"),
    ],
)
def test_bad_value_is_reported_by_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key) as caught:
        load_config(environ={f"FITS_STORAGE_{key.upper()}": value}, files=[])
    assert "\n" not in str(caught.value)


def test_file_mode_is_octal_and_empty_leaves_it_to_the_umask() -> None:
    assert load_config(environ={}, files=[]).file_mode is None
    assert load_config(environ={"FITS_STORAGE_FILE_MODE": "0664"}, files=[]).file_mode == 0o664
    assert load_config(environ={"FITS_STORAGE_FILE_MODE": "640"}, files=[]).file_mode == 0o640


def test_max_uncompressed_bytes_takes_binary_suffixes() -> None:
    def parsed(text: str) -> int:
        environ = {"FITS_STORAGE_MAX_UNCOMPRESSED_BYTES": text}
        return load_config(environ=environ, files=[]).max_uncompressed_bytes

    assert load_config(environ={}, files=[]).max_uncompressed_bytes == 4 << 30
    assert parsed("1000") == 1000
    assert parsed("512M") == 512 << 20
    assert parsed("2GiB") == 2 << 30


def test_zero_seconds_where_zero_means_off() -> None:
    """defer_threshold 0 turns deferral off; min_dhs_age_seconds 0 copies at once."""
    config = load_config(
        environ={"FITS_STORAGE_DEFER_THRESHOLD": "0", "FITS_STORAGE_MIN_DHS_AGE_SECONDS": "0"},
        files=[],
    )
    assert config.defer_threshold == 0 and config.min_dhs_age_seconds == 0


def test_unknown_keys_sections_and_variables_warn_with_the_closest_key(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "a.conf",
        "[DEFAULT]\nstorage_rot = /x\ndefer_delay = 3\n\n[default]\nis_archive = yes\n\n"
        "[summit1]\nqueue_pol_seconds = 1\n\n[summit2]\nis_archive = yes\n",
    )
    config = load_config(
        environ={
            "FITS_STORAGE_ROOT": str(tmp_path),
            "FITS_STORAGE_DEFER_TRESHOLD": "3",
            "FITS_STORAGE_TEST_PG_URL": "postgresql://x",  # the test suite's, not a key
        },
        hostname="summit1",
        files=[conf],
    )
    assert config.defer_delay == 3 and config.is_archive is False
    assert config.warnings == (
        f"{conf} [DEFAULT]: unknown configuration key 'storage_rot' ignored "
        "(did you mean 'storage_root'?)",
        f"{conf}: section [default] is neither [DEFAULT] nor this host's [summit1], so it is "
        "not used (did you mean 'DEFAULT'?)",
        f"{conf} [summit1]: unknown configuration key 'queue_pol_seconds' ignored "
        "(did you mean 'queue_poll_seconds'?)",
        "unknown environment variable FITS_STORAGE_DEFER_TRESHOLD ignored "
        "(did you mean 'FITS_STORAGE_DEFER_THRESHOLD'?)",
    )


def test_file_without_a_section_header_is_one_line(tmp_path: Path) -> None:
    conf = write(tmp_path / "a.conf", "storage_root = /x\n")
    with pytest.raises(ConfigError) as caught:
        load_config(environ={}, files=[conf])
    assert str(caught.value) == (
        f"{conf}: line 1 comes before any section header: start the file with [DEFAULT] "
        "(or a section named after the host)"
    )


@pytest.mark.parametrize("key", ["storage_root", "log_dir", "upload_staging_dir"])
def test_directory_setting_that_names_a_file(tmp_path: Path, key: str) -> None:
    (tmp_path / "root" / SYSTEM_DIR).mkdir(parents=True)
    plain = write(tmp_path / "root" / SYSTEM_DIR / "logs", "not a directory")
    environ = {"FITS_STORAGE_ROOT": str(tmp_path / "root")}
    if key == "storage_root":
        environ["FITS_STORAGE_ROOT"] = plain
    elif key == "upload_staging_dir":
        environ["FITS_STORAGE_UPLOAD_STAGING_DIR"] = plain
    # log_dir: derived from storage_root (<root>/.fits_storage/logs), which is the file
    with pytest.raises(ConfigError, match=f"^configuration key '{key}' .*: {plain} is not a "):
        load_config(environ=environ, files=[])


def test_missing_config_file_named_by_environment_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FITS_STORAGE_CONFIG"):
        load_config(environ={"FITS_STORAGE_CONFIG": str(tmp_path / "nope.conf")})


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ConfigError, match="s3_bucket_name"):
        load_config(environ={"FITS_STORAGE_USING_S3": "true"}, files=[])
