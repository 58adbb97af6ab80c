"""add_to_ingest_queue on a using_s3 host: keys listed, filtered and queued per second, beside
the ceiling of listing the same bucket bare (boto3's list_objects_v2 paginator, nothing else).

A moto S3 server in this process holds ``--keys`` empty objects; the command runs as a real
process against SQLite (a scratch file) and PostgreSQL (a scratch schema). Its peak memory
(VmHWM of the command's process) shows that it does not grow with the bucket.

    python benchmarks/s3_requeue.py --keys 10000 20000
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import PG_URL, migrate, pg_bench_schema  # noqa: E402
from tests.s3server import DUMMY_ENV, free_port  # noqa: E402

# The command's own peak (VmHWM: this image's, after exec), printed at exit; the child's
# ru_maxrss would count the fork of this process, which holds the whole moto bucket.
PEAK_WRAPPER = """
import atexit, runpy, sys
def peak():
    status = open('/proc/self/status').read()
    print(status.split('VmHWM:')[1].split()[0])
atexit.register(peak)
sys.argv = ['add_to_ingest_queue', *sys.argv[1:]]
runpy.run_module('fits_storage.cli.add_to_ingest_queue', run_name='__main__')
"""


def seed(bucket: str, count: int) -> None:
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for n in range(count):
        backend.put_object(bucket, f"N20251123S{n:06d}.fits", b"")


def bare_listing(endpoint: str, bucket: str) -> tuple[int, float]:
    client = boto3.client("s3", endpoint_url=endpoint)
    started = time.perf_counter()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/")
    count = sum(len(page.get("Contents", ())) for page in pages)
    return count, time.perf_counter() - started


def command(endpoint: str, bucket: str, url: str, root: Path) -> tuple[str, float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITS_STORAGE_")}
    env.update(DUMMY_ENV)
    env.update({
        "FITS_STORAGE_ROOT": str(root), "FITS_STORAGE_DB_URL": url, "FITS_STORAGE_CONFIG": "",
        "FITS_STORAGE_USING_S3": "true", "FITS_STORAGE_S3_BUCKET_NAME": bucket,
        "FITS_STORAGE_S3_ENDPOINT_URL": endpoint, "PYTHONPATH": str(ROOT),
    })  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, "--s3filepre=N2025"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    summary, peak = result.stdout.strip().splitlines()
    return summary, seconds, int(peak) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[10000, 20000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    os.environ.update(DUMMY_ENV)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    print(f"{'backend':<11}{'keys':>8}{'bare list/s':>13}{'command/s':>11}{'ratio':>7}"
          f"{'peak MB':>9}  summary")  # fmt: skip
    try:
        for count in args.keys:
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
            seed(bucket, count)
            listed, bare = bare_listing(endpoint, bucket)
            for backend in args.backends:
                with tempfile.TemporaryDirectory() as scratch:
                    root = Path(scratch) / "root"
                    root.mkdir()
                    if backend == "sqlite":
                        url = migrate(f"sqlite:///{scratch}/bench.db")
                        summary, seconds, peak = command(endpoint, bucket, url, root)
                    else:
                        with pg_bench_schema(PG_URL) as (url, _schema):
                            summary, seconds, peak = command(endpoint, bucket, url, root)
                print(f"{backend:<11}{listed:>8}{listed / bare:>13,.0f}{count / seconds:>11,.0f}"
                      f"{bare / seconds:>7.2f}{peak:>9.0f}  {summary}")  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
