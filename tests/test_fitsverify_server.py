"""The long-running fitsverify: the same report as a one-file run, for every file, whatever
happens to the program between or during files."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fits_storage.ingest.verify import (
    FitsverifyRun,
    FitsverifyServer,
    ServerRun,
    VerifyReport,
    fitsverify_program,
    fitsverify_report,
)
from tests.fitsdata import copy_astropy_file, copy_gmos_file, make_observatory_file

pytestmark = pytest.mark.skipif(
    fitsverify_program() is None or shutil.which("stdbuf") is None,
    reason="fitsverify not installed (Debian package 'fitsverify'); CI installs it",
)

# good, fatal (the program gives up on it), good, errors but readable, good
MIXED = ["test0.fits", "verify.fits", "checksum_false.fits", "fixed-1890.fits", "tb.fits"]


@pytest.fixture
def server() -> Iterator[FitsverifyServer]:
    program, stdbuf = fitsverify_program(), shutil.which("stdbuf")
    assert program is not None and stdbuf is not None
    made = FitsverifyServer(program, stdbuf)
    yield made
    made.close()


def served(server: FitsverifyServer, path: Path, shown_as: Path | None = None) -> VerifyReport:
    run = server.start(path, shown_as)
    assert isinstance(run, ServerRun)
    with run:
        return run.result()


def alone(path: Path) -> VerifyReport:
    report = fitsverify_report(path)
    assert report is not None
    return report


def test_a_batch_with_bad_files_gives_each_file_its_own_report(
    server: FitsverifyServer, tmp_path: Path
) -> None:
    files = [copy_astropy_file(name, tmp_path) for name in MIXED]
    files += [copy_gmos_file(tmp_path), make_observatory_file(tmp_path)]
    for path in files + files[::-1]:
        assert served(server, path) == alone(path), path.name
    assert server.restarts == 0  # one program verified them all
    verdicts = {p.name: served(server, p).ok for p in files[:4]}
    assert verdicts == {
        "test0.fits": True,
        "verify.fits": False,
        "checksum_false.fits": True,
        "fixed-1890.fits": False,
    }


def test_a_staged_copy_is_named_as_the_stored_file(
    server: FitsverifyServer, tmp_path: Path
) -> None:
    staged = copy_astropy_file("fixed-1890.fits", tmp_path, "staged.fits")
    stored = tmp_path / "N20251123S0001.fits.bz2"
    report = served(server, staged, shown_as=stored)
    assert f"File: {stored}" in report.text and str(staged) not in report.text


def test_killed_between_files_the_next_file_is_still_verified(
    server: FitsverifyServer, tmp_path: Path
) -> None:
    good = copy_astropy_file("test0.fits", tmp_path)
    bad = copy_astropy_file("verify.fits", tmp_path)
    assert served(server, good) == alone(good)
    assert server.process is not None
    first = server.process.pid
    os.kill(first, signal.SIGKILL)
    server.process.wait()
    assert served(server, bad) == alone(bad)
    assert server.process is not None and server.process.pid != first


def test_killed_with_a_file_in_hand_the_report_still_arrives(
    server: FitsverifyServer, tmp_path: Path
) -> None:
    path = copy_astropy_file("fixed-1890.fits", tmp_path)
    served(server, path)  # started and warm
    run = server.start(path)
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    with run:
        assert run.result() == alone(path)
    good = copy_astropy_file("test0.fits", tmp_path)
    assert served(server, good) == alone(good)


def test_a_hang_is_killed_and_reported(tmp_path: Path) -> None:
    program = tmp_path / "hanging-fitsverify"
    program.write_text("#!/bin/sh\nexec sleep 600\n")
    program.chmod(0o755)
    stdbuf = shutil.which("stdbuf")
    assert stdbuf is not None
    hanging = FitsverifyServer(str(program), stdbuf)
    try:
        run = hanging.start(copy_astropy_file("test0.fits", tmp_path))
        process = hanging.process
        with run:
            report = run.result(timeout=0.5)
        assert not report.ok and report.text.startswith("fitsverify could not run: timed out")
        assert process is not None and process.poll() is not None  # killed, not left behind
        assert hanging.process is None
    finally:
        hanging.close()


def test_a_report_already_in_the_pipe_is_taken_without_waiting(
    server: FitsverifyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual case in ingest: the program finished while the worker read the file. Its
    report is read at once, with no wait set up (a selector only when it is still coming)."""
    files = [copy_astropy_file(name, tmp_path) for name in MIXED] + [copy_gmos_file(tmp_path)]
    served(server, files[0])  # started and warm
    made = []

    class CountedSelector(selectors.DefaultSelector):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(selectors, "DefaultSelector", CountedSelector)
    for path in files:
        run = server.start(path)
        assert isinstance(run, ServerRun)
        time.sleep(0.5)  # far longer than the program takes for these files
        with run:
            assert run.result() == alone(path)
    assert len(made) < len(files)  # not one per file


def test_a_run_left_early_leaves_no_output_for_the_next_file(
    server: FitsverifyServer, tmp_path: Path
) -> None:
    bad, good = copy_astropy_file("fixed-1890.fits", tmp_path), copy_gmos_file(tmp_path)
    with server.start(bad):
        pass  # the ingest found the file bad before wanting its report
    assert served(server, good) == alone(good)


def test_a_name_the_list_cannot_hold_gets_a_one_file_run(
    server: FitsverifyServer, tmp_path: Path
) -> None:
    odd = copy_astropy_file("test0.fits", tmp_path, "with space.fits")
    run = server.start(odd)
    assert isinstance(run, FitsverifyRun)
    with run:
        assert run.result() == alone(odd)


def test_a_sentinel_removed_by_a_temporary_folder_cleaner_is_written_again(
    server: FitsverifyServer, tmp_path: Path
) -> None:
    good = copy_astropy_file("test0.fits", tmp_path)
    assert served(server, good) == alone(good)
    assert server.process is not None
    first = server.process.pid
    shutil.rmtree(server.sentinel.parent)
    assert served(server, good) == alone(good)
    assert server.process is not None and server.process.pid == first  # served, no fallback


def test_a_sentinel_that_cannot_be_verified_falls_back_to_a_one_file_run(
    server: FitsverifyServer, tmp_path: Path
) -> None:
    good = copy_astropy_file("test0.fits", tmp_path)
    assert served(server, good) == alone(good)
    server.sentinel.write_bytes(b"not FITS at all")  # removed between check and use
    run = server.start(good)
    with run:
        assert run.result(timeout=20) == alone(good)
