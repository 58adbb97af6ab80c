#!/usr/bin/env bash
# The main job, unattended: start fits_storage_run, drop a folder of FITS files into its DHS
# directory, wait until each one is ingested (or refused), print what the database holds, then
# stop it as Ctrl-C would. With no argument it uses the real FITS files that astropy ships.
# Usage: scripts/ingest_demo.sh [FOLDER]
#   everything lives under $DEMO_ROOT (default ~/fits_storage); web port $DEMO_PORT (8000)
set -euo pipefail
source_dir="${1:-$(python3 -c 'import astropy, os; print(os.path.join(os.path.dirname(astropy.__file__), "io", "fits", "tests", "data"))')}"
root="${DEMO_ROOT:-$HOME/fits_storage}"
export FITS_STORAGE_ROOT="$root/dataflow" FITS_STORAGE_DHS_PERM="$root/dhs"
mkdir -p "$root"
output="$root/fits_storage_run.out"
fits_storage_run --root "$root" --port "${DEMO_PORT:-8000}" >"$output" 2>&1 &
run_pid=$!
trap 'kill -INT "$run_pid" 2>/dev/null || true' EXIT
until grep -q "^Status page: " "$output"; do
    kill -0 "$run_pid" 2>/dev/null || { cat "$output" >&2; exit 1; }
    sleep 0.5
done
grep -E "^(Drop FITS files into|Status page|Logs): " "$output"
cp "$source_dir"/*.fits "$FITS_STORAGE_DHS_PERM/"
python3 - "$(find "$source_dir" -maxdepth 1 -name '*.fits' | wc -l)" <<'PY'
import sys, time
from sqlalchemy import func, select
from fits_storage.config import get_config
from fits_storage.db import make_engine, make_session_factory
from fits_storage.orm import DiskFile, Header, IngestQueue
dropped, config = int(sys.argv[1]), get_config()
copier_log = config.log_dir / "copy_from_dhs-run.log"
sessions = make_session_factory(make_engine(config.database_url))
deadline = time.monotonic() + 600
while True:
    with sessions() as session:
        present = session.scalar(select(func.count()).select_from(DiskFile).where(DiskFile.present))
        instruments = session.execute(select(Header.instrument, func.count()).group_by(Header.instrument)).all()
        failed = session.scalars(select(IngestQueue.filename).where(IngestQueue.status == "failed")).all()
        waiting = session.scalar(select(func.count()).select_from(IngestQueue).where(IngestQueue.status != "failed"))
    refused = copier_log.read_text().count("not copied (reported once") if copier_log.exists() else 0
    if present + len(failed) + refused >= dropped and not waiting:
        break
    if time.monotonic() > deadline:
        sys.exit(f"gave up waiting: {present} present, {len(failed)} failed, {refused} refused of {dropped}")
    time.sleep(1)
print(f"{present} files present in {config.database_url}")
print("instruments:", ", ".join(f"{name or '(none)'}: {n}" for name, n in instruments))
print(f"{refused} files refused by copy_from_dhs (see {copier_log})")
print(f"{len(failed)} failed ingests" + (": " + ", ".join(failed) if failed else ""))
PY
kill -INT "$run_pid"
trap - EXIT
wait "$run_pid"
echo "fits_storage_run stopped cleanly"
