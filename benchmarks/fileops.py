"""Header updates per second on 50 MB files, beside the ceiling of copying the same bytes.

Run by hand (never a test): ``python benchmarks/fileops.py [--files N] [--rounds R] [--dir D]``.
``D`` (default: a temporary directory) should be on the file system the data lives on.

* ``update``: what ``service_fileops_queue`` does to a file, without the database rows:
  :func:`fits_storage.fileops.work.apply_update` (the primary header read, a copy with the
  new header written beside the file, astropy reading the copy back, fsync, rename; the new
  bytes are not hashed: the ingest that follows records their md5). The md5 before is the one
  ingest recorded, as in the worker when the file's size and mtime still match it: between
  rounds, untimed, the benchmark takes the new file's md5 as that ingest would. Each round
  sets another QA state, so every update really rewrites the file.
* ``copy``: the ceiling, the same bytes copied in 1 MiB chunks to a new file beside the
  original, fsynced and renamed over it: what any safe rewrite of the file must cost.
* ``copy+md5``: the same copy taking the md5 of the bytes as it writes them (as the system's
  own verified copies do): the ceiling of a rewrite that must know its new md5.

The two alternate file by file so both see the same cache and disk conditions. Target:
updates per second >= 0.7 of copies per second.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from fits_storage.fileops.edit import KnownFile
from fits_storage.fileops.request import HeaderUpdate
from fits_storage.fileops.values import keyword_changes
from fits_storage.fileops.work import apply_update
from fits_storage.storage.base import file_md5

MB = 1024 * 1024
STATES = ("Pass", "Usable", "Fail", "CHECK")


def make_file(path: Path, megabytes: int, seed: int) -> None:
    """A raw-like file: a primary header and four uint16 extensions, ``megabytes`` in all."""
    primary = fits.PrimaryHDU()
    for key, value in {
        "INSTRUME": "GMOS-N", "OBSTYPE": "OBJECT", "DATALAB": f"GN-2025B-Q-1-1-{seed:03d}",
        "RAWGEMQA": "USABLE", "RAWPIREQ": "YES", "RAWIQ": "70-percentile",
        "RAWCC": "50-percentile", "RELEASE": "2026-11-23",
    }.items():  # fmt: skip
        primary.header[key] = value
    rng = np.random.default_rng(seed)
    side = int((megabytes * MB / 4 / 2) ** 0.5)
    hdus = [primary] + [
        fits.ImageHDU(rng.integers(0, 65535, (side, side), dtype=np.uint16)) for _ in range(4)
    ]
    fits.HDUList(hdus).writeto(path)


def copy_ceiling(path: Path, digest: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.copy.part")
    md5 = hashlib.md5()
    with open(path, "rb") as source, open(tmp, "wb") as out:
        while chunk := source.read(MB):
            if digest:
                md5.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def update(path: Path, state: str, known: KnownFile | None) -> None:
    """Set the QA state; ``known`` is the file as ingest recorded it (its md5 then need not
    be taken again)."""
    values = {"qa_state": state}
    request = HeaderUpdate(keyword_changes(values), values=values)
    outcome = apply_update(path, path.name, path, request, None, lambda _r: None, None, known)
    assert outcome.changed


def as_ingested(path: Path) -> KnownFile:
    """The file as the ingest that follows an update records it (untimed)."""
    st = path.stat()
    return KnownFile(st.st_size, st.st_mtime_ns, file_md5(path).md5)


def run(directory: Path, files: int, rounds: int, megabytes: int) -> None:
    paths = [directory / f"N20251123S{n:04d}.fits" for n in range(1, files + 1)]
    for n, path in enumerate(paths, start=1):
        make_file(path, megabytes, n)
    size = paths[0].stat().st_size
    times: dict[str, list[float]] = {"update": [], "copy": [], "copy+md5": []}
    known: dict[Path, KnownFile | None] = dict.fromkeys(paths)
    for round_ in range(rounds + 1):  # round 0 warms the cache and is not counted
        for path in paths:
            kinds = ["update", "copy", "copy+md5"]
            for kind in kinds[round_ % 3 :] + kinds[: round_ % 3]:
                started = time.perf_counter()
                if kind == "update":
                    update(path, STATES[(round_ + 1) % len(STATES)], known[path])
                else:
                    copy_ceiling(path, digest=kind == "copy+md5")
                if round_:
                    times[kind].append(time.perf_counter() - started)
                known[path] = as_ingested(path)
    rate = {kind: 1 / statistics.median(values) for kind, values in times.items()}
    best = {kind: 1 / min(values) for kind, values in times.items()}
    print(f"{files} files of {size / MB:.1f} MB, {rounds} rounds, in {directory}")
    print("| operation | per second (median) | MB/s | per second (best) |")
    print("|---|---|---|---|")
    for kind in ("update", "copy", "copy+md5"):
        print(
            f"| {kind} | {rate[kind]:.2f} | {rate[kind] * size / MB:.0f} | {best[kind]:.2f} |"
        )
    for ceiling in ("copy", "copy+md5"):
        print(f"ratio update / {ceiling}: {rate['update'] / rate[ceiling]:.2f} (median), "
              f"{best['update'] / best[ceiling]:.2f} (best)")  # fmt: skip
    print("target: update >= 0.7 of copy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--dir", type=Path, help="where the files are written")
    args = parser.parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.dir) as directory:
            run(Path(directory), args.files, args.rounds, args.megabytes)
    else:
        with tempfile.TemporaryDirectory() as directory:
            run(Path(directory), args.files, args.rounds, args.megabytes)


if __name__ == "__main__":
    main()
