"""Alert mails through a real SMTP server (aiosmtpd on loopback): CRITICAL records are mailed,
a flood of them across processes sends at most ``alert_max_mails``, and check_queues and the
DHS copier raise the alerts admins know."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import delete, update

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.orm import IngestQueue, utcnow
from fits_storage.queues import Status, get_queue
from tests import fitsdata
from tests.processes import environ_for
from tests.test_web import free_port

FLOOD = """
import logging, sys
from fits_storage.cli.common import setup_command_logging
from fits_storage.config import get_config
config = get_config()
setup_command_logging(config.log_dir, "flood", debug=False, demon=True, alerts=config)
for i in range(int(sys.argv[1])):
    logging.getLogger("flood").critical("failure %d of process %s", i, sys.argv[2])
"""


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"

    def bodies(self) -> list[str]:
        return [m.get_content() for m in self.messages]  # type: ignore[attr-defined]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, str]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, f"127.0.0.1:{port}"
    finally:
        controller.stop()


def mail_env(server: str, **extra: str) -> dict[str, str]:
    env = {
        "FITS_STORAGE_EMAIL_ERRORS_TO": "admins@example.org",
        "FITS_STORAGE_SMTP_SERVER": server,
        "FITS_STORAGE_EMAIL_FROM": "fits@example.org",
        "FITS_STORAGE_ALERT_MAX_MAILS": "3",
    }
    env.update({f"FITS_STORAGE_{k.upper()}": v for k, v in extra.items()})
    return env


def flood(config: Config, server: str, processes: int, each: int, **extra: str) -> None:
    running = [
        subprocess.Popen(
            [sys.executable, "-c", FLOOD, str(each), str(n)],
            env=environ_for(config, **mail_env(server, **extra)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    for process in running:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        assert "could not send" not in stderr


def test_a_thousand_critical_failures_send_a_handful_of_mails(
    inbox: tuple[Inbox, str], tmp_path: Path
) -> None:
    from tests.conftest import make_test_config

    handler, server = inbox
    config = make_test_config(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}")
    flood(config, server, processes=4, each=250)
    assert len(handler.messages) == 3  # alert_max_mails, across the four processes
    first = handler.messages[0]
    assert first["To"] == "admins@example.org" and first["From"] == "fits@example.org"
    assert "CRITICAL: failure 0 of process" in first["Subject"]
    # The third mail says so; four processes may deliver their mails in any order.
    assert sum("This is the last of 3 alert mails" in b for b in handler.bodies()) == 1
    assert (config.log_dir / "flood.log").read_text().count("CRITICAL") == 1000

    # The window over, the next alert is mailed with the count of those held back.
    flood(config, server, processes=1, each=1, alert_window_seconds="0.001")
    assert len(handler.messages) == 4
    body = handler.bodies()[3]
    assert "997 further CRITICAL alerts since" in body and "not mailed" in body
    assert "failure" in body.split("The first of them:")[1]


def run_command(config: Config, server: str, command: str, *args: str, **extra: str):
    return subprocess.run(
        [sys.executable, "-m", f"fits_storage.cli.{command}", *args],
        env=environ_for(config, **mail_env(server, alert_max_mails="10", **extra)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_queues_mails_stuck_queues_and_a_silent_dhs_copier(
    inbox: tuple[Inbox, str], config: Config
) -> None:
    handler, server = inbox
    engine = make_engine(config.database_url)
    factory = make_session_factory(engine)
    queue = get_queue("ingest", config)
    try:
        with factory() as session:
            for i in range(4):
                queue.add(session, f"N20251123S{i:04d}.fits", "")
            session.execute(
                update(IngestQueue)
                .where(IngestQueue.filename != "N20251123S0000.fits")
                .values(status=Status.FAILED.value)
            )
            session.execute(update(IngestQueue).values(added=utcnow() - timedelta(hours=3)))
            session.commit()
        limits = {"queue_alert_failures": "2", "queue_alert_age_seconds": "3600"}
        result = run_command(config, server, "check_queues", **limits)
        assert result.returncode == 1, result.stderr
        subjects = sorted(m["Subject"] for m in handler.messages)
        assert len(subjects) == 3, subjects
        assert "copy_from_dhs has never run" in subjects[0]
        assert "ingest queue: 3 failed entries (queue_alert_failures = 2)" in subjects[1]
        assert "ingest queue: the oldest waiting entry is 3.0 h old" in subjects[2]

        # The copier runs (and logs a file failing validation as CRITICAL: mailed once).
        broken = fitsdata.write_truncated(config.dhs_perm / "N20251123S0099.fits")
        old = time.time() - 3600  # settled: older than min_dhs_age_seconds
        os.utime(broken, (old, old))
        copier = run_command(config, server, "copy_from_dhs", "--oneshot", "--interval=0.1")
        assert copier.returncode == 0, copier.stderr
        assert len(handler.messages) == 4
        assert "N20251123S0099.fits: not a complete FITS file" in handler.messages[3]["Subject"]

        with factory() as session:
            session.execute(delete(IngestQueue))
            session.commit()
        result = run_command(config, server, "check_queues", **limits)
        assert result.returncode == 0, result.stderr
        assert len(handler.messages) == 4
    finally:
        engine.dispose()


def test_every_command_mails_its_critical_records(inbox: tuple[Inbox, str], tmp_path: Path) -> None:
    """A cron command need not ask for alerts: diskspace_check's low-space CRITICAL is mailed."""
    from tests.conftest import make_test_config

    handler, server = inbox
    config = make_test_config(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}")
    data = config.storage_root
    low = run_command(
        config, server, "diskspace_check", f"--path={data}", f"--min-free={2**62}", "--demon"
    )
    assert low.returncode == 1, low.stderr
    assert len(handler.messages) == 1
    assert f"low disk space: {data}" in handler.messages[0]["Subject"]
