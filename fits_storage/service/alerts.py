"""CRITICAL log records e-mailed to the admins (``email_errors_to`` through ``smtp_server``).

An outage makes every process log the same CRITICAL over and over; the admins must get a
handful of mails, not thousands. All processes sharing a ``log_dir`` therefore share one small
state file (``alerts.state``, under an ``fcntl`` lock) counting the mails of the current window:
at most ``alert_max_mails`` per ``alert_window_seconds``. Records over the limit are counted, and
the first mail of the next window opens with a summary of them. A mail that cannot be sent is
reported on stderr and never disturbs the process that logged it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import smtplib
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage

from fits_storage.config import Config

STATE_FILE = "alerts.state"
SMTP_TIMEOUT = 10.0
SAMPLES = 5  # suppressed messages quoted in the summary


@dataclass
class AlertState:
    window_start: float = 0.0
    sent: int = 0
    suppressed: int = 0  # in this window
    samples: list[str] = field(default_factory=list)
    carried: int = 0  # suppressed in earlier windows, not yet reported
    carried_since: float | None = None
    carried_samples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    send: bool
    last_of_window: bool = False
    window_ends: float = 0.0
    summary: str = ""


class AlertHandler(logging.Handler):
    def __init__(self, config: Config) -> None:
        super().__init__(logging.CRITICAL)
        self.recipients = list(config.email_errors_to)
        host, _, port = config.smtp_server.partition(":")
        self.smtp_host, self.smtp_port = host, int(port or 25)
        self.sender = config.email_from or f"fits_storage@{socket.getfqdn()}"
        self.max_mails = config.alert_max_mails
        self.window = config.alert_window_seconds
        self.state_path = config.log_dir / STATE_FILE

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            decision = self._decide(record.getMessage().splitlines()[0][:300])
            if decision.send:
                self._send(record, text, decision)
        except Exception as exc:  # noqa: BLE001 - an alert must never break the process
            print(f"fits_storage: could not send an alert mail: {exc}", file=sys.stderr)

    def _decide(self, line: str) -> Decision:
        """Count the record in the shared state; whether it is mailed, and with what summary."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_path, os.O_RDWR | os.O_CREAT, 0o664)
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            state = _load(handle.read())
            now = time.time()
            if now - state.window_start >= self.window:
                if state.suppressed:
                    state.carried += state.suppressed
                    state.carried_since = state.carried_since or state.window_start
                    state.carried_samples = (state.carried_samples + state.samples)[:SAMPLES]
                state = AlertState(
                    window_start=now,
                    carried=state.carried,
                    carried_since=state.carried_since,
                    carried_samples=state.carried_samples,
                )
            if state.sent >= self.max_mails:
                state.suppressed += 1
                if len(state.samples) < SAMPLES:
                    state.samples.append(line)
                decision = Decision(send=False)
            else:
                state.sent += 1
                decision = Decision(
                    send=True,
                    last_of_window=state.sent == self.max_mails,
                    window_ends=state.window_start + self.window,
                    summary=_summary(state),
                )
                state.carried, state.carried_since, state.carried_samples = 0, None, []
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(asdict(state)))
            handle.flush()
        return decision

    def _send(self, record: logging.LogRecord, text: str, decision: Decision) -> None:
        message = EmailMessage()
        host = socket.gethostname()
        first = record.getMessage().splitlines()[0] if record.getMessage() else record.name
        message["Subject"] = f"[fits_storage {host}] CRITICAL: {first}"[:200]
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        parts = [decision.summary, text] if decision.summary else [text]
        if decision.last_of_window:
            parts.append(
                f"This is the last of {self.max_mails} alert mails allowed until "
                f"{_when(decision.window_ends)} (alert_max_mails per alert_window_seconds); "
                "later alerts are counted and summarised in the next mail."
            )
        message.set_content("\n\n".join(parts) + "\n")
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.send_message(message)


def _load(text: str) -> AlertState:
    try:
        return AlertState(**json.loads(text))
    except (ValueError, TypeError):  # empty, or left half-written: start afresh
        return AlertState()


def _summary(state: AlertState) -> str:
    if not state.carried:
        return ""
    quoted = "\n".join(f"  {line}" for line in state.carried_samples)
    return (
        f"{state.carried} further CRITICAL alerts since {_when(state.carried_since or 0)} were "
        f"not mailed (rate limit). The first of them:\n{quoted}"
    )


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def alert_handler(config: Config) -> AlertHandler | None:
    """The handler for ``config``, or None when no one is to be mailed."""
    if not config.email_errors_to or not config.smtp_server:
        return None
    return AlertHandler(config)
