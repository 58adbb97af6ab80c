"""reingest_headers on SQLite and PostgreSQL: ingest writes the descriptor columns; after a
descriptor change the rows are recomputed from the stored full-text headers (the files need
not even be there), from the file only where that text is missing; --dryrun writes nothing;
--instrument and --file-re select."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.descriptors.reingest import (
    Selection,
    UnusableText,
    headers_from_fulltext,
    reingest_headers,
)
from fits_storage.ingest import ingest_file
from fits_storage.orm import CalCacheQueue, DiskFile, FullTextHeader, Header
from tests.fitsdata import (
    GMOS_ORIGNAME,
    copy_gmos_file,
    gmos_frame,
    gnirs_frame,
    write_frame,
)
from tests.processes import environ_for

BIAS = "N20251123S0001.fits"
FLAT = "S20251123S0002.fits.bz2"
GNIRS = "N20251123S0003.fits"
NOD = "N20251123S0004.fits"
STALE = {"types": None, "reduction": None, "detector_roi_setting": "stale", "mode": None}


def header_of(session: Session, filename: str) -> Header:
    return session.scalars(
        select(Header).join(DiskFile).where(DiskFile.filename == filename, DiskFile.present)
    ).one()


@pytest.fixture
def ingested(session: Session, config: Config) -> dict[str, dict]:
    """Four files ingested for real; the values ingest computed, by file name."""
    root = config.storage_root
    write_frame(root, gmos_frame(BIAS, obstype="BIAS", obsclass="dayCal", exptime=0.0), BIAS)
    flat = gmos_frame(
        "S20251123S0002.fits",
        obstype="FLAT",
        obsclass="partnerCal",
        grating="R400+_G5325",
        central_wavelength_nm=700.0,
        roi="Central Spectrum",
        binning=(1, 2),
    )
    write_frame(root, flat, FLAT)
    write_frame(root, gnirs_frame(GNIRS), GNIRS)
    copy_gmos_file(root)
    expected = {}
    for name in (BIAS, FLAT, GNIRS, GMOS_ORIGNAME):
        ingest_file(session, config, name)
        session.commit()
        row = header_of(session, name)
        expected[name] = {c.name: getattr(row, c.name) for c in Header.__table__.columns}
    session.expire_all()
    return expected


def make_stale(session: Session) -> None:
    """What the rows look like after a descriptor change: some fields computed otherwise."""
    session.execute(update(Header).values(**STALE))
    session.commit()


def run_all(session: Session, config: Config, selection: Selection = Selection(), **kw):
    totals = list(reingest_headers(session, config, selection, **kw))
    session.expire_all()
    return totals[-1]


def test_ingest_writes_the_descriptor_columns(
    session: Session, config: Config, ingested: dict
) -> None:
    bias, flat = ingested[BIAS], ingested[FLAT]
    assert bias["types"] == "BIAS CAL GMOS GMOS_N RAW UNPREPARED"
    assert (bias["reduction"], bias["detector_binning"], bias["site"]) == (
        "RAW",
        "2x2",
        "Gemini-North",
    )
    assert flat["detector_roi_setting"] == "Central Spectrum" and flat["mode"] == "longslit"
    assert flat["central_wavelength"] == pytest.approx(0.7)
    assert ingested[GNIRS]["detector_readmode"] == "Faint Objects"
    assert ingested[GMOS_ORIGNAME]["reduction"] == "PREPARED"


def test_recomputed_from_the_stored_text_without_the_files(
    session: Session, config: Config, ingested: dict
) -> None:
    for name in ingested:
        (config.storage_root / name).unlink()  # the text must suffice
    make_stale(session)
    progress = run_all(session, config, batch=3)  # two batches
    assert (progress.seen, progress.changed, progress.from_files, progress.failed) == (4, 4, 0, 0)
    assert progress.columns["types"] == 4 and progress.columns["detector_roi_setting"] == 4
    for name, expected in ingested.items():
        row = header_of(session, name)
        for column, value in expected.items():
            assert getattr(row, column) == value, (name, column)
    again = run_all(session, config)
    assert (again.seen, again.changed) == (4, 0)


def test_changed_rows_are_queued_for_the_calibration_cache(
    session: Session, config: Config, ingested: dict
) -> None:
    """A row rewritten in place keeps its id and ingest time, so the cache cannot see the
    change by itself: the frames whose fields changed are queued for it, and only those."""
    session.execute(delete(CalCacheQueue))
    session.execute(update(Header).where(Header.id == header_of(session, BIAS).id).values(**STALE))
    session.commit()
    progress = run_all(session, replace(config, using_calcache=True))
    assert (progress.seen, progress.changed) == (4, 1)
    assert list(session.scalars(select(CalCacheQueue.filename))) == [BIAS]
    session.rollback()


def test_falls_back_to_the_file_without_stored_text(
    session: Session, config: Config, ingested: dict
) -> None:
    bias = header_of(session, BIAS)
    session.execute(delete(FullTextHeader).where(FullTextHeader.diskfile_id == bias.diskfile_id))
    gnirs = header_of(session, GNIRS)
    session.execute(
        update(FullTextHeader)
        .where(FullTextHeader.diskfile_id == gnirs.diskfile_id)
        .values(fulltext="not a header")
    )
    session.commit()
    make_stale(session)
    progress = run_all(session, config)
    assert (progress.changed, progress.from_files, progress.failed) == (4, 2, 0)
    assert header_of(session, BIAS).types == ingested[BIAS]["types"]
    assert header_of(session, GNIRS).reduction == "RAW"
    # neither text nor file: counted as failed, the row left as it was
    session.execute(delete(FullTextHeader).where(FullTextHeader.diskfile_id == bias.diskfile_id))
    session.execute(update(Header).where(Header.id == bias.id).values(types=None))
    session.commit()
    (config.storage_root / BIAS).unlink()
    progress = run_all(session, config)
    assert progress.failed == 1 and header_of(session, BIAS).types is None


def test_dryrun_and_selection(session: Session, config: Config, ingested: dict) -> None:
    make_stale(session)
    progress = run_all(session, config, dryrun=True)
    assert progress.changed == 4
    assert header_of(session, BIAS).types is None  # nothing written
    progress = run_all(session, config, Selection(instrument="gnirs"))
    assert progress.seen == 1 and header_of(session, GNIRS).types is not None
    assert header_of(session, BIAS).types is None
    progress = run_all(session, config, Selection(file_re=re.compile(r"S0002")))
    assert progress.seen == 1 and header_of(session, FLAT).mode == "longslit"
    assert header_of(session, BIAS).types is None


def test_the_command(session: Session, config: Config, ingested: dict) -> None:
    make_stale(session)
    command = [sys.executable, "-m", "fits_storage.cli.reingest_headers"]
    env = environ_for(config)
    dry = subprocess.run(
        [*command, "--all", "--dryrun"], env=env, capture_output=True, text=True, timeout=120
    )
    assert dry.returncode == 0, dry.stderr
    assert "4 header(s) recomputed: 4 would change" in dry.stdout
    assert "(dry run: nothing written)" in dry.stdout
    real = subprocess.run(
        [*command, "--file-re=N20251123"], env=env, capture_output=True, text=True, timeout=120
    )
    assert real.returncode == 0, real.stderr
    assert "2 header(s) recomputed: 2 changed, 0 read from their files, 0 failed" in real.stdout
    assert "reingest_headers: " in real.stderr  # the progress line, logged
    session.expire_all()
    assert header_of(session, BIAS).types == ingested[BIAS]["types"]
    assert header_of(session, FLAT).types is None
    usage = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    assert usage.stderr.strip() == (
        "reingest_headers: say which files: --all, --file-re or --instrument"
    )


NEW_IN_0011 = (
    "elevation",
    "cass_rotator_pa",
    "nod_count",
    "nod_pixels",
    "overscan_trimmed",
    "overscan_subtracted",
)


def test_rows_left_by_migration_0011_and_the_site_from_the_stored_name(
    session: Session, config: Config
) -> None:
    """A nod-and-shuffle file naming no site (no OBSERVAT, TELESCOP, ORIGNAME) stored as
    N2025…: ingest takes the site from the stored name; rows with the columns of migration
    0011 still NULL (and no site) get them back, from the stored text and from the file."""
    no_site = {"OBSERVAT": None, "TELESCOP": None, "ORIGNAME": None}
    write_frame(config.storage_root, gmos_frame(NOD, nod_and_shuffle=True, keywords=no_site), NOD)
    ingest_file(session, config, NOD)
    session.commit()
    want = {
        "site": "Gemini-North",
        "elevation": 54.12,
        "cass_rotator_pa": -102.5,
        "nod_count": 4,
        "nod_pixels": 1536,
        "overscan_trimmed": False,
        "overscan_subtracted": False,
    }

    def values() -> dict:
        row = header_of(session, NOD)
        return {name: getattr(row, name) for name in want}

    assert values() == want
    assert "no Gemini site" not in (header_of(session, NOD).notes or "")
    as_migrated = {name: None for name in ("site", *NEW_IN_0011)}
    session.execute(update(Header).values(**as_migrated))
    session.commit()
    progress = run_all(session, config)
    assert (progress.changed, progress.from_files) == (1, 0)
    assert set(progress.columns) == {"site", *NEW_IN_0011}
    assert values() == want
    row = header_of(session, NOD)
    session.execute(delete(FullTextHeader).where(FullTextHeader.diskfile_id == row.diskfile_id))
    session.execute(update(Header).values(**as_migrated))
    session.commit()
    progress = run_all(session, config)
    assert (progress.changed, progress.from_files) == (1, 1)
    assert values() == want


def test_headers_from_fulltext_round_trip(tmp_path: Path) -> None:
    path = write_frame(tmp_path, gmos_frame(BIAS), BIAS)
    with fits.open(path) as hdulist:
        text = "\n".join(
            f"--- HDU {i}: {h.name}\n{h.header.tostring(sep=chr(10), endcard=False, padding=False)}"
            for i, h in enumerate(hdulist)
        )
        originals = [h.header for h in hdulist]
        parsed = headers_from_fulltext(text)
        assert len(parsed) == len(originals)
        for mine, theirs in zip(parsed, originals, strict=True):
            assert list(mine.items()) == list(theirs.items())
    with pytest.raises(UnusableText):
        headers_from_fulltext("SIMPLE  =                    T")
