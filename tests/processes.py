"""Starting and stopping real worker processes in tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from fits_storage.config import Config
from fits_storage.orm import File
from tests.conftest import config_environ

ROOT = Path(__file__).resolve().parent.parent
RECORDING_WORKER = ROOT / "tests" / "workers" / "recording_worker.py"


def environ_for(config: Config, **extra: str) -> dict[str, str]:
    env = config_environ(config)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(
    config: Config, command: str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``fits_storage.cli.<command>`` run to its end with ``config``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", f"fits_storage.cli.{command}", *args],
        env=environ_for(config),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_ingest_blocked_on(
    engine: Engine, config: Config, name: str, *args: str
) -> subprocess.CompletedProcess:
    """``service_ingest_queue *args`` run to its end while another transaction holds an
    uncommitted ``file`` row called ``name`` (rolled back afterwards): the write of that
    file waits on it."""
    blocker = engine.connect()
    blocker.execute(File.__table__.insert().values(name=name))
    try:
        return run_cli(config, "service_ingest_queue", *args, timeout=120)
    finally:
        blocker.rollback()
        blocker.close()


def start_recording_worker(
    config: Config, name: str, *args: str, stderr_to: Path | None = None, **extra_env: str
) -> subprocess.Popen:
    """A recording worker; its stderr piped, or appended to ``stderr_to`` for a test that never
    reads it (a pipe nobody reads blocks the worker once full)."""
    stderr = subprocess.PIPE if stderr_to is None else stderr_to.open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, str(RECORDING_WORKER), "--name", name, *args],
            env=environ_for(config, **extra_env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    finally:
        if stderr_to is not None:
            stderr.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(process: subprocess.Popen, timeout: float = 15) -> int:
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@contextmanager
def stopped_after(*processes: subprocess.Popen) -> Iterator[None]:
    """Stop ``processes`` when the block ends. That each stopped cleanly (exit 0 within the grace
    after SIGTERM) is asserted only when the block succeeded, so a failure inside it is what the
    test reports, not the stop that followed."""
    try:
        yield
    except BaseException:
        for process in processes:
            stop(process)
        raise
    codes = [stop(process) for process in processes]
    assert codes == [0] * len(processes), f"exit statuses {codes} (-9: killed, SIGTERM not obeyed)"
