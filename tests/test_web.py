"""The archive's HTTP application over real HTTP on loopback (uvicorn in a thread, or the
``fits_storage_web`` command in a subprocess), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import bz2
import hashlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests
import uvicorn
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.orm import DiskFile, File, FileUploadLog, IngestQueue, UploadQueue
from fits_storage.queues import Status, get_queue
from fits_storage.storage import LocalStore, file_md5
from fits_storage.storage.s3 import S3Store
from fits_storage.web import create_app
from tests.conftest import config_environ, make_test_config
from tests.fitsdata import fits_bytes

pytest_plugins = ["tests.s3server"]

SECRET = "s3cret-value"
COOKIES = {"gemini_fits_upload_auth": SECRET}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """uvicorn serving ``create_app(config)`` from a thread of the test process."""

    def __init__(self, config: Config) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(config), host="127.0.0.1", port=self.port, log_level="warning"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self.thread.is_alive(), "uvicorn thread died"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def archive_config(tmp_path: Path, db_url: str) -> Config:
    return make_test_config(tmp_path, db_url, upload_auth_cookie=f"other-secret,{SECRET}")


@pytest.fixture
def server(archive_config: Config) -> Iterator[ServerThread]:
    with ServerThread(archive_config) as running:
        yield running


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def uploads(factory: sessionmaker[Session]) -> list[FileUploadLog]:
    with factory() as session:
        return list(session.scalars(select(FileUploadLog).order_by(FileUploadLog.id)))


def upload_entries(factory: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with factory() as session:
        rows = session.execute(select(UploadQueue.filename, UploadQueue.path, UploadQueue.status))
        return sorted(tuple(r) for r in rows)


# -- upload -----------------------------------------------------------------------------------


def test_upload_stages_records_and_queues(
    server: ServerThread, archive_config: Config, session_factory: sessionmaker[Session]
) -> None:
    body = bz2.compress(fits_bytes(os.urandom(3 * 1024 * 1024 + 7)))
    md5 = hashlib.md5(body).hexdigest()
    small = fits_bytes(b"xyz")
    answer = requests.post(
        f"{server.url}/upload_file/2025/N20251123S0042.fits.bz2", data=body, cookies=COOKIES
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == [
        {"filename": "N20251123S0042.fits.bz2", "path": "2025", "size": len(body), "md5": md5}
    ]
    answer = requests.post(f"{server.url}/upload_file/N1.fits", data=small, cookies=COOKIES)
    assert answer.json()[0]["path"] == ""

    staging = archive_config.upload_staging_dir
    assert files_under(staging) == ["2025/N20251123S0042.fits.bz2", "N1.fits"]
    assert (staging / "2025" / "N20251123S0042.fits.bz2").read_bytes() == body
    assert oct((staging / "N1.fits").stat().st_mode & 0o777) == "0o644"
    logged = uploads(session_factory)
    assert [(u.filename, u.path, u.size, u.md5) for u in logged] == [
        ("N20251123S0042.fits.bz2", "2025", len(body), md5),
        ("N1.fits", "", len(small), hashlib.md5(small).hexdigest()),
    ]
    assert logged[0].client == "127.0.0.1" and logged[0].stored is None
    assert upload_entries(session_factory) == [
        ("N1.fits", "", "waiting"),
        ("N20251123S0042.fits.bz2", "2025", "waiting"),
    ]


def test_upload_streams_a_chunked_body(server: ServerThread, archive_config: Config) -> None:
    body = fits_bytes(b"".join(bytes([i]) * (512 * 1024) for i in range(40)))
    digest = hashlib.md5(body)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 512 * 1024):
            yield body[start : start + 512 * 1024]

    answer = requests.post(f"{server.url}/upload_file/big.fits", data=chunks(), cookies=COOKIES)
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["size"] == len(body)
    assert answer.json()[0]["md5"] == digest.hexdigest()
    assert file_md5(archive_config.upload_staging_dir / "big.fits").md5 == digest.hexdigest()


@pytest.mark.parametrize("form", ["hex", "HEX", "base64", "query"])
def test_upload_accepts_matching_stated_md5(server: ServerThread, form: str) -> None:
    body = fits_bytes(b"SIMPLE  =                    T" * 100)
    digest = hashlib.md5(body)
    headers, params = {}, {}
    if form == "hex":
        headers["Content-MD5"] = digest.hexdigest()
    elif form == "HEX":
        headers["Content-MD5"] = digest.hexdigest().upper()
    elif form == "base64":
        headers["Content-MD5"] = base64.b64encode(digest.digest()).decode()
    else:
        params["md5"] = digest.hexdigest()
    answer = requests.post(
        f"{server.url}/upload_file/x.fits",
        data=body,
        cookies=COOKIES,
        headers=headers,
        params=params,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["md5"] == digest.hexdigest()


@pytest.mark.parametrize(
    "headers, params",
    [
        ({"Content-MD5": "0" * 32}, {}),
        ({}, {"md5": "f" * 32}),
        ({"Content-MD5": "not an md5"}, {}),
        ({}, {"md5": "xyz"}),
    ],
)
def test_upload_md5_mismatch_is_refused_and_leaves_nothing(
    server: ServerThread,
    archive_config: Config,
    session_factory: sessionmaker[Session],
    headers: dict,
    params: dict,
) -> None:
    answer = requests.post(
        f"{server.url}/upload_file/x.fits",
        data=fits_bytes(os.urandom(2 * 1024 * 1024)),
        cookies=COOKIES,
        headers=headers,
        params=params,
    )
    assert answer.status_code == 400
    assert "md5" in answer.json()["detail"].lower()
    assert files_under(archive_config.upload_staging_dir) == []
    assert uploads(session_factory) == [] and upload_entries(session_factory) == []


@pytest.mark.parametrize("cookies", [{}, {"gemini_fits_upload_auth": "wrong"}, {"other": SECRET}])
def test_upload_without_the_secret_is_forbidden(
    server: ServerThread,
    archive_config: Config,
    session_factory: sessionmaker[Session],
    cookies: dict,
) -> None:
    answer = requests.post(f"{server.url}/upload_file/x.fits", data=b"abc", cookies=cookies)
    assert answer.status_code == 403
    assert files_under(archive_config.upload_staging_dir) == []
    assert uploads(session_factory) == []


def test_no_configured_secret_means_no_uploads(tmp_path: Path, db_url: str) -> None:
    config = make_test_config(tmp_path, db_url)
    assert config.upload_auth_cookie == ()
    with ServerThread(config) as running:
        for cookies in ({}, {"gemini_fits_upload_auth": ""}):
            answer = requests.post(f"{running.url}/upload_file/x.fits", data=b"a", cookies=cookies)
            assert answer.status_code == 403
    assert files_under(config.upload_staging_dir) == []


def raw_post(url: str, target: str, body: bytes, cookie: str = SECRET) -> int:
    """A POST with the request target sent exactly as given (no client-side normalising)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("POST", target, skip_accept_encoding=True)
        conn.putheader("Cookie", f"gemini_fits_upload_auth={cookie}")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize(
    "target",
    [
        "/upload_file/../escaped.fits",
        "/upload_file/../../escaped.fits",
        "/upload_file/a/../../escaped.fits",
        "/upload_file/%2e%2e/escaped.fits",
        "/upload_file/%2E%2E%2Fescaped.fits",
        "/upload_file//tmp/escaped.fits",
        "/upload_file/%2Ftmp%2Fescaped.fits",
        "/upload_file/.hidden.fits",
        "/upload_file/a/./escaped.fits",
        "/upload_file/x%00y.fits",
        "/upload_file/x%20y.fits",
        "/upload_file/x%3By.fits",
        "/upload_file/a%5C..%5Cescaped.fits",
        "/upload_file/",
        "/upload_file/dir/",
        "/upload_file/" + "x" * 300 + ".fits",
        "/upload_file/" + "d/" * 600 + "x.fits",
    ],
)
def test_upload_refuses_names_that_escape_or_are_odd(
    server: ServerThread, archive_config: Config, tmp_path: Path, target: str
) -> None:
    before = files_under(tmp_path)
    assert raw_post(server.url, target, b"SIMPLE") == 400
    assert files_under(archive_config.upload_staging_dir) == []
    after = [f for f in files_under(tmp_path) if "fits_storage.db" not in f]
    assert after == [f for f in before if "fits_storage.db" not in f]
    assert not any("escaped" in f for f in files_under(tmp_path.parent))


