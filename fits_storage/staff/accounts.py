"""Staff accounts: add, change password, remove, list, and check a login.

Passwords are hashed with argon2id (memory-hard; salt and cost are kept in the hash string), so
the database never holds one in clear, and nothing here logs one. Functions take a session and
never commit: the caller decides the transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fits_storage.orm.base import utcnow
from fits_storage.orm.staff import StaffUser

MIN_PASSWORD_LENGTH = 8
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters


@cache
def _dummy_hash() -> str:
    """Checked for unknown users too, so that a login for a name that does not exist takes as
    long as one for a name that does: the timing does not tell who has an account."""
    return _hasher.hash("not anybody's password")


class AccountError(ValueError):
    """An account request that cannot be done; the message says why."""


class UserExists(AccountError):
    """``add_user`` for a name that already has an account."""


@dataclass(frozen=True)
class UserInfo:
    username: str
    created: datetime
    password_changed: datetime


def _check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise AccountError(
            f"user name {username!r} is not valid: 1 to 64 letters, digits or . _ @ -"
        )
    return username


def _hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _get(session: Session, username: str) -> StaffUser | None:
    return session.scalars(select(StaffUser).where(StaffUser.username == username)).first()


def add_user(session: Session, username: str, password: str) -> None:
    """Create an account; UserExists if the name is taken, AccountError for a bad name or a
    password shorter than ``MIN_PASSWORD_LENGTH``."""
    _check_username(username)
    if _get(session, username) is not None:
        raise UserExists(f"user {username!r} already exists (use passwd to change its password)")
    session.add(StaffUser(username=username, password_hash=_hash_password(password)))
    session.flush()


def set_password(session: Session, username: str, password: str) -> None:
    """Replace a user's password; the sessions logged in with the old one end."""
    user = _get(session, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    user.password_hash = _hash_password(password)
    user.password_changed = utcnow()
    session.flush()


def remove_user(session: Session, username: str) -> None:
    if session.execute(delete(StaffUser).where(StaffUser.username == username)).rowcount != 1:
        raise AccountError(f"no user {username!r}")


def list_users(session: Session) -> list[UserInfo]:
    users = session.scalars(select(StaffUser).order_by(StaffUser.username))
    return [UserInfo(u.username, u.created, u.password_changed) for u in users]


def verify(session: Session, username: str, password: str) -> StaffUser | None:
    """The user if the password is theirs, else None (wrong password and unknown user alike)."""
    user = _get(session, username) if USERNAME.fullmatch(username) else None
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def session_stamp(session: Session, username: str) -> str | None:
    """What a login session is bound to: the user's current password hash, or None when the
    account is gone. A new password or a removed account thus ends every session at once."""
    user = _get(session, username)
    return None if user is None else user.password_hash
