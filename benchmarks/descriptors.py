"""Header fields per frame: ``extract_header_fields`` (the descriptors) beside what astropy
spends reading the same headers, and beside another checkout's ``extract_header_fields``.

Run by hand (never a test): ``python benchmarks/descriptors.py [--baseline DIR]``. The corpus:
astropy's test files, the real GMOS-S frame, and a generated raw frame of each instrument
(tests/fitsdata.py). Each implementation runs in a child process of its own (``--baseline``: a
checkout of the code before the descriptor layer, e.g. ``git archive`` of an older commit);
the headers are parsed afresh from their bytes for every call, as ingest sees them (astropy
caches parsed values, so a second call on the same Header objects would flatter). Times are
the process's CPU time (``time.process_time``): on a shared machine wall time mostly measures
the other processes.

Columns: ``astropy us``: ``Header.fromstring`` of every HDU's header (the header read ingest
pays anyway, the ceiling); ``fields us``: ``extract_header_fields`` on those fresh headers;
``ratio``: fields / astropy; ``verified us``: the same on headers whose every card value
astropy has already parsed (what ingest's astropy verification leaves behind, ingest's case);
with ``--baseline`` the baseline's two figures and now / baseline.

``--ingest`` also times the whole ``ingest_file`` (new ``header`` columns included) of small
files in-process on PostgreSQL, each implementation in a fresh schema of its own made by its own
migrations, fitsverify hidden (its process dominates and varies; the descriptors' cost is in the
ingesting process), alternating the implementations, best of 3.
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
        parse = fields = verified = 0.0
        calls = 0
        for _ in range(repeat):
            for frame in frames:
                start = time.process_time()
                headers = [fits.Header.fromstring(text) for text in frame]
                middle = time.process_time()
                extract_header_fields(headers)
                end = time.process_time()
                parse += middle - start
                fields += end - middle
                headers = [fits.Header.fromstring(text) for text in frame]
                for header in headers:  # what ingest's astropy verification leaves
                    for card in header.cards:
                        card.value  # noqa: B018
                start = time.process_time()
                extract_header_fields(headers)
                verified += time.process_time() - start
                calls += 1
        result[kind] = {
            "frames": len(frames),
            "parse_us": parse / calls * 1e6,
            "fields_us": fields / calls * 1e6,
            "verified_us": verified / calls * 1e6,
        }
    print(json.dumps(result))


def build_files(dest: Path) -> dict[str, list[str]]:
    """Small files for the in-process ingest comparison: kind -> names in ``dest``."""
    sys.path.insert(0, str(ROOT))
    from tests.fitsdata import (
        astropy_fits_names,
        copy_astropy_file,
        copy_gmos_file,
        gmos_frame,
        write_frame,
    )

    kinds: dict[str, list[str]] = {"astropy": [], "gmos real": [], "generated raw": []}
    for name in astropy_fits_names(include_invalid=False):
        kinds["astropy"].append(copy_astropy_file(name, dest).name)
    for i in range(20):
        kinds["gmos real"].append(copy_gmos_file(dest, f"S20190808S{i + 100:04d}.fits").name)
        name = f"N20251123S{i + 200:04d}.fits"
        write_frame(dest, gmos_frame(name, obstype="BIAS" if i % 2 else "OBJECT"), name)
        kinds["generated raw"].append(name)
    return kinds


def ingest_worker(root: str, files_json: str) -> None:
    """In the child: ingest_file of every file into a fresh PostgreSQL schema (fitsverify
    hidden: the descriptors' cost is in this process), ms per file by kind."""
    import os

    os.environ["PATH"] = ""
    sys.path.insert(0, root)
    from _common import pg_bench_schema

    from fits_storage.config import load_config
    from fits_storage.db.engine import make_engine, make_session_factory
    from fits_storage.ingest import ingest_file

    spec = json.loads(files_json)
    result = {}
    with pg_bench_schema() as (url, _schema):
        config = load_config(
            environ={"FITS_STORAGE_ROOT": spec["dir"], "FITS_STORAGE_DB_URL": url}, files=[]
        )
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        with sessions() as session:
            for kind, names in spec["kinds"].items():
                start = time.process_time()
                for name in names:
                    ingest_file(session, config, name, force=True)
                    session.commit()
                result[kind] = (time.process_time() - start) / len(names) * 1e3
        engine.dispose()
    print(json.dumps(result))


def run_ingest(root: Path, spec: dict) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--ingest-worker", str(root), json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


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
    parser.add_argument(
        "--ingest", action="store_true", help="also time ingest_file of small files (PostgreSQL)"
    )
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
        verified = min(r[kind]["verified_us"] for r in now_runs)
        row = [
            kind,
            str(best["frames"]),
            f"{parse:.0f}",
            f"{best['fields_us']:.0f}",
            f"{best['fields_us'] / parse:.2f}",
            f"{verified:.0f}",
        ]
        if args.baseline:
            base = min(r[kind]["fields_us"] for r in base_runs)
            base_verified = min(r[kind]["verified_us"] for r in base_runs)
            row += [
                f"{base:.0f}",
                f"{best['fields_us'] / base:.2f}",
                f"{base_verified:.0f}",
                f"{verified / base_verified:.2f}",
            ]
        rows.append(row)
    headings = ["kind", "frames", "astropy us", "fields us", "ratio", "verified us"]
    if args.baseline:
        headings += ["baseline us", "now/base", "base verified", "now/base"]
    title = f"extract_header_fields per frame, best of 3 runs of {args.repeat} passes"
    print_table(title, headings, rows)
    if not args.ingest:
        return
    with tempfile.TemporaryDirectory() as scratch:
        spec = {"dir": scratch, "kinds": build_files(Path(scratch))}
        now_runs, base_runs = [], []
        for _ in range(3):
            now_runs.append(run_ingest(ROOT, spec))
            if args.baseline:
                base_runs.append(run_ingest(args.baseline, spec))
    rows = []
    for kind, names in spec["kinds"].items():
        now = min(r[kind] for r in now_runs)
        row = [kind, str(len(names)), f"{now:.2f}"]
        if args.baseline:
            base = min(r[kind] for r in base_runs)
            row += [f"{base:.2f}", f"{now / base:.2f}"]
        rows.append(row)
    headings = ["kind", "files", "now ms"]
    headings += ["baseline ms", "now/base"] if args.baseline else []
    title = "ingest_file in-process on PostgreSQL, fitsverify hidden, best of 3 (CPU ms per file)"
    print_table(title, headings, rows)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--ingest-worker":
        ingest_worker(sys.argv[2], sys.argv[3])
    else:
        main()
