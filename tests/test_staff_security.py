"""Staff login and the status page's protections over real HTTP, on SQLite and PostgreSQL:
every way in without a valid session or CSRF token is refused, and no password is stored or
logged in clear."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, text

from fits_storage.config import Config
from fits_storage.orm import PreviewQueue, StaffAudit
from fits_storage.queues import get_queue
from fits_storage.staff.accounts import set_password
from fits_storage.web.auth import COOKIE, make_cookie
from fits_storage.web.secret import secret_key_file
from tests.conftest import make_test_config
from tests.staffweb import (
    PASSWORD,
    USER,
    add_staff,
    csrf_token,
    login,
    seed,
    sessions_for,
)
from tests.test_web import ServerThread


@pytest.fixture
def staff_config(tmp_path: Path, db_url: str) -> Config:
    config = make_test_config(tmp_path, db_url)
    add_staff(config)
    return config


@pytest.fixture
def server(staff_config: Config) -> Iterator[ServerThread]:
    with ServerThread(staff_config) as running:
        yield running


def statuses(config: Config) -> dict[int, str]:
    factory = sessions_for(config)
    with factory() as session:
        rows = dict(session.execute(select(PreviewQueue.id, PreviewQueue.status)).all())
    factory.kw["bind"].dispose()
    return rows


def test_anonymous_visitors_are_refused_everywhere(
    server: ServerThread, staff_config: Config
) -> None:
    failed = seed(staff_config)
    entry_id = next(iter(failed.values()))
    page = requests.get(
        f"{server.url}/queuestatus?tab=preview",
        headers={"Accept": "text/html"},
        allow_redirects=False,
    )
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fqueuestatus%3Ftab%3Dpreview"
    assert requests.get(f"{server.url}/queuestatus/json").status_code == 401
    assert requests.get(f"{server.url}/queuestatus/preview/entry/{entry_id}").status_code == 401
    before = statuses(staff_config)
    for action in ("retry", "remove", "retry_all"):
        posted = requests.post(
            f"{server.url}/queuestatus/preview/{action}",
            data={"entry_id": entry_id, "csrf_token": "anything"},
            allow_redirects=False,
        )
        assert posted.status_code == 401, action
    assert statuses(staff_config) == before
    login_page = requests.get(f"{server.url}/login?next=//evil.example/x")
    assert login_page.status_code == 200 and "//evil.example" not in login_page.text


def test_wrong_password_and_unknown_user_are_refused(
    server: ServerThread, staff_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for username, password in ((USER, "not the password"), ("mallory", PASSWORD), ("", "")):
        answer = requests.post(
            f"{server.url}/login",
            data={"username": username, "password": password},
            allow_redirects=False,
        )
        assert answer.status_code == 401 and COOKIE not in answer.cookies
        assert "Wrong user name or password." in answer.text
    client = login(server.url)
    assert client.get(f"{server.url}/queuestatus/json").status_code == 200
    assert "login refused for user 'mallory'" in caplog.text
    assert "logged in" in caplog.text
    assert PASSWORD not in caplog.text and "not the password" not in caplog.text
    factory = sessions_for(staff_config)
    with factory() as session:
        dump = repr(session.execute(text("SELECT * FROM staffuser")).all())
    factory.kw["bind"].dispose()
    assert PASSWORD not in dump and "$argon2id$" in dump


def test_session_cookie_flags(server: ServerThread) -> None:
    plain = requests.post(
        f"{server.url}/login",
        data={"username": USER, "password": PASSWORD},
        allow_redirects=False,
    )
    flags = plain.headers["set-cookie"].lower()
    assert "httponly" in flags and "samesite=lax" in flags and "secure" not in flags
    behind_https = requests.post(
        f"{server.url}/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert "secure" in behind_https.headers["set-cookie"].lower()


def test_tampered_expired_and_outdated_sessions_are_refused(
    server: ServerThread, staff_config: Config
) -> None:
    client = login(server.url)
    genuine = client.cookies[COOKIE]
    body, _, signature = genuine.partition(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    key = secret_key_file(staff_config).read_bytes().strip()
    factory = sessions_for(staff_config)
    with factory() as session:
        stamp = session.execute(text("SELECT password_hash FROM staffuser")).scalar_one()
    factory.kw["bind"].dispose()
    assert requests.get(
        f"{server.url}/queuestatus/json", cookies={COOKIE: make_cookie(key, USER, stamp, 600)}
    ).ok  # a cookie made with the right key and stamp is accepted: the refusals below are real
    for bad in (
        f"{flipped}.{signature}",
        f"{body}.{signature[:-1]}x",
        body,
        "junk",
        make_cookie(b"another key" * 4, USER, stamp, 600),
        make_cookie(key, USER, stamp, -5),  # expired
        make_cookie(key, USER, "an earlier password hash", 600),
    ):
        answer = requests.get(f"{server.url}/queuestatus/json", cookies={COOKIE: bad})
        assert answer.status_code == 401, bad
    with factory.begin() as session:
        set_password(session, USER, "a brand new password")
    factory.kw["bind"].dispose()
    assert client.get(f"{server.url}/queuestatus/json").status_code == 401  # password changed


def test_actions_need_the_csrf_token_and_are_audited(
    server: ServerThread, staff_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    failed = seed(staff_config)
    (first, first_id), (_, second_id) = failed.items()
    client = login(server.url)
    before = statuses(staff_config)
    for data in ({"entry_id": first_id}, {"entry_id": first_id, "csrf_token": "wrong"}):
        answer = client.post(f"{server.url}/queuestatus/preview/retry", data=data)
        assert answer.status_code == 403
    other = login(server.url)  # another session's token is not this one's
    stolen = {"entry_id": first_id, "csrf_token": csrf_token(other, server.url)}
    assert client.post(f"{server.url}/queuestatus/preview/remove", data=stolen).status_code == 403
    assert statuses(staff_config) == before
    token = csrf_token(client, server.url)
    answer = client.post(
        f"{server.url}/queuestatus/preview/retry",
        data={"entry_id": first_id, "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200 and answer.json()["done"], answer.text
    assert statuses(staff_config)[first_id] == "waiting"
    again = client.post(
        f"{server.url}/queuestatus/preview/retry",
        data={"entry_id": first_id, "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert again.status_code == 409
    removed = client.post(
        f"{server.url}/queuestatus/preview/remove",
        data={"entry_id": second_id, "csrf_token": token},
        allow_redirects=False,
        headers={"Accept": "text/html"},
    )
    assert removed.status_code == 303 and removed.headers["location"].startswith(
        "/queuestatus?tab=preview&notice="
    )
    assert second_id not in statuses(staff_config)
    factory = sessions_for(staff_config)
    with factory() as session:
        audit = session.execute(
            select(
                StaffAudit.username, StaffAudit.action, StaffAudit.queue, StaffAudit.entry_id
            ).order_by(StaffAudit.id)
        ).all()
    factory.kw["bind"].dispose()
    assert [tuple(a) for a in audit] == [
        (USER, "retry", "preview", first_id),
        (USER, "remove", "preview", second_id),
    ]
    assert f"user 'alice': retry entry {first_id} in the preview queue ({first})" in caplog.text
    logout = client.post(
        f"{server.url}/logout", data={"csrf_token": "wrong"}, allow_redirects=False
    )
    assert logout.status_code == 403
    logout = client.post(f"{server.url}/logout", data={"csrf_token": token}, allow_redirects=False)
    assert logout.status_code == 303 and COOKIE not in client.cookies


def test_json_sends_only_the_tabs_that_changed(server: ServerThread, staff_config: Config) -> None:
    seed(staff_config)
    client = login(server.url)
    full = client.get(f"{server.url}/queuestatus/json").json()
    assert (
        list(full["queues"])
        == full["order"]
        == ["ingest", "export", "preview", "calcache", "upload", "fileops"]
    )
    preview = full["queues"]["preview"]
    assert (preview["counts"]["waiting"], preview["counts"]["failed"]) == (3, 2)
    assert preview["counts"]["in_progress"] == 1 and preview["counts"]["text"]["total"] == "6"
    [busy] = preview["in_progress"]
    assert busy["worker"] == "w1" and busy["host"] == "summit2" and busy["run_seconds"] >= 0
    since = ",".join(f"{name}:{tab['version']}" for name, tab in full["queues"].items())
    same = client.get(f"{server.url}/queuestatus/json", params={"since": since}).json()
    assert same["queues"] == {} and same["unchanged"] == full["order"]
    factory = sessions_for(staff_config)
    with factory.begin() as session:
        get_queue("ingest", staff_config).add(session, "S20251126S0002.fits")
    factory.kw["bind"].dispose()
    later = client.get(f"{server.url}/queuestatus/json", params={"since": since}).json()
    assert list(later["queues"]) == ["ingest"]


def test_the_signing_key_is_kept_private_and_survives_a_restart(
    server: ServerThread, staff_config: Config
) -> None:
    client = login(server.url)
    key_file = secret_key_file(staff_config)
    assert key_file.stat().st_mode & 0o777 == 0o600
    with ServerThread(staff_config) as restarted:
        assert client.get(f"{restarted.url}/queuestatus/json").status_code == 200
    other = staff_config.replace(web_secret_key="a configured key of more than 32 characters")
    with ServerThread(other) as rekeyed:
        assert client.get(f"{rekeyed.url}/queuestatus/json").status_code == 401
