"""add_to_ingest_queue beyond the disk: re-queueing from an S3 bucket (10,000 keys, listed a
page at a time, with the progress bar on a terminal) and the warning for a selection that
matches nothing ingestable."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fits_storage.config import Config
from tests.conftest import make_test_config
from tests.processes import environ_for
from tests.test_add_to_ingest_queue import make_names, queued, run_command

pytest_plugins = ["tests.s3server"]

KEYS = 10_000


@pytest.fixture
def s3_config(tmp_path: Path, db_url: str, s3_endpoint: str, s3_bucket: str) -> Config:
    return make_test_config(
        tmp_path, db_url, using_s3="true", s3_bucket_name=s3_bucket, s3_endpoint_url=s3_endpoint
    )


def run_on_a_terminal(config: Config, *args: str) -> tuple[int, str]:
    """The command with its stderr on a pseudo-terminal (so it draws its progress bar);
    returns its exit status and everything it wrote there."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fits_storage.cli.add_to_ingest_queue", *args],
        env=environ_for(config),
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    output = bytearray()

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the process closed its end
                return
            if not data:
                return
            output.extend(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    status = process.wait(timeout=180)
    reader.join(timeout=10)
    os.close(master)
    return status, output.decode(errors="replace")


def test_requeue_from_s3_lists_10000_keys_by_prefix(s3_config: Config, s3_bucket: str) -> None:
    names = [f"N20251123S{n:05d}.fits" for n in range(KEYS)]
    others = ["S20251124S0001.fits", "S20251120S0001.fits", "deeper/N20251123S99999.fits",
              "obslogs/20251123_GN-2025B-Q-1_obslog.txt", "N20251123S00001.fits.md5"]  # fmt: skip
    from tests.s3server import seed_objects  # a plugin of this module: imported once loaded

    seed_objects(s3_bucket, names + others)

    status, terminal = run_on_a_terminal(s3_config, "--s3filepre=N20251123")
    assert status == 0, terminal
    entries = queued(s3_config)
    # the prefix, on the top level only (no recursion into deeper/), and the name rules
    assert set(entries) == {("", name) for name in names}
    assert f"[listing...] {KEYS} queued" in terminal  # the bar, drawn as pages arrive
    assert f"found {KEYS + 1}, queued {KEYS}, already queued 0, skipped 1" in (
        s3_config.log_dir / "add_to_ingest_queue.log"
    ).read_text()

    # --file-re against the keys (of a short listing: the long one is done), --path as a prefix
    again = run_command(s3_config, "--s3filepre=S", "--file-re=S2025112[34]")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "found 2, queued 1, already queued 0, skipped 1"
    assert ("", "S20251124S0001.fits") in queued(s3_config)
    deeper = run_command(s3_config, "--path=deeper")
    assert deeper.returncode == 0, deeper.stderr
    assert deeper.stdout.strip() == "found 1, queued 1, already queued 0, skipped 0"
    assert ("deeper", "N20251123S99999.fits") in queued(s3_config)
    obslogs = run_command(s3_config, "--path=obslogs")  # the summit's cron line, on S3
    assert obslogs.stdout.strip() == "found 1, queued 1, already queued 0, skipped 0"
    assert ("obslogs", "20251123_GN-2025B-Q-1_obslog.txt") in queued(s3_config)


def test_s3filepre_needs_s3_and_an_unreachable_bucket_is_one_line(
    tmp_path: Path, db_url: str, config: Config, s3_bucket: str
) -> None:
    result = run_command(config, "--s3filepre=N2025")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "add_to_ingest_queue: --s3filepre needs using_s3 (this host's data store is a disk)"
    )
    down = make_test_config(
        tmp_path, db_url, using_s3="true", s3_bucket_name="nowhere",
        s3_endpoint_url="http://127.0.0.1:9",
    )  # fmt: skip
    result = run_command(down, "--s3filepre=N2025")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "ERROR" in line
    assert "data store error: s3://nowhere/N2025: S3 unreachable" in line


def test_a_selection_matching_nothing_ingestable_is_one_warning(config: Config) -> None:
    make_names(config.storage_root / "notes", ["README", "plan.doc", ".hidden.fits"])
    result = run_command(config, "--path=notes")
    assert result.returncode == 0
    assert result.stdout.strip() == "found 3, queued 0, already queued 0, skipped 3"
    warning = ("--path=notes matched nothing to ingest: 3 file(s) found, all skipped "
               "(2 non-FITS name, 1 tmp file)")  # fmt: skip
    assert result.stderr.strip().endswith(warning)
    assert result.stderr.count("WARNING") == 1
    log = (config.log_dir / "add_to_ingest_queue.log").read_text()
    assert warning in log

    make_names(config.storage_root, ["N20251123S0001.fits"])
    result = run_command(config, "--file-re=N1999", "--demon")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    log = (config.log_dir / "add_to_ingest_queue.log").read_text()
    assert ("--file-re=N1999 matched nothing to ingest: 1 file(s) found, all skipped "
            "(1 not matching --file-re)") in log  # fmt: skip

    empty = config.storage_root / "empty"
    empty.mkdir()
    result = run_command(config, "--path=empty")
    assert result.returncode == 0
    assert result.stderr.strip().endswith(
        "--path=empty matched nothing to ingest: no file found there"
    )
    # something selected (even if already queued): no warning
    assert "matched nothing" not in run_command(config, "--file-re=N2025").stderr
