"""fits_storage_run, as a real process: on a fresh directory it ingests real FITS files dropped
into its DHS directory, restarts a daemon killed under it, and stops every child cleanly on
SIGINT or SIGTERM, leaving no process behind; a second run on the same directory refuses to
start. The supervisor kills a child that ignores SIGTERM."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from fits_storage.db.engine import make_engine
from fits_storage.orm.file import DiskFile
from fits_storage.service.supervisor import ChildSpec, Supervisor
from tests import fitsdata, staffweb
from tests.processes import wait_for

ROOT = Path(__file__).resolve().parent.parent
ASTROPY_FILES = ("o4sp040b0_raw.fits", "tb.fits", "comp.fits", "test0.fits")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Run:
    """A ``fits_storage_run`` process with its output in a file the test reads as it grows."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.root = tmp_path / "site"
        self.port = free_port()
        self.output = tmp_path / "run.out"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("FITS_STORAGE_")}
        self.environ = environ
        environ.update(
            PYTHONPATH=str(ROOT),
            FITS_STORAGE_CONFIG="",
            FITS_STORAGE_MIN_DHS_AGE_SECONDS="1",
            FITS_STORAGE_QUEUE_POLL_SECONDS="0.2",
            **env,
        )
        command = [sys.executable, "-m", "fits_storage.cli.fits_storage_run"]
        command += [f"--root={self.root}", f"--port={self.port}", "--interval=0.5", *args]
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                command, env=self.environ, stdout=out, stderr=subprocess.STDOUT
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def pids(self, name: str) -> list[int]:
        return [int(pid) for pid in re.findall(rf"started {name} \(pid (\d+)\)", self.text())]

    def web_answers(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5).ok
        except requests.ConnectionError:
            return False

    def wait_until_up(self) -> None:
        """Fails with the run's output as it is at the timeout (not as it was at the start)."""
        try:
            wait_for(self.web_answers, 60, "the web server to answer", step=0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.text()}") from None

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(60)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def present(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(DiskFile.filename).where(DiskFile.present)))
    finally:
        engine.dispose()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def drop_real_files(dhs: Path) -> set[str]:
    """The real GMOS-S frame, real astropy files and a generated one, under DHS names."""
    names = {fitsdata.copy_gmos_file(dhs, "S20251123S0500.fits").name}
    for n, name in enumerate(ASTROPY_FILES, start=501):
        names.add(fitsdata.copy_astropy_file(name, dhs, f"S20251123S{n:04d}.fits").name)
    names.add(fitsdata.make_observatory_file(dhs, "N20251123S0001.fits").name)
    return names


def test_fresh_directory_ingests_dropped_files_and_stops_on_sigint(tmp_path: Path) -> None:
    run = Run(tmp_path)
    try:
        run.wait_until_up()
        text = run.text()
        dhs = run.root / "dhs"
        assert f"Drop FITS files into: {dhs}" in text
        assert f"Status page: http://127.0.0.1:{run.port}/queuestatus" in text
        printed = re.search(r"Staff login: admin / (\S+) ", text)
        assert printed, text
        client = staffweb.login(f"http://127.0.0.1:{run.port}", "admin", printed.group(1))
        assert client.get(f"http://127.0.0.1:{run.port}/queuestatus/json").status_code == 200
        assert printed.group(1) not in "".join(
            path.read_text(errors="replace") for path in run.root.rglob("*.log")
        )
        database = run.root / "dataflow" / ".fits_storage" / "fits_storage.db"
        assert database.is_file()

        second = subprocess.run(
            [sys.executable, "-m", "fits_storage.cli.fits_storage_run", f"--root={run.root}"],
            env=run.environ,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert second.stderr.startswith("fits_storage_run: not starting: ")
        assert "is locked by another process" in second.stderr

        expected = drop_real_files(dhs)
        url = f"sqlite:///{database}"
        wait_for(lambda: present(url) == expected, 90, f"files ingested\n{run.text()}", step=0.5)
        children = [
            pid for name in ("copy_from_dhs", "service_ingest_queue") for pid in run.pids(name)
        ]
        children += run.pids("fits_storage_web")
        assert len(children) == 3
    finally:
        status = run.stop(signal.SIGINT)
    text = run.text()
    assert status == 0, text
    assert "SIGINT received: stopping every daemon" in text
    for name in ("copy_from_dhs", "service_ingest_queue", "fits_storage_web"):
        assert re.search(rf"{name} \(pid \d+\) stopped \(status 0\)", text), text
    assert "every daemon stopped" in text
    assert "Traceback" not in text
    assert not [pid for pid in children if alive(pid)], "a child outlived fits_storage_run"
    assert sorted(p.name for p in (run.root / "dataflow").glob("*.fits")) == sorted(expected)


def test_a_killed_daemon_is_restarted_and_sigterm_stops_all(tmp_path: Path, db_url: str) -> None:
    run = Run(tmp_path, FITS_STORAGE_DB_URL=db_url)
    try:
        run.wait_until_up()
        [first] = run.pids("service_ingest_queue")
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: len(run.pids("service_ingest_queue")) == 2, 60, "a restart")
        assert re.search(
            rf"service_ingest_queue \(pid {first}\) exited with signal SIGKILL; "
            r"restarting it in \d+\.\ds",
            run.text(),
        )
        name = fitsdata.copy_gmos_file(run.root / "dhs", "S20251124S0001.fits").name
        wait_for(lambda: name in present(db_url), 90, f"the file ingested\n{run.text()}", step=0.5)
        children = [pid for pid in re.findall(r"\(pid (\d+)\)", run.text())]
    finally:
        status = run.stop(signal.SIGTERM)
    assert status == 0, run.text()
    assert "SIGTERM received: stopping every daemon" in run.text()
    assert not [pid for pid in map(int, children) if alive(pid)]


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stubborn = (
        "import pathlib, signal, time, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "print('ignoring SIGTERM', flush=True)\n"
        "time.sleep(600)\n"
    )
    output = tmp_path / "output.txt"
    log = logging.getLogger("test_supervisor")
    with open(output, "w") as out:
        supervisor = Supervisor(
            [ChildSpec("stubborn", [sys.executable, "-c", stubborn])],
            log,
            output=out,
            stop_timeout=1,
        )
        runner = threading.Thread(target=supervisor.run)
        runner.start()
        wait_for(ready.exists, 30, "the child to start")
        [child] = supervisor.children
        assert child.process is not None
        pid = child.process.pid
        supervisor.stopping.set()
        runner.join(60)
    assert not runner.is_alive()
    assert child.process.returncode == -signal.SIGKILL
    assert not alive(pid)
    assert "stubborn | ignoring SIGTERM" in output.read_text()


def test_children_stop_when_fits_storage_run_is_killed(tmp_path: Path) -> None:
    run = Run(tmp_path)
    try:
        run.wait_until_up()
        children = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", run.text())]
        assert len(children) == 3
    finally:
        run.process.kill()
        run.process.wait(60)
    wait_for(lambda: not any(alive(pid) for pid in children), 60, "the children to stop")


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = Run(tmp_path, f"--port={port}")
        status = run.process.wait(60)
    assert status == 1
    [line] = run.text().splitlines()
    assert line.startswith(
        f"fits_storage_run: not starting: the web server cannot listen on 127.0.0.1:{port}"
    )
