"""Milliseconds per preview and peak memory, beside the ceiling measured in the same run.

Run by hand (never a test): ``python benchmarks/preview.py [--repeat N]``. Cases: a 2k x 2k
and a 4k x 4k float32 frame, a raw 12-amplifier GMOS-N frame (uint16, 1x1, the real
detector's size) and the same frame as ``.bz2``. Each measurement runs in a fresh process:

* ``preview``: :func:`fits_storage.preview.make_previews` (full + thumbnail JPEGs);
* ``ceiling``: astropy reading the same data (``fits.open`` and every image HDU's ``.data``,
  scaled as astropy does; a ``.bz2`` decompressed by astropy) plus Pillow writing a JPEG of
  the same final size (full + thumbnail, same quality).

Time: the best of ``--repeat`` runs in that process (files in the page cache; one run for
the ``.bz2`` case, where decompression dominates). Memory: the
process's peak RSS (VmHWM) less its RSS once the imports are done, against the frame's raw
(uncompressed data) size: what one preview adds to a worker. Targets: ms ratio <= 2,
peak / raw <= 3.
"""

from __future__ import annotations

import argparse
import bz2
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def child(kind: str, path: Path, repeat: int, size: tuple[int, int, int, int]) -> None:
    import numpy as np
    from astropy.io import fits
    from PIL import Image

    from fits_storage.preview import make_previews

    workdir = Path(tempfile.mkdtemp(prefix="bench-preview-"))
    baseline = _status("VmRSS")
    best = float("inf")
    out: dict = {}
    for _ in range(repeat):
        start = time.perf_counter()
        if kind == "preview":
            result = make_previews(path, path.name, workdir=workdir, limit=1 << 34)
            out["size"] = [v for p in result.pictures for v in (p.width, p.height)]
        else:
            with fits.open(path, memmap=False) as hdulist:
                total = sum(
                    float(h.data[0, 0]) for h in hdulist if h.is_image and h.data is not None
                )
            rng = np.random.default_rng(0)
            for width, height in (size[:2], size[2:]):
                grey = rng.integers(0, 255, size=(height, width), dtype=np.uint8)
                Image.fromarray(grey, mode="L").save(
                    io.BytesIO(), "JPEG", quality=90, optimize=True
                )
            out["checksum"] = total
        best = min(best, time.perf_counter() - start)
    out.update(ms=best * 1000, peak=_status("VmHWM") - baseline)
    print(json.dumps(out))


def run_child(kind: str, path: Path, repeat: int, size: list[int] | None = None) -> dict:
    args = [sys.executable, __file__, "--child", kind, str(path), "--repeat", str(repeat)]
    if size:
        args += ["--size", *map(str, size)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's fits_storage
    done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_cases(directory: Path) -> list[tuple[str, Path, int]]:
    import numpy as np
    from astropy.io import fits

    sys.path.insert(0, str(ROOT))
    from tests.fitsdata import make_gmos_n_frame

    rng = np.random.default_rng(1)
    cases = []
    for side in (2048, 4096):
        path = directory / f"N20251123S{side:04d}.fits"
        data = rng.normal(1000, 20, size=(side, side)).astype(np.float32)
        fits.PrimaryHDU(data).writeto(path)
        cases.append((f"{side // 1024}k x {side // 1024}k float32", path, data.nbytes))
    gmos = make_gmos_n_frame(directory, 1, "N20251123S0012.fits")
    with fits.open(gmos) as hdulist:
        raw = sum(h.size for h in hdulist[1:])
    cases.append(("GMOS-N 12-amp 1x1 uint16", gmos, raw))
    packed = directory / (gmos.name + ".bz2")
    packed.write_bytes(bz2.compress(gmos.read_bytes(), 6))
    cases.append(("GMOS-N 12-amp 1x1 .bz2", packed, raw))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per process (best kept)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--size", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.repeat, tuple(args.size or (1, 1, 1, 1)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as scratch:
        cases = make_cases(Path(scratch))
        header = (
            f"{'case':28} {'raw MB':>7} {'preview ms':>10} {'ceiling ms':>10} {'ratio':>6} "
            f"{'peak MB':>8} {'/raw':>5} {'ceil peak MB':>12} {'/raw':>5}"
        )
        print(header)
        print("-" * len(header))
        for label, path, raw in cases:
            path.read_bytes()  # into the page cache for both
            # Decompression dominates a .bz2 case: one run each is enough.
            repeat = 1 if path.suffix == ".bz2" else args.repeat
            made = run_child("preview", path, repeat)
            ceiling = run_child("ceiling", path, repeat, made["size"])
            mb = 1024 * 1024
            print(
                f"{label:28} {raw / mb:7.1f} {made['ms']:10.0f} {ceiling['ms']:10.0f} "
                f"{made['ms'] / ceiling['ms']:6.2f} {made['peak'] / mb:8.1f} "
                f"{made['peak'] / raw:5.2f} {ceiling['peak'] / mb:12.1f} "
                f"{ceiling['peak'] / raw:5.2f}"
            )


if __name__ == "__main__":
    main()
