"""The status page in headless Chromium (Debian's ``chromium``, driven by Playwright), served
over real HTTP, on SQLite and PostgreSQL. The SQLite run saves the screenshots of
docs/status_page.md to docs/images/."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from fits_storage.config import Config
from fits_storage.queues import Worker, get_queue
from tests.conftest import IN_CI, make_test_config
from tests.processes import RECORDING_WORKER, environ_for, stop, wait_for
from tests.staffweb import PASSWORD, USER, add_staff, seed, sessions_for
from tests.test_web import ServerThread
from tests.workers.recording_worker import CREATE

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        problem = f"no {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{problem} (CI=true: the browser tests must run)")
        pytest.skip(f"SKIPPING BROWSER TESTS: {problem}")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def staff_config(tmp_path: Path, db_url: str) -> Config:
    config = make_test_config(tmp_path, db_url)
    add_staff(config)
    return config


@pytest.fixture
def server(staff_config: Config) -> Iterator[ServerThread]:
    with ServerThread(staff_config) as running:
        yield running


@pytest.fixture
def page(browser, server: ServerThread):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page, db_url: str, name: str, full_page: bool = True) -> None:  # type: ignore[no-untyped-def]
    if db_url.startswith("sqlite"):
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / name), full_page=full_page)


def log_in(page, url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/queuestatus")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/queuestatus"))
    page.wait_for_selector("#tab-preview")


def shown(page, queue: str, count: str) -> str:  # type: ignore[no-untyped-def]
    return page.inner_text(f"#tab-{queue} [data-count={count}]")


def wait_until(page, expression: str, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll a JavaScript expression from here: ``wait_for_function`` evaluates a string, which
    the page's Content-Security-Policy (rightly) forbids."""
    wait_for(lambda: page.evaluate(f"() => Boolean({expression})"), TIMEOUT_MS / 1000, what)


def polls(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.get_attribute("#updated", "data-polls") or 0)


def test_an_anonymous_visitor_is_sent_to_the_login_page(
    page, server: ServerThread, db_url: str
) -> None:
    page.goto(f"{server.url}/queuestatus?tab=ingest")
    page.wait_for_url(re.compile(r"/login\?next=%2Fqueuestatus%3Ftab%3Dingest$"))
    assert page.is_visible("input[name=password]")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Wrong user name or password.")
    screenshot(page, db_url, "login.png")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/queuestatus\?tab=ingest$"))
    page.wait_for_selector("#tab-ingest[aria-selected=true]")


def test_tabs_counts_traceback_retry_and_remove(
    page, server: ServerThread, staff_config: Config, db_url: str
) -> None:
    failed = seed(staff_config, waiting=4, failed=3, in_progress=1)
    log_in(page, server.url)
    names = page.eval_on_selector_all("#tabs button", "bs => bs.map(b => b.dataset.queue)")
    assert names == ["ingest", "export", "preview", "calcache", "upload", "fileops"]
    assert (shown(page, "preview", "total"), shown(page, "preview", "failed")) == ("8", "3 failed")
    assert (shown(page, "ingest", "total"), shown(page, "ingest", "failed")) == ("1", "0 failed")
    page.click("#tab-preview")
    panel = page.locator("#panel-preview")
    assert panel.locator("tr.failed-entry").count() == 3
    assert panel.locator("tr.waiting-entry").count() == 4
    progress = panel.locator("tr.progress-entry")
    assert progress.count() == 1 and "summit2" in progress.inner_text()
    screenshot(page, db_url, "queuestatus.png")

    name, entry_id = next(iter(failed.items()))
    panel.locator(f"tr.failed-entry[data-id='{entry_id}'] td").first.click()
    page.wait_for_selector("#detail:not([hidden])")
    assert f"ValueError: bad header in {name}" in page.inner_text("#detail-error")
    assert "Traceback (most recent call last)" in page.inner_text("#detail-traceback")
    screenshot(page, db_url, "traceback.png")
    page.click("#detail-close")

    panel.locator(f"tr.failed-entry[data-id='{entry_id}'] button.retry").click()
    page.wait_for_selector(f"#panel-preview tr.waiting-entry[data-id='{entry_id}']")
    assert page.locator(f"#panel-preview tr.failed-entry[data-id='{entry_id}']").count() == 0
    assert "retry: entry" in page.inner_text("#notice")
    assert shown(page, "preview", "failed") == "2 failed"

    victim = page.locator("#panel-preview tr.failed-entry").first
    victim_id = victim.get_attribute("data-id")
    page.once("dialog", lambda dialog: dialog.accept())
    victim.locator("button.remove").click()
    wait_until(
        page,
        "document.querySelectorAll('#panel-preview tr.failed-entry').length == 1",
        "the removal",
    )
    assert page.locator(f"tr[data-id='{victim_id}']").count() == 0
    assert (shown(page, "preview", "total"), shown(page, "preview", "failed")) == ("7", "1 failed")