def test_upload_refuses_symlink_out_of_staging(
    server: ServerThread, archive_config: Config, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (archive_config.upload_staging_dir / "evil").symlink_to(outside)
    answer = requests.post(f"{server.url}/upload_file/evil/x.fits", data=b"a", cookies=COOKIES)
    assert answer.status_code == 400
    assert list(outside.iterdir()) == []


def test_client_disconnecting_mid_upload_leaves_no_file(
    server: ServerThread, archive_config: Config, session_factory: sessionmaker[Session]
) -> None:
    staging = archive_config.upload_staging_dir
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /upload_file/2025/N20251123S0001.fits HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\n"
            + f"Cookie: gemini_fits_upload_auth={SECRET}\r\n".encode()
            + b"Content-Length: 50000000\r\n\r\n"
        )
        for _ in range(6):
            sock.sendall(os.urandom(512 * 1024))
        deadline = time.monotonic() + 10
        while not files_under(staging):  # the server has started writing a temporary file
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert all(Path(f).name.startswith(".") for f in files_under(staging))
    deadline = time.monotonic() + 10
    while files_under(staging):
        assert time.monotonic() < deadline, files_under(staging)
        time.sleep(0.05)
    assert uploads(session_factory) == [] and upload_entries(session_factory) == []
    # and the server is still fine
    assert requests.get(f"{server.url}/healthz").json()["status"] == "ok"


