#!/usr/bin/env bash
# Ingest a folder of FITS files on the embedded default: SQLite in a local storage root, no
# server to start. With no argument it uses the real FITS files that astropy ships.
# Usage: scripts/ingest_demo.sh [FOLDER]   (storage root: $FITS_STORAGE_ROOT, default ~/fits_storage/dataflow)
set -euo pipefail
source_dir="${1:-$(python3 -c 'import astropy, os; print(os.path.join(os.path.dirname(astropy.__file__), "io", "fits", "tests", "data"))')}"
root="${FITS_STORAGE_ROOT:-$HOME/fits_storage/dataflow}"
export FITS_STORAGE_ROOT="$root"
mkdir -p "$root/demo"
cp "$source_dir"/*.fits "$root/demo/"
create_tables
add_to_ingest_queue --path=demo
service_ingest_queue --name=demo --empty --no-defer
python3 - <<'PY'
from sqlalchemy import func, select
from fits_storage.config import get_config
from fits_storage.db import make_engine, make_session_factory
from fits_storage.orm import DiskFile, Header, IngestQueue
config = get_config()
with make_session_factory(make_engine(config.database_url))() as session:
    present = session.scalar(select(func.count()).select_from(DiskFile).where(DiskFile.present))
    instruments = session.execute(select(Header.instrument, func.count()).group_by(Header.instrument)).all()
    failed = session.scalars(select(IngestQueue.filename).where(IngestQueue.status == "failed")).all()
print(f"{present} files present in {config.database_url}")
print("instruments:", ", ".join(f"{name or '(none)'}: {n}" for name, n in instruments))
print(f"{len(failed)} failed ingests" + (": " + ", ".join(failed) if failed else ""))
PY
