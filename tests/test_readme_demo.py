"""The README's run command works as written (on a fresh storage root)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ingest_demo_ingests_astropys_files(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITS_STORAGE_")}
    env["FITS_STORAGE_ROOT"] = str(tmp_path / "root")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ingest_demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "0 failed ingests" in result.stdout
    present = int(result.stdout.split(" files present")[0].split()[-1])
    assert present >= 30
    assert "WFPC2" in result.stdout
