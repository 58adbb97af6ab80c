"""The archive's door under hostile and careless input (issue 9 items 1, 4, 5 and 8), over real
HTTP on loopback, with the real ``ingest_uploaded_file`` and ``service_ingest_queue`` commands,
on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from requests.structures import CaseInsensitiveDict
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.db.schema import create_tables
from fits_storage.orm import FileUploadLog, UploadQueue
from fits_storage.storage import ReservedName, get_store
from fits_storage.upload import StoreOutcome, store_upload
from tests import fitsdata
from tests.conftest import make_test_config
from tests.fitsdata import fits_bytes
from tests.processes import environ_for
from tests.test_web import (
    COOKIES,
    SECRET,
    ServerThread,
    files_under,
    free_port,
    raw_post,
    upload_entries,
    uploads,
)


@pytest.fixture
def door(tmp_path: Path, db_url: str) -> Iterator[tuple[Config, ServerThread]]:
    config = make_test_config(tmp_path, db_url, upload_auth_cookie=SECRET)
    with ServerThread(config) as server:
        yield config, server


def post(server: ServerThread, target: str, body: bytes, **kwargs: object) -> requests.Response:
    return requests.post(f"{server.url}/upload_file/{target}", data=body, cookies=COOKIES, **kwargs)


def run(config: Config, command: str) -> None:
    """One of the system's commands, to the end of its queue."""
    result = subprocess.run(
        [sys.executable, "-m", f"fits_storage.cli.{command}", "--empty"],
        env=environ_for(
            config, FITS_STORAGE_MAX_UNCOMPRESSED_BYTES=str(config.max_uncompressed_bytes)
        ),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def everything_under(directory: Path) -> list[str]:
    """Files and directories alike: what an upload may have left behind."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def data_under(root: Path) -> list[str]:
    """What is under ``root`` but the system's hidden directory and SQLite's own files."""
    return [
        name
        for name in everything_under(root)
        if not name.startswith((".fits_storage", "fits_storage.db"))
    ]


def sessions(config: Config) -> sessionmaker[Session]:
    return make_session_factory(make_engine(config.database_url))


# -- item 1: the data namespace holds data only -------------------------------------------------


def test_uploaded_names_never_reach_the_systems_own_files(tmp_path: Path, db_url: str) -> None:
    """The names that once overwrote the database, a log and a staged upload are plain data."""
    on_sqlite = db_url.startswith("sqlite")
    config = make_test_config(
        tmp_path, "" if on_sqlite else db_url, upload_auth_cookie=SECRET
    )  # SQLite: the default database, inside storage_root
    create_tables(make_engine(config.database_url))
    log = config.log_dir / "web.log"
    log.write_text("precious log\n")
    first = {
        "fits_storage.db": fits_bytes(b"not a database"),
        "logs/web.log": fits_bytes(b"not a log"),
        "upload_staging/N2.fits": fits_bytes(b"staged name"),
    }
    second = {"N2.fits": fits_bytes(b"plain name")}
    for batch in (first, second):
        with ServerThread(config) as server:
            for name, body in batch.items():
                answer = post(server, name, body)
                assert answer.status_code == 200, answer.text
        run(config, "ingest_uploaded_file")
    for name, body in {**first, **second}.items():
        assert (config.storage_root / name).read_bytes() == body, name
    assert log.read_text() == "precious log\n"
    with sessions(config)() as session:
        rows = session.scalars(select(FileUploadLog).order_by(FileUploadLog.id)).all()
        assert [(r.filename, r.ok) for r in rows] == [
            ("fits_storage.db", True),
            ("web.log", True),
            ("N2.fits", True),
            ("N2.fits", True),
        ]
    assert files_under(config.upload_staging_dir) == []


def test_names_reaching_configured_system_paths_are_refused(tmp_path: Path, db_url: str) -> None:
    """An older configuration may keep staging, logs, locks or the database inside
    storage_root: those names are then reserved, at the door and in the store."""
    root = tmp_path / "dataflow"
    on_sqlite = db_url.startswith("sqlite")
    database = f"sqlite:///{root / 'fits_storage.db'}" if on_sqlite else db_url
    config = make_test_config(
        tmp_path,
        database,
        upload_auth_cookie=SECRET,
        upload_staging_dir=str(root / "incoming"),
        log_dir=str(root / "logs"),
        lockfile_dir=str(root / "locks"),
    )
    create_tables(make_engine(config.database_url))
    refused = ["incoming/N1.fits", "incoming", "logs/N1.fits", "logs", "locks/a/N1.fits"]
    if on_sqlite:
        refused += ["fits_storage.db", "fits_storage.db-wal", "fits_storage.db-journal"]
    with ServerThread(config) as server:
        before = data_under(root)
        for name in refused:
            answer = post(server, name, fits_bytes(b"x"))
            assert answer.status_code == 400, (name, answer.text)
            assert "reserved" in answer.json()["detail"], name
        assert post(server, "logs2/N1.fits", fits_bytes(b"x")).status_code == 200
    assert data_under(root) == sorted(before + ["incoming/logs2", "incoming/logs2/N1.fits"])
    with pytest.raises(ReservedName):
        get_store(config).open("N1.fits", "logs")  # ingest_uploaded_file's way in


# -- item 4: FITS structure checked at the door -------------------------------------------------

BROKEN_AT_THE_DOOR = {
    "truncated": ("N1.fits", lambda d: fitsdata.write_truncated(d / "f").read_bytes()),
    "unpadded": ("N1.fits", lambda d: fitsdata.write_unpadded(d / "f").read_bytes()),
    "garbage tail": ("N1.fits", lambda d: fitsdata.write_garbage_tail(d / "f").read_bytes()),
    "not FITS": ("N1.fits", lambda d: fitsdata.write_not_fits(d / "f").read_bytes()),
    "empty": ("N1.fits", lambda d: b""),
    "gz of text": ("N1.fits.gz", lambda d: gzip.compress(b"hello " * 1000)),
    "bz2 of text": ("N1.fits.bz2", lambda d: bz2.compress(b"hello " * 1000)),
    "not bz2": ("N1.fits.bz2", lambda d: fits_bytes(b"plain")),
    "empty bz2": ("N1.fits.bz2", lambda d: b""),
    "cut bz2": ("N1.fits.bz2", lambda d: fitsdata.write_corrupt_bz2(d / "f.bz2").read_bytes()),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_AT_THE_DOOR))
def test_broken_uploads_are_refused_and_leave_nothing(
    door: tuple[Config, ServerThread], tmp_path: Path, kind: str
) -> None:
    config, server = door
    name, make = BROKEN_AT_THE_DOOR[kind]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    answer = post(server, f"2025/new/{name}", make(scratch))
    assert answer.status_code == 422, answer.text
    assert "not a complete FITS file" in answer.json()["detail"]
    assert everything_under(config.upload_staging_dir) == []  # no file, no directory
    factory = sessions(config)
    assert uploads(factory) == [] and upload_entries(factory) == []


def test_good_uploads_of_every_form_are_accepted(
    door: tuple[Config, ServerThread], tmp_path: Path
) -> None:
    config, server = door
    plain = fitsdata.make_observatory_file(tmp_path).read_bytes()
    bodies = {
        "N1.fits": plain,
        "N2.fits.bz2": bz2.compress(plain),
        "N3.fits.gz": gzip.compress(plain),
        "N4.fits.bz2": bz2.compress(plain[:2880]) + bz2.compress(plain[2880:]),  # as pbzip2
        "gmos.fits": fitsdata.copy_gmos_file(tmp_path).read_bytes(),
    }
    for name, body in bodies.items():
        answer = post(server, name, body)
        assert answer.status_code == 200, (name, answer.text)
    run(config, "ingest_uploaded_file")
    assert files_under(config.upload_staging_dir) == []
    for name, body in bodies.items():
        assert (config.storage_root / name).read_bytes() == body


BROKEN_INSIDE = {
    "bz2 cut after its first block": lambda d: bz2.compress(fits_bytes(os.urandom(2 << 20)))[
        :-1000
    ],
    "bz2 of a truncated file": lambda d: bz2.compress(
        fitsdata.write_truncated(d / "f").read_bytes()
    ),
    "bz2 then junk": lambda d: bz2.compress(fits_bytes(b"ok")) + b"junk",
    "bz2 bomb": lambda d: bz2.compress(fits_bytes(bytes(64 * 1024 * 1024))),  # ~50 bytes/MiB
}


def test_compressed_uploads_broken_inside_never_replace_the_stored_file(
    tmp_path: Path, db_url: str
) -> None:
    """The door reads a compressed upload only as far as its first header (decompressing it
    all would cost the exporter a third of its compression time again); ingest_uploaded_file
    checks it whole, with the ceiling, before it may replace the stored version."""
    config = make_test_config(
        tmp_path, db_url, upload_auth_cookie=SECRET, max_uncompressed_bytes="16M"
    )
    good = bz2.compress(fits_bytes(b"the good version"))
    with ServerThread(config) as server:
        for kind in BROKEN_INSIDE:
            assert post(server, f"{kind.replace(' ', '_')}.fits.bz2", good).status_code == 200
        run(config, "ingest_uploaded_file")
        for kind, make in BROKEN_INSIDE.items():
            scratch = tmp_path / kind.replace(" ", "_")
            scratch.mkdir()
            answer = post(server, f"{kind.replace(' ', '_')}.fits.bz2", make(scratch))
            assert answer.status_code == 200, (kind, answer.text)
    result = subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.ingest_uploaded_file", "--empty"],
        env=environ_for(config, FITS_STORAGE_MAX_UNCOMPRESSED_BYTES="16M"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "Traceback" not in result.stderr
    with sessions(config)() as session:
        failed = dict(
            session.execute(
                select(UploadQueue.filename, UploadQueue.error).where(
                    UploadQueue.status == "failed"
                )
            ).all()
        )
    for kind in BROKEN_INSIDE:
        name = f"{kind.replace(' ', '_')}.fits.bz2"
        assert (config.storage_root / name).read_bytes() == good, kind
        assert "not a complete FITS file" in failed[name], kind
    assert "ceiling" in failed["bz2_bomb.fits.bz2"]


def served(server: ServerThread, name: str) -> tuple[bytes, CaseInsensitiveDict]:
    answer = requests.get(f"{server.url}/file/{name}")
    assert answer.status_code == 200, answer.text
    return answer.content, answer.headers


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_a_bad_reupload_keeps_the_good_copy_and_a_new_version_is_served_whole(
    tmp_path: Path, db_url: str
) -> None:
    config = make_test_config(tmp_path, db_url, upload_auth_cookie=SECRET)
    name = "N20251123S0042.fits"
    good = fitsdata.make_observatory_file(tmp_path / "v1", name, extensions=2).read_bytes()
    newer = fitsdata.make_observatory_file(tmp_path / "v2", name, extensions=3, seed=1)
    newer_bytes = newer.read_bytes()
    stored = config.storage_root / name
    with ServerThread(config) as server:
        assert post(server, name, good).status_code == 200
        run(config, "ingest_uploaded_file")
        run(config, "service_ingest_queue")
        assert served(server, name)[0] == good

        truncated = good[:-4000]
        answer = post(server, name, truncated)
        assert answer.status_code == 422, answer.text
        assert stored.read_bytes() == good
        listed = requests.get(f"{server.url}/jsonfilelist/present/filename={name}").json()
        assert [(f["file_md5"], f["pending_ingest"]) for f in listed] == [
            (hashlib.md5(good).hexdigest(), False)
        ]
        body, headers = served(server, name)
        assert body == good and headers["content-length"] == str(len(good))
        assert headers["content-md5"] == b64md5(good)

        # A good new version, stored but not yet ingested: served whole, its own length, and
        # no md5 header (the database's md5 is still the old version's).
        assert post(server, name, newer_bytes).status_code == 200
        run(config, "ingest_uploaded_file")
        assert stored.read_bytes() == newer_bytes
        body, headers = served(server, name)
        assert body == newer_bytes and headers["content-length"] == str(len(newer_bytes))
        assert "content-md5" not in headers
        body, headers = served(server, name + ".bz2")  # compressed on the fly: the new bytes
        assert bz2.decompress(body) == newer_bytes

        run(config, "service_ingest_queue")
        body, headers = served(server, name)
        assert body == newer_bytes and headers["content-md5"] == b64md5(newer_bytes)


def test_a_new_version_of_a_compressed_file_is_served_decompressed_whole(
    tmp_path: Path, db_url: str
) -> None:
    config = make_test_config(tmp_path, db_url, upload_auth_cookie=SECRET)
    name = "N20251123S0043.fits"
    old = fitsdata.make_observatory_file(tmp_path / "v1", name, extensions=1).read_bytes()
    new = fitsdata.make_observatory_file(tmp_path / "v2", name, extensions=2).read_bytes()
    with ServerThread(config) as server:
        assert post(server, name + ".bz2", bz2.compress(old)).status_code == 200
        run(config, "ingest_uploaded_file")
        run(config, "service_ingest_queue")
        body, headers = served(server, name)
        assert body == old and headers["content-length"] == str(len(old))
        assert post(server, name + ".bz2", bz2.compress(new)).status_code == 200
        run(config, "ingest_uploaded_file")
        body, headers = served(server, name)
        assert body == new and "content-length" not in headers and "content-md5" not in headers


# -- item 5: concurrent uploads of one name -----------------------------------------------------


def test_concurrent_uploads_of_one_name_log_and_file_agree(tmp_path: Path, db_url: str) -> None:
    """Rounds of real uploads of one name at once, through two servers, each round stored by
    ``ingest_uploaded_file``'s work: every log row is resolved, and the file kept is the one
    of the last row (the last writer's)."""
    config = make_test_config(tmp_path, db_url, upload_auth_cookie=SECRET)
    name = "N20251123S0001.fits"
    factory = sessions(config)
    with ServerThread(config) as one, ServerThread(config) as two:
        for round_ in range(30):
            bodies = [fits_bytes(f"{round_}/{i}".encode() * 500) for i in range(8)]
            start = threading.Barrier(len(bodies))
            statuses: list[int] = []

            def upload(
                server: ServerThread, body: bytes, start: threading.Barrier, statuses: list[int]
            ) -> None:
                start.wait()
                statuses.append(post(server, name, body).status_code)

            threads = [
                threading.Thread(target=upload, args=((one, two)[i % 2], body, start, statuses))
                for i, body in enumerate(bodies)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert statuses == [200] * len(bodies)
            with factory() as session:
                assert store_upload(session, config, name) is StoreOutcome.STORED
                session.commit()
                rows = session.scalars(select(FileUploadLog).order_by(FileUploadLog.id)).all()
            kept = hashlib.md5((config.storage_root / name).read_bytes()).hexdigest()
            assert [r.id for r in rows if r.ok is None] == [], f"round {round_}"
            assert (rows[-1].md5, rows[-1].ok) == (kept, True), f"round {round_}"
            assert rows[-1].md5 in {hashlib.md5(b).hexdigest() for b in bodies}
    assert files_under(config.upload_staging_dir) == []


# -- item 8: a client's mistake is never a 500 ---------------------------------------------------


@pytest.mark.parametrize(
    "method, target",
    [
        ("GET", "/jsonfilelist/present/filename=N1%00.fits"),
        ("GET", "/jsonfilelist/present/path=a%01b"),
        ("GET", "/jsonfilelist/present/filename=N1.fits?x=%00"),
        ("GET", "/file/N1%00.fits"),
        ("GET", "/file/N1%7f.fits"),
        ("GET", "/healthz?probe=%0a"),
        ("POST", "/upload_file/2025/N1%00.fits"),
        ("POST", "/upload_file/a%09b/N1.fits"),
    ],
)
def test_control_characters_are_refused(
    door: tuple[Config, ServerThread], method: str, target: str
) -> None:
    config, server = door
    answer = requests.request(method, f"{server.url}{target}", cookies=COOKIES, data=b"")
    assert answer.status_code == 400, answer.text
    assert everything_under(config.upload_staging_dir) == []


def test_names_too_long_for_a_temporary_name_are_refused(
    door: tuple[Config, ServerThread],
) -> None:
    config, server = door
    for length in (241, 250, 255, 256):
        name = "N" * (length - 5) + ".fits"
        assert raw_post(server.url, f"/upload_file/{name}", fits_bytes(b"x")) == 400, length
    assert everything_under(config.upload_staging_dir) == []
    longest = "N" * 235 + ".fits"
    assert post(server, longest, fits_bytes(b"x")).status_code == 200
    run(config, "ingest_uploaded_file")
    assert (config.storage_root / longest).read_bytes() == fits_bytes(b"x")


def test_a_file_and_a_directory_never_share_a_name(door: tuple[Config, ServerThread]) -> None:
    config, server = door
    body = fits_bytes(b"x")
    for accepted in ("a/x.fits", "b"):
        assert post(server, accepted, body).status_code == 200
    run(config, "ingest_uploaded_file")  # now in the store; staging is empty again
    for accepted in ("c/x.fits", "d"):  # and these only in staging
        assert post(server, accepted, body).status_code == 200
    before = everything_under(config.upload_staging_dir)
    for clash in ("a", "b/y.fits", "b/deeper/y.fits", "a/x.fits/z.fits", "c", "d/y.fits"):
        answer = post(server, clash, body)
        assert answer.status_code == 409, (clash, answer.text)
    assert everything_under(config.upload_staging_dir) == before  # no directory left behind
    assert data_under(config.storage_root) == ["a", "a/x.fits", "b"]


def test_a_full_staging_disk_is_507(tmp_path: Path, db_url: str) -> None:
    config = make_test_config(tmp_path, db_url, upload_auth_cookie=SECRET)
    staging = config.upload_staging_dir
    staging.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(staging)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.decode()}")
    try:
        with ServerThread(config) as server:
            answer = post(server, "N1.fits", fits_bytes(os.urandom(1024 * 1024)))
            assert answer.status_code == 507, answer.text
            assert "full" in answer.json()["detail"]
            assert everything_under(staging) == []
            assert post(server, "N2.fits", fits_bytes(b"small")).status_code == 200
        factory = sessions(config)
        assert [u.filename for u in uploads(factory)] == ["N2.fits"]
    finally:
        subprocess.run(["umount", str(staging)], check=True)


def test_a_stalled_body_gets_a_read_timeout(tmp_path: Path, db_url: str) -> None:
    config = make_test_config(tmp_path, db_url, upload_auth_cookie=SECRET, upload_read_timeout="1")
    with ServerThread(config) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(
                b"POST /upload_file/N1.fits HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Cookie: gemini_fits_upload_auth={SECRET}\r\n".encode()
                + b"Content-Length: 100000\r\n\r\n"
                + fits_bytes(b"x")[:5000]
            )
            answer = sock.recv(4096)  # then nothing more is sent
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert everything_under(config.upload_staging_dir) == []
        assert requests.get(f"{server.url}/healthz").status_code == 200


def test_temporary_files_of_a_crash_are_swept_at_start_up(tmp_path: Path, db_url: str) -> None:
    config = make_test_config(tmp_path, db_url, upload_auth_cookie=SECRET)
    staging = config.upload_staging_dir
    (staging / "2025").mkdir(parents=True)
    dead = staging / "2025" / ".N1.fits.k2j3h4g5.part"
    live = staging / ".N2.fits.a1b2c3d4.part"  # another web process may be writing it
    claimed = staging / ".N3.fits.storing"  # ingest_uploaded_file's, never ours to remove
    for path in (dead, live, claimed):
        path.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for path in (dead, claimed):
        os.utime(path, (two_hours_ago, two_hours_ago))
    with ServerThread(config):
        assert not dead.exists()
        assert live.exists() and claimed.exists()


def test_web_refuses_to_start_without_the_schema(tmp_path: Path, empty_db_url: str) -> None:
    config = make_test_config(tmp_path, empty_db_url, upload_auth_cookie=SECRET)
    result = subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.web", "--port", str(free_port())],
        env=environ_for(config),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "not starting" in result.stderr and "run create_tables" in result.stderr
    assert "Traceback" not in result.stderr
    # and under any ASGI server: the application's start-up fails, so it never serves
    server = ServerThread(config).server
    exits: list[object] = []

    def serve() -> None:
        try:
            server.run()
        except SystemExit as exc:  # uvicorn's way of saying the start-up failed
            exits.append(exc.code)

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(60)
    assert exits == [3] and not server.started
