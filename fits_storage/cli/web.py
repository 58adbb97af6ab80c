"""fits_storage_web: serve the HTTP application (upload, file lists, files, health) with uvicorn."""

from __future__ import annotations

import argparse
import signal
import sys

from fits_storage.cli.common import load_config_or_exit, setup_console_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fits_storage_web",
        description="Serve the fits_storage HTTP application (the archive's upload endpoint, "
        "jsonfilelist, file downloads, /healthz) with uvicorn. Production may instead run "
        "fits_storage.web:create_app under any ASGI server.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    parser.add_argument("--debug", action="store_true", help="log at debug level")
    args = parser.parse_args(argv)
    config = load_config_or_exit("fits_storage_web")
    setup_console_logging(args.debug)

    import uvicorn

    from fits_storage.db.engine import make_engine
    from fits_storage.web import create_app
    from fits_storage.web.app import startup_problem

    engine = make_engine(config.database_url)
    problem = startup_problem(engine)
    engine.dispose()
    if problem:
        print(f"fits_storage_web: not starting: {problem}", file=sys.stderr)
        return 1

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    # that was installed before it started; with these no-op handlers a clean stop exits 0,
    # as systemd and the other commands expect.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)

    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="debug" if args.debug else "info",
        log_config=None,
        timeout_keep_alive=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
