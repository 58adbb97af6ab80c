"""The calibration cache end to end on SQLite and PostgreSQL with the real workers: the
generated GMOS night is ingested by ``service_ingest_queue`` (which queues every frame for the
cache), ``service_calcache_queue`` stores each science frame's expected calibrations, a bias
ingested later re-queues exactly the frames it may change and changes their answer, and the
web application serves the cached answers. ``add_to_calcache_queue`` selects as documented.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.cli import add_to_calcache_queue
from fits_storage.config import Config, set_config
from fits_storage.ingest import ingest_file
from fits_storage.orm import CalCache, CalCacheQueue, DiskFile, Header
from fits_storage.queues import get_queue
from tests.calnight import EXPECTED, expected, header_id
from tests.conftest import make_test_config
from tests.fitsdata import GMOS_NIGHT, LATE_BIAS, night_name, write_night_frame
from tests.processes import run_cli
from tests.test_web import ServerThread

# The descriptor columns the GMOS rules read, as ingest computes them.
DESCRIPTORS = (
    "types",
    "reduction",
    "focal_plane_mask",
    "mode",
    "spectroscopy",
    "detector_roi_setting",
    "detector_readmode",
    "detector_gain_setting",
    "amp_read_area",
    "detector_binning",
    "filter_name",
    "disperser",
)


@pytest.fixture
def calcache_config(tmp_path: Path, db_url: str) -> Config:
    return make_test_config(tmp_path, db_url, using_calcache="true", is_archive="true")


def run(config: Config, command: str, *args: str) -> subprocess.CompletedProcess:
    return run_cli(config, command, *args, timeout=300)


def ingest(config: Config, factory: sessionmaker[Session], frames: dict) -> None:
    for name, fields in frames.items():
        write_night_frame(config.storage_root, name, fields)
    with factory() as session:
        get_queue("ingest", config).add_many(session, ({"filename": n} for n in frames))
        session.commit()
    done = run(config, "service_ingest_queue", "--empty")
    assert done.returncode == 0, done.stderr
    check_descriptors(factory, frames)


def check_descriptors(factory: sessionmaker[Session], frames: dict) -> None:
    """Ingest computed the fields the night's table (and so the expectations) assume."""
    with factory() as session:
        for name, fields in frames.items():
            row = session.get(Header, header_id(session, name))
            got = {column: getattr(row, column) for column in DESCRIPTORS}
            assert got == {column: fields[column] for column in DESCRIPTORS}, name
            assert row.central_wavelength == pytest.approx(fields["central_wavelength"])


def waiting(factory: sessionmaker[Session]) -> set[str]:
    with factory() as session:
        return set(
            session.scalars(
                select(CalCacheQueue.filename).where(CalCacheQueue.status == "waiting")
            )
        )


def cached_answer(factory: sessionmaker[Session], name: str) -> dict[str, list[str]]:
    with factory() as session:
        rows = session.execute(
            select(CalCache.caltype, CalCache.rank, DiskFile.filename)
            .join(Header, Header.id == CalCache.cal_hid)
            .join(DiskFile, DiskFile.id == Header.diskfile_id)
            .where(CalCache.obs_hid == header_id(session, name))
            .order_by(CalCache.caltype, CalCache.rank)
        )
        answer: dict[str, list[str]] = {}
        for caltype, _rank, filename in rows:
            answer.setdefault(caltype, []).append(filename)
        return answer


def test_the_night_through_the_real_workers(
    calcache_config: Config, session_factory: sessionmaker[Session]
) -> None:
    config = calcache_config
    ingest(config, session_factory, GMOS_NIGHT)
    assert waiting(session_factory) == set(GMOS_NIGHT)  # ingest queued every frame

    done = run(config, "service_calcache_queue", "--empty")
    assert done.returncode == 0, done.stderr
    assert "calibration(s) stored" in done.stderr
    assert waiting(session_factory) == set()
    for number in EXPECTED:
        want = {k: v for k, v in expected(number).items() if v}
        assert cached_answer(session_factory, night_name(number)) == want, number

    # A bias taken later, closer to 102: its first pass re-queues 102 and its flat 22
    # (1x1 full frame, needing biases) and nothing else.
    late_name = next(iter(LATE_BIAS))
    ingest(config, session_factory, LATE_BIAS)
    assert waiting(session_factory) == {late_name}
    one = run(config, "service_calcache_queue", "--oneshot")
    assert one.returncode == 0, one.stderr
    assert waiting(session_factory) == {night_name(102), night_name(22)}
    assert "2 frame(s) whose calibrations it may change re-queued" in one.stderr

    before = cached_answer(session_factory, night_name(101))
    done = run(config, "service_calcache_queue", "--empty")
    assert done.returncode == 0, done.stderr
    assert cached_answer(session_factory, night_name(102))["bias"] == [late_name, night_name(13)]
    assert cached_answer(session_factory, night_name(22))["bias"] == [late_name, night_name(13)]
    assert cached_answer(session_factory, night_name(101)) == before
    assert "re-queued" not in done.stderr  # computing 102 and 22 again announces nothing

    with ServerThread(config) as server:
        reply = requests.get(f"{server.url}/calibrations/{night_name(102)}", timeout=30)
        xml = requests.get(f"{server.url}/calmgr/bias/{night_name(102)}", timeout=30)
    assert reply.headers["x-calibrations-source"] == "cache"
    assert [r["filename"] for r in reply.json() if r["caltype"] == "bias"] == [
        late_name,
        night_name(13),
    ]
    assert xml.headers["x-calibrations-source"] == "cache"
    assert f"<filename>{late_name}</filename>" in xml.text


def test_add_to_calcache_queue_selects(
    calcache_config: Config,
    session_factory: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In process (the command's ``main``): what it selects and how it reports."""
    config = calcache_config
    science = [night_name(n) for n in EXPECTED]
    with session_factory() as session:
        for name in science:
            write_night_frame(config.storage_root, name, GMOS_NIGHT[name])
            ingest_file(session, config, name)
        session.execute(delete(CalCacheQueue))  # what ingest queued
        session.commit()
    set_config(config)
    try:

        def command(*args: str) -> tuple[int, str, str]:
            status = add_to_calcache_queue.main(list(args))
            out, err = capsys.readouterr()
            return status, out, err

        status, out, _ = command("--file-re=S20251123S010[12]")
        assert status == 0 and "2 file(s) selected: 2 queued" in out
        assert waiting(session_factory) == {night_name(101), night_name(102)}
        status, out, err = command(f"--filename={night_name(103)}", "--filename=nope.fits")
        assert "1 file(s) selected: 1 queued" in out
        assert "nope.fits: no present file of that name" in err
        status, out, _ = command("--lastdays=1")
        assert "3 file(s) selected: 0 queued, 3 already waiting" in out
        status, _, err = command("--lastdays=-1")
        assert status == 2 and "--lastdays" in err
        status, _, err = command("--file-re=(")
        assert status == 2 and "bad --file-re" in err
    finally:
        set_config(None)
