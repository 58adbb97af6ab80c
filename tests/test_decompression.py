"""Bounded decompression (DESIGN §4): a bz2 bomb costs neither memory nor disk.

The bomb is made here, at test time: a valid FITS header followed by zeros, 654 MiB in all
(more than twice the 300 MB the processes may take, so holding it whole would fail the test),
one bz2 stream of about 700 bytes. Compressing that many zeros would take bzip2 many seconds,
so one block of zeros is compressed and the stream is assembled from copies of it. The ingest
worker and the web server each run as real child processes (the real commands), and their peak
RSS is read from the kernel's accounting of the child (``os.wait4``), not guessed.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.ingest import IngestError, ingest_file
from fits_storage.ingest.digest import digest_file
from fits_storage.ingest.ingest import decompress_staging_dir
from fits_storage.orm import DiskFile
from fits_storage.orm.queues import IngestQueue
from fits_storage.queues import get_queue
from fits_storage.queues.errors import TransientError
from fits_storage.storage.compression import (
    CompressedDataError,
    TooLarge,
    decompressed,
)
from tests.conftest import config_environ, make_test_config
from tests.processes import ROOT, wait_for

BLOCK = 2880
ZEROS_PER_BZ2_BLOCK = BLOCK * 14_000  # 40,320,000 zeros: one bz2 block (900 kB after its RLE)
BOMB_COPIES = 17
BOMB_BYTES = BLOCK + ZEROS_PER_BZ2_BLOCK * BOMB_COPIES  # 685,442,880 bytes, whole FITS blocks
BOMB_NAME = "N20251123S0666.fits.bz2"
RSS_LIMIT = 300 * 1024 * 1024
BZ2_BLOCK_MAGIC = 0x314159265359
BZ2_END_MAGIC = 0x177245385090


def fits_header(data_bytes: int) -> bytes:
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    1",
        f"NAXIS1  = {data_bytes:>20}",
        "INSTRUME= 'GMOS-N  '",
        "OBSTYPE = 'OBJECT  '",
        "END",
    ]
    header = b"".join(card.ljust(80).encode() for card in cards)
    return header.ljust(BLOCK, b" ")


def bz2_block(data: bytes) -> tuple[int, int, int]:
    """The one block of ``bz2.compress(data)``: its bits (as an int), their count, its CRC."""
    stream = bz2.compress(data, 9)
    bits, total = int.from_bytes(stream, "big"), len(stream) * 8

    def field(start: int, length: int) -> int:
        return (bits >> (total - start - length)) & ((1 << length) - 1)

    for pad in range(8):  # the stream ends: end magic, combined CRC (a lone block's), 0-7 pad bits
        length = total - 32 - 80 - pad
        if field(32 + length, 48) == BZ2_END_MAGIC and field(32 + length + 48, 32) == field(80, 32):
            assert field(32, 48) == BZ2_BLOCK_MAGIC
            return field(32, length), length, field(80, 32)
    raise AssertionError("not a one-block bz2 stream")


def write_bomb(dest: Path, total: int) -> Path:
    """A FITS file of ``total`` bytes (header, then zeros) as one bz2 stream: the header's block,
    then copies of one block of zeros, bit-aligned, closed by the stream's combined CRC."""
    copies, left = divmod(total - BLOCK, ZEROS_PER_BZ2_BLOCK)
    assert left == 0, "the zeros must fill whole bz2 blocks"
    blocks = [bz2_block(fits_header(total - BLOCK))]
    blocks += [bz2_block(bytes(ZEROS_PER_BZ2_BLOCK))] * copies
    bits, length, combined = int.from_bytes(b"BZh9", "big"), 32, 0
    for block, size, crc in blocks:
        bits, length = (bits << size) | block, length + size
        combined = (((combined << 1) | (combined >> 31)) & 0xFFFFFFFF) ^ crc
    bits, length = (((bits << 48) | BZ2_END_MAGIC) << 32) | combined, length + 80
    pad = -length % 8
    dest.write_bytes((bits << pad).to_bytes((length + pad) // 8, "big"))
    return dest


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bomb(tmp_path_factory.mktemp("bomb") / BOMB_NAME, BOMB_BYTES)


def child_environ(config: Config, **keys: str) -> dict[str, str]:
    env = config_environ(config)
    env["PYTHONPATH"] = str(ROOT)
    env.update({f"FITS_STORAGE_{k.upper()}": v for k, v in keys.items()})
    return env


def wait_rss(process: subprocess.Popen) -> tuple[int, int]:
    """Exit status and peak RSS in bytes of a finished child, from the kernel (Linux: KiB)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss * 1024


def queue_rows(factory: sessionmaker[Session]) -> list[tuple[str, str, str | None]]:
    with factory() as session:
        rows = session.execute(select(IngestQueue.filename, IngestQueue.status, IngestQueue.error))
        return [tuple(row) for row in rows]


def diskfiles(factory: sessionmaker[Session]) -> list[DiskFile]:
    with factory() as session:
        return list(session.scalars(select(DiskFile)))


def queue_ingest(factory: sessionmaker[Session], config: Config, name: str) -> None:
    with factory() as session:
        get_queue("ingest", config).add(session, name, "")
        session.commit()


def run_ingest_worker(config: Config, **keys: str) -> tuple[int, int, str]:
    """``service_ingest_queue --empty`` as a child: exit status, peak RSS, stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fits_storage.cli.service_ingest_queue", "--empty"],
        env=child_environ(config, **keys),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = process.stderr.read()  # until the child closes it (exits)
    code, rss = wait_rss(process)
    return code, rss, stderr


# -- the decompressor itself ------------------------------------------------------------------


def test_blocks_are_bounded_whatever_one_chunk_expands_to() -> None:
    packed = bz2.compress(bytes(64 << 20))  # ~100 bytes -> 64 MiB in one decompress() call
    sizes = [len(b) for b in decompressed([packed], "bz2", block=1 << 20)]
    assert max(sizes) <= 1 << 20
    assert sum(sizes) == 64 << 20


def test_ceiling_stops_the_stream_before_handing_out_more() -> None:
    handed = 0
    with pytest.raises(TooLarge, match="more than 10485760 bytes"):
        for block in decompressed([bz2.compress(bytes(64 << 20))], "bz2", limit=10 << 20):
            handed += len(block)
    assert handed <= 10 << 20


@pytest.mark.parametrize("kind", ["bz2", "gz"])
def test_multi_stream_corrupt_truncated_and_empty(kind: str) -> None:
    pack = bz2.compress if kind == "bz2" else gzip.compress
    first, second = os.urandom(3_000_000), b"B" * 5_000_000
    joined = pack(first) + pack(second)
    chunks = [joined[i : i + 65536] for i in range(0, len(joined), 65536)]
    assert b"".join(decompressed(chunks, kind, block=4096)) == first + second
    assert b"".join(decompressed([joined], kind, limit=8_000_000)) == first + second
    with pytest.raises(CompressedDataError, match="ends early"):
        b"".join(decompressed([joined[:-20]], kind))
    with pytest.raises(CompressedDataError, match="corrupt"):
        b"".join(decompressed([joined[:100] + b"\xff" * 50 + joined[150:]], kind))
    with pytest.raises(CompressedDataError, match="empty"):
        b"".join(decompressed([], kind))


def test_digest_writes_bounded_blocks_to_its_sink(tmp_path: Path) -> None:
    """Before: one chunk of a bomb went to the sink (and memory) whole."""

    class Recorder:
        largest = total = 0

        def write(self, data: bytes) -> int:
            self.largest = max(self.largest, len(data))
            self.total += len(data)
            return len(data)

    source = tmp_path / "zeros.fits.bz2"
    source.write_bytes(bz2.compress(bytes(64 << 20)))
    sink = Recorder()
    digest = digest_file(source, "bz2", sink)
    assert digest.data_size == sink.total == 64 << 20
    assert sink.largest <= 1 << 20


# -- ingest: the ceiling and the staging room --------------------------------------------------


def test_bomb_past_the_ceiling_fails_with_a_clear_reason(
    bomb: Path, tmp_path: Path, db_url: str, session: Session
) -> None:
    config = make_test_config(tmp_path, db_url, max_uncompressed_bytes="64M")
    os.link(bomb, config.storage_root / BOMB_NAME)
    with pytest.raises(IngestError, match=r"more than 67108864 bytes \(max_uncompressed_bytes\)"):
        ingest_file(session, config, BOMB_NAME)
    session.rollback()
    assert list(decompress_staging_dir(config).iterdir()) == []
    assert session.scalars(select(DiskFile)).all() == []


@pytest.fixture
def small_staging(tmp_path: Path, db_url: str) -> Iterator[Config]:
    """A configuration whose decompression staging folder is a 32 MiB tmpfs of its own."""
    if os.geteuid() != 0:
        pytest.skip("SKIPPING: mounting a small tmpfs for the staging folder needs root")
    config = make_test_config(tmp_path, db_url, queue_max_attempts="1")
    folder = decompress_staging_dir(config)
    folder.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)], check=True)
    try:
        yield config
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_staging_smaller_than_the_expansion_fails_the_entry_and_leaves_nothing(
    bomb: Path, small_staging: Config, session_factory: sessionmaker[Session]
) -> None:
    config = small_staging
    os.link(bomb, config.storage_root / BOMB_NAME)
    queue_ingest(session_factory, config, BOMB_NAME)
    code, _, stderr = run_ingest_worker(config)
    assert code in (0, 1), stderr
    [(name, status, error)] = queue_rows(session_factory)
    assert (name, status) == (BOMB_NAME, "failed")
    assert "not enough room to decompress in" in error, error
    folder = decompress_staging_dir(config)
    assert os.listdir(folder) == []
    st = os.statvfs(folder)
    assert st.f_bfree == st.f_blocks  # nothing left on the small disk
    assert diskfiles(session_factory) == []


