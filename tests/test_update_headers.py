"""``POST /update_headers`` over real HTTP (uvicorn in a thread), on SQLite and PostgreSQL:
both formats, filename and data-label addressing, one result per item, the cookie, every
value checked; then the queued edits applied by the fileops worker loop."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from astropy.io import fits
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.fileops.request import HeaderUpdate
from fits_storage.fileops.work import fileops_work
from fits_storage.ingest import ingest_work
from fits_storage.ingest.ingest import ingest_file
from fits_storage.orm import FileopsQueue, IngestQueue, UpdateLog
from fits_storage.queues import get_queue
from tests import fitsdata
from tests.conftest import make_test_config
from tests.loops import make_loop
from tests.test_web import ServerThread

SECRET = "odb-secret"
COOKIE = {"gemini_fits_api_authorization": SECRET}
RAW = "N20251123S0001.fits"
FLAT = "N20251123S0001_flat.fits"
BZ2 = "N20251123S0002.fits.bz2"


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    return make_test_config(tmp_path, db_url, api_auth_cookie=f"old-secret,{SECRET}")


@pytest.fixture
def server(config: Config, session: Session) -> Iterator[ServerThread]:
    """The application, with a raw file, its processed flat (same data label) and a .bz2
    file ingested."""
    root = config.storage_root
    raw = fitsdata.make_observatory_file(root, RAW, drop=("RAWIQ",))
    label = fits.getheader(raw)["DATALAB"]
    reduced = {"DATALAB": label, "GEM-TLM": "2025-11-24T10:00:00", "PREPARE": "2025-11-24T10:00:00"}
    fitsdata.make_observatory_file(root, FLAT, header=reduced)  # processed by name and by keywords
    fitsdata.make_observatory_file(root, BZ2, seed=2)
    for name in (RAW, FLAT, BZ2):
        ingest_file(session, config, name)
        session.commit()
    with ServerThread(config) as server:
        yield server


def post(server: ServerThread, body: object, cookies: dict | None = COOKIE) -> requests.Response:
    return requests.post(f"{server.url}/update_headers", json=body, cookies=cookies, timeout=30)


def queued(session: Session) -> list[tuple[str, HeaderUpdate]]:
    session.rollback()
    found = session.execute(
        select(FileopsQueue.filename, FileopsQueue.request).order_by(FileopsQueue.id)
    ).all()
    session.rollback()
    return [(name, HeaderUpdate.loads(text)) for name, text in found]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def label_of(config: Config, name: str) -> str:
    return fits.getheader(config.storage_root / name)["DATALAB"]


def test_old_format_one_result_per_item_in_order(
    server: ServerThread, config: Config, session: Session, engine: Engine
) -> None:
    label = label_of(config, RAW)
    body = [
        {"data_label": label, "values": {"qa_state": "Fail"}},
        {"filename": "N20251123S0099.fits", "values": {"qa_state": "Pass"}},
        {"filename": "N20251123S0002.fits", "values": {"raw_site": "iq20"}},
        {"filename": RAW, "values": {"qa_state": "Great"}},
        "not an object",
        {"data_label": "GN-2099A-Q-1-1-001", "values": {"release": "2030-01-01"}},
    ]
    response = post(server, body)
    assert response.status_code == 200
    results = response.json()
    assert [r["result"] for r in results] == [True, False, True, False, False, False]
    assert [r["id"] for r in results] == [
        label, "N20251123S0099.fits", "N20251123S0002.fits", RAW, None, "GN-2099A-Q-1-1-001",
    ]  # fmt: skip
    assert "no present file named 'N20251123S0099.fits'" in results[1]["error"]
    assert "qa_state 'Great' is not one of Pass, Usable, Fail, CHECK, Undefined" in (
        results[3]["error"]
    )
    assert "must be an object" in results[4]["error"]
    assert "no present file has the data label" in results[5]["error"]
    jobs = queued(session)
    assert [name for name, _ in jobs] == [RAW, BZ2]  # the data label means the raw file
    assert jobs[0][1].changes == {"RAWGEMQA": "BAD", "RAWPIREQ": "NO"}
    assert jobs[1][1].changes == {"RAWIQ": "20-percentile"}
    assert jobs[0][1].requester.startswith("127.0.0.1")

    before = {name: md5(config.storage_root / name) for name in (RAW, BZ2)}
    make_loop(engine, config, fileops_work, get_queue("fileops", config)).run()
    assert fits.getheader(config.storage_root / RAW)["RAWGEMQA"] == "BAD"
    assert fits.getheader(config.storage_root / FLAT)["RAWGEMQA"] == "USABLE"
    assert fits.getheader(config.storage_root / BZ2)["RAWIQ"] == "20-percentile"
    session.rollback()
    logs = {log.filename: log for log in session.scalars(select(UpdateLog))}
    for name in (RAW, BZ2):  # md5 before: the raw file's ingest's, the .bz2's hashed
        assert (logs[name].md5_before, logs[name].md5_after) == (before[name], None)
        assert logs[name].applied is not None
    assert sorted(session.scalars(select(IngestQueue.filename))) == [RAW, BZ2]
    session.rollback()
    make_loop(engine, config, ingest_work, get_queue("ingest", config)).run()
    for name in (RAW, BZ2):
        after = session.scalar(select(UpdateLog.md5_after).where(UpdateLog.filename == name))
        assert after == md5(config.storage_root / name) != before[name]
    session.rollback()


def test_new_format_and_reject_new(server: ServerThread, session: Session) -> None:
    body = {
        "request": [
            {"filename": RAW, "values": {"generic": [["RAWIQ", "70-percentile"]]},
             "reject_new": True},
            {"filename": RAW, "values": {"generic": [["OBJECT", "M 31"]]}, "reject_new": True},
            {"filename": FLAT, "values": {"release": "2031-02-03"}, "reject_new": False},
        ],
        "batch": False,
    }  # fmt: skip
    results = post(server, body).json()
    assert [r["result"] for r in results] == [False, True, True]
    assert results[0]["error"] == f"reject_new: {RAW} has no RAWIQ; not added"
    assert [(n, u.changes, u.reject_new) for n, u in queued(session)] == [
        (RAW, {"OBJECT": "M 31"}, True),
        (FLAT, {"RELEASE": "2031-02-03"}, False),
    ]


BAD_VALUES = [
    ({"qa_state": 3}, "is not one of Pass"),
    ({"raw_site": "iq50"}, "raw_site 'iq50' is not one of"),
    ({"raw_site": ["iq20", "iq70"]}, "raw_site sets RAWIQ twice"),
    ({"release": "2030-02-30"}, "is not a date"),
    ({"release": "next year"}, "is not a date written YYYY-MM-DD"),
    ({"generic": [["NAXIS1", 5]]}, "NAXIS1 describes the file's structure"),
    ({"generic": {"BITPIX": 16}}, "BITPIX describes the file's structure"),
    ({"generic": {"SIMPLE": True}}, "SIMPLE describes"),
    ({"generic": {"TOOLONGKEY": 1}}, "is not a FITS keyword"),
    ({"generic": {"BAD KEY": 1}}, "is not a FITS keyword"),
    ({"generic": {"OBSERVER": "x" * 69}}, "longer than 68 characters"),
    ({"generic": {"OBSERVER": "caf\u00e9"}}, "ASCII only"),
    ({"generic": {"OBSERVER": None}}, "is not a text, number or true/false value"),
    ({"generic": {"OBSERVER": [1, 2]}}, "is not a text, number or true/false value"),
    ({"generic": "OBSERVER=me"}, "generic must be"),
    ({"qa_state": "Pass", "generic": {"RAWGEMQA": "BAD"}}, "RAWGEMQA is set twice"),
    ({"colour": "blue"}, "unknown value 'colour'"),
    ({}, "values must be an object naming at least one of"),
]


def test_every_value_is_checked(server: ServerThread, session: Session) -> None:
    body = [{"filename": RAW, "values": values} for values, _ in BAD_VALUES]
    body += [
        {"values": {"qa_state": "Pass"}},
        {"filename": "", "values": {"qa_state": "Pass"}},
        {"filename": RAW, "values": {"qa_state": "Pass"}, "reject_new": "yes"},
        {"filename": RAW, "values": {"qa_state": "Pass"}, "colour": "blue"},
        {"filename": RAW, "values": {"qa_state": "check"}},  # the one good item
    ]
    results = post(server, body).json()
    assert len(results) == len(body)
    reasons = [reason for _, reason in BAD_VALUES] + [
        "no filename or data_label",
        "filename must be a non-empty string",
        "reject_new must be true or false",
        "unknown field(s) colour",
    ]
    for result, reason in zip(results, reasons, strict=False):
        assert result["result"] is False
        assert reason in result["error"], (reason, result)
    assert results[-1] == {"result": True, "id": RAW}
    assert [u.changes for _, u in queued(session)] == [{"RAWGEMQA": "CHECK", "RAWPIREQ": "CHECK"}]


def test_data_label_with_two_raw_files_asks_for_the_filename(
    server: ServerThread, config: Config, session: Session
) -> None:
    label = label_of(config, RAW)
    fitsdata.make_observatory_file(config.storage_root, "N20251123S0003.fits",
                                   header={"DATALAB": label})  # fmt: skip
    ingest_file(session, config, "N20251123S0003.fits")
    session.commit()
    [result] = post(server, [{"data_label": label, "values": {"qa_state": "Pass"}}]).json()
    assert result["result"] is False
    assert "names 2 raw files" in result["error"] and "give the filename" in result["error"]


def test_a_missing_or_wrong_cookie_is_refused(server: ServerThread, session: Session) -> None:
    for cookies, status, error in [
        (None, 401, "cookie is missing"),
        ({"gemini_fits_api_authorization": "guess"}, 403, "cookie is wrong"),
        ({"gemini_fits_upload_auth": SECRET}, 401, "cookie is missing"),
    ]:
        response = post(server, [{"filename": RAW, "values": {"qa_state": "Fail"}}], cookies)
        assert response.status_code == status
        assert response.json()["result"] is False and error in response.json()["error"]
    assert queued(session) == []


def test_no_secret_configured_refuses_everyone(tmp_path: Path, db_url: str) -> None:
    config = make_test_config(tmp_path, db_url)
    with ServerThread(config) as server:
        response = post(server, [], cookies={"gemini_fits_api_authorization": ""})
        assert response.status_code == 401
        response = post(server, [], cookies=COOKIE)
        assert response.status_code == 403


def test_a_body_that_is_no_request_is_a_400(server: ServerThread) -> None:
    for body, error in [
        (b"[{", "not a header update request"),
        (b'{"batch": false}', 'the new format is {"request"'),
        (b'"text"', "must be a JSON list"),
    ]:
        response = requests.post(
            f"{server.url}/update_headers", data=body, cookies=COOKIE, timeout=30,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 400
        assert error in response.json()["error"]
    response = requests.post(
        f"{server.url}/update_headers", data=b" " * (4 * 1024 * 1024 + 1), cookies=COOKIE,
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 413
