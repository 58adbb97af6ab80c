"""The read-ahead process: what it reads must be what the worker would have read itself, and
anything else (changed bytes, a dead or stuck reader, a bad file) leaves the worker to read."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from fits_storage.ingest import readahead
from fits_storage.ingest.fitsread import read_fits
from fits_storage.ingest.readahead import MAX_PENDING, PAUSE_AFTER_WASTED, PROBE_EVERY, ReadAhead
from tests.conftest import make_test_config
from tests.fitsdata import astropy_fits_names, copy_astropy_files, copy_gmos_file


def seen(path: Path) -> tuple[tuple[int, int], str]:
    found = path.stat()
    return (found.st_size, found.st_mtime_ns), hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def reader():
    ahead = ReadAhead(take_timeout=30)
    yield ahead
    ahead.close()


def wait_ready(reader: ReadAhead) -> None:
    """Start the reader and wait until it has imported astropy (a take before that is declined,
    as a worker then reads the file itself sooner)."""
    reader.start()
    deadline = time.monotonic() + 60
    while not reader._is_ready():
        assert time.monotonic() < deadline, "the reader never got ready"
        time.sleep(0.05)


def test_results_are_what_the_worker_reads_itself(tmp_path: Path, reader: ReadAhead) -> None:
    names = astropy_fits_names(include_invalid=False)
    files = [*copy_astropy_files(tmp_path, names), copy_gmos_file(tmp_path)]
    wait_ready(reader)
    reader.offer(files[0], files[0].name, files[0].name)
    for path, following in zip(files, [*files[1:], None], strict=True):
        if following is not None:
            reader.offer(following, following.name, following.name)
        contents = reader.take(path, *seen(path))
        size = path.stat().st_size
        try:
            expected = read_fits(path, size, path.name, path.name)
        except Exception:  # noqa: BLE001 - astropy's odd test files: the worker reads these
            assert contents is None, path.name
            continue
        assert contents == expected, path.name


def test_bytes_changed_after_the_read_are_read_again(tmp_path: Path, reader: ReadAhead) -> None:
    path = copy_gmos_file(tmp_path)
    wait_ready(reader)
    reader.offer(path, path.name, path.name)
    fingerprint, md5 = seen(path)
    assert reader.take(path, fingerprint, "0" * 32) is None  # other bytes than it hashed
    reader.offer(path, path.name, path.name)
    size, mtime_ns = fingerprint
    assert reader.take(path, (size, mtime_ns + 1), md5) is None  # touched since
    reader.offer(path, path.name, path.name)
    assert reader.take(path, fingerprint, md5) is not None


def test_a_file_astropy_cannot_read_is_left_to_the_worker(
    tmp_path: Path, reader: ReadAhead
) -> None:
    wait_ready(reader)
    bad = tmp_path / "N20251123S0001.fits"
    bad.write_bytes(b"not a FITS file at all" * 200)
    reader.offer(bad, bad.name, bad.name)
    assert reader.take(bad, *seen(bad)) is None


def test_a_dead_reader_is_replaced(
    tmp_path: Path, reader: ReadAhead, caplog: pytest.LogCaptureFixture
) -> None:
    path = copy_gmos_file(tmp_path)
    wait_ready(reader)
    reader.offer(path, path.name, path.name)
    assert reader._process is not None
    reader._process.kill()
    with caplog.at_level(logging.WARNING):
        assert reader.take(path, *seen(path)) is None
    assert "went away" in caplog.text
    wait_ready(reader)  # a new one
    reader.offer(path, path.name, path.name)
    assert reader.take(path, *seen(path)) is not None


def test_a_stuck_reader_is_ended_and_the_worker_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ahead = ReadAhead(take_timeout=0.5)
    try:
        path = copy_gmos_file(tmp_path)
        wait_ready(ahead)
        assert ahead._process is not None
        stuck = ahead._process
        os.kill(stuck.pid, signal.SIGSTOP)
        ahead.offer(path, path.name, path.name)
        with caplog.at_level(logging.WARNING):
            assert ahead.take(path, *seen(path)) is None
        assert "no answer" in caplog.text
        assert stuck.poll() is not None  # ended, not left behind
    finally:
        ahead.close()


def test_only_regular_files_are_offered(tmp_path: Path, reader: ReadAhead) -> None:
    fifo = tmp_path / "N20251123S0002.fits"
    os.mkfifo(fifo)
    link = tmp_path / "N20251123S0003.fits"
    link.symlink_to(copy_gmos_file(tmp_path))
    assert not reader.offer(fifo, fifo.name, fifo.name)  # opening it would block the reader
    assert not reader.offer(link, link.name, link.name)
    wait_ready(reader)
    running = reader._process
    gone = tmp_path / "N20251123S0004.fits"
    assert not reader.offer(gone, gone.name, gone.name)
    assert reader._process is running  # a missing file is no reason to end the reader


def test_offers_never_taken_pause_the_reader(tmp_path: Path, reader: ReadAhead) -> None:
    """A re-queue of unchanged files: the worker takes nothing, and the reader soon stops
    reading (one offer in PROBE_EVERY still goes, to notice when files change again)."""
    path = copy_gmos_file(tmp_path)
    wait_ready(reader)
    offers = PAUSE_AFTER_WASTED + 4 * PROBE_EVERY
    accepted = 0
    for _ in range(offers):
        accepted += reader.offer(path, path.name, path.name)
        time.sleep(0.02)  # its answer arrives (a few ms), to be counted as wasted
    assert accepted <= PAUSE_AFTER_WASTED + MAX_PENDING + offers // PROBE_EVERY + 2
    for _ in range(PROBE_EVERY):  # a file the worker wants: taken, and the pause ends
        if reader.offer(path, path.name, path.name):
            break
    assert reader.take(path, *seen(path)) is not None
    assert reader.offer(path, path.name, path.name)


def test_s3_and_compressed_files_are_never_offered(tmp_path: Path, monkeypatch) -> None:
    offered: list[str] = []
    monkeypatch.setattr(readahead, "_reader", None)
    monkeypatch.setattr(ReadAhead, "start", lambda self: None)
    monkeypatch.setattr(ReadAhead, "offer", lambda self, local, *_: offered.append(local.name))
    config = make_test_config(tmp_path, f"sqlite:///{tmp_path / 'db'}")
    readahead.offer_next(config, "", "N20251123S0001.fits.bz2")
    readahead.offer_next(config, "", "20251123_GN-2025B-Q-1_obslog.txt")
    readahead.offer_next(config, "", "N20251123S0001.fits")
    assert offered == ["N20251123S0001.fits"]
    monkeypatch.setattr(readahead, "_reader", None)
    monkeypatch.setattr(readahead, "store_for", lambda _config: object())  # not local disk
    readahead.offer_next(config, "", "N20251123S0002.fits")
    assert offered == ["N20251123S0001.fits"]


def test_one_core_reads_nothing_ahead(tmp_path: Path, monkeypatch) -> None:
    started: list[bool] = []
    monkeypatch.setattr(readahead, "_reader", None)
    monkeypatch.setattr(ReadAhead, "start", lambda self: started.append(True))
    monkeypatch.setattr(readahead.os, "sched_getaffinity", lambda _pid: {0})
    config = make_test_config(tmp_path, f"sqlite:///{tmp_path / 'db'}")
    readahead.start_reader(config)
    readahead.offer_next(config, "", "N20251123S0001.fits")
    assert started == [] and readahead._reader is None
