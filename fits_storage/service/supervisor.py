"""Run several commands as child processes of one: ``fits_storage_run``'s engine.

Each child's output is relayed line by line, prefixed by its name. A child that exits while
the supervisor is not stopping is restarted after an exponential backoff (reset once it has
run for ``STABLE_SECONDS``), and the supervisor says so. Stopping (the first SIGINT or SIGTERM)
sends every child SIGTERM, so each finishes the item in hand, waits up to ``stop_timeout``
seconds, then kills what is left; a second signal kills at once. Children run in their own
session, so a Ctrl-C at the terminal reaches them once, through the supervisor, and they are
asked to stop (SIGTERM) if the supervisor itself dies.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from fits_storage.queues.engine import Backoff

RESTART = Backoff(base_seconds=1.0, cap_seconds=60.0)
STABLE_SECONDS = 60.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildSpec:
    """A child to keep running: its name (the prefix of its output) and its argv."""

    name: str
    argv: Sequence[str]


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float = 0.0
    relays: list[threading.Thread] = field(default_factory=list)


def describe_exit(status: int) -> str:
    """``status 1`` or ``signal SIGKILL``, from a Popen return code."""
    if status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:
            return f"signal {-status}"
    return f"status {status}"


class Supervisor:
    """Keeps ``specs`` running until asked to stop; see the module docstring."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        log: logging.Logger,
        *,
        output: IO[str] | None = None,
        stop_timeout: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self.log = log
        self.output = output or sys.stderr
        self.stop_timeout = stop_timeout
        self.env = env
        self.stopping = threading.Event()
        self.hurry = threading.Event()
        self._write_lock = threading.Lock()
        self._libc = _load_libc()

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.stopping.is_set():
                self.log.warning("%s received again: killing every daemon now", name)
                self.hurry.set()
            else:
                self.log.info("%s received: stopping every daemon", name)
                self.stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

    def run(self) -> int:
        """Start every child, keep them running until stopped, then stop them; 0 when done."""
        for child in self.children:
            self._start(child)
        while not self.stopping.is_set():
            now = time.monotonic()
            for child in self.children:
                if child.process is not None and child.process.poll() is not None:
                    self._schedule_restart(child, now)
                elif child.process is None and now >= child.restart_at:
                    self._start(child)
            self.stopping.wait(0.2)
        self._stop_all()
        return 0

    def _start(self, child: Child) -> None:
        process = subprocess.Popen(
            list(child.spec.argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=self._die_with_parent(),  # only a prctl call
        )
        child.process, child.started = process, time.monotonic()
        relay = threading.Thread(
            target=self._relay, args=(child.spec.name, process.stdout), daemon=True
        )
        relay.start()
        child.relays = [t for t in child.relays if t.is_alive()] + [relay]
        self.log.info("started %s (pid %d)", child.spec.name, process.pid)

    def _schedule_restart(self, child: Child, now: float) -> None:
        assert child.process is not None
        status = child.process.returncode
        if now - child.started >= STABLE_SECONDS:
            child.failures = 0
        child.failures += 1
        delay = RESTART.delay(child.failures)
        self.log.warning(
            "%s (pid %d) exited with %s; restarting it in %.1fs",
            child.spec.name,
            child.process.pid,
            describe_exit(status),
            delay,
        )
        child.process, child.restart_at = None, now + delay

    def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while any(p.poll() is None for p in running):
            if self.hurry.is_set() or time.monotonic() >= deadline:
                break
            self.hurry.wait(0.1)
        for child in self.children:
            process = child.process
            if process is None:
                continue
            if process.poll() is None:
                self.log.warning(
                    "%s (pid %d) did not stop within %gs: killing it",
                    child.spec.name,
                    process.pid,
                    self.stop_timeout,
                )
                process.kill()
                process.wait()
            else:
                self.log.info(
                    "%s (pid %d) stopped (%s)",
                    child.spec.name,
                    process.pid,
                    describe_exit(process.returncode),
                )
            for relay in child.relays:
                relay.join(5)
        self.log.info("every daemon stopped")

    def _relay(self, name: str, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._write_lock:
                    try:
                        self.output.write(f"{name} | {line}\n")
                        self.output.flush()
                    except (OSError, ValueError):
                        pass  # our output is gone: keep draining, or the child would block

    def _die_with_parent(self) -> Any:
        """A ``preexec_fn`` asking Linux to send the child SIGTERM if this process dies."""
        libc, parent = self._libc, os.getpid()
        if libc is None:
            return None

        def preexec() -> None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # died before the request was in place
                os.kill(os.getpid(), signal.SIGTERM)

        return preexec


def _load_libc() -> Any:
    """The C library, loaded before any fork, where it has ``prctl`` (Linux); else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "prctl") else None
