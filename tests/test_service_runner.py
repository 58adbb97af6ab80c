"""The daemon runner shared by every service command, exercised through real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.queues import get_queue
from tests.conftest import make_test_config
from tests.processes import RECORDING_WORKER, environ_for, start_recording_worker, wait_for
from tests.workers.recording_worker import CREATE


def fill(engine: Engine, config: Config, names: list[str]) -> None:
    with make_session_factory(engine)() as session:
        session.execute(text(CREATE))
        get_queue("preview", config).add_many(session, [{"filename": n} for n in names])
        session.commit()


def done(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT filename FROM processed"))]


def run_worker_to_the_end(config: Config, timeout: float) -> subprocess.CompletedProcess:
    """A one-shot (``--empty``) recording worker, run until it exits."""
    return subprocess.run(
        [sys.executable, str(RECORDING_WORKER), "--empty"],
        env=environ_for(config),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def in_progress(engine: Engine, config: Config) -> int:
    with make_session_factory(engine)() as session:
        return get_queue("preview", config).counts(session).in_progress


def test_oneshot_processes_one_entry_and_logs_per_instance(engine: Engine, config: Config) -> None:
    fill(engine, config, ["N20251123S0001.fits", "N20251123S0002.fits"])
    worker = start_recording_worker(config, "one", "--oneshot")
    assert worker.wait(30) == 0
    assert done(engine) == ["N20251123S0002.fits"]  # newest first
    log = (config.log_dir / "recording_worker-one.log").read_text()
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines and all("[recording_worker-one]" in line for line in lines)
    assert "processing N20251123S0002.fits" in log


@pytest.mark.parametrize("end", [signal.SIGTERM, signal.SIGKILL])
def test_lockfile_keeps_a_second_copy_out(engine: Engine, config: Config, end: int) -> None:
    fill(engine, config, [])
    first = start_recording_worker(config, "locked", "--lockfile")
    try:
        lock = config.lockfile_dir / "recording_worker-locked.lock"
        wait_for(
            lambda: lock.exists() and lock.read_text().strip() == str(first.pid),
            20,
            "the lock file",
        )
        second = start_recording_worker(config, "locked", "--lockfile", "--empty")
        assert second.wait(20) == 1
        assert "locked by another process" in second.stderr.read().decode()
    finally:
        first.send_signal(end)
        assert first.wait(20) == (0 if end == signal.SIGTERM else -signal.SIGKILL)
    # A holder that stopped, even by SIGKILL with no chance to clean up, leaves the file
    # behind but not the lock.
    assert lock.read_text().strip() == str(first.pid)
    third = start_recording_worker(config, "locked", "--lockfile", "--empty")
    assert third.wait(20) == 0


def test_sigterm_stops_after_the_item_in_hand(engine: Engine, config: Config) -> None:
    fill(engine, config, ["N20251123S0004.fits", "N20251123S0003.fits"])
    worker = start_recording_worker(config, "term", TEST_WORK_SECONDS="3", TEST_WORK_FIXED="1")
    wait_for(lambda: in_progress(engine, config) == 1, 20, "an item in progress")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert in_progress(engine, config) == 0  # finished, not abandoned half-done
    assert done(engine) == ["N20251123S0004.fits"]  # and nothing more taken after the signal
    assert "SIGTERM received" in (config.log_dir / "recording_worker-term.log").read_text()


def test_bad_configuration_is_reported_by_key_with_exit_status_2(config: Config) -> None:
    env = environ_for(config, FITS_STORAGE_QUEUE_MAX_ATTEMPTS="lots")
    result = subprocess.run(
        [sys.executable, str(RECORDING_WORKER), "--empty"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "queue_max_attempts" in result.stderr and "Traceback" not in result.stderr


def test_systemd_ready_notification(tmp_path: Path, engine: Engine, config: Config) -> None:
    fill(engine, config, [])
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(20)
        worker = start_recording_worker(
            config, "sd", "--empty", NOTIFY_SOCKET=address, WATCHDOG_USEC="2000000"
        )
        messages: list[str] = []
        while "READY=1" not in messages:
            messages.append(sock.recv(256).decode())
        assert worker.wait(20) == 0
        while True:
            try:
                sock.settimeout(0.5)
                messages.append(sock.recv(256).decode())
            except TimeoutError:
                break
    assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1"
    assert "WATCHDOG=1" in messages  # from the main loop, before it found the queue empty


def test_help_names_the_common_options() -> None:
    result = subprocess.run(
        [sys.executable, str(RECORDING_WORKER), "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert result.returncode == 0
    for option in ("--name", "--lockfile", "--demon", "--debug", "--empty", "--oneshot"):
        assert option in result.stdout


def test_quiet_transient_retries_stay_out_of_the_log_at_info(
    engine: Engine, config: Config
) -> None:
    fill(engine, config, ["N20251123S0001.fits", "N20251123S0002.fits"])
    for mode in ("loud", "quiet"):
        worker = start_recording_worker(config, mode, "--empty", TEST_TRANSIENT=mode)
        assert worker.wait(30) == 0
        log = (config.log_dir / f"recording_worker-{mode}.log").read_text()
        retries = [line for line in log.splitlines() if "destination down (will retry)" in line]
        if mode == "loud":
            assert len(retries) == 2 and all("WARNING" in line for line in retries)
            fill(engine, config, [])
            with make_session_factory(engine)() as session:  # make both ready again
                session.execute(text("UPDATE previewqueue SET after = NULL"))
                session.commit()
        else:
            assert retries == []
    with make_session_factory(engine)() as session:
        counts = get_queue("preview", config).counts(session)
    assert (counts.waiting, counts.failed) == (2, 0)  # handed back, attempts not used up


def test_a_database_without_tables_stops_the_worker_with_a_clear_message(tmp_path: Path) -> None:
    from tests.conftest import make_test_config

    config = make_test_config(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    result = run_worker_to_the_end(config, timeout=60)
    assert result.returncode == 1
    assert "no fits_storage tables: run create_tables" in result.stderr


def test_demon_detaches_keeps_its_lock_and_logs_to_its_file(engine: Engine, config: Config) -> None:
    fill(engine, config, ["N20251123S0001.fits"])
    previous = os.umask(0o002)  # as systemd's UMask=0002: the daemon must keep it
    try:
        starter = start_recording_worker(config, "bg", "--demon", "--lockfile")
    finally:
        os.umask(previous)
    # The starter returns once the daemon is detached and holds the lock as itself: the pid
    # is read at once, with no waiting for a later moment.
    assert starter.wait(30) == 0
    lock = config.lockfile_dir / "recording_worker-bg.lock"
    pid = int(lock.read_text())
    assert pid != starter.pid
    status = Path(f"/proc/{pid}/status").read_text()
    assert "Umask:\t0002" in status
    try:
        wait_for(lambda: done(engine) == ["N20251123S0001.fits"], 30, "the daemon's work")
        second = start_recording_worker(config, "bg", "--lockfile", "--empty")
        assert second.wait(20) == 1  # the lock survived the fork
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 20, "the daemon to stop")
    log = (config.log_dir / "recording_worker-bg.log").read_text()
    assert "processing N20251123S0001.fits" in log and "stopped" in log


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_one_shot_run_gives_up_on_an_unreachable_database(tmp_path: Path) -> None:
    """A daemon keeps trying; a run from cron (--empty) must end after one_shot_db_patience,
    with exit 1 and one line per try, not a traceback."""
    from tests.conftest import make_test_config

    config = make_test_config(
        tmp_path, "postgresql://postgres@127.0.0.1:1/nowhere", one_shot_db_patience="2.5"
    )
    result = run_worker_to_the_end(config, timeout=180)
    assert result.returncode == 1, result.stderr
    assert "database unreachable for" in result.stderr and "giving up" in result.stderr
    assert result.stderr.count("retrying in") >= 2  # it kept trying until its patience ran out
    lines = result.stderr.splitlines()
    assert any("CRITICAL" in line and "giving up" in line for line in lines)  # mailed to admins
    assert "Traceback" not in result.stderr
    assert all(
        "[SQL" not in line and "sqlalche.me" not in line for line in result.stderr.splitlines()
    )


@pytest.mark.parametrize(("queue", "setting"), [("preview", "off"), ("export", "on")])
def test_only_redoable_queues_commit_without_waiting_for_the_disk(
    tmp_path: Path, pg_db_url: str, queue: str, setting: str
) -> None:
    """A preview (like ingest and the calibration cache) is redone from the files if a database
    crash loses its completion; an export is not, so its worker keeps synchronous commits.
    Every queue worker plans its prepared statements once (generic plans)."""
    config = make_test_config(tmp_path, pg_db_url)
    engine = make_engine(pg_db_url)
    with make_session_factory(engine)() as session:
        session.execute(text(CREATE))
        extra = {"destination": "archive"} if queue == "export" else {}
        get_queue(queue, config).add(session, "N20251123S0001.fits", **extra)
        session.commit()
    worker = start_recording_worker(
        config, "sync", "--oneshot", TEST_QUEUE=queue, TEST_RECORD_SYNC="1"
    )
    assert worker.wait(30) == 0, worker.stderr.read() if worker.stderr else ""
    with engine.connect() as conn:
        recorded = conn.execute(text("SELECT worker FROM processed")).scalars().all()
        assert recorded == [f"{setting} force_generic_plan"]
        assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "auto"  # others: auto
    engine.dispose()


def test_a_worker_leaves_its_start_up_objects_out_of_the_collector_s_scans(
    engine: Engine, config: Config
) -> None:
    """Modules (astropy, SQLAlchemy…) are frozen once imported: a full collection in the loop
    would otherwise walk all of them (50-70 ms in the ingest worker)."""
    fill(engine, config, ["N20251123S0001.fits"])
    worker = start_recording_worker(
        config, "gc", "--oneshot", TEST_PRELOAD="json.tool", TEST_RECORD_GC="1"
    )
    assert worker.wait(30) == 0, worker.stderr.read() if worker.stderr else ""
    with engine.connect() as conn:
        recorded = conn.execute(text("SELECT worker FROM processed")).scalars().all()
    assert recorded == ["frozen True scanned False"]


def test_a_work_module_that_cannot_be_imported_stops_the_worker_at_start(
    engine: Engine, config: Config
) -> None:
    """A broken installation (astropy missing, say) stops the worker before it claims anything,
    rather than failing every entry it takes."""
    fill(engine, config, ["N20251123S0001.fits"])
    worker = start_recording_worker(
        config, "broken", "--empty", TEST_PRELOAD="fits_storage.no_such_module"
    )
    assert worker.wait(60) != 0
    stderr = worker.stderr.read().decode() if worker.stderr else ""
    assert "No module named 'fits_storage.no_such_module'" in stderr
    with make_session_factory(engine)() as session:
        counts = get_queue("preview", config).counts(session)
    assert (counts.waiting, counts.in_progress, counts.failed) == (1, 0, 0)
    assert done(engine) == []
