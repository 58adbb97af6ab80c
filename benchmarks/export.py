"""Export throughput over loopback, beside the ceilings measured in the same run.

Usage: ``python benchmarks/export.py [--sizes 100,200,400] [--server auto|archive|plain]``

For each generated FITS-like file (16-bit pixels: bias, gradient, read noise, a few stars; it
compresses like raw detector data) it measures, each in a fresh process:

* ``bz2 ceiling``: bz2-compressing the same bytes (level 9, as the exporter) with nothing else;
* ``export``: the exporter's whole path for that file (ask the destination, compress to the spool
  while hashing, POST with the md5 stated, check the answer), to a real server on loopback;
* for the ``.bz2`` form of the same file: a plain streaming HTTP POST of its bytes (1 MiB
  writes, no hashing) to the same server, beside the exporter sending it.

MB/s are of uncompressed data for ``.fits`` files and of file bytes for ``.bz2`` files. Peak RSS
is the exporting process's high-water mark (VmHWM), which must not grow with the file size.
The server is the archive application under uvicorn (``fits_storage_web``) when it is
installed, else a minimal streaming upload server (hash and write to disk) in its own process.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "benchmark-cookie"
CHUNK = 1 << 20
MB = 1e6


def child_environ(**extra: str) -> dict[str, str]:
    """The environment without any fits_storage settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITS_STORAGE_")}
    env["FITS_STORAGE_CONFIG"] = ""
    env.update(extra)
    return env


# -- data ---------------------------------------------------------------------------------------


