"""Calibration association time per frame with 100,000 headers in the table.

Run by hand (never a test): ``python benchmarks/calcache.py [--help]``. The header table is
filled with ``--headers`` rows (files, versions and headers written in bulk, outside the
timing): five years of GMOS-N, GMOS-S, IGRINS-2 and three instruments under the default
rules, half science frames and half calibrations (biases, flats, arcs, darks, twilights) in a
few dozen detector and optical set-ups. Then, for ``--frames`` science frames drawn at random,
every calibration type the frame needs is associated (one query each: what the calcache
worker does per frame, and ``/calibrations`` when the cache is stale), and the median, 95th
percentile and mean per frame are printed, with the time per query and the ratio to the
target. The reference beside it is the same number of primary-key lookups of a header (the
cheapest query a frame could cost, on the same connection). Last, each frame's answer is
stored and read back as the API does from a fresh cache (the freshness check included:
``cached ms``). ``--plan`` prints PostgreSQL's plan of one bias query.

Target: at most 20 ms per frame.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import fmt, migrate, percentile, pg_bench_schema, print_table  # noqa: E402

from fits_storage.cal import applicable  # noqa: E402
from fits_storage.cal.answer import answer  # noqa: E402
from fits_storage.cal.associate import associate_all, frame_of, query  # noqa: E402
from fits_storage.cal.cache import store  # noqa: E402
from fits_storage.cal.instruments import plan_for  # noqa: E402
from fits_storage.db.engine import make_engine, make_session_factory  # noqa: E402
from fits_storage.orm import DiskFile, File, Header, utcnow  # noqa: E402

TARGET_MS = 20.0
START = datetime(2021, 1, 1)
DAYS = 5 * 365
INSTRUMENTS = [("GMOS-N", 30), ("GMOS-S", 30), ("IGRINS-2", 10), ("NIRI", 10), ("GNIRS", 10),
               ("F2", 10)]
KINDS = [("OBJECT", 50), ("BIAS", 20), ("FLAT", 15), ("ARC", 10), ("DARK", 5)]
BINNING = ["1x1", "2x2", "2x1", "4x4"]
ROI = ["Full Frame", "Central Spectrum", "Central Stamp"]
FILTERS = ["g_G0301", "r_G0303", "i_G0302", "GG455_G0329", "OG515_G0330", "open"]
DISPERSERS = ["MIRROR", "B600+_G5323", "R400+_G5325", "B1200+_G5321", "R831+_G5322"]
MASKS = ["Imaging", "1.0arcsec", "0.75arcsec", "IFU-R", "5.0arcsec"]
WAVELENGTHS = [None, 0.5, 0.6, 0.7, 0.8]


def pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([w for w, _ in weighted], [n for _, n in weighted])[0]


def header_row(rng: random.Random, n: int) -> dict:
    instrument = pick(rng, INSTRUMENTS)
    kind = pick(rng, KINDS)
    disperser = rng.choice(DISPERSERS)
    spectroscopy = disperser != "MIRROR"
    roi = rng.choice(ROI)
    twilight = kind == "FLAT" and not spectroscopy and rng.random() < 0.5
    return {
        "instrument": instrument,
        "observation_type": "OBJECT" if twilight else kind,
        "observation_class": "dayCal" if kind != "OBJECT" else rng.choice(["science", "acq"]),
        "object": "Twilight" if twilight else (f"NGC {n}" if kind == "OBJECT" else kind),
        "program_id": f"G{instrument[-1]}-2025B-Q-{n % 300}",
        "data_label": f"G-2025B-Q-{n}-001",
        "ut_datetime": START + timedelta(seconds=rng.uniform(0, DAYS * 86400)),
        "exposure_time": rng.choice([1.0, 3.2, 10.0, 60.0, 600.0]),
        "coadds": rng.choice([1, 2]),
        "filter_name": rng.choice(FILTERS),
        "disperser": disperser,
        "focal_plane_mask": "Imaging" if not spectroscopy else rng.choice(MASKS[1:]),
        "central_wavelength": rng.choice(WAVELENGTHS[1:]) if spectroscopy else None,
        "detector_binning": rng.choice(BINNING),
        "detector_roi_setting": roi,
        "detector_readmode": rng.choice(["slow", "fast"]),
        "detector_gain_setting": rng.choice(["low", "high"]),
        "amp_read_area": f"amps:{roi}",
        "spectroscopy": spectroscopy,
        "mode": "longslit" if spectroscopy else "imaging",
        "types": f"{kind} {'SPECT LS' if spectroscopy else 'IMAGE'} RAW",
        "reduction": "RAW" if rng.random() < 0.95 else f"PROCESSED_{kind}",
        "qa_state": "Pass",
        "engineering": False,
    }


def fill(url: str, headers: int, seed: int) -> None:
    """Rows in time order, as the archive ingests a night's files after the night."""
    rng = random.Random(seed)
    rows = sorted((header_row(rng, i) for i in range(headers)), key=lambda r: r["ut_datetime"])
    engine = make_engine(url)
    batch = 5000
    with engine.begin() as conn:
        for start in range(0, headers, batch):
            ids = range(start + 1, min(headers, start + batch) + 1)
            conn.execute(insert(File), [{"id": i, "name": f"B{i:09d}.fits"} for i in ids])
            conn.execute(
                insert(DiskFile),
                [
                    {
                        "id": i,
                        "file_id": i,
                        "filename": f"B{i:09d}.fits",
                        "path": "",
                        "present": True,
                        "canonical": True,
                        "file_size": 1,
                        "file_md5": "0" * 32,
                        "lastmod": START,
                        "mtime_ns": 0,
                        "compressed": False,
                        "data_size": 1,
                        "data_md5": "0" * 32,
                        "entrytime": START,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(Header), [dict(rows[i - 1], id=i, diskfile_id=i) for i in ids]
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            for table in ("header", "diskfile", "file"):
                conn.execute(text(f"VACUUM ANALYZE {table}"))
        else:
            conn.execute(text("ANALYZE"))
    engine.dispose()


def measure(url: str, frames: int, seed: int, show_plan: bool) -> dict:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    rng = random.Random(seed + 1)
    with sessions() as session:
        candidates = session.scalars(
            select(Header.id).where(
                Header.observation_type == "OBJECT",
                Header.observation_class == "science",
                Header.reduction == "RAW",
            )
        ).all()
        chosen = rng.sample(list(candidates), min(frames, len(candidates)))
        loaded = [frame_of(session, hid) for hid in chosen]
        for found in loaded[:5]:  # warm the caches and the plans
            associate_all(session, found.fields)
        per_frame, per_query, reference, found_count = [], [], [], 0
        connection = session.connection()
        lookup = select(*Header.__table__.c).where(Header.__table__.c.id == bindparam("id"))
        for found in loaded:
            types = applicable(found.fields)
            start = time.perf_counter()
            associated = associate_all(session, found.fields)
            elapsed = (time.perf_counter() - start) * 1000
            per_frame.append(elapsed)
            if types:
                per_query.append(elapsed / len(types))
            found_count += sum(len(v) for v in associated.values())
            start = time.perf_counter()
            for _ in types:
                connection.execute(lookup, {"id": found.id}).first()
            reference.append((time.perf_counter() - start) * 1000)
        for found in loaded:
            store(session, found.id, associate_all(session, found.fields), utcnow())
        session.commit()
        served = []
        for found in loaded:
            start = time.perf_counter()
            result = answer(session, found)
            served.append((time.perf_counter() - start) * 1000)
            assert result.source == "cache"
        if show_plan and engine.dialect.name == "postgresql":
            gmos = next(f for f in loaded if f.fields["instrument"].startswith("GMOS"))
            statement, params = query(plan_for(gmos.fields, "bias"))
            compiled = statement.params(params).compile(
                engine, compile_kwargs={"literal_binds": True}
            )
            for (line,) in session.execute(text(f"EXPLAIN ANALYZE {compiled}")):
                print("   ", line)
        session.rollback()
    engine.dispose()
    return {
        "frames": len(loaded),
        "median": statistics.median(per_frame),
        "p95": percentile(per_frame, 95),
        "mean": statistics.fmean(per_frame),
        "query": statistics.median(per_query),
        "reference": statistics.median(reference),
        "types": statistics.fmean(len(applicable(f.fields)) for f in loaded),
        "found": found_count / max(1, len(loaded)),
        "served": statistics.median(served),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--headers", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--plan", action="store_true", help="print a bias query's plan (PG)")
    args = parser.parse_args(argv)
    rows = []
    for database in args.databases.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if database == "sqlite":
                url = migrate(f"sqlite:///{tmp}/bench.db")
                started = time.perf_counter()
                fill(url, args.headers, args.seed)
                filled = time.perf_counter() - started
                figures = measure(url, args.frames, args.seed, args.plan)
            else:
                with pg_bench_schema() as (url, _schema):
                    started = time.perf_counter()
                    fill(url, args.headers, args.seed)
                    filled = time.perf_counter() - started
                    figures = measure(url, args.frames, args.seed, args.plan)
        print(f"{database}: {args.headers:,} headers written in {filled:.1f} s", flush=True)
        rows.append(
            [
                database,
                f"{args.headers:,}",
                str(figures["frames"]),
                fmt(figures["types"], 1),
                fmt(figures["found"], 1),
                fmt(figures["median"], 2),
                fmt(figures["p95"], 2),
                fmt(figures["mean"], 2),
                fmt(figures["query"], 2),
                fmt(figures["reference"], 2),
                f"{figures['median'] / figures['reference']:.1f}",
                f"{figures['median'] / TARGET_MS:.2f}",
                fmt(figures["served"], 2),
            ]
        )
    print_table(
        "Calibration association per science frame (every applicable type, one query each)",
        [
            "database",
            "headers",
            "frames",
            "types/frame",
            "cals/frame",
            "median ms",
            "p95 ms",
            "mean ms",
            "ms/query",
            "pk lookups ms",
            "ratio",
            "/target",
            "cached ms",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
