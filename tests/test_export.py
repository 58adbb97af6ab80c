"""The exporter against a small real HTTP server on loopback (no mocks).

The server plays an archive whose behaviour each test chooses: normal, already holding the
file, ingest pending, refusing (403), failing (500/503), too slow, echoing a wrong md5 or an
unreadable answer, or closing the connection before reading the body.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.export import (
    AUTH_COOKIE,
    DestinationClient,
    DestinationRefused,
    DestinationUnavailable,
    Exporter,
    ExportFailed,
    ExportSettings,
    bz2_chunks,
    spool_compressed,
)
from fits_storage.export.spool import SPOOL_PREFIX, clean_spool
from fits_storage.orm.file import DiskFile, File
from fits_storage.orm.queues import ExportQueue
from fits_storage.queues import TransientError
from fits_storage.storage import StoredFile
from tests.conftest import config_environ, make_test_config

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "s3cret-export-cookie"


# -- a small archive on loopback --------------------------------------------------------------


@dataclass
class FakeArchive:
    """What the server holds and how it should misbehave."""

    files: dict[str, dict] = field(default_factory=dict)  # remote filename -> jsonfilelist item
    received: dict[str, bytes] = field(default_factory=dict)  # "path/filename" -> bytes
    requests: list[tuple[str, str]] = field(default_factory=list)
    list_status: int = 200
    upload_status: int = 200
    upload_message: str = ""
    delay: float = 0.0
    echo_md5: str | None = None
    echo_size: int | None = None
    echo_body: bytes | None = None
    close_early: bool = False
    retry_after: str | None = None
    on_post: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self) -> int:
        return sum(1 for method, _ in self.requests if method == "POST")


def make_handler(archive: FakeArchive) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if archive.retry_after is not None and status in (429, 503):
                self.send_header("Retry-After", archive.retry_after)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            archive.requests.append(("GET", self.path))
            if archive.delay:
                time.sleep(archive.delay)
            if archive.list_status != 200:
                self._answer(archive.list_status, json.dumps({"detail": "list broke"}).encode())
                return
            prefix = "/jsonfilelist/present/filename="
            if not self.path.startswith(prefix):
                self._answer(404, b'{"detail": "Not Found"}')
                return
            name = unquote(self.path[len(prefix) :])
            item = archive.files.get(name)
            self._answer(200, json.dumps([item] if item else []).encode())

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            archive.requests.append(("POST", url.path))
            length = int(self.headers.get("Content-Length", 0))
            if self.headers.get("Cookie") != f"{AUTH_COOKIE}={COOKIE}":
                self._answer(403, b'{"detail": "upload authentication failed"}')
                self.close_connection = True
                return
            if archive.close_early:
                self._answer(archive.upload_status, b'{"detail": "not reading that"}')
                self.close_connection = True
                return
            digest, data, left = hashlib.md5(), bytearray(), length
            while left:
                block = self.rfile.read(min(left, 1 << 20))
                if not block:
                    return
                digest.update(block)
                data += block
                left -= len(block)
            if archive.delay:
                time.sleep(archive.delay)
            if archive.on_post:
                archive.on_post()
            stated = parse_qs(url.query).get("md5", [""])[0]
            if stated != self.headers.get("Content-MD5") or stated != digest.hexdigest():
                self._answer(400, b'{"detail": "md5 mismatch"}')
                return
            if archive.upload_status != 200:
                message = archive.upload_message or "it broke"
                self._answer(archive.upload_status, json.dumps({"detail": message}).encode())
                return
            parts = unquote(url.path).split("/")[2:]
            filename, path = parts[-1], "/".join(parts[:-1])
            with archive.lock:
                archive.received[f"{path}/{filename}" if path else filename] = bytes(data)
            if archive.echo_body is not None:
                self._answer(200, archive.echo_body, "text/html")
                return
            answer = {
                "filename": filename,
                "path": path,
                "size": archive.echo_size if archive.echo_size is not None else len(data),
                "md5": archive.echo_md5 or digest.hexdigest(),
            }
            self._answer(200, json.dumps([answer]).encode())

    return Handler


@pytest.fixture
def archive() -> Iterator[tuple[FakeArchive, str]]:
    state = FakeArchive()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- files and database rows ------------------------------------------------------------------


def fits_like(size: int, seed: int = 1) -> bytes:
    """Compressible bytes shaped like FITS: an ASCII header, then slowly varying 16-bit pixels."""
    header = "".join(f"KEY{i:05d}= {i:20d} / generated card{' ' * 30}"[:80] for i in range(36))
    body = bytearray()
    value = seed
    while len(body) < size:
        value = (value * 1103515245 + 12345) & 0x7FFFFFFF
        row = bytes((1000 + (value >> (i % 16)) % 37 + i // 64) & 0xFF for i in range(2880))
        body += row
    return (header.encode() + bytes(body))[:size]


def add_file(
    config: Config, session: Session, filename: str, data: bytes, path: str = ""
) -> DiskFile:
    """Write a file into storage_root and record it as ingest would."""
    target = config.storage_root / path / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    stat = target.stat()
    compressed = filename.endswith(".bz2")
    raw = bz2.decompress(data) if compressed else data
    name = filename[:-4] if compressed else filename
    file = session.scalars(select(File).where(File.name == name)).first() or File(name=name)
    diskfile = DiskFile(
        file=file,
        filename=filename,
        path=path,
        present=True,
        canonical=True,
        file_size=len(data),
        file_md5=hashlib.md5(data).hexdigest(),
        lastmod=datetime.fromtimestamp(stat.st_mtime),
        mtime_ns=stat.st_mtime_ns,
        compressed=compressed,
        data_size=len(raw),
        data_md5=hashlib.md5(raw).hexdigest(),
    )
    session.add(diskfile)
    session.commit()
    return diskfile


@pytest.fixture
def export_config(tmp_path: Path, db_url: str) -> Config:
    return make_test_config(tmp_path, db_url, export_auth_cookie=COOKIE)


def make_exporter(config: Config, tmp_path: Path, **settings: float) -> Exporter:
    options = {"connect_timeout": 2.0, "read_timeout": 2.0, "backoff_base": 0.5, "backoff_cap": 2}
    options.update(settings)
    return Exporter(config, ExportSettings(spool_dir=tmp_path / "spool", **options))


def spool_files(tmp_path: Path) -> list[Path]:
    spool = tmp_path / "spool"
    return list(spool.iterdir()) if spool.is_dir() else []


# -- compression ------------------------------------------------------------------------------


def test_bz2_chunks_matches_one_shot_compression(tmp_path: Path) -> None:
    data = fits_like(3_000_000)
    source = tmp_path / "N20251123S0001.fits"
    source.write_bytes(data)
    with open(source, "rb") as src:
        streamed = b"".join(bz2_chunks(src, chunk=100_000))
    assert streamed == bz2.compress(data, 9)
    payload = spool_compressed(source, tmp_path / "spool")
    assert payload.path.read_bytes() == streamed
    assert payload.size == len(streamed)
    assert payload.md5 == hashlib.md5(streamed).hexdigest()
    assert payload.source == StoredFile(len(data), hashlib.md5(data).hexdigest())
    payload.discard()
    assert not payload.path.exists() and source.exists()


def test_clean_spool_removes_only_files_of_dead_exporters(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = spool / f"{SPOOL_PREFIX}{dead.stdout.strip()}-abc.bz2"
    live = spool / f"{SPOOL_PREFIX}{os.getpid()}-def.bz2"
    other = spool / "unrelated.txt"
    for path in (stale, live, other):
        path.write_bytes(b"x")
    assert clean_spool(spool) == 1
    assert not stale.exists() and live.exists() and other.exists()


# -- the exporter -----------------------------------------------------------------------------


def test_exports_compressed_and_verified(export_config, session, archive, tmp_path) -> None:
    state, url = archive
    data = fits_like(2_500_000)
    diskfile = add_file(export_config, session, "N20251123S0042.fits", data, path="20251123")
    exporter = make_exporter(export_config, tmp_path)

    outcome = exporter.export(session, "N20251123S0042.fits", "20251123", url)

    assert outcome.action == "sent"
    assert outcome.remote_name == "N20251123S0042.fits.bz2"
    sent = state.received["20251123/N20251123S0042.fits.bz2"]
    assert bz2.decompress(sent) == data
    assert hashlib.md5(bz2.decompress(sent)).hexdigest() == diskfile.data_md5
    assert outcome.bytes_sent == len(sent) < len(data) / 2
    assert ("GET", "/jsonfilelist/present/filename=N20251123S0042.fits.bz2") in state.requests
    assert spool_files(tmp_path) == []
    assert (export_config.storage_root / "20251123" / "N20251123S0042.fits").read_bytes() == data


def test_bz2_file_is_sent_as_it_is(export_config, session, archive, tmp_path) -> None:
    state, url = archive
    packed = bz2.compress(fits_like(500_000), 9)
    add_file(export_config, session, "S20251124S0007.fits.bz2", packed)
    outcome = make_exporter(export_config, tmp_path).export(
        session, "S20251124S0007.fits.bz2", "", url
    )
    assert outcome.remote_name == "S20251124S0007.fits.bz2"
    assert state.received["S20251124S0007.fits.bz2"] == packed
    assert spool_files(tmp_path) == []


def test_same_data_md5_at_destination_sends_nothing(export_config, session, archive, tmp_path):
    state, url = archive
    diskfile = add_file(export_config, session, "N20251123S0043.fits", fits_like(100_000))
    state.files["N20251123S0043.fits.bz2"] = {
        "filename": "N20251123S0043.fits.bz2",
        "data_md5": diskfile.data_md5,
        "pending_ingest": False,
    }
    outcome = make_exporter(export_config, tmp_path).export(session, "N20251123S0043.fits", "", url)
    assert outcome.action == "already there"
    assert state.posts() == 0


def test_different_md5_at_destination_is_replaced(export_config, session, archive, tmp_path):
    state, url = archive
    add_file(export_config, session, "N20251123S0044.fits", fits_like(100_000))
    state.files["N20251123S0044.fits.bz2"] = {"data_md5": "0" * 32, "pending_ingest": False}
    outcome = make_exporter(export_config, tmp_path).export(session, "N20251123S0044.fits", "", url)
    assert outcome.action == "sent" and state.posts() == 1


def test_pending_ingest_retries_shortly_without_counting(
    export_config, session, archive, tmp_path
) -> None:
    state, url = archive
    add_file(export_config, session, "N20251123S0045.fits", fits_like(100_000))
    state.files["N20251123S0045.fits.bz2"] = {"data_md5": "1" * 32, "pending_ingest": True}
    exporter = make_exporter(export_config, tmp_path, pending_delay=7.0)
    with pytest.raises(TransientError) as caught:
        exporter.export(session, "N20251123S0045.fits", "", url)
    assert caught.value.delay == 7.0 and caught.value.counts is False
    assert state.posts() == 0
    assert exporter.health.wait_left(url) == 0  # the destination itself is fine


def test_refusal_is_permanent_with_the_servers_message(
    export_config, session, archive, tmp_path
) -> None:
    state, url = archive
    add_file(export_config, session, "N20251123S0046.fits", fits_like(100_000))
    wrong = export_config.replace(export_auth_cookie="not-the-secret")
    with pytest.raises(ExportFailed, match="403.*upload authentication failed"):
        make_exporter(wrong, tmp_path).export(session, "N20251123S0046.fits", "", url)
    assert state.received == {}
    assert spool_files(tmp_path) == []


def test_refusal_before_the_body_is_read_is_still_a_refusal(
    export_config, session, archive, tmp_path
) -> None:
    state, url = archive
    state.close_early, state.upload_status = True, 413
    add_file(export_config, session, "N20251123S0047.fits", os.urandom(8_000_000))
    with pytest.raises(ExportFailed, match="413"):
        make_exporter(export_config, tmp_path).export(session, "N20251123S0047.fits", "", url)


def test_server_error_on_upload_retries_that_file_only(
    export_config, session, archive, tmp_path
) -> None:
    state, url = archive
    state.upload_status, state.upload_message = 500, "disk on fire"
    add_file(export_config, session, "N20251123S0048.fits", fits_like(100_000))
    exporter = make_exporter(export_config, tmp_path)
    with pytest.raises(TransientError, match="500.*disk on fire") as caught:
        exporter.export(session, "N20251123S0048.fits", "", url)
    assert caught.value.counts is False and caught.value.delay is not None
    assert exporter.health.wait_left(url) == 0
    state.upload_status = 200
    assert exporter.export(session, "N20251123S0048.fits", "", url).action == "sent"


def test_unavailable_destination_backs_off_as_a_whole(
    export_config, session, archive, tmp_path
) -> None:
    state, url = archive
    state.list_status = 503
    add_file(export_config, session, "N20251123S0049.fits", fits_like(100_000))
    add_file(export_config, session, "N20251123S0050.fits", fits_like(100_000, seed=2))
    exporter = make_exporter(export_config, tmp_path, backoff_base=1.0, backoff_cap=1.0)

    with pytest.raises(TransientError, match="503") as first:
        exporter.export(session, "N20251123S0049.fits", "", url)
    assert first.value.counts is False and 0.4 <= first.value.delay <= 1.0
    asked = len(state.requests)
    with pytest.raises(TransientError, match="unavailable") as second:
        exporter.export(session, "N20251123S0050.fits", "", url)
    assert second.value.counts is False and second.value.delay > 0
    assert len(state.requests) == asked  # skipped without touching the network

    state.list_status = 200
    time.sleep(1.05)
    assert exporter.export(session, "N20251123S0050.fits", "", url).action == "sent"
    assert exporter.health.failures(url) == 0


def test_retry_after_is_respected_up_to_the_cap(export_config, session, archive, tmp_path):
    state, url = archive
    state.list_status, state.retry_after = 429, "30"
    add_file(export_config, session, "N20251123S0051.fits", fits_like(10_000))
    exporter = make_exporter(export_config, tmp_path, backoff_base=1.0, backoff_cap=20.0)
    with pytest.raises(TransientError) as caught:
        exporter.export(session, "N20251123S0051.fits", "", url)
    assert caught.value.delay == 20.0


def test_connection_refused_is_transient_and_fast(export_config, session, tmp_path) -> None:
    add_file(export_config, session, "N20251123S0052.fits", fits_like(10_000))
    url = f"http://127.0.0.1:{free_port()}"
    exporter = make_exporter(export_config, tmp_path)
    started = time.monotonic()
    with pytest.raises(TransientError, match="cannot connect") as caught:
        exporter.export(session, "N20251123S0052.fits", "", url)
    assert time.monotonic() - started < 2
    assert caught.value.counts is False


def test_timeout_is_transient(export_config, session, archive, tmp_path) -> None:
    state, url = archive
    state.delay = 1.5
    add_file(export_config, session, "N20251123S0053.fits", fits_like(10_000))
    exporter = make_exporter(export_config, tmp_path, read_timeout=0.5)
    with pytest.raises(TransientError, match="timed out") as caught:
        exporter.export(session, "N20251123S0053.fits", "", url)
    assert caught.value.counts is False
    assert exporter.health.wait_left(url) > 0


@pytest.mark.parametrize(
    ("field_name", "value", "match"),
    [
        ("echo_md5", "f" * 32, "confirms"),
        ("echo_size", 3, "confirms"),
        ("echo_body", b"<html>thanks!</html>", "unreadable"),
    ],
)
def test_unconfirmed_upload_is_a_failure(
    export_config, session, archive, tmp_path, field_name, value, match
) -> None:
    state, url = archive
    setattr(state, field_name, value)
    add_file(export_config, session, "N20251123S0054.fits", fits_like(50_000))
    with pytest.raises(ExportFailed, match=match):
        make_exporter(export_config, tmp_path).export(session, "N20251123S0054.fits", "", url)
    assert spool_files(tmp_path) == []


def test_stale_md5_is_refused_but_a_changed_file_is_sent_again(
    export_config, session, archive, tmp_path
) -> None:
    state, url = archive
    packed = bz2.compress(fits_like(200_000), 9)
    diskfile = add_file(export_config, session, "N20251123S0055.fits.bz2", packed)
    diskfile.file_md5 = "e" * 32  # the database's md5 no longer describes the bytes
    session.commit()
    exporter = make_exporter(export_config, tmp_path)
    with pytest.raises(ExportFailed, match="400.*md5 mismatch"):
        exporter.export(session, "N20251123S0055.fits.bz2", "", url)

    source = export_config.storage_root / "N20251123S0055.fits.bz2"

    def rewrite() -> None:  # the file is replaced while the upload is under way
        source.write_bytes(packed[::-1])

    state.on_post = rewrite
    with pytest.raises(TransientError, match="changed while it was being sent") as caught:
        exporter.export(session, "N20251123S0055.fits.bz2", "", url)
    assert caught.value.counts is True


def test_a_file_truncated_after_ingest_is_never_exported(
    export_config, session, archive, tmp_path
) -> None:
    """Before: 14 bytes of bz2 of the empty file were sent, and "md5 … confirmed" logged."""
    state, url = archive
    diskfile = add_file(export_config, session, "N20251123S0060.fits", fits_like(100_000))
    (export_config.storage_root / "N20251123S0060.fits").write_bytes(b"")
    with pytest.raises(ExportFailed) as caught:
        make_exporter(export_config, tmp_path).export(session, "N20251123S0060.fits", "", url)
    message = str(caught.value)
    assert f"does not match its present diskfile {diskfile.id} (0 bytes where 100000" in message
    assert "not exported" in message
    assert state.posts() == 0 and state.received == {}
    assert spool_files(tmp_path) == []


@pytest.mark.parametrize("name", ["N20251123S0061.fits", "N20251123S0062.fits.bz2"])
def test_same_size_other_bytes_are_never_exported(
    export_config, session, archive, tmp_path, name: str
) -> None:
    """Rewritten since ingest with the same size (and, for the plain file, even the recorded
    mtime): the md5 of what would be sent shows it, and nothing is sent."""
    state, url = archive
    good, bad = fits_like(300_000, seed=1), fits_like(300_000, seed=2)
    if name.endswith(".bz2"):
        good, bad = bz2.compress(good), bz2.compress(bad)
        bad = bad[: len(good)].ljust(len(good), b"\0")
    diskfile = add_file(export_config, session, name, good)
    target = export_config.storage_root / name
    target.write_bytes(bad)
    if not name.endswith(".bz2"):
        os.utime(target, ns=(diskfile.mtime_ns, diskfile.mtime_ns))
    with pytest.raises(ExportFailed, match=f"does not match its present diskfile {diskfile.id}"):
        make_exporter(export_config, tmp_path).export(session, name, "", url)
    assert state.posts() == 0 and state.received == {}
    assert spool_files(tmp_path) == []
    # Put back as ingested: sent, and confirmed.
    target.write_bytes(good)
    outcome = make_exporter(export_config, tmp_path).export(session, name, "", url)
    assert outcome.action == "sent" and state.posts() == 1


def test_missing_diskfile_or_file_fails(export_config, session, archive, tmp_path) -> None:
    _, url = archive
    exporter = make_exporter(export_config, tmp_path)
    with pytest.raises(ExportFailed, match="no present diskfile"):
        exporter.export(session, "N20251123S0099.fits", "", url)
    add_file(export_config, session, "N20251123S0098.fits", b"SIMPLE")
    (export_config.storage_root / "N20251123S0098.fits").unlink()
    with pytest.raises(ExportFailed, match="is not there"):
        exporter.export(session, "N20251123S0098.fits", "", url)


def test_client_quotes_path_and_name() -> None:
    client = DestinationClient("https://archive.example.org/", "x")
    assert (
        client.upload_url("2025/a b", "N1 #.fits.bz2")
        == "https://archive.example.org/upload_file/2025/a%20b/N1%20%23.fits.bz2"
    )
    assert client.upload_url("", "N1.fits.bz2").endswith("/upload_file/N1.fits.bz2")


def test_client_sorts_list_failures(archive) -> None:
    state, url = archive
    client = DestinationClient(url, COOKIE, connect_timeout=1, read_timeout=1)
    state.list_status = 404
    with pytest.raises(DestinationRefused, match="404"):
        client.file_list("x.fits.bz2")
    state.list_status = 500
    with pytest.raises(DestinationUnavailable, match="500"):
        client.file_list("x.fits.bz2")


# -- the commands -----------------------------------------------------------------------------


def environ(config: Config, destinations: list[str]) -> dict[str, str]:
    env = config_environ(config.replace(export_destinations=tuple(destinations)))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_command(module: str, config: Config, destinations: list[str], *args: str):
    return subprocess.run(
        [sys.executable, "-m", f"fits_storage.cli.{module}", *args],
        env=environ(config, destinations),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_add_to_export_queue_selects_present_files(export_config, session) -> None:
    for n in range(1, 5):
        add_file(export_config, session, f"N20251123S000{n}.fits", fits_like(1000, seed=n))
    add_file(export_config, session, "N20251124S0001.fits", fits_like(1000), path="later")
    gone = add_file(export_config, session, "N20251122S0001.fits", fits_like(1000))
    gone.present = False
    session.commit()
    dests = ["http://a.example", "http://b.example"]

    done = run_command("add_to_export_queue", export_config, dests, "--file-re", "20251123")
    assert done.returncode == 0, done.stderr
    assert "4 file(s) selected for 2 destination(s)" in done.stdout
    assert "8 entries queued, 0 already waiting" in done.stdout

    again = run_command(
        "add_to_export_queue",
        export_config,
        dests,
        "--filename",
        "N20251123S0001.fits",
        "--filename",
        "N20251122S0001.fits",
        "--destination",
        "http://c.example",
    )
    assert again.returncode == 0, again.stderr
    assert "1 file(s) selected for 1 destination(s)" in again.stdout
    assert "N20251122S0001.fits: no present file" in again.stderr

    by_path = run_command("add_to_export_queue", export_config, dests, "--path", "later")
    assert "1 file(s) selected" in by_path.stdout and "2 entries queued" in by_path.stdout

    rows = session.execute(select(ExportQueue.filename, ExportQueue.path, ExportQueue.destination))
    entries = set(rows)
    assert len(entries) == 11
    assert ("N20251123S0001.fits", "", "http://c.example") in entries
    assert ("N20251124S0001.fits", "later", "http://b.example") in entries
    assert not any(name == "N20251122S0001.fits" for name, _, _ in entries)

    today = datetime.now(UTC).strftime("%Y%m%d")
    add_file(export_config, session, f"N{today}S0001.fits", fits_like(1000))
    recent = run_command("add_to_export_queue", export_config, dests, "--file-re", "today")
    assert "1 file(s) selected for 2 destination(s)" in recent.stdout, recent.stderr

    nothing = run_command("add_to_export_queue", export_config, dests)
    assert nothing.returncode == 2 and "--file-re" in nothing.stderr


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A destination that accepts connections and never answers (a hung server, a bad link)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("down", ["refused", "hung"])
def test_service_export_queue_drains_the_queue(
    export_config, session, archive, black_hole, tmp_path, down
) -> None:
    state, url = archive
    dead = f"http://127.0.0.1:{free_port()}" if down == "refused" else black_hole
    names = [f"N20251123S01{n:02d}.fits" for n in range(6)]
    for n, name in enumerate(names):
        add_file(export_config, session, name, fits_like(200_000, seed=n))
    add = run_command("add_to_export_queue", export_config, [url, dead], "--file-re", "S01")
    assert "12 entries queued" in add.stdout, add.stderr

    done = run_command(
        "service_export_queue",
        export_config,
        [url, dead],
        "--empty",
        "--name",
        "t1",
        "--spool-dir",
        str(tmp_path / "spool"),
        "--backoff-base",
        "30",
        "--timeout",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert sorted(state.received) == sorted(f"{n}.bz2" for n in names)
    for name in names:
        data = (export_config.storage_root / name).read_bytes()
        assert bz2.decompress(state.received[f"{name}.bz2"]) == data

    session.expire_all()
    left = session.execute(
        select(ExportQueue.destination, ExportQueue.status, ExportQueue.attempts)
    ).all()
    # The dead destination: every entry still waiting, none failed, no attempt used up.
    assert len(left) == len(names)
    assert {(d, s, a) for d, s, a in left} == {(dead, "waiting", 0)}
    # Only one probe reached the network; it parked the rest of that destination's backlog in
    # one statement, so they were never claimed: six sent, one probe.
    assert sum("unavailable (1 in a row)" in line for line in done.stderr.splitlines()) == 1
    assert sum(" processing " in line for line in done.stderr.splitlines()) == 7, done.stderr
    assert spool_files(tmp_path) == []