def test_reupload_replaces_staged_file_atomically(
    server: ServerThread, archive_config: Config, session_factory: sessionmaker[Session]
) -> None:
    for body in (fits_bytes(b"first"), fits_bytes(b"second")):
        answer = requests.post(f"{server.url}/upload_file/x.fits", data=body, cookies=COOKIES)
        assert answer.status_code == 200
    assert (archive_config.upload_staging_dir / "x.fits").read_bytes() == body
    assert files_under(archive_config.upload_staging_dir) == ["x.fits"]
    assert len(uploads(session_factory)) == 2
    assert upload_entries(session_factory) == [("x.fits", "", "waiting")]


# -- jsonfilelist -------------------------------------------------------------------------------


def add_diskfile(
    session: Session,
    filename: str,
    path: str = "",
    *,
    data: bytes = b"data",
    present: bool = True,
    canonical: bool = True,
) -> DiskFile:
    name = filename.removesuffix(".bz2")
    file = session.scalars(select(File).where(File.name == name)).first()
    if file is None:
        file = File(name=name)
        session.add(file)
        session.flush()
    stored = bz2.compress(data) if filename.endswith(".bz2") else data
    diskfile = DiskFile(
        file_id=file.id,
        filename=filename,
        path=path,
        present=present,
        canonical=canonical,
        file_size=len(stored),
        file_md5=hashlib.md5(stored).hexdigest(),
        lastmod=datetime(2025, 11, 23, 10, 0, 0),
        mtime_ns=0,
        compressed=filename.endswith(".bz2"),
        data_size=len(data),
        data_md5=hashlib.md5(data).hexdigest(),
        entrytime=datetime(2025, 11, 23, 10, 5, 0),
    )
    session.add(diskfile)
    session.flush()
    return diskfile


def set_status(session: Session, model: type, filename: str, status: Status) -> None:
    session.execute(update(model).where(model.filename == filename).values(status=status.value))


