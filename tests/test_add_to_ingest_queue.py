"""add_to_ingest_queue: the selection rules (with a fixed clock) and the command itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from fits_storage.cli.add_to_ingest_queue import UsageError, clean_path, parse_after
from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.orm.queues import IngestQueue
from fits_storage.scan import Selection, SelectionError, is_fits_name, is_temporary
from fits_storage.scan.select import special_dates_regex
from tests.conftest import config_environ

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # just after a month boundary, in UT


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [".N20251123S0001.fits", "tmpN20251123S0001.fits", "N20251123S0001.fits~",
     "N20251123S0001.fits.tmp", "N20251123S0001.fits.part", ".vtoc_internal", "TMP.fits"],
)  # fmt: skip
def test_temporary_names(name: str) -> None:
    assert is_temporary(name)
    assert Selection().reason_to_skip(name) == "tmp file"


@pytest.mark.parametrize(
    ("name", "fits_name"),
    [("N20251123S0001.fits", True), ("N20251123S0001.fits.bz2", True), ("a.FITS", True),
     ("b.fits.gz", True), ("c.fit", True), ("d.FIT", True), ("obslog.txt", False),
     ("N20251123S0001.fits.bz2.md5", False), ("e.fitsx", False), ("f.bz2", False)],
)  # fmt: skip
def test_fits_names(name: str, fits_name: bool) -> None:
    assert is_fits_name(name) is fits_name
    assert (Selection().reason_to_skip(name) is None) is fits_name


# -- --file-re special values -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dates"),
    [
        ("today", ["20260302"]),
        ("twoday", ["20260302", "20260301"]),
        ("fourday", ["20260302", "20260301", "20260228", "20260227"]),
        ("tenday", [(NOW - timedelta(days=n)).strftime("%Y%m%d") for n in range(10)]),
        ("twentyday", [(NOW - timedelta(days=n)).strftime("%Y%m%d") for n in range(20)]),
    ],
)
def test_special_values_are_the_last_n_ut_dates(value: str, dates: list[str]) -> None:
    selection = Selection(file_re=value, now=NOW)
    for date in dates:
        assert selection.reason_to_skip(f"N{date}S0001.fits") is None
    older = (datetime.strptime(dates[-1], "%Y%m%d") - timedelta(days=1)).strftime("%Y%m%d")
    assert selection.reason_to_skip(f"N{older}S0001.fits") == "not matching --file-re"
    assert selection.reason_to_skip("N20270302S0001.fits") == "not matching --file-re"


def test_special_values_count_ut_not_local_dates() -> None:
    # 2026-03-01 20:00 in Hawaii (UTC-10) is already 2026-03-02 in UT.
    hst = timezone(timedelta(hours=-10))
    assert special_dates_regex("today", datetime(2026, 3, 1, 20, 0, tzinfo=UTC)) == "(?:20260301)"
    assert special_dates_regex("today", datetime(2026, 3, 1, 20, 0, tzinfo=hst)) == "(?:20260302)"
    assert special_dates_regex("N2026", NOW) is None


def test_ordinary_regex_is_searched_not_matched() -> None:
    selection = Selection(file_re=r"S00[12]", now=NOW)
    assert selection.reason_to_skip("N20260302S0015.fits") is None
    assert selection.reason_to_skip("N20260302S0035.fits") == "not matching --file-re"
    with pytest.raises(SelectionError, match="bad --file-re"):
        Selection(file_re="(")


def test_newfiles_uses_modification_time(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    new = tmp_path / "N20260302S0001.fits"
    old = tmp_path / "N20260302S0002.fits"
    for path in (new, old):
        path.write_bytes(b"")
    week_ago = time.time() - 7 * 86400
    os.utime(old, (week_ago, week_ago))
    (tmp_path / "sub").mkdir()
    (tmp_path / ".N20260302S0003.fits").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    selection = Selection(newfiles_days=2, now=now)
    assert dict(selection.scan(tmp_path)) == {
        new.name: None,
        old.name: "older than --newfiles",
        ".N20260302S0003.fits": "tmp file",
        "notes.txt": "non-FITS name",
    }
    assert dict(Selection(newfiles_days=8, now=now).scan(tmp_path))[old.name] is None
    with pytest.raises(SelectionError):
        Selection(newfiles_days=0)


def test_path_and_after_options() -> None:
    assert clean_path("masks") == "masks"
    assert clean_path("masks/") == "masks"
    assert clean_path(".") == ""
    for bad in ("/etc", "../x", "a/../../b"):
        with pytest.raises(UsageError):
            clean_path(bad)
    assert parse_after("2026-03-18T14:00:00Z") == datetime(2026, 3, 18, 14, 0)
    assert parse_after("2026-03-18T04:00:00-10:00") == datetime(2026, 3, 18, 14, 0)
    naive = parse_after("2026-03-18T14:00:00")
    assert naive == datetime(2026, 3, 18, 14, 0).astimezone().astimezone(UTC).replace(tzinfo=None)
    with pytest.raises(UsageError):
        parse_after("yesterday")


# -- the command, as a real process -------------------------------------------------------------


def run_command(config: Config, *args: str) -> subprocess.CompletedProcess:
    env = config_environ(config)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.add_to_ingest_queue", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def queued(config: Config) -> dict[tuple[str, str], IngestQueue]:
    engine = make_engine(config.database_url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.scalars(select(IngestQueue)).all()
            return {(r.path, r.filename): r for r in rows}
    finally:
        engine.dispose()


def make_names(directory: Path, names: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"")


def test_command_queues_selected_files_with_summary(config: Config) -> None:
    today = datetime.now(UTC).strftime("%Y%m%d")
    old = "20200101"
    make_names(
        config.storage_root,
        [f"N{today}S{n:04d}.fits" for n in range(1, 6)]
        + [f"N{old}S0001.fits", f"S{today}S0001.fits.bz2", f".N{today}S0009.fits",
           f"N{today}S0010.fits.part", "obslog.txt"],
    )  # fmt: skip
    (config.storage_root / "subdir").mkdir()

    result = run_command(config, "--file-re=today")
    assert result.returncode == 0, result.stderr
    # 10 files (the directory is not one): 6 selected, 4 skipped (tmp, part, txt, old date)
    assert result.stdout.strip() == "found 10, queued 6, already queued 0, skipped 4"
    entries = queued(config)
    assert set(entries) == {("", f"N{today}S{n:04d}.fits") for n in range(1, 6)} | {
        ("", f"S{today}S0001.fits.bz2")
    }
    assert not any(e.force or e.force_md5 for e in entries.values())

    again = run_command(config, "--file-re=today", "--force_md5")
    assert again.stdout.strip() == "found 10, queued 0, already queued 6, skipped 4"
    log = (config.log_dir / "add_to_ingest_queue.log").read_text()
    assert "found 10, queued 0, already queued 6, skipped 4" in log


def test_command_path_force_after_and_named_files(config: Config, tmp_path: Path) -> None:
    masks = config.storage_root / "masks"
    make_names(masks, ["GN2025BQ101-01.fits", "GN2025BQ101-02.fits", "README"])
    result = run_command(config, "--path=masks", "--force", "--after=2030-01-02T03:04:05Z")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "found 3, queued 2, already queued 0, skipped 1"
    entries = queued(config)
    assert set(entries) == {("masks", "GN2025BQ101-01.fits"), ("masks", "GN2025BQ101-02.fits")}
    for entry in entries.values():
        assert entry.force and not entry.force_md5
        assert entry.after == datetime(2030, 1, 2, 3, 4, 5)

    make_names(config.storage_root, ["N20251123S0001.fits", "N20251123S0002.fits"])
    listfile = tmp_path / "list.txt"
    listfile.write_text("# files to redo\nN20251123S0002.fits\n\nmasks/GN2025BQ101-01.fits\n"
                        "N20251123S0099.fits\n")  # fmt: skip
    result = run_command(config, "--filename=N20251123S0001.fits", f"--listfile={listfile}")
    assert result.returncode == 0, result.stderr
    # masks/GN2025BQ101-01 is still waiting; S0099 does not exist
    assert result.stdout.strip() == "found 4, queued 2, already queued 1, skipped 1"
    assert ("", "N20251123S0001.fits") in queued(config)
    # a named file that is not there says why at the default log level
    missing = config.storage_root / "N20251123S0099.fits"
    assert f"Not queueing {missing}: no such file" in result.stderr


def test_command_demon_is_silent_and_bad_options_exit_2(config: Config) -> None:
    make_names(config.storage_root, ["N20251123S0001.fits"])
    result = run_command(config, "--demon")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert "found 1, queued 1" in (config.log_dir / "add_to_ingest_queue.log").read_text()
    for bad in (["--file-re=("], ["--path=nowhere"], ["--after=soon"], ["--newfiles=-1"]):
        result = run_command(config, *bad)
        assert result.returncode == 2
        assert result.stderr.startswith("add_to_ingest_queue: ")
    help_text = run_command(config, "--help").stdout
    for option in ("--file-re", "twentyday", "--path", "--force_md5", "--after", "--newfiles",
                   "--filename", "--listfile", "--debug", "--demon"):  # fmt: skip
        assert option in help_text


def test_command_queues_many_files_in_bulk(config: Config) -> None:
    names = [f"N20251123S{n:05d}.fits" for n in range(20000)]
    make_names(config.storage_root, names)
    started = time.monotonic()
    result = run_command(config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "found 20000, queued 20000, already queued 0, skipped 0"
    assert len(queued(config)) == 20000
    print(f"queued 20000 files in {time.monotonic() - started:.1f}s")  # no timing assertion


def test_progress_bar_only_when_enabled() -> None:
    import io

    from fits_storage.cli.add_to_ingest_queue import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(10, stream, enabled=True, width=10)
    bar.advance(5)
    bar.advance(5)
    bar.close()
    assert stream.getvalue().endswith("[##########] 10/10 queued\n")
    quiet = io.StringIO()
    off = ProgressBar(10, quiet, enabled=False)
    off.advance(10)
    off.close()
    assert quiet.getvalue() == ""
