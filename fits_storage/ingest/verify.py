"""Verification reports: astropy's own checks, and ``fitsverify`` when it is installed.

``fitsverify`` keeps counting across the files of one call and returns warnings plus errors
(capped at 255) as its exit code, so its exit code says something about one file only when it
is run on exactly one file, with ``-e`` (errors only): :class:`FitsverifyRun`.

Starting the program costs about 7 ms of CPU (it loads some 35 shared libraries), more than
verifying a small file. :class:`FitsverifyServer` therefore keeps one ``fitsverify -e
@/dev/stdin`` running per process and hands it one file name at a time: the program reads its
list lazily and prints a complete report per file, with that file's own counts. Each name is
followed by a tiny valid sentinel file, whose report marks where the file's output (stdout and
stderr) ends; the verdict is read from the file's own "Verification found W warning(s) and E
error(s)" line. Anything unexpected (the program dies, its output cannot be split) falls back
to a one-file run, so the report is never lost; a hang is killed after the same timeout.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from fits_storage.ingest.cardcheck import skip_plain_cards

FITSVERIFY_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    text: str


def astropy_report(hdulist: fits.HDUList, messages: list[str] | None = None) -> VerifyReport:
    """astropy's verification of every HDU, its checksums, plus warnings given while opening.

    Cards astropy's check would pass are recognised first (:mod:`~fits_storage.ingest.cardcheck`):
    the same report at half the cost."""
    lines = list(messages or [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)  # another object's finaliser, not the file
        try:
            for hdu in hdulist:
                skip_plain_cards(hdu.header)
            hdulist.verify("warn")
        except Exception as exc:  # noqa: BLE001 - report, never crash, on odd headers
            lines.append(f"verification raised {type(exc).__name__}: {exc}")
        for index, hdu in enumerate(hdulist):
            lines.extend(_checksum_lines(index, hdu))
    lines.extend(str(w.message).strip() for w in caught)
    lines = [line for line in lines if line]
    return VerifyReport(ok=not lines, text="\n".join(lines))


def _checksum_lines(index: int, hdu: fits.hdu.base._BaseHDU) -> list[str]:
    """Checksums are checked only where the HDU carries them (reading its data)."""
    lines = []
    for keyword, check in (("CHECKSUM", "verify_checksum"), ("DATASUM", "verify_datasum")):
        if keyword not in hdu.header:
            continue
        try:
            outcome = getattr(hdu, check)()
        except Exception as exc:  # noqa: BLE001
            lines.append(f"HDU {index}: cannot check {keyword}: {type(exc).__name__}: {exc}")
            continue
        if outcome == 0:
            lines.append(f"HDU {index}: {keyword} does not match the contents")
    return lines


@functools.lru_cache(maxsize=16)
def _which(name: str, search_path: str | None) -> str | None:
    return shutil.which(name, path=search_path)


def which(name: str) -> str | None:
    """``shutil.which``, looked up once per value of PATH: a search costs a stat per folder,
    about 0.1 ms, on every file ingested."""
    return _which(name, os.environ.get("PATH"))


def fitsverify_program() -> str | None:
    """Path of ``fitsverify`` on PATH, or None when it is not installed."""
    return which("fitsverify")


class FitsverifyRun:
    """One ``fitsverify -e`` started now and collected later.

    Started as soon as the local file exists, so that the program's start-up and run overlap
    the md5 and astropy work of the worker; :meth:`result` waits for it. Use it as a context
    manager: leaving the block early (a bad file, unchanged bytes) kills the program, so no
    child outlives the file it reads.
    """

    def __init__(self, path: Path, program: str, shown_as: Path | None = None) -> None:
        # a staged copy is named in the report as the file it stands for
        self._rename = (str(path), str(shown_as)) if shown_as is not None else None
        self._process: subprocess.Popen[str] | None = None
        self._report: VerifyReport | None = None
        try:
            self._process = subprocess.Popen(
                [program, "-e", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
            )
        except OSError as exc:
            self._report = VerifyReport(ok=False, text=f"fitsverify could not run: {exc}")

    def result(self, timeout: float = FITSVERIFY_TIMEOUT_SECONDS) -> VerifyReport:
        """The report, waiting for the program (killed after ``timeout`` seconds)."""
        if self._report is not None:
            return self._report
        process = self._process
        assert process is not None
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.close()
            self._report = VerifyReport(ok=False, text=f"fitsverify could not run: {exc}")
            return self._report
        text = _cleaned(stdout + stderr, self._rename)
        self._report = VerifyReport(ok=process.returncode == 0, text=text)
        return self._report

    def close(self) -> None:
        """Kill the program if it still runs, and reap it (its output is then not wanted)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()

    def __enter__(self) -> FitsverifyRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_fitsverify(
    path: Path, program: str | None = None, shown_as: Path | None = None
) -> FitsverifyRun | None:
    """A running ``fitsverify -e`` of one file; None when the program is not installed.

    ``shown_as``: the name the report gives the file instead of ``path`` (a staged copy).
    """
    program = program or fitsverify_program()
    if program is None:
        return None
    return FitsverifyRun(path, program, shown_as)


