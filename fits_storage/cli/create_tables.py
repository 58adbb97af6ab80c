"""create_tables: bring the configured database to the current schema (safe to run again)."""

from __future__ import annotations

import argparse
import sys

from fits_storage.cli.common import load_config_or_exit
from fits_storage.service.logs import one_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="create_tables",
        description="Create or upgrade the fits_storage tables in the configured database "
        "(database_url, or FITS_STORAGE_DB_URL). Running it again is harmless.",
    )
    parser.parse_args(argv)
    config = load_config_or_exit("create_tables")
    config.storage_root.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import SQLAlchemyError

    from fits_storage.db.engine import make_engine
    from fits_storage.db.schema import create_tables

    engine = make_engine(config.database_url)
    try:
        before, after = create_tables(engine)
    except SQLAlchemyError as exc:
        print(f"create_tables: cannot update {engine.url!r}: {one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if before == after:
        print(f"create_tables: {engine.url!r} already at schema revision {after}")
    else:
        print(f"create_tables: {engine.url!r} upgraded from {before or 'empty'} to {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
