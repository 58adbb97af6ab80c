"""The daemons fits_storage_run starts follow the configuration: copy_from_dhs and ingest on a
summit, export with export_destinations, ingest_uploaded_file on the archive, previews and the
calibration cache when asked for (when this version has their command), and the web server."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pytest

from fits_storage.cli.fits_storage_run import child_specs, parse_args
from fits_storage.service.daemons import DAEMONS, installed
from tests.conftest import make_test_config

HAS = {row.command: installed(row) for row in DAEMONS}


def started(tmp_path: Path, **keys: str) -> list[str]:
    config = make_test_config(tmp_path, f"sqlite:///{tmp_path / 'db'}", **keys)
    args: argparse.Namespace = parse_args(["--port=8123"])
    return [spec.name for spec in child_specs(config, args, logging.getLogger("test"))]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({}, ["copy_from_dhs", "service_ingest_queue"]),
        (
            {"export_destinations": "['https://archive.example.org']"},
            ["copy_from_dhs", "service_ingest_queue", "service_export_queue"],
        ),
        ({"is_archive": "true"}, ["service_ingest_queue", "ingest_uploaded_file"]),
        (
            {"is_archive": "true", "using_previews": "true", "using_calcache": "true"},
            ["service_ingest_queue", "ingest_uploaded_file"]
            + [c for c in ("service_preview_queue", "service_calcache_queue") if HAS[c]],
        ),
    ],
)
def test_the_configuration_decides(
    tmp_path: Path, keys: dict[str, str], expected: list[str]
) -> None:
    assert started(tmp_path, **keys) == [*expected, "fits_storage_web"]


def test_children_run_this_python_with_the_instance_name(tmp_path: Path) -> None:
    config = make_test_config(tmp_path, f"sqlite:///{tmp_path / 'db'}")
    args = parse_args(["--host=0.0.0.0", "--port=8123", "--interval=0.5", "--debug"])
    specs = {spec.name: list(spec.argv) for spec in child_specs(config, args, logging.getLogger())}
    assert specs["copy_from_dhs"] == [
        sys.executable,
        "-m",
        "fits_storage.cli.copy_from_dhs",
        "--name=run",
        "--debug",
        "--interval=0.5",
    ]
    assert specs["fits_storage_web"][3:] == ["--host=0.0.0.0", "--port=8123", "--debug"]