def _cleaned(text: str, rename: tuple[str, str] | None) -> str:
    text = text.replace("\x00", "").strip()
    return text.replace(*rename) if rename is not None else text


def fitsverify_report(path: Path, program: str | None = None) -> VerifyReport | None:
    """``fitsverify -e`` of one file; None when the program is not installed."""
    run = start_fitsverify(path, program)
    if run is None:
        return None
    with run:
        return run.result()


# A name the server may be given in its list: one line, no cfitsio filter syntax ("[...]"), no
# surrounding blanks. Anything else is verified by a one-file run, as the program would take it.
_LISTABLE = re.compile(r"[A-Za-z0-9_./+,:=@%~-]+")
_FOUND = re.compile(
    rb"\*\*\*\* Verification found (\d+) warning\(s\) and (\d+) error\(s\)\. \*\*\*\*\n"
)
_BETWEEN = b" \n \n \n"  # what the program prints between the reports of two files


class ServerFailure(Exception):
    """The server's output for a file could not be had; a one-file run stands in."""


class FitsverifyServer:
    """One long-running ``fitsverify -e @/dev/stdin``, verifying one file at a time.

    Not shared between processes (a forked child makes its own); calls from several threads
    are serialised (one file in flight). :meth:`start` returns a run with the interface of
    :class:`FitsverifyRun`.
    """

    def __init__(self, program: str, stdbuf: str) -> None:
        self.program = program
        self.stdbuf = stdbuf
        self.pid = os.getpid()
        self._folder = Path(tempfile.mkdtemp(prefix="fitsverify-server-"))
        self.sentinel = self._folder / "sentinel.fits"
        self._write_sentinel()
        self._process: subprocess.Popen[bytes] | None = None
        self._out = bytearray()
        self._err = bytearray()
        self._banner: bytes | None = None
        self._lock = threading.Lock()
        self.restarts = -1  # how many times the program was (re)started after the first

    def _write_sentinel(self) -> None:
        """A primary header and no data: the cheapest valid file. Written again if a cleaner
        of the temporary folder removed it while the worker ran."""
        self._folder.mkdir(parents=True, exist_ok=True)
        fits.PrimaryHDU().writeto(self.sentinel, overwrite=True)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._kill()
        self._process = subprocess.Popen(
            [self.stdbuf, "-oL", self.program, "-e", "@/dev/stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        for pipe in (self._process.stdout, self._process.stderr):
            assert pipe is not None
            fcntl.fcntl(pipe, fcntl.F_SETFL, fcntl.fcntl(pipe, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._out.clear()
        self._err.clear()
        self._banner = None
        self.restarts += 1
        return self._process

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        process.wait()

    def start(self, path: Path, shown_as: Path | None = None) -> FitsverifyRun | ServerRun:
        """A verification of ``path`` under way: by the server when its name can be listed and
        the server takes it, else by a one-file run."""
        if not _LISTABLE.fullmatch(str(path)):
            return FitsverifyRun(path, self.program, shown_as)
        self._lock.acquire()
        try:
            if not self.sentinel.is_file():
                self._write_sentinel()
            process = self._spawn()
            assert process.stdin is not None
            process.stdin.write(f"{path}\n{self.sentinel}\n".encode())
        except OSError:
            self._kill()  # it died between files: the next start spawns a new one
            self._lock.release()
            return FitsverifyRun(path, self.program, shown_as)
        return ServerRun(self, path, shown_as)

    def _read_report(self, deadline: float) -> tuple[bytes, bytes]:
        """The next file's stdout and stderr, up to the sentinel's report (ServerFailure: the
        program died or printed something that cannot be split; TimeoutError: a hang)."""
        process = self._process
        if process is None:
            raise ServerFailure("not running")
        marker = b"File: " + str(self.sentinel).encode() + b"\n"
        assert process.stdout is not None and process.stderr is not None
        # Usually the program finished while the worker read the file: the report is in the
        # pipe already, and one read takes it without setting up a wait.
        pending = _drained(process.stdout.fileno(), self._out)
        with contextlib.ExitStack() as stack:
            selector: selectors.BaseSelector | None = None
            while True:
                at = self._out.find(marker)
                if at >= 0:
                    end = _FOUND.search(self._out, at)
                    if end is not None:
                        break
                    if b"Abort Verification" in self._out[at:]:
                        raise ServerFailure("the sentinel could not be verified")
                if not pending:
                    raise ServerFailure("the program ended")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                if selector is None:
                    selector = stack.enter_context(selectors.DefaultSelector())
                    selector.register(process.stdout, selectors.EVENT_READ, self._out)
                    selector.register(process.stderr, selectors.EVENT_READ, self._err)
                for key, _ in selector.select(min(left, 1.0)):
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        raise ServerFailure("the program ended")
                    key.data.extend(chunk)
        first = self._out.find(b"File: ")
        if self._banner is None:  # printed once, before the first file; a one-file run's too
            self._banner = bytes(self._out[:first])
        if not self._banner.strip() or self._out[at - len(_BETWEEN) : at] != _BETWEEN:
            raise ServerFailure("output cannot be split")
        stdout = self._banner + bytes(self._out[first : at - len(_BETWEEN)])
        del self._out[: end.end()]
        # the file's stderr was written before the sentinel was begun: it is in the pipe
        _drained(process.stderr.fileno(), self._err)
        stderr = bytes(self._err)
        self._err.clear()
        return stdout, stderr

    def close(self) -> None:
        """Stop the program and remove the sentinel."""
        if os.getpid() != self.pid:
            return
        self._kill()
        shutil.rmtree(self._folder, ignore_errors=True)


def _drained(fd: int, into: bytearray) -> bool:
    """Whatever a non-blocking pipe holds now, appended to ``into``; False once it has ended."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        into.extend(chunk)


def _decoded(data: bytes) -> str:
    """As ``subprocess`` decodes a one-file run's output (``text=True``, universal newlines)."""
    return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


class ServerRun:
    """One file handed to a :class:`FitsverifyServer`; its report is read by :meth:`result`."""

    def __init__(self, server: FitsverifyServer, path: Path, shown_as: Path | None) -> None:
        self._server = server
        self._path = path
        self._shown_as = shown_as
        self._rename = (str(path), str(shown_as)) if shown_as is not None else None
        self._report: VerifyReport | None = None
        self._held = True

    def result(self, timeout: float = FITSVERIFY_TIMEOUT_SECONDS) -> VerifyReport:
        """The report, waiting for the server (killed after ``timeout`` seconds)."""
        if self._report is not None:
            return self._report
        server = self._server
        try:
            stdout, stderr = server._read_report(time.monotonic() + timeout)
        except TimeoutError:
            server._kill()
            self._report = VerifyReport(
                ok=False, text=f"fitsverify could not run: timed out after {timeout} seconds"
            )
        except (ServerFailure, OSError):
            server._kill()
            self._release()
            with FitsverifyRun(self._path, server.program, self._shown_as) as alone:
                self._report = alone.result(timeout)
        else:
            found = list(_FOUND.finditer(stdout))
            ok = bool(found) and found[-1][1] == found[-1][2] == b"0"
            text = _cleaned(_decoded(stdout + stderr), self._rename)
            self._report = VerifyReport(ok=ok, text=text)
        self._release()
        return self._report

    def _release(self) -> None:
        if self._held:
            self._held = False
            self._server._lock.release()

    def close(self) -> None:
        """A run left early (a bad file): the server is stopped, so that no output of this
        file can be taken for the next one's; the next file starts another."""
        if self._held:
            try:
                self._server._kill()
            finally:
                self._release()

    def __enter__(self) -> ServerRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_servers: dict[tuple[int, str], FitsverifyServer] = {}
_servers_lock = threading.Lock()


def fitsverify_server(program: str | None = None) -> FitsverifyServer | None:
    """This process's server for ``program`` (default: ``fitsverify`` on PATH); None when the
    program, or ``stdbuf`` (to have its output line by line), is not installed."""
    program = program or fitsverify_program()
    stdbuf = which("stdbuf")
    if program is None or stdbuf is None:
        return None
    key = (os.getpid(), program)
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            server = _servers[key] = FitsverifyServer(program, stdbuf)
    return server


@atexit.register
def _close_servers() -> None:
    for (pid, _), server in list(_servers.items()):
        if pid == os.getpid():
            server.close()


def start_verification(
    path: Path, program: str | None = None, shown_as: Path | None = None
) -> FitsverifyRun | ServerRun | None:
    """``fitsverify -e`` of one file under way, by this process's server when there is one;
    None when the program is not installed."""
    server = fitsverify_server(program)
    if server is None:
        return start_fitsverify(path, program, shown_as)
    return server.start(path, shown_as)