def test_no_room_at_all_is_retried_not_a_bad_file(
    bomb: Path, small_staging: Config, session: Session
) -> None:
    config = small_staging
    os.link(bomb, config.storage_root / BOMB_NAME)
    folder = decompress_staging_dir(config)
    filler = folder / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(bytes(1 << 20))
                out.flush()
        except OSError:
            pass
    try:
        with pytest.raises(TransientError, match="no room to decompress"):
            ingest_file(session, config, BOMB_NAME)
        session.rollback()
        assert os.listdir(folder) == ["filler"]
    finally:
        filler.unlink()


# -- the bomb through the real commands: peak RSS of each process -----------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_bz2_bomb_ingest_and_get_file_keep_peak_rss_under_300_mb(
    bomb: Path, tmp_path: Path, pg_db_url: str
) -> None:
    """On PostgreSQL only: the database plays no part in the memory a bomb takes, and each run
    costs seconds of decompressing and hashing 654 MiB twice (the rest of this file runs on
    both)."""
    config = make_test_config(tmp_path, pg_db_url)  # the default ceiling (4G) admits it
    engine = make_engine(pg_db_url)
    try:
        ingest_and_serve(bomb, config, make_session_factory(engine))
    finally:
        engine.dispose()


def ingest_and_serve(bomb: Path, config: Config, session_factory: sessionmaker[Session]) -> None:
    os.link(bomb, config.storage_root / BOMB_NAME)
    assert bomb.stat().st_size < 4096

    queue_ingest(session_factory, config, BOMB_NAME)
    code, ingest_rss, stderr = run_ingest_worker(config)
    assert code == 0, stderr
    assert queue_rows(session_factory) == []
    [diskfile] = diskfiles(session_factory)
    assert (diskfile.filename, diskfile.data_size) == (BOMB_NAME, BOMB_BYTES)
    assert os.listdir(decompress_staging_dir(config)) == []
    assert ingest_rss < RSS_LIMIT, f"ingest worker peak RSS {ingest_rss / 2**20:.0f} MiB"

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    web = subprocess.Popen(
        [sys.executable, "-m", "fits_storage.cli.web", "--host", "127.0.0.1", "--port", str(port)],
        env=child_environ(config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: healthy(url), 30, "the web application to answer")
        digest, size = hashlib.md5(), 0
        with requests.get(f"{url}/file/{BOMB_NAME.removesuffix('.bz2')}", stream=True) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-length"] == str(BOMB_BYTES)
            for block in answer.iter_content(1 << 20):
                digest.update(block)
                size += len(block)
        assert (size, digest.hexdigest()) == (BOMB_BYTES, diskfile.data_md5)
    finally:
        web.terminate()
    code, rss = wait_rss(web)
    print(f"peak RSS: ingest worker {ingest_rss / 2**20:.0f} MiB, web {rss / 2**20:.0f} MiB")
    assert rss < RSS_LIMIT, f"web server peak RSS {rss / 2**20:.0f} MiB"
