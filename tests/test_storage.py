"""The data stores: a directory tree, and S3 against a real S3-compatible server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest

from fits_storage.config import Config
from fits_storage.storage import (
    AtomicFile,
    BadName,
    FileStat,
    LocalStore,
    Md5Mismatch,
    NotInStore,
    StoredFile,
    copy_atomic,
    file_md5,
    get_store,
    relative_name,
    split_target,
)
from fits_storage.storage.s3 import MIB, S3Store
from tests.conftest import make_test_config

pytest_plugins = ["tests.s3server"]


def write_random(path: Path, size: int) -> StoredFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return file_md5(path)


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, expected",
    [
        ("N20251123S0042.fits", ("", "N20251123S0042.fits")),
        ("a/b/N20251123S0042.fits.bz2", ("a/b", "N20251123S0042.fits.bz2")),
        ("masks/GN2025B+ok_-1.fits", ("masks", "GN2025B+ok_-1.fits")),
    ],
)
def test_split_target_accepts_plain_names(target: str, expected: tuple[str, str]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        "",
        "/etc/passwd",
        "../x.fits",
        "a/../../x.fits",
        "a/./x.fits",
        "a//x.fits",
        "a/",
        ".hidden.fits",
        "x.fits\x00",
        "x y.fits",
        "x;rm.fits",
        "a\\b.fits",
        "é.fits",
        "x" * 300,
        "a/" * 600 + "x.fits",
    ],
)
def test_split_target_refuses_escaping_and_odd_names(target: str) -> None:
    with pytest.raises(BadName):
        split_target(target)


# -- atomic writes and the local store --------------------------------------------------------


def test_atomic_file_leaves_nothing_without_commit(tmp_path: Path) -> None:
    dest = tmp_path / "d" / "x.fits"
    with AtomicFile(dest) as out:
        out.write(b"partial")
    assert list(dest.parent.iterdir()) == []


def test_atomic_file_md5_mismatch_removes_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "x.fits"
    dest.write_bytes(b"old")
    with pytest.raises(Md5Mismatch), AtomicFile(dest) as out:
        out.write(b"new bytes")
        out.commit(md5="0" * 32)
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.fits"]


def test_local_store_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "in" / "N20251123S0042.fits"
    expected = write_random(source, 300_000)
    store = LocalStore(tmp_path / "root")
    assert store.info("N20251123S0042.fits", "2025") is None
    assert store.store(source, "N20251123S0042.fits", "2025", md5=expected.md5) == expected
    dest = tmp_path / "root" / "2025" / "N20251123S0042.fits"
    assert dest.read_bytes() == source.read_bytes()
    assert store.info("N20251123S0042.fits", "2025") == expected
    assert store.stat("N20251123S0042.fits", "2025") == FileStat(
        expected.size, dest.stat().st_mtime_ns
    )
    assert store.stat("N20251123S0042.fits") is None
    assert b"".join(store.iter_bytes("N20251123S0042.fits", "2025")) == source.read_bytes()
    mtime = dest.stat().st_mtime_ns
    assert store.store(source, "N20251123S0042.fits", "2025") == expected  # no-op
    assert dest.stat().st_mtime_ns == mtime
    with store.local_copy("N20251123S0042.fits", "2025", tmp_path / "work") as local:
        assert local == dest
    assert store.fetch("N20251123S0042.fits", "2025", tmp_path / "copy.fits") == expected


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize(("mask", "expected"), [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_stored_files_honour_the_umask(tmp_path: Path, mask: int, expected: int) -> None:
    """The system we replace runs with UMask=0002 so that staff can edit files in place."""
    write_random(tmp_path / "in.fits", 100)
    with umask(mask):
        LocalStore(tmp_path / "root").store(tmp_path / "in.fits", "N1.fits", "2025")
        copy_atomic(tmp_path / "in.fits", tmp_path / "copy" / "N2.fits")
        with AtomicFile(tmp_path / "N3.fits") as out:
            out.write(b"x")
            out.commit()
    assert mode_of(tmp_path / "root" / "2025" / "N1.fits") == expected
    assert mode_of(tmp_path / "copy" / "N2.fits") == expected
    assert mode_of(tmp_path / "N3.fits") == expected
    assert mode_of(tmp_path / "root" / "2025") == 0o777 & ~mask


def test_configured_file_mode_wins_over_the_umask(tmp_path: Path) -> None:
    config = make_test_config(tmp_path, "sqlite:///" + str(tmp_path / "db"), file_mode="0660")
    write_random(tmp_path / "in.fits", 100)
    with umask(0o022):
        get_store(config).store(tmp_path / "in.fits", "N1.fits")
    assert mode_of(config.storage_root / "N1.fits") == 0o660
    # An existing file with the same bytes is left as it is (a no-op store).
    os.chmod(config.storage_root / "N1.fits", 0o600)
    get_store(config).store(tmp_path / "in.fits", "N1.fits")
    assert mode_of(config.storage_root / "N1.fits") == 0o600


def test_local_store_refuses_wrong_md5_and_keeps_old_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    old = write_random(tmp_path / "old.fits", 1000)
    store.store(tmp_path / "old.fits", "x.fits")
    write_random(tmp_path / "new.fits", 1000)
    with pytest.raises(Md5Mismatch):
        store.store(tmp_path / "new.fits", "x.fits", md5="f" * 32)
    assert store.info("x.fits") == old
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["x.fits"]


def test_local_store_refuses_escaping_names(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    write_random(tmp_path / "x.fits", 10)
    with pytest.raises(BadName):
        store.store(tmp_path / "x.fits", "x.fits", "../outside")
    with pytest.raises(NotInStore):
        store.open("missing.fits")


def test_get_store_follows_using_s3(tmp_path: Path, s3_endpoint: str) -> None:
    local = make_test_config(tmp_path, "sqlite:///" + str(tmp_path / "db"))
    assert isinstance(get_store(local), LocalStore)
    s3 = local.replace(using_s3=True, s3_bucket_name="b", s3_endpoint_url=s3_endpoint)
    store = get_store(s3)
    assert isinstance(store, S3Store) and store.bucket == "b"
    assert isinstance(local, Config)


# -- S3 -----------------------------------------------------------------------------------------


def small_parts_store(bucket: str, endpoint: str) -> S3Store:
    return S3Store(bucket, endpoint, multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)


def test_s3_upload_md5_metadata_and_read_back(tmp_path: Path, s3_endpoint: str, s3_bucket: str):
    source = tmp_path / "N20251123S0042.fits"
    expected = write_random(source, 200_000)
    store = small_parts_store(s3_bucket, s3_endpoint)
    assert store.info("N20251123S0042.fits", "2025") is None
    assert store.store(source, "N20251123S0042.fits", "2025", md5=expected.md5) == expected

    raw = boto3.client("s3", endpoint_url=s3_endpoint)
    head = raw.head_object(Bucket=s3_bucket, Key="2025/N20251123S0042.fits")
    assert head["Metadata"]["md5"] == expected.md5
    assert head["ContentLength"] == expected.size
    assert store.info("N20251123S0042.fits", "2025") == expected
    stat = store.stat("N20251123S0042.fits", "2025")
    assert stat is not None and (stat.size, stat.md5) == (expected.size, expected.md5)
    assert stat.mtime_ns == int(head["LastModified"].timestamp()) * 1_000_000_000
    assert store.stat("missing.fits") is None
    store.verify_readback("N20251123S0042.fits", "2025", expected)
    assert b"".join(store.iter_bytes("N20251123S0042.fits", "2025")) == source.read_bytes()

    fetched = store.fetch("N20251123S0042.fits", "2025", tmp_path / "back" / "copy.fits")
    assert fetched == expected
    assert (tmp_path / "back" / "copy.fits").read_bytes() == source.read_bytes()
    with store.local_copy("N20251123S0042.fits", "2025", tmp_path / "work") as local:
        assert file_md5(local) == expected
    assert list((tmp_path / "work").iterdir()) == []


def test_s3_multipart_upload(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    source = tmp_path / "big.fits"
    expected = write_random(source, 12 * MIB + 12345)
    store = small_parts_store(s3_bucket, s3_endpoint)
    assert store.store(source, "big.fits", md5=expected.md5) == expected
    head = boto3.client("s3", endpoint_url=s3_endpoint).head_object(
        Bucket=s3_bucket, Key="big.fits"
    )
    assert head["ETag"].strip('"').endswith("-3")  # three 5 MiB parts: really multipart
    assert head["Metadata"]["md5"] == expected.md5
    store.verify_readback("big.fits", "", expected)
    assert store.fetch("big.fits", "", tmp_path / "copy.fits") == expected


def test_s3_store_is_idempotent_and_checks_md5(tmp_path: Path, s3_endpoint: str, s3_bucket: str):
    source = tmp_path / "x.fits"
    expected = write_random(source, 5000)
    store = small_parts_store(s3_bucket, s3_endpoint)
    store.store(source, "x.fits")
    raw = boto3.client("s3", endpoint_url=s3_endpoint)
    before = raw.head_object(Bucket=s3_bucket, Key="x.fits")["LastModified"]
    assert store.store(source, "x.fits", md5=expected.md5) == expected
    assert raw.head_object(Bucket=s3_bucket, Key="x.fits")["LastModified"] == before
    with pytest.raises(Md5Mismatch):
        store.store(source, "y.fits", md5="0" * 32)
    assert store.info("y.fits") is None


def test_s3_fetch_detects_corrupt_object(tmp_path: Path, s3_endpoint: str, s3_bucket: str):
    raw = boto3.client("s3", endpoint_url=s3_endpoint)
    raw.put_object(Bucket=s3_bucket, Key="bad.fits", Body=b"abc", Metadata={"md5": "0" * 32})
    store = small_parts_store(s3_bucket, s3_endpoint)
    with pytest.raises(Md5Mismatch):
        store.fetch("bad.fits", "", tmp_path / "bad.fits")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NotInStore):
        store.fetch("missing.fits", "", tmp_path / "missing.fits")


def test_relative_name() -> None:
    assert relative_name("x.fits") == "x.fits"
    assert relative_name("x.fits", "a/b") == "a/b/x.fits"
