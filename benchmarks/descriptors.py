"""Header fields per frame: ``extract_header_fields`` (the descriptors) beside what astropy
spends reading the same headers, and beside another checkout's ``extract_header_fields``.

Run by hand (never a test): ``python benchmarks/descriptors.py [--baseline DIR]``. The corpus:
astropy's test files, the real GMOS-S frame, and a generated raw frame of each instrument
(tests/fitsdata.py). Each implementation runs in a child process of its own (``--baseline``: a
checkout of the code before the descriptor layer, e.g. ``git archive`` of an older commit);
the headers are parsed afresh from their bytes for every call, as ingest sees them (astropy
caches parsed values, so a second call on the same Header objects would flatter).

Columns: ``astropy us``: ``Header.fromstring`` of every HDU's header (the header read ingest
pays anyway, the ceiling); ``fields us``: ``extract_header_fields`` on those fresh headers;
``ratio``: fields / astropy; with ``--baseline`` the baseline's fields and now / baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_corpus() -> dict[str, list[list[str]]]:
    """Kind -> frames -> header texts (one per HDU)."""
    sys.path.insert(0, str(ROOT))
    from astropy.io import fits

    from tests.fitsdata import INSTRUMENT_FRAMES, astropy_data_dir, astropy_fits_names, gmos_source

    def texts(hdulist: fits.HDUList) -> list[str]:
        return [hdu.header.tostring() for hdu in hdulist]

    corpus: dict[str, list[list[str]]] = {"astropy": [], "gmos real": [], "generated raw": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in astropy_fits_names(include_invalid=False):
            try:
                with fits.open(astropy_data_dir() / name) as hdulist:
                    corpus["astropy"].append(texts(hdulist))
            except Exception:  # noqa: BLE001, S112 - a few are unreadable by design
                continue
        with fits.open(gmos_source()) as hdulist:
            corpus["gmos real"].append(texts(hdulist))
        for make in INSTRUMENT_FRAMES.values():
            corpus["generated raw"].append(texts(make()))
    return corpus


def worker(root: str, corpus_file: str, repeat: int) -> None:
    """In the child: time astropy's header parse and extract_header_fields per kind."""
    sys.path.insert(0, root)
    from astropy.io import fits

    from fits_storage.ingest.fitsheader import extract_header_fields

    corpus = json.loads(Path(corpus_file).read_text())
    result = {}
    warnings.simplefilter("ignore")
    for kind, frames in corpus.items():
        parse = fields = 0.0
        calls = 0
        for _ in range(repeat):
            for frame in frames:
                start = time.perf_counter()
                headers = [fits.Header.fromstring(text) for text in frame]
                middle = time.perf_counter()
                extract_header_fields(headers)
                end = time.perf_counter()
                parse += middle - start
                fields += end - middle
                calls += 1
        result[kind] = {
            "frames": len(frames),
            "parse_us": parse / calls * 1e6,
            "fields_us": fields / calls * 1e6,
        }
    print(json.dumps(result))


def run(root: Path, corpus_file: Path, repeat: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--worker", str(root), str(corpus_file), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout to compare with")
    parser.add_argument("--repeat", type=int, default=20, help="passes over the corpus (20)")
    args = parser.parse_args()
    from _common import print_table

    corpus = build_corpus()
    with tempfile.TemporaryDirectory() as scratch:
        corpus_file = Path(scratch) / "corpus.json"
        corpus_file.write_text(json.dumps(corpus))
        # alternate the two implementations, best of 3 each: the machine is shared
        now_runs, base_runs = [], []
        for _ in range(3):
            now_runs.append(run(ROOT, corpus_file, args.repeat))
            if args.baseline:
                base_runs.append(run(args.baseline, corpus_file, args.repeat))
    rows = []
    for kind in corpus:
        best = min(now_runs, key=lambda r: r[kind]["fields_us"])[kind]
        parse = min(r[kind]["parse_us"] for r in now_runs)
        row = [
            kind,
            str(best["frames"]),
            f"{parse:.0f}",
            f"{best['fields_us']:.0f}",
            f"{best['fields_us'] / parse:.2f}",
        ]
        if args.baseline:
            base = min(r[kind]["fields_us"] for r in base_runs)
            row += [f"{base:.0f}", f"{best['fields_us'] / base:.2f}"]
        rows.append(row)
    headings = ["kind", "frames", "astropy us", "fields us", "ratio"]
    if args.baseline:
        headings += ["baseline us", "now/base"]
    title = f"extract_header_fields per frame, best of 3 runs of {args.repeat} passes"
    print_table(title, headings, rows)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
