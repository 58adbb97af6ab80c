"""Header updates end to end, with real processes on both databases: the ODB POSTs to the
summit's ``fits_storage_web``; ``service_fileops_queue`` edits the stored files; the summit's
ingest records the new versions (the new QA state in ``header``) and its exporter sends them
to a real archive server, which ingests them with the new md5."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import requests
from astropy.io import fits
from sqlalchemy import select

from fits_storage.orm import DiskFile, ExportQueue, Header, UpdateLog
from tests.processes import wait_for
from tests.test_archive_e2e import (  # noqa: F401 - databases is a fixture
    Site,
    assert_clean_exits,
    databases,
    drop_files,
    free_port,
    healthy,
    logs_of,
    make_sites,
    start_archive_workers,
    start_summit,
    start_web,
)

SECRET = "odb-secret"


def qa_states(site: Site) -> dict[str, str | None]:
    """filename -> qa_state of each present version."""
    with site.sessions() as session:
        rows = session.execute(
            select(DiskFile.filename, Header.qa_state)
            .join(Header, Header.diskfile_id == DiskFile.id)
            .where(DiskFile.present)
        )
        return dict(rows.all())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_an_update_is_applied_reingested_and_exported(
    tmp_path: Path,
    databases: tuple[str, str],  # noqa: F811 - the fixture imported above
) -> None:
    summit, archive, archive_url = make_sites(tmp_path, databases)
    summit.config = summit.config.replace(api_auth_cookie=(SECRET,))
    summit_url = f"http://127.0.0.1:{free_port()}"
    try:
        start_web(archive, archive_url)
        start_archive_workers(archive)
        start_summit(summit)
        summit.start("fileops", "service_fileops_queue", "--name=e2e")
        summit.start("summit-web", "web", "--host=127.0.0.1", f"--port={summit_url[-5:]}")
        names = drop_files(summit.config.dhs_perm, range(1, 4))
        try:
            wait_for(
                lambda: all(archive.present().get(f"{n}.bz2") for n in names), 90, "the export"
            )
            wait_for(lambda: healthy(summit_url), 30, "the summit web application")
        except AssertionError:
            raise AssertionError(logs_of(summit) + logs_of(archive)) from None
        stored = {name: summit.config.storage_root / name for name in names}
        before = {name: md5(path) for name, path in stored.items()}
        label = fits.getheader(stored[names[1]])["DATALAB"]

        response = requests.post(
            f"{summit_url}/update_headers",
            json=[
                {"filename": names[0], "values": {"qa_state": "Fail"}},
                {"data_label": label, "values": {"qa_state": "Usable", "raw_site": "cc70"}},
                {"filename": names[2], "values": {"qa_state": "Excellent"}},
            ],
            cookies={"gemini_fits_api_authorization": SECRET},
            timeout=30,
        )
        assert response.status_code == 200
        assert [r["result"] for r in response.json()] == [True, True, False]

        edited = {names[0]: "Fail", names[1]: "Usable"}

        def done() -> bool:
            here, there = qa_states(summit), qa_states(archive)
            return all(
                here.get(name) == state and there.get(f"{name}.bz2") == state
                for name, state in edited.items()
            )

        try:
            wait_for(done, 90, "the new versions at the summit and the archive")
            wait_for(lambda: not summit.queue(ExportQueue), 30, "the export queue to empty")
        except AssertionError:
            raise AssertionError(logs_of(summit) + logs_of(archive)) from None

        with summit.sessions() as session:
            logs = {log.filename: log for log in session.scalars(select(UpdateLog))}
        assert set(logs) == set(edited)
        for name in edited:
            new_md5 = md5(stored[name])
            assert new_md5 != before[name]
            assert (logs[name].md5_before, logs[name].md5_after) == (before[name], new_md5)
            assert summit.present()[name] == new_md5  # data_md5 of the summit's version
            assert archive.present()[f"{name}.bz2"] == new_md5  # the archive's, uncompressed
            assert summit.versions()[name] == 2 and archive.versions()[f"{name}.bz2"] == 2
        assert json.loads(logs[names[1]].new_values) == {
            "RAWGEMQA": "USABLE", "RAWPIREQ": "NO", "RAWCC": "70-percentile",
        }  # fmt: skip
        assert md5(stored[names[2]]) == before[names[2]]
        assert summit.failed() == [] and archive.failed() == []
    finally:
        codes = {**summit.stop_all(), **archive.stop_all()}
        summit.close()
        archive.close()
    codes.pop("summit-web", None)
    assert_clean_exits(codes)