def test_page_stays_correct_while_two_workers_drain_1000_entries(
    page, server: ServerThread, staff_config: Config, db_url: str, tmp_path: Path
) -> None:
    total = 1000
    factory = sessions_for(staff_config)
    with factory.begin() as session:
        session.execute(text(CREATE))
        names = [f"N20251123S{i:04d}.fits" for i in range(total)]
        get_queue("preview", staff_config).add_many(session, [{"filename": n} for n in names])
    log_in(page, server.url)
    page.click("#tab-preview")
    assert shown(page, "preview", "total") == f"{total:,}"
    env = environ_for(staff_config, TEST_WORK_SECONDS="0.04")
    workers = []
    for i in range(2):
        with open(tmp_path / f"drain{i}.stderr", "wb") as stderr:  # never a full pipe
            workers.append(
                subprocess.Popen(
                    [sys.executable, str(RECORDING_WORKER), "--name", f"drain{i}", "--empty"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            )
    seen: list[int] = []
    shot = False
    try:
        last_poll, deadline = polls(page), time.monotonic() + 300
        while time.monotonic() < deadline:
            wait_until(
                page,
                f"Number(document.getElementById('updated').dataset.polls) > {last_poll}",
                "a refresh",
            )
            last_poll = polls(page)
            state = page.evaluate(
                """() => ({
                  total: document.querySelector('#tab-preview [data-count=total]').textContent,
                  failed: document.querySelector('#tab-preview [data-count=failed]').textContent,
                  workers: [...document.querySelectorAll('#panel-preview tr.progress-entry')]
                    .map(r => r.children[1].textContent),
                  waitingRows: document.querySelectorAll('#panel-preview tr.waiting-entry').length,
                })"""
            )
            number = int(state["total"].replace(",", ""))
            assert 0 <= number <= total and (not seen or number <= seen[-1]), (seen, number)
            assert state["failed"] == "0 failed"
            assert (
                set(state["workers"]) <= {"recording_worker-drain0", "recording_worker-drain1"}
                and len(state["workers"]) <= 2
            )
            assert state["waitingRows"] <= min(50, number)
            if state["workers"] and 0 < number < total and not shot:
                screenshot(page, db_url, "draining.png", full_page=False)
                shot = True
            seen.append(number)
            if number == 0:
                break
        assert seen[-1] == 0, f"the page never showed the queue empty: {seen}"
        assert page.locator("#panel-preview tr.waiting-entry").count() == 0
        assert page.locator("#panel-preview tr.progress-entry").count() == 0
        for worker in workers:
            wait_for(lambda w=worker: w.poll() is not None, 60, "the worker to exit (--empty)")
    finally:
        for worker in workers:
            stop(worker)
    assert len(seen) >= 3, f"too few refreshes seen while draining: {seen}"
    with factory() as session:
        done = session.execute(text("SELECT count(DISTINCT filename) FROM processed")).scalar()
    factory.kw["bind"].dispose()
    assert done == total


def test_names_and_errors_are_shown_as_text_never_as_markup(
    page, server: ServerThread, staff_config: Config
) -> None:
    hostile = "N<img src=x onerror=\"document.title='owned'\">.fits"
    factory = sessions_for(staff_config)
    queue = get_queue("preview", staff_config)
    with factory() as session:
        queue.add(session, hostile)
        entry = queue.claim(session, Worker("w"))
        queue.fail(session, entry, "<b>boom</b>", "<script>document.title='owned'</script>")
        session.commit()
    factory.kw["bind"].dispose()
    log_in(page, server.url)
    page.click("#tab-preview")
    row = page.locator("#panel-preview tr.failed-entry")
    assert hostile in row.inner_text() and "<b>boom</b>" in row.inner_text()
    row.locator("td").first.click()
    page.wait_for_selector("#detail:not([hidden])")
    assert page.inner_text("#detail-traceback") == "<script>document.title='owned'</script>"
    assert page.locator("#panel-preview img, #detail script, #panel-preview b").count() == 0
    assert page.title() != "owned"
