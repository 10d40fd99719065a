"""The operator console in a real browser (Debian's Chromium through Playwright) over a running
platform: log in, search a message and open its timeline, replay a dead callback and see the
receiver get it, a viewer who may not replay, a forged cross-site POST refused, a hostile body
shown as text. Screenshots of each page land in the test's directory (and in docs/console/ with
MYCPAAS_SCREENSHOTS=1, for the README)."""

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from schemas.db import make_engine
from tests.e2e.conftest import Platform, launch
from tests.e2e.test_smpp import wait_for
from tests.processes import Account, free_port, random_number, start, stop, wait_http
from tests.receiver import Receiver, running_receiver

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'
DOCS = Path(__file__).parents[2] / "docs" / "console"

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing (.ci/run installs Debian's chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    workdir = tmp_path_factory.mktemp("console")
    with launch(workdir, workers=("segment", "carrier", "callbacks", "maintenance")) as platform:
        port = free_port()
        proc = start(["mycpaas", "console", "--port", str(port)], platform.env)
        try:
            wait_http(f"http://127.0.0.1:{port}/login", proc=proc)
            yield platform, f"http://127.0.0.1:{port}"
        finally:
            stop(proc)


def operator(platform: Platform, name: str, role: str) -> str:
    made = subprocess.run(["mycpaas", "operators", "create", name, "--role", role],
                          env={**os.environ, **platform.env}, capture_output=True, text=True,
                          check=True)  # fmt: skip
    return made.stdout.rsplit("password: ", 1)[1].strip()


def log_in(browser: object, url: str, name: str, password: str) -> object:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("text=Log in")
    page.wait_for_url(f"{url}/")
    return page


def shot(page: object, name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    if os.environ.get("MYCPAAS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copy(path, DOCS / path.name)


def dead_message(platform: Platform, account: Account, receiver: Receiver) -> tuple[str, str]:
    """A message whose every callback died: the receiver was down for all four tries."""
    receiver.down.set()
    to = random_number()
    sid = platform.send(account, to, HOSTILE, StatusCallback=receiver.url("/down"))["sid"]
    engine = make_engine(platform.env["MYCPAAS_DATABASE_URL"])
    try:

        def all_dead() -> bool:
            with engine.connect() as connection:
                states = (
                    connection.execute(
                        text("SELECT state FROM callbacks WHERE message_sid = :sid"), {"sid": sid}
                    )
                    .scalars()
                    .all()
                )
            return len(states) == 3 and set(states) == {"dead"}

        wait_for(all_dead, timeout_s=60)
    finally:
        engine.dispose()
    return sid, to


def test_an_operator_finds_a_message_replays_its_dead_callbacks_and_a_viewer_cannot(
    console: tuple[Platform, str], browser: object, tmp_path: Path
) -> None:
    platform, url = console
    account = platform.new_account()
    with running_receiver() as receiver:
        sid, to = dead_message(platform, account, receiver)
        receiver.down.clear()
        page = log_in(browser, url, "ada", operator(platform, "ada", "operator"))
        shot(page, "overview", tmp_path)
        # when: she searches the message by its recipient and opens it
        page.goto(f"{url}/messages")
        page.fill("#search input[name=to]", to)
        page.click("#search button")
        assert page.locator("#results a").count() == 1
        shot(page, "messages", tmp_path)
        page.click(f"text={sid}")
        # then: its timeline, and the hostile body as text (nothing ran)
        assert page.inner_text("#status") in ("delivered", "sent")
        assert page.inner_text("#body") == HOSTILE
        assert page.title() != "owned"
        assert "queued" in page.inner_text("#timeline")
        shot(page, "message", tmp_path)
        # when: she replays its callbacks, the receiver gets them
        before = len(receiver.for_message(sid))
        page.click("#replay")
        wait_for(lambda: len(receiver.for_message(sid)) >= before + 3)
        # and the replay is in the audit log, with who did it
        page.goto(f"{url}/audit")
        assert re.search(r"ada\s+replay\s+" + sid, page.inner_text("#audit"))
        for name in ("queues", "callbacks", "carrier"):
            page.goto(f"{url}/{name}")
            shot(page, name, tmp_path)
        # a viewer sees masked numbers, no body, and no replay
        viewer = log_in(browser, url, "vic", operator(platform, "vic", "viewer"))
        viewer.goto(f"{url}/messages/{sid}")
        assert viewer.inner_text("#body") == "(hidden from viewers)"
        assert viewer.locator("#replay").count() == 0
        csrf = viewer.locator("input[name=csrf]").first.get_attribute("value")
        refused = viewer.request.post(f"{url}/messages/{sid}/replay", form={"csrf": csrf})
        assert refused.status == 403


def test_cancelling_a_message_that_is_not_scheduled_says_why(
    console: tuple[Platform, str], browser: object
) -> None:
    platform, url = console
    account = platform.new_account()
    sid = platform.send(account, random_number(), "already gone")["sid"]
    platform.wait_terminal(account, [sid])
    page = log_in(browser, url, "cy", operator(platform, "cy", "operator"))
    page.goto(f"{url}/messages/{sid}")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(f"{url}/messages/{sid}/cancel", form={"csrf": csrf})
    assert answer.status == 409
    assert "only a scheduled message can be canceled" in answer.text()


def test_a_forged_cross_site_post_and_a_wrong_password_change_nothing(
    console: tuple[Platform, str], browser: object
) -> None:
    platform, url = console
    page = log_in(browser, url, "bob", operator(platform, "bob", "admin"))
    # a page of another site (localhost, where the console is 127.0.0.1) posts to the console
    # in the operator's browser
    with running_receiver() as other_site:
        page.goto(other_site.url("/ok").replace("127.0.0.1", "localhost"))
        page.set_content(f'<form id=f method=post action="{url}/callbacks/replay">'
                         '<input name=confirm value=all></form>'
                         "<script>document.getElementById('f').submit()</script>")  # fmt: skip
        # the POST reached the console without the session (its cookie is SameSite=Strict):
        # the console answered with its login page
        page.wait_for_url(f"{url}/login")
    # and nothing was replayed
    page.goto(f"{url}/audit")
    assert "replay-dead" not in page.inner_text("#audit")
    # a POST without the CSRF token, even with the cookie, is refused
    refused = page.request.post(f"{url}/callbacks/replay", form={"confirm": "all"})
    assert refused.status == 403
    # wrong passwords: refused, then paused (this address too: the module's last login)
    for _ in range(5):
        answer = httpx.post(f"{url}/login", data={"name": "bob", "password": "nope"})
        assert answer.status_code == 401
    paused = httpx.post(f"{url}/login", data={"name": "bob", "password": "nope"})
    assert "Too many failed logins" in paused.text
