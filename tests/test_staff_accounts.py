"""Staff accounts and the ``fits_storage_user`` command, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.orm import StaffUser
from fits_storage.staff.accounts import (
    AccountError,
    UserExists,
    add_user,
    list_users,
    remove_user,
    set_password,
    verify,
)
from tests.processes import environ_for

PASSWORD = "correct horse battery"


def user_command(config: Config, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.fits_storage_user", *args],
        env=environ_for(config),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_accounts_add_verify_passwd_remove(session: Session) -> None:
    add_user(session, "alice", PASSWORD)
    assert verify(session, "alice", PASSWORD) is not None
    assert verify(session, "alice", PASSWORD + "x") is None
    assert verify(session, "bob", PASSWORD) is None
    with pytest.raises(UserExists, match="already exists"):
        add_user(session, "alice", "another password")
    with pytest.raises(AccountError, match="at least 8"):
        add_user(session, "bob", "short")
    with pytest.raises(AccountError, match="not valid"):
        add_user(session, "bad name", PASSWORD)
    set_password(session, "alice", "a new password")
    assert verify(session, "alice", PASSWORD) is None
    assert verify(session, "alice", "a new password") is not None
    assert [u.username for u in list_users(session)] == ["alice"]
    remove_user(session, "alice")
    assert verify(session, "alice", "a new password") is None
    with pytest.raises(AccountError, match="no user"):
        remove_user(session, "alice")


def test_password_is_stored_only_as_an_argon2id_hash(session: Session) -> None:
    add_user(session, "alice", PASSWORD)
    stored = session.scalars(select(StaffUser.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM staffuser")) for v in row)
    assert PASSWORD not in dump


def test_command_add_list_passwd_remove(config: Config) -> None:
    added = user_command(config, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    again = user_command(config, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    short = user_command(config, "add", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    listed = user_command(config, "list")
    assert listed.returncode == 0 and listed.stdout.split("\t")[0] == "alice"
    changed = user_command(config, "passwd", "alice", "--password-stdin", stdin="new password\n")
    assert changed.returncode == 0, changed.stderr
    no_tty = user_command(config, "add", "carol")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    removed = user_command(config, "remove", "alice")
    assert removed.returncode == 0, removed.stderr
    gone = user_command(config, "remove", "alice")
    assert gone.returncode == 2 and "no user 'alice'" in gone.stderr
    for result in (added, again, short, listed, changed, removed):
        assert PASSWORD not in result.stdout + result.stderr
    assert not any(
        PASSWORD in p.read_text(errors="replace") for p in config.log_dir.rglob("*") if p.is_file()
    )
