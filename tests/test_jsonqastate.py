"""``GET /jsonqastate/<selection>`` over real HTTP (uvicorn on loopback), on SQLite and
PostgreSQL: FitsStorage's keys, and every kind of selection the ODB writes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.ingest import ingest_file, mark_not_present
from fits_storage.orm import DiskFile
from fits_storage.web.selection import SelectionError, parse_url_selection
from tests.fitsdata import make_observatory_file
from tests.test_web import ServerThread

KEYS = {"data_label", "filename", "data_md5", "entrytime", "qa_state"}


def add(session: Session, config: Config, filename: str, **header: object) -> int:
    drop = [key for key, value in header.items() if value is None]
    values = {key: value for key, value in header.items() if value is not None}
    make_observatory_file(config.storage_root, filename, header=values, drop=drop, seed=len(header))
    result = ingest_file(session, config, filename, "", force=True)
    session.commit()
    assert result.diskfile_id is not None
    return result.diskfile_id


@pytest.fixture
def served(config: Config, session: Session) -> Iterator[str]:
    add(session, config, "N20251123S0001.fits")  # GN-2025B-Q-101-2-001, Pass
    add(session, config, "N20251123S0002.fits", RAWPIREQ="NO")  # Usable, then a new version:
    add(session, config, "N20251123S0002.fits", RAWGEMQA="BAD")  # Fail
    add(session, config, "N20251123S0001_flat.fits", ORIGNAME="N20251123S0001.fits",
        DATALAB="GN-2025B-Q-101-2-001-FLAT",
        PROCFLAT="2025-11-24T10:00:00")  # fmt: skip  # processed (PROCFLAT): not RAW
    add(session, config, "S20251124S0005.fits")  # Gemini-South
    add(session, config, "N20251125S0007.fits", TELESCOP=None)  # the site from the name
    gone = add(session, config, "N20251125S0008.fits")
    mark_not_present(session, gone)
    session.commit()
    with ServerThread(config) as server:
        yield server.url


def qastate(url: str, selection: str) -> list[dict]:
    answer = requests.get(f"{url}/jsonqastate/{selection}", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


def names(url: str, selection: str) -> list[str]:
    return [item["filename"] for item in qastate(url, selection)]


def test_the_odbs_query_answers_fitsstorages_keys(served: str, session: Session) -> None:
    [item] = qastate(served, "Gemini-North/present/RAW/obsid=GN-2025B-Q-101-2")
    assert set(item) == KEYS
    diskfile = session.scalars(
        select(DiskFile).where(DiskFile.filename == "N20251123S0001.fits")
    ).one()
    assert item == {
        "data_label": "GN-2025B-Q-101-2-001",
        "filename": "N20251123S0001.fits",
        "data_md5": diskfile.data_md5,
        "entrytime": str(diskfile.entrytime),
        "qa_state": "Pass",
    }
    assert qastate(served, "present/N20251123S0001.fits") == [item]
    assert qastate(served, "present/filename=N20251123S0001.fits.bz2") == [item]
    assert qastate(served, "datalabel=GN-2025B-Q-101-2-001") == [item]


def test_selections(served: str) -> None:
    # without RAW the processed file of that observation is listed too
    assert names(served, "present/progid=GN-2025B-Q-101-2") == [
        "N20251123S0001.fits", "N20251123S0001_flat.fits",
    ]  # fmt: skip
    # a date: the canonical (newest) version only, with its QA state
    by_date = qastate(served, "GN/present/RAW/20251123")
    assert [(i["filename"], i["qa_state"]) for i in by_date] == [
        ("N20251123S0001.fits", "Pass"), ("N20251123S0002.fits", "Fail"),
    ]  # fmt: skip
    assert names(served, "Gemini-South/present/20251123-20251125") == ["S20251124S0005.fits"]
    assert names(served, "GS/present/20251123") == []
    # no TELESCOP: the name's N decides; the file that is gone is not present
    assert names(served, "Gemini-North/present/RAW/20251125") == ["N20251125S0007.fits"]
    assert names(served, "GN/notpresent/20251125") == ["N20251125S0008.fits"]
    assert names(served, "present/RAW/GN-2025B-Q-101") == [
        "N20251123S0001.fits", "N20251123S0002.fits", "N20251125S0007.fits",
    ]  # fmt: skip
    assert len(qastate(served, "notcanonical/N20251123S0002.fits")) == 1


BAD_SELECTIONS = {
    "present/bogus": "not a program id, observation id or data label: 'bogus'",
    "present/RAW": "select an observation",
    "present/20251332": "not a date (YYYYMMDD): '20251332'",
    "present/2025-11-23": "not a date (YYYYMMDD) or a date range (YYYYMMDD-YYYYMMDD): '2025-11-23'",
    "present/2025112": "not a date (YYYYMMDD) or a date range",
    "present/20251125-20251123": "ends before it starts",
    "present/colour=red": "selection term not understood: 'colour=red'",
}


def test_a_bad_selection_is_a_400_with_its_reason(served: str) -> None:
    for selection, reason in BAD_SELECTIONS.items():
        answer = requests.get(f"{served}/jsonqastate/{selection}", timeout=30)
        assert answer.status_code == 400, selection
        assert reason in answer.json()["detail"]


def test_only_the_most_specific_identifier_counts() -> None:
    parsed = parse_url_selection("GN-2025B-Q-101/obsid=GN-2025B-Q-101-2/Gemini-North/present")
    assert (parsed.program_id, parsed.observation_id, parsed.site, parsed.present) == (
        None, "GN-2025B-Q-101-2", "Gemini-North", True,
    )  # fmt: skip
    with pytest.raises(SelectionError):
        parse_url_selection("present/GN-2025B")
