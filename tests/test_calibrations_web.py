"""``GET /calibrations/<name>`` and ``GET /calmgr/<caltype>/<name>`` on the generated GMOS
night, served by uvicorn: the cached answer while it is fresh, an answer computed on the spot
once a later calibration makes it stale, FitsStorage's XML structure, ``?explain=1``, and the
client's mistakes (404, 400)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from tests.calnight import EXPECTED, add_frame, expected
from tests.conftest import make_test_config
from tests.fitsdata import GMOS_NIGHT, LATE_BIAS, night_name
from tests.test_cal_rules import store_all
from tests.test_web import ServerThread

NS = "{http://www.gemini.edu/xml/gsaCalibrations/v1.0}"
COMPUTED = datetime(2025, 11, 24, 11, 0)


@pytest.fixture
def night(tmp_path: Path, db_url: str, session_factory: sessionmaker[Session]) -> Config:
    with session_factory() as session:
        for name, fields in GMOS_NIGHT.items():
            add_frame(session, name, fields)
        session.commit()
        store_all(session, COMPUTED)
    return make_test_config(tmp_path, db_url)


def by_type(rows: list[dict]) -> dict[str, list[str]]:
    answer: dict[str, list[str]] = {}
    for row in rows:
        answer.setdefault(row["caltype"], []).append(row["filename"])
        assert row["rank"] == len(answer[row["caltype"]]) - 1
    return answer


def test_calibrations_json_from_the_cache_then_computed(
    night: Config, session_factory: sessionmaker[Session]
) -> None:
    with ServerThread(night) as server:
        for number in EXPECTED:
            reply = requests.get(f"{server.url}/calibrations/{night_name(number)}", timeout=30)
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-calibrations-source"] == "cache"
            want = {k: v for k, v in expected(number).items() if v}
            assert by_type(reply.json()) == want
        row = reply.json()[0]
        assert set(row) == {"caltype", "filename", "data_label", "md5", "rank", "url"}
        assert row["url"] == f"{server.url}/file/{row['filename']}"
        assert row["data_label"] == GMOS_NIGHT[row["filename"]]["data_label"]

        late_name, late_fields = next(iter(LATE_BIAS.items()))
        with session_factory() as session:
            add_frame(session, late_name, late_fields, COMPUTED + timedelta(hours=1))
            session.commit()
        reply = requests.get(f"{server.url}/calibrations/{night_name(102)}", timeout=30)
        assert reply.headers["x-calibrations-source"] == "computed"
        assert by_type(reply.json())["bias"] == [late_name, night_name(13)]
        # by data label too (with .bz2 or not, a file name works the same)
        label = GMOS_NIGHT[night_name(101)]["data_label"]
        by_label = requests.get(f"{server.url}/calibrations/{label}", timeout=30)
        assert by_type(by_label.json())["bias"] == [night_name(11), night_name(12)]
        bz2 = requests.get(f"{server.url}/calibrations/{night_name(101)}.bz2", timeout=30)
        assert bz2.json() == by_label.json()


def test_calibrations_explain_lists_rejections(night: Config) -> None:
    with ServerThread(night) as server:
        reply = requests.get(
            f"{server.url}/calibrations/{night_name(101)}", params={"explain": "1"}, timeout=30
        )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["filename"] == night_name(101) and body["source"] == "cache"
    assert by_type(body["calibrations"])["bias"] == [night_name(11), night_name(12)]
    notes = {note["caltype"]: note for note in body["explain"]}
    bias = {r["filename"]: r["failed"] for r in notes["bias"]["rejected"]}
    assert bias[night_name(15)] == [
        {"field": "detector_readmode", "wanted": "detector_readmode == 'slow'", "got": "fast"}
    ]
    assert [f["field"] for f in bias[night_name(13)]] == ["detector_binning"]
    flats = {r["filename"]: r["failed"] for r in notes["flat"]["rejected"]}
    assert [f["field"] for f in flats[night_name(24)]] == ["ut_datetime"]
    assert "detector_binning == '2x2'" in notes["bias"]["rule"]


def test_calmgr_xml_has_fitsstorages_structure(night: Config) -> None:
    label = GMOS_NIGHT[night_name(101)]["data_label"]
    with ServerThread(night) as server:
        reply = requests.get(f"{server.url}/calmgr/bias/{label}", timeout=30)
        arc = requests.get(f"{server.url}/calmgr/arc/{night_name(103)}?explain=1", timeout=30)
        none = requests.get(f"{server.url}/calmgr/processed_bias/{night_name(102)}", timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(reply.content)
    assert root.tag == f"{NS}calibration_associations"
    (dataset,) = root
    assert dataset.tag == f"{NS}dataset"
    assert [child.tag for child in dataset][:3] == [f"{NS}datalabel", f"{NS}filename", f"{NS}md5"]
    assert dataset.findtext(f"{NS}datalabel") == label
    assert dataset.findtext(f"{NS}filename") == night_name(101)
    assert len(dataset.findtext(f"{NS}md5")) == 32
    cals = dataset.findall(f"{NS}calibration")
    assert [c.findtext(f"{NS}filename") for c in cals] == [night_name(11), night_name(12)]
    for cal in cals:
        assert [child.tag.removeprefix(NS) for child in cal] == [
            "caltype",
            "datalabel",
            "filename",
            "md5",
            "url",
        ]
        assert cal.findtext(f"{NS}caltype") == "bias"
        assert cal.findtext(f"{NS}url").endswith("/file/" + cal.findtext(f"{NS}filename"))
    arc_root = ET.fromstring(arc.content)
    arc_cals = arc_root.findall(f"{NS}dataset/{NS}calibration")
    assert [c.findtext(f"{NS}filename") for c in arc_cals] == [night_name(33)]
    assert f"REJECTED {night_name(34)}: filter_name" in arc.text  # explain, as comments
    assert ET.fromstring(none.content).findall(f"{NS}dataset/{NS}calibration") == []
    assert "NO CALIBRATION FOUND for caltype processed_bias" in none.text


def test_client_mistakes_are_4xx(night: Config) -> None:
    with ServerThread(night) as server:
        missing = requests.get(f"{server.url}/calibrations/N20991231S0001.fits", timeout=30)
        calmissing = requests.get(f"{server.url}/calmgr/bias/GN-2099A-Q-1-1-001", timeout=30)
        badtype = requests.get(f"{server.url}/calmgr/biases/{night_name(101)}", timeout=30)
        badname = requests.get(f"{server.url}/calibrations/.hidden", timeout=30)
        badflag = requests.get(f"{server.url}/calibrations/{night_name(101)}?explain=maybe")
    assert missing.status_code == 404 and "N20991231S0001.fits" in missing.json()["detail"]
    assert calmissing.status_code == 404
    assert badtype.status_code == 400 and "processed_bias" in badtype.json()["detail"]
    assert badname.status_code == 400
    assert badflag.status_code == 400
