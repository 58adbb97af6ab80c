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


def fitsverify_report(path: Path, program: str | None = None) -> VerifyReport | None:
    """``fitsverify -e`` of one file; None when the program is not installed."""
    program = program or fitsverify_program()
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "-e", str(path)],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=FITSVERIFY_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return VerifyReport(ok=False, text=f"fitsverify could not run: {exc}")
    text = (done.stdout + done.stderr).replace("\x00", "").strip()
    return VerifyReport(ok=done.returncode == 0, text=text)
