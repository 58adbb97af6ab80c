"""Previews end to end on SQLite and PostgreSQL: ingest with ``using_previews`` queues them,
``service_preview_queue`` makes them (a note for a header-only file, a clear failure for a
file truncated after its ingest, the others unaffected), ``GET /preview`` serves JPEGs Pillow
opens at the stated size, a new version replaces the old pictures, ``add_to_preview_queue``
re-queues, and the same works with the data in S3 (moto's server)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import boto3
import pytest
import requests
from astropy.io import fits
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.ingest import ingest_file
from fits_storage.orm import DiskFile, Preview, PreviewNote, PreviewQueue
from fits_storage.preview import make_previews
from fits_storage.preview.work import present_version, record
from fits_storage.storage import NotInStore, get_store
from fits_storage.storage.previews import PREFIX, get_preview_store
from tests.conftest import make_test_config
from tests.fitsdata import make_gmos_n_frame, make_observatory_file, write_truncated
from tests.processes import run_cli
from tests.test_web import ServerThread

pytest_plugins = ["tests.s3server"]

GOOD = "N20251123S0101.fits"
HEADER_ONLY = "N20251123S0102.fits"
BROKEN = "N20251123S0103.fits"
ROWS = 1024  # unbinned rows of the generated GMOS-N chips: quick, still 12 amplifiers


@pytest.fixture
def preview_config(tmp_path: Path, db_url: str) -> Config:
    return make_test_config(tmp_path, db_url, using_previews="true")


@pytest.fixture
def s3_config(tmp_path: Path, db_url: str, s3_endpoint: str, s3_bucket: str) -> Config:
    return make_test_config(
        tmp_path,
        db_url,
        using_previews="true",
        using_s3="true",
        s3_bucket_name=s3_bucket,
        s3_endpoint_url=s3_endpoint,
    )


def run(config: Config, command: str, *args: str) -> subprocess.CompletedProcess:
    return run_cli(config, command, *args, timeout=300)


def work_the_preview_queue(config: Config, failures: bool = False) -> subprocess.CompletedProcess:
    """Run the worker until the queue is empty; it exits 1 when an entry failed."""
    done = run(config, "service_preview_queue", "--empty")
    assert done.returncode == (1 if failures else 0), done.stderr
    return done


def write_files(directory: Path, seed: int = 0) -> dict[str, Path]:
    header_only = directory / HEADER_ONLY
    directory.mkdir(parents=True, exist_ok=True)
    header = fits.PrimaryHDU().header
    header["INSTRUME"], header["OBSTYPE"] = "GMOS-N", "OBJECT"
    fits.PrimaryHDU(header=header).writeto(header_only, overwrite=True)
    return {
        GOOD: make_gmos_n_frame(directory, 2, GOOD, rows=ROWS, seed=seed),
        HEADER_ONLY: header_only,
        BROKEN: make_observatory_file(directory, BROKEN),
    }


def ingest_all(factory: sessionmaker[Session], config: Config, names: list[str]) -> None:
    for name in names:
        with factory() as session:
            ingest_file(session, config, name)
            session.commit()


def previews_of(factory: sessionmaker[Session], name: str) -> dict[str, Preview]:
    with factory() as session:
        rows = session.scalars(
            select(Preview)
            .join(DiskFile, DiskFile.id == Preview.diskfile_id)
            .where(DiskFile.filename == name)
        )
        return {row.size: row for row in rows}


def queue_rows(factory: sessionmaker[Session]) -> dict[str, tuple[str, str | None]]:
    with factory() as session:
        rows = session.execute(
            select(PreviewQueue.filename, PreviewQueue.status, PreviewQueue.error)
        )
        return {name: (status, error) for name, status, error in rows}


def check_served(url: str, name: str, stored: dict[str, Preview]) -> None:
    for size, query in (("full", ""), ("thumb", "?size=thumb")):
        answer = requests.get(f"{url}/preview/{name}{query}", timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "image/jpeg"
        assert answer.headers["etag"] == f'"{stored[size].md5}"'
        assert "max-age" in answer.headers["cache-control"]
        image = Image.open(io.BytesIO(answer.content))
        assert image.size == (stored[size].width, stored[size].height)
        again = requests.get(
            f"{url}/preview/{name}{query}", headers={"If-None-Match": answer.headers["etag"]}
        )
        assert again.status_code == 304


def test_ingest_queues_the_worker_makes_the_web_serves(
    preview_config: Config, session_factory: sessionmaker[Session]
) -> None:
    config = preview_config
    files = write_files(config.storage_root)
    ingest_all(session_factory, config, list(files))
    assert set(queue_rows(session_factory)) == set(files)  # ingest queued every file
    write_truncated(files[BROKEN].with_name("x.fits"), files[BROKEN])
    files[BROKEN].with_name("x.fits").replace(files[BROKEN])  # damaged after its ingest

    done = work_the_preview_queue(config, failures=True)
    assert "preview made" in done.stderr and "2 processed, 1 failed" in done.stderr

    made = previews_of(session_factory, GOOD)
    assert sorted(made) == ["full", "thumb"]
    assert (made["full"].width, made["full"].height) == (778, 128)  # 3112x512 binned, /4
    assert max(made["thumb"].width, made["thumb"].height) == 256
    with session_factory() as session:
        note = session.scalars(select(PreviewNote.reason)).all()
    assert note == ["header only, no image data"]
    queue = queue_rows(session_factory)
    assert list(queue) == [BROKEN]  # done entries are gone; only the broken one is kept
    status, error = queue[BROKEN]
    assert status == "failed" and "truncated" in error and BROKEN in error
    store = get_preview_store(config)
    root = config.storage_root / ".fits_storage" / "previews"
    assert {p.name for p in root.rglob("*.jpg")} == {Path(p.key).name for p in made.values()}
    assert store.get(made["full"].key)[:2] == b"\xff\xd8"

    with ServerThread(config) as server:
        check_served(server.url, GOOD, made)
        check_served(server.url, GOOD + ".bz2", made)  # the name as /file takes it, too
        missing = requests.get(f"{server.url}/preview/{HEADER_ONLY}", timeout=30)
        assert missing.status_code == 404
        assert "no preview of N20251123S0102.fits: header only" in missing.text
        unknown = requests.get(f"{server.url}/preview/N20990101S0001.fits", timeout=30)
        assert unknown.status_code == 404 and "no preview" in unknown.text
        bad = requests.get(f"{server.url}/preview/{GOOD}?size=huge", timeout=30)
        assert bad.status_code == 400

        # A new version: ingest queues it, the worker replaces the pictures and their rows.
        old = {size: (row.key, row.md5, row.diskfile_id) for size, row in made.items()}
        make_gmos_n_frame(config.storage_root, 2, GOOD, rows=ROWS, seed=7)
        ingest_all(session_factory, config, [GOOD])
        work_the_preview_queue(config)
        new = previews_of(session_factory, GOOD)
        assert sorted(new) == ["full", "thumb"]
        for size, (key, md5, diskfile_id) in old.items():
            assert new[size].diskfile_id != diskfile_id and new[size].md5 != md5
            assert not (root / key).exists()  # the old JPEG is gone
        with session_factory() as session:
            assert len(session.scalars(select(Preview)).all()) == 2  # no stale rows remain
        assert (new["full"].width, new["full"].height) == (778, 128)
        check_served(server.url, GOOD, new)


def test_add_to_preview_queue_selects_and_forces(
    preview_config: Config, session_factory: sessionmaker[Session]
) -> None:
    config = preview_config
    files = write_files(config.storage_root)
    del files[BROKEN]
    ingest_all(session_factory, config, list(files))
    work_the_preview_queue(config)
    before = previews_of(session_factory, GOOD)

    again = run(config, "add_to_preview_queue", "--filename", GOOD)
    assert again.returncode == 0 and "0 queued" in again.stdout  # it has its previews
    forced = run(config, "add_to_preview_queue", "--file-re", "S010[12]", "--force")
    assert forced.returncode == 0 and "2 file(s) selected: 2 queued" in forced.stdout
    recent = run(config, "add_to_preview_queue", "--lastdays", "1", "--force")
    assert "2 file(s) selected: 0 queued, 2 already waiting" in recent.stdout
    work_the_preview_queue(config)
    after = previews_of(session_factory, GOOD)
    assert after["full"].created > before["full"].created  # made again
    assert after["full"].md5 == before["full"].md5  # the same picture: same bytes, same key
    assert get_preview_store(config).get(after["full"].key)  # not removed as "old"
    bad = run(config, "add_to_preview_queue", "--lastdays", "-1")
    assert bad.returncode == 2 and "--lastdays" in bad.stderr


def test_previews_in_s3(s3_config: Config, session_factory: sessionmaker[Session]) -> None:
    config = s3_config
    source = config.storage_root.parent / "incoming"
    files = write_files(source)
    for path in files.values():
        get_store(config).store(path, path.name)
    ingest_all(session_factory, config, [GOOD, HEADER_ONLY])
    work_the_preview_queue(config)
    made = previews_of(session_factory, GOOD)
    client = boto3.client("s3", endpoint_url=config.s3_endpoint_url)
    listed = client.list_objects_v2(Bucket=config.s3_bucket_name)["Contents"]
    keys = {item["Key"] for item in listed}
    assert {f"{PREFIX}/{row.key}" for row in made.values()} <= keys
    assert not (config.storage_root / ".fits_storage" / "previews").exists()
    with ServerThread(config) as server:
        check_served(server.url, GOOD, made)


def test_a_rolled_back_replacement_keeps_the_old_previews(
    preview_config: Config, session_factory: sessionmaker[Session]
) -> None:
    """The pictures switch with the transaction: rolled back, the new JPEGs go and the old
    rows and JPEGs stay; committed, the old JPEGs go."""
    config = preview_config
    path = make_gmos_n_frame(config.storage_root, 2, GOOD, rows=256)
    ingest_all(session_factory, config, [GOOD])
    store = get_preview_store(config)
    with session_factory() as session:
        version = present_version(session, GOOD, "")
        first = make_previews(path, GOOD, workdir=config.storage_root / "w", limit=1 << 30)
        old_keys = record(session, store, version, first)
        session.commit()
    make_gmos_n_frame(config.storage_root, 2, GOOD, rows=256, seed=3)
    second = make_previews(path, GOOD, workdir=config.storage_root / "w", limit=1 << 30)
    with session_factory() as session:
        new_keys = record(session, store, version, second)
        assert set(new_keys).isdisjoint(old_keys) and all(store.get(k) for k in new_keys)
        session.rollback()
    assert {row.key for row in previews_of(session_factory, GOOD).values()} == set(old_keys)
    assert all(store.get(k) for k in old_keys)
    for key in new_keys:
        with pytest.raises(NotInStore):
            store.get(key)
    with session_factory() as session:
        new_keys = record(session, store, version, second)
        session.commit()
    assert {row.key for row in previews_of(session_factory, GOOD).values()} == set(new_keys)
    for key in old_keys:
        with pytest.raises(NotInStore):
            store.get(key)
