"""Verification reports: astropy's own checks, and ``fitsverify`` when it is installed.

``fitsverify`` keeps counting across the files of one call and returns warnings plus errors
(capped at 255) as its exit code, so it is run on exactly one file per call, with ``-e``
(errors only).
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

FITSVERIFY_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    text: str


def astropy_report(hdulist: fits.HDUList, messages: list[str] | None = None) -> VerifyReport:
    """astropy's verification of every HDU, its checksums, plus warnings given while opening."""
    lines = list(messages or [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
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


def fitsverify_program() -> str | None:
    """Path of ``fitsverify`` on PATH, or None when it is not installed."""
    return shutil.which("fitsverify")


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
        text = (stdout + stderr).replace("\x00", "").strip()
        if self._rename is not None:
            text = text.replace(*self._rename)
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


def fitsverify_report(path: Path, program: str | None = None) -> VerifyReport | None:
    """``fitsverify -e`` of one file; None when the program is not installed."""
    run = start_fitsverify(path, program)
    if run is None:
        return None
    with run:
        return run.result()