def test_jsonfilelist(
    server: ServerThread, archive_config: Config, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        add_diskfile(session, "N20251123S0001.fits.bz2", data=b"one")
        add_diskfile(session, "N20251123S0002.fits", "2025", data=b"two")
        add_diskfile(session, "N20251123S0003.fits", data=b"old", present=False, canonical=False)
        add_diskfile(session, "N20251123S0003.fits", data=b"new")
        add_diskfile(session, "N20251123S0004.fits", data=b"four")
        add_diskfile(session, "N20251123S0005.fits", data=b"five")
        add_diskfile(session, "N20251123S0006.fits", data=b"six")
        ingest = get_queue("ingest", archive_config)
        ingest.add(session, "N20251123S0001.fits.bz2", "")  # waiting
        ingest.add(session, "N20251123S0003.fits", "")
        set_status(session, IngestQueue, "N20251123S0003.fits", Status.IN_PROGRESS)
        ingest.add(session, "N20251123S0004.fits", "")
        set_status(session, IngestQueue, "N20251123S0004.fits", Status.FAILED)
        ingest.add(session, "N20251123S0005.fits", "elsewhere")  # not that exact file
        get_queue("upload", archive_config).add(session, "N20251123S0006.fits", "")
        session.commit()

    def listing(selection: str) -> list[dict]:
        answer = requests.get(f"{server.url}/jsonfilelist/{selection}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    one = listing("present/filename=N20251123S0001.fits")
    assert one == [
        {
            "name": "N20251123S0001.fits",
            "filename": "N20251123S0001.fits.bz2",
            "path": "",
            "compressed": True,
            "file_size": len(bz2.compress(b"one")),
            "data_size": 3,
            "file_md5": hashlib.md5(bz2.compress(b"one")).hexdigest(),
            "data_md5": hashlib.md5(b"one").hexdigest(),
            "lastmod": "2025-11-23T10:00:00",
            "entrytime": "2025-11-23T10:05:00",
            "present": True,
            "canonical": True,
            "pending_ingest": True,
        }
    ]
    assert listing("present/filename=N20251123S0001.fits.bz2") == one
    two = listing("present/filename=N20251123S0002.fits")
    assert [(f["path"], f["pending_ingest"]) for f in two] == [("2025", False)]
    assert listing("present/path=2025/") == two
    assert listing("present/filename=N20251123S0002.fits/path=") == []
    three = listing("present/filename=N20251123S0003.fits")
    assert [(f["data_md5"], f["pending_ingest"]) for f in three] == [
        (hashlib.md5(b"new").hexdigest(), True)
    ]
    assert listing("present/filename=N20251123S0004.fits")[0]["pending_ingest"] is False
    assert listing("present/filename=N20251123S0005.fits")[0]["pending_ingest"] is False
    assert listing("present/filename=N20251123S0006.fits")[0]["pending_ingest"] is True
    assert listing("present/filename=N20251123S9999.fits") == []
    for bad in ("present", "present/colour=red", "present/filename=a/filename=b"):
        assert requests.get(f"{server.url}/jsonfilelist/{bad}").status_code == 400


# -- /file --------------------------------------------------------------------------------------


def test_file_download_with_bz2_on_the_fly(
    server: ServerThread, archive_config: Config, session_factory: sessionmaker[Session]
) -> None:
    plain = os.urandom(3 * 1024 * 1024)
    packed_data = b"GEMINI" * 500_000
    root = archive_config.storage_root
    (root / "2025").mkdir(parents=True)
    (root / "2025" / "N20251123S0001.fits").write_bytes(plain)
    (root / "N20251123S0002.fits.bz2").write_bytes(bz2.compress(packed_data))
    with session_factory() as session:
        add_diskfile(session, "N20251123S0001.fits", "2025", data=plain)
        add_diskfile(session, "N20251123S0002.fits.bz2", data=packed_data)
        add_diskfile(session, "N20251123S0003.fits", data=b"lost")  # listed, not on disk
        session.commit()

    def get(name: str) -> requests.Response:
        return requests.get(f"{server.url}/file/{name}", stream=True)

    answer = get("N20251123S0001.fits")
    assert answer.status_code == 200 and answer.content == plain
    assert answer.headers["content-length"] == str(len(plain))
    answer = get("N20251123S0001.fits.bz2")
    assert answer.status_code == 200 and bz2.decompress(answer.content) == plain
    answer = get("N20251123S0002.fits")
    assert answer.status_code == 200 and answer.content == packed_data
    answer = get("N20251123S0002.fits.bz2")
    assert answer.content == bz2.compress(packed_data)
    assert get("N20251123S0003.fits").status_code == 404
    assert get("N20251123S9999.fits").status_code == 404
    assert get("..").status_code in (400, 404)
    assert get("x%3By.fits").status_code == 400


def test_file_download_from_s3(
    tmp_path: Path, db_url: str, s3_endpoint: str, s3_bucket: str
) -> None:
    config = make_test_config(
        tmp_path, db_url, using_s3="true", s3_bucket_name=s3_bucket, s3_endpoint_url=s3_endpoint
    )
    data = os.urandom(100_000)
    source = tmp_path / "N20251123S0001.fits"
    source.write_bytes(data)
    S3Store(s3_bucket, s3_endpoint).store(source, "N20251123S0001.fits", "2025")
    from fits_storage.db.engine import make_engine, make_session_factory

    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        add_diskfile(session, "N20251123S0001.fits", "2025", data=data)
        session.commit()
    engine.dispose()
    with ServerThread(config) as running:
        answer = requests.get(f"{running.url}/file/N20251123S0001.fits")
        assert answer.status_code == 200 and answer.content == data
        answer = requests.get(f"{running.url}/file/N20251123S0001.fits.bz2")
        assert bz2.decompress(answer.content) == data


def test_healthz(server: ServerThread) -> None:
    answer = requests.get(f"{server.url}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok"}


# -- the command ---------------------------------------------------------------------------------


def test_fits_storage_web_command_serves_uploads(archive_config: Config) -> None:
    port = free_port()
    env = config_environ(archive_config)
    process = subprocess.Popen(
        [sys.executable, "-m", "fits_storage.cli.web", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "fits_storage_web did not start"
            time.sleep(0.1)
        body = fits_bytes(b"abc")
        answer = requests.post(f"{url}/upload_file/N1.fits", data=body, cookies=COOKIES)
        assert answer.status_code == 200, answer.text
        assert (archive_config.upload_staging_dir / "N1.fits").read_bytes() == body
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0].decode()
    assert process.returncode == 0, output  # a clean stop on SIGTERM
    assert "received N1.fits" in output


def test_local_store_is_the_default(archive_config: Config) -> None:
    from fits_storage.storage import get_store

    assert isinstance(get_store(archive_config), LocalStore)