def write_fits_like(path: Path, megabytes: int, seed: int) -> None:
    """A single-HDU FITS-like file of about ``megabytes`` MB of int16 big-endian pixels."""
    import numpy as np

    width = 4096
    rows = max(1, int(megabytes * MB) // (2 * width))
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                   16",
        "NAXIS   =                    2",
        f"NAXIS1  = {width:20d}",
        f"NAXIS2  = {rows:20d}",
        "INSTRUME= 'GMOS-N  '",
        f"DATALAB = 'GN-2025B-Q-1-{seed}-001'",
        "OBSTYPE = 'OBJECT  '",
        "END",
    ]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    rng = np.random.default_rng(seed)
    x = np.arange(width)
    with open(path, "wb") as out:
        out.write(header)
        for start in range(0, rows, 256):
            n = min(256, rows - start)
            y = np.arange(start, start + n)[:, None]
            image = 1000 + 0.002 * x[None, :] + 0.001 * y + rng.normal(0, 4.0, (n, width))
            stars = rng.integers(0, width, size=n // 8 + 1)
            image[rng.integers(0, n, size=stars.size), stars] += rng.uniform(200, 20000, stars.size)
            out.write(np.clip(image, 0, 32767).astype(">i2").tobytes())
        written = 2880 + rows * width * 2
        out.write(b"\0" * (-written % 2880))


# -- children -------------------------------------------------------------------------------------


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child_compress(source: Path, target: Path) -> dict:
    """The ceiling: bz2-compress the bytes, nothing else (the output kept for the .bz2 rows)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    compressor = bz2.BZ2Compressor(9)
    with open(source, "rb") as src, open(target, "wb") as out:
        while block := src.read(CHUNK):
            out.write(compressor.compress(block))
        out.write(compressor.flush())
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {"seconds": seconds, "cpu": cpu, "size": target.stat().st_size}


def child_plain_post(source: Path, url: str) -> dict:
    """The ceiling for .bz2 files: stream the bytes in one POST, no hashing, no questions."""
    parts = urlsplit(url)
    size = source.stat().st_size
    started, cpu = time.perf_counter(), cpu_seconds()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    conn.putrequest("POST", f"/upload_file/plain/{source.name}")
    conn.putheader("Content-Length", str(size))
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Cookie", f"gemini_fits_upload_auth={COOKIE}")
    conn.endheaders()
    with open(source, "rb") as src:
        while block := src.read(CHUNK):
            conn.send(block)
    response = conn.getresponse()
    answer = json.loads(response.read())
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    if response.status != 200 or answer[0]["size"] != size:
        raise RuntimeError(f"plain POST failed: {response.status} {answer}")
    return {"seconds": seconds, "cpu": cpu}


def child_export(source: Path, url: str, workdir: Path) -> dict:
    """The exporter's whole path for one file, with a database row as ingest would leave it."""
    from fits_storage.config import load_config
    from fits_storage.db.engine import make_engine, make_session_factory
    from fits_storage.db.schema import create_tables
    from fits_storage.export import Exporter, ExportSettings
    from fits_storage.orm.file import DiskFile, File

    db = workdir / f"summit-{os.getpid()}.db"
    config = load_config(
        environ={
            "FITS_STORAGE_ROOT": str(source.parent),
            "FITS_STORAGE_DB_URL": f"sqlite:///{db}",
            "FITS_STORAGE_EXPORT_AUTH_COOKIE": COOKIE,
        },
        files=[],
    )
    engine = make_engine(config.database_url)
    create_tables(engine)
    sessions = make_session_factory(engine)
    stat = source.stat()
    md5 = hashlib.md5()
    with open(source, "rb") as src:
        while block := src.read(CHUNK):
            md5.update(block)
    with sessions() as session:
        session.add(
            DiskFile(
                file=File(name=source.name.removesuffix(".bz2")),
                filename=source.name,
                path="",
                file_size=stat.st_size,
                file_md5=md5.hexdigest(),
                lastmod=datetime.fromtimestamp(stat.st_mtime),
                mtime_ns=stat.st_mtime_ns,
                compressed=source.name.endswith(".bz2"),
                data_size=stat.st_size,
                data_md5="0" * 32,  # never matches: the benchmark always sends
            )
        )
        session.commit()
    exporter = Exporter(config, ExportSettings(spool_dir=workdir / "spool", read_timeout=600))
    rss_before = vm_kb("VmRSS")
    with sessions() as session:
        started, cpu = time.perf_counter(), cpu_seconds()
        outcome = exporter.export(session, source.name, "", url)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {
        "seconds": seconds,
        "cpu": cpu,
        "sent": outcome.bytes_sent,
        "rss_before_kb": rss_before,
        "hwm_kb": vm_kb("VmHWM"),
    }


def cpu_seconds() -> float:
    """CPU time of this process, to the nanosecond (os.times() counts in 10 ms ticks)."""
    return time.process_time()


def best_of(repeat: int, *commands: tuple[str, ...]) -> list[dict]:
    """For each command, the fastest of ``repeat`` runs. The commands are interleaved (A B A B)
    so that other load on the machine, which only ever slows a run down, hits both alike."""
    runs: list[list[dict]] = [[] for _ in commands]
    for _ in range(repeat):
        for index, command in enumerate(commands):
            runs[index].append(run_child(*command))
    best = []
    for results in runs:
        fastest = dict(min(results, key=lambda r: r["seconds"]))
        fastest["hwm_kb"] = max(r.get("hwm_kb", 0) for r in results)
        best.append(fastest)
    return best


def run_child(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=child_environ(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


# -- servers --------------------------------------------------------------------------------------


def serve_plain(port: int, directory: Path) -> None:
    """A minimal upload server: stream to disk while hashing, check a stated md5, echo it."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _json(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._json(200, [])

        def do_POST(self) -> None:  # noqa: N802
            left = int(self.headers["Content-Length"])
            name = urlsplit(self.path).path.rsplit("/", 1)[-1]
            digest, size = hashlib.md5(), 0
            target = directory / f".{name}.part"
            with open(target, "wb") as out:
                while left:
                    block = self.rfile.read(min(left, CHUNK))
                    digest.update(block)
                    out.write(block)
                    size += len(block)
                    left -= len(block)
            target.rename(directory / name)
            stated = self.headers.get("Content-MD5")
            if stated and stated != digest.hexdigest():
                self._json(400, {"detail": "md5 mismatch"})
                return
            self._json(
                200, [{"filename": name, "path": "", "size": size, "md5": digest.hexdigest()}]
            )

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(kind: str, workdir: Path) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    received = workdir / "received"
    received.mkdir()
    if kind == "auto":
        try:
            from fits_storage.web import create_app  # noqa: F401

            kind = "archive"
        except ImportError:
            kind = "plain"
    if kind == "archive":
        env = child_environ(
            PYTHONPATH=str(ROOT),
            FITS_STORAGE_ROOT=str(workdir / "archive"),
            FITS_STORAGE_DB_URL=f"sqlite:///{workdir / 'archive.db'}",
            FITS_STORAGE_UPLOAD_STAGING_DIR=str(received),
            FITS_STORAGE_UPLOAD_AUTH_COOKIE=COOKIE,
            FITS_STORAGE_IS_ARCHIVE="true",
        )
        subprocess.run(
            [sys.executable, "-m", "fits_storage.cli.create_tables"],
            env=env,
            check=True,
            capture_output=True,
        )
        argv = [sys.executable, "-m", "fits_storage.cli.web", "--port", str(port)]
    else:
        env = child_environ(PYTHONPATH=str(ROOT))
        argv = [sys.executable, __file__, "--child", "serve", str(port), str(received)]
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server, url, kind
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"server did not start: {(workdir / 'server.log').read_text()[-2000:]}")


# -- the run ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,200,400", help="file sizes in MB (100,200,400)")
    parser.add_argument("--server", choices=("auto", "archive", "plain"), default="auto")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each measurement; the best is kept (3)"
    )
    parser.add_argument("--workdir", help="scratch directory (default: a new temporary one)")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)

    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-export-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir()
    server, url, kind = start_server(args.server, workdir)
    rows_fits, rows_bz2 = [], []
    try:
        print(f"server: {kind} at {url}; scratch in {workdir}; {os.cpu_count()} CPUs", flush=True)
        for n, size in enumerate(sizes, start=1):
            source = data / f"N20251123S{n:04d}.fits"
            write_fits_like(source, size, seed=n)
            raw = source.stat().st_size
            packed = data / f"S20251123S{n:04d}.fits.bz2"
            ceiling, export = best_of(
                args.repeat,
                ("compress", str(source), str(packed)),
                ("export", str(source), url, str(workdir)),
            )
            rows_fits.append((raw, ceiling, export))
            plain, export_bz2 = best_of(
                args.repeat * 3,  # sub-second runs: more of them to see past other load
                ("plain", str(packed), url),
                ("export", str(packed), url, str(workdir)),
            )
            rows_bz2.append((raw, packed.stat().st_size, plain, export_bz2))
            print(f"  {size} MB done", flush=True)
    finally:
        server.terminate()
        server.wait(10)

    print_table(
        "Export of .fits files (bz2-compressed on the way; MB/s of uncompressed data)",
        [
            "file MB",
            "bz2 MB",
            "bz2 ceiling MB/s",
            "export MB/s",
            "ratio",
            "CPU-time ratio",
            "peak RSS MB",
        ],
        [
            (
                f"{raw / MB:.0f}",
                f"{ceiling['size'] / MB:.0f}",
                f"{raw / MB / ceiling['seconds']:.1f}",
                f"{raw / MB / export['seconds']:.1f}",
                f"{ceiling['seconds'] / export['seconds']:.2f}",
                f"{ceiling['cpu'] / export['cpu']:.2f}",
                f"{export['hwm_kb'] / 1024:.0f}",
            )
            for raw, ceiling, export in rows_fits
        ],
    )
    print_table(
        "Export of .bz2 files (sent as they are; MB/s of file bytes)",
        ["file MB", "plain POST MB/s", "export MB/s", "ratio", "CPU-time ratio", "peak RSS MB"],
        [
            (
                f"{packed / MB:.0f}",
                f"{packed / MB / plain['seconds']:.1f}",
                f"{packed / MB / export['seconds']:.1f}",
                f"{plain['seconds'] / export['seconds']:.2f}",
                f"{plain['cpu'] / export['cpu']:.2f}",
                f"{export['hwm_kb'] / 1024:.0f}",
            )
            for _, packed, plain, export in rows_bz2
        ],
    )
    baseline = rows_fits[0][2]["rss_before_kb"] / 1024
    load = os.getloadavg()[0]
    print(f"\nload average at the end: {load:.1f} on {os.cpu_count()} CPUs (best of {args.repeat})")
    print(
        f"RSS of an exporter process before its export: {baseline:.0f} MB; peak RSS is that "
        "plus a few MB (compressor state and 1 MiB buffers), whatever the file size."
    )
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def child_main(argv: list[str]) -> int:
    what, *rest = argv
    if what == "serve":
        serve_plain(int(rest[0]), Path(rest[1]))
        return 0
    if what == "compress":
        report = child_compress(Path(rest[0]), Path(rest[1]))
    elif what == "plain":
        report = child_plain_post(Path(rest[0]), rest[1])
    elif what == "export":
        report = child_export(Path(rest[0]), rest[1], Path(rest[2]))
    else:
        raise SystemExit(f"unknown child {what}")
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
