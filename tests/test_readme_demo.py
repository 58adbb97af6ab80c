"""The README's run command works as written (on a fresh directory): scripts/ingest_demo.sh
starts fits_storage_run, drops astropy's real files into its DHS directory, sees them ingested
and stops it cleanly. The commands it names run this checkout's code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.test_readme_commands import console_scripts

ROOT = Path(__file__).resolve().parent.parent


def command_shims(bin_dir: Path) -> Path:
    """A directory of the installed commands, each running this checkout's module."""
    bin_dir.mkdir()
    for name, module in console_scripts().items():
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        shim.chmod(0o755)
    return bin_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ingest_demo_ingests_astropys_files(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITS_STORAGE_")}
    env["DEMO_ROOT"] = str(tmp_path / "root")
    env["DEMO_PORT"] = str(free_port())
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = f"{command_shims(tmp_path / 'bin')}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ingest_demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Drop FITS files into: {tmp_path / 'root' / 'dhs'}" in result.stdout
    assert "0 failed ingests" in result.stdout
    present = int(result.stdout.split(" files present")[0].split()[-1])
    assert present >= 30
    assert "WFPC2" in result.stdout
    assert result.stdout.rstrip().endswith("fits_storage_run stopped cleanly")
    run_output = (tmp_path / "root" / "fits_storage_run.out").read_text()
    assert "SIGINT received: stopping every daemon" in run_output
    assert "every daemon stopped" in run_output
