"""The dashboard in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`) driven
by selenium against `rarewatch run` started as a user starts it, with the bundled rule pack, a SQLite store
filled beforehand, and both tokens set (so every page goes through the sign-in form).

Skipped only when Chromium or its driver is missing and CI is not set (`.ci/run` installs them)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, REPO, free_port

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not IN_CI and (CHROMIUM is None or not Path(CHROMEDRIVER).exists()):
    pytest.skip("chromium and chromium-driver are not installed (CI installs them)", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (after the skip: CI has it, a bare checkout may not)
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from rarewatch.models import Alert, Item, Match, SeenItem, Severity  # noqa: E402
from rarewatch.store.sqlite import SQLiteStore  # noqa: E402

READ_TOKEN = "dashboard-read-token-0123456789"
WRITE_TOKEN = "dashboard-write-token-0123456789"
XSS_TITLE = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2">Gallium notice'
# (days ago, category, severity) of each seeded alert: the chart's bars must add up to these.
SEEDED = [
    (0, "prosecution", Severity.MEDIUM),
    (0, "export-licensing", Severity.HIGH),
    (1, "prosecution", Severity.MEDIUM),
    (3, "supply-disruption", Severity.LOW),
    (3, "supply-disruption", Severity.MEDIUM),
    (3, "trade-restrictions", Severity.CRITICAL),
]
STORY = """Customs breaks gallium smuggling ring
Prosecutors in Shenzhen charged three men with smuggling 2.3 tonnes of gallium ingots past customs \
hidden in shipments declared as aluminium scrap, the procuratorate said on Tuesday. The smuggling case \
is the largest since export controls on gallium took effect."""


@dataclass(frozen=True)
class Service_:
    base: str
    proc: subprocess.Popen[bytes]
    seeded_at: datetime


def _alert(n: int, days_ago: int, category: str, severity: Severity, now: datetime) -> Alert:
    when = now - timedelta(days=days_ago, minutes=n)
    item = Item(f"a{n}", "wire", f"Seeded {category} alert {n}", f"https://n.example/a{n}", "s", "", when)
    return Alert(f"a{n}", item, (Match(f"{category}-en", category, severity, ("gallium",)),), when)


async def _seed(path: Path, now: datetime) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        for n, (days_ago, category, severity) in enumerate(SEEDED):
            alert = _alert(n, days_ago, category, severity, now)
            assert await store.claim([f"k{n}"], timedelta(days=30), alert.created, alert, ())
        xss = Item("x1", "wire", XSS_TITLE, "javascript:window.__xss=3", "a summary", "", now)
        plain = Item("p1", "wire", "Port strike delays copper", "https://n.example/p1", "", "", now)
        await store.record_items([SeenItem(xss, now), SeenItem(plain, now - timedelta(minutes=1))], now)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service_]:
    """`rarewatch run` with the bundled rules, a filled store and both tokens."""
    tmp = tmp_path_factory.mktemp("dashboard")
    now = datetime.now(UTC)
    asyncio.run(_seed(tmp / "state.db", now))
    port = free_port()
    config = tmp / "rarewatch.yaml"
    config.write_text(
        f"""\
store: sqlite:///state.db
rules: ["{REPO / "rules"}"]
sources:
  - {{name: wire, type: feed, url: "http://127.0.0.1:9/feed.xml", interval: 1h}}
destinations:
  - {{name: archive, type: jsonl, path: alerts.jsonl}}
routes:
  - {{to: [archive]}}
http: {{host: 127.0.0.1, port: {port}, token: {WRITE_TOKEN}, read_token: {READ_TOKEN}}}
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rarewatch", "run", "--config", str(config)],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, proc)
        yield Service_(base, proc, now)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_until_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        assert proc.poll() is None, "rarewatch run exited"
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5):
                return
        # Refused before the port is bound; a timeout while the bound socket waits for the app to start.
        except OSError:
            time.sleep(0.1)
    raise AssertionError("rarewatch run did not answer /healthz")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    if CHROMIUM is not None:
        options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def api(service: Service_, path: str, token: str = READ_TOKEN) -> Any:
    request = urllib.request.Request(service.base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def wait_for(driver: webdriver.Chrome, css: str, timeout: float = 15) -> WebElement:
    found: WebElement = WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )
    return found


def sign_in(driver: webdriver.Chrome, service: Service_, token: str, page: str = "/") -> None:
    """Open `page` signed out (the sign-in form), sign in, and wait for the page itself. The browser's
    log is drained first: what an earlier test logged (an API's 400 it provoked) is not this test's."""
    driver.get_log("browser")
    driver.get(service.base + page)
    driver.execute_script("sessionStorage.clear()")
    driver.get(service.base + page)
    form = wait_for(driver, "#login #signin-form")
    form.find_element(By.NAME, "token").send_keys(token)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: not d.find_elements(By.ID, "login"))


def open_page(driver: webdriver.Chrome, service: Service_, page: str, ready: str) -> None:
    """Open `page` in a tab that is signed in: the server sends the sign-in page, the script fetches the
    page with the token."""
    driver.get(service.base + page)
    wait_for(driver, ready)


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


PAGES = [
    ("/", "#chart svg"),
    ("/items", "#item-search"),
    ("/silences", "#silence-form"),
    ("/playground", "#playground-form"),
    ("/backtest", "#backtest-form"),
]


def test_signed_out_the_page_is_a_sign_in_form_with_no_data(
    browser: webdriver.Chrome, service: Service_
) -> None:
    browser.get(service.base + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(service.base + "/")
    wait_for(browser, "#login #signin-form")
    assert "Seeded" not in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "#chart")
    assert console_errors(browser) == []


def test_every_page_loads_without_console_errors(browser: webdriver.Chrome, service: Service_) -> None:
    sign_in(browser, service, READ_TOKEN)
    browser.get_log("browser")  # start afresh
    for page, ready in PAGES:
        open_page(browser, service, page, ready)
        assert console_errors(browser) == [], page
    # The nav links load pages with the token too.
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/items']").click()
    wait_for(browser, "#item-search")
    assert console_errors(browser) == []


def test_the_chart_has_a_bar_for_each_day_and_category_of_the_seeded_alerts(
    browser: webdriver.Chrome, service: Service_
) -> None:
    sign_in(browser, service, READ_TOKEN)
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart svg rect.bar")
    drawn = Counter(
        {
            (b.get_attribute("data-day"), b.get_attribute("data-category")): int(
                b.get_attribute("data-count") or 0
            )
            for b in bars
        }
    )
    # The days come from the seeded alerts' own times, not from a second reading of the clock:
    # a run that seeds just before midnight and looks just after must still agree.
    seeded = Counter(
        (_alert(n, d, c, s, service.seeded_at).created.date().isoformat(), c)
        for n, (d, c, s) in enumerate(SEEDED)
    )
    assert drawn == seeded
    assert all(b.size["height"] > 0 and b.size["width"] > 0 for b in bars), "every bar is drawn"


def test_alert_filters_narrow_the_list(browser: webdriver.Chrome, service: Service_) -> None:
    sign_in(browser, service, READ_TOKEN)
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.alert")) == len(SEEDED)
    Select(browser.find_element(By.NAME, "category")).select_by_visible_text("supply-disruption")
    Select(browser.find_element(By.NAME, "severity")).select_by_visible_text("medium")
    browser.find_element(By.CSS_SELECTOR, "#alert-filters button").click()
    WebDriverWait(browser, 15).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.alert")) == 1)
    assert "category=supply-disruption" in browser.current_url


def test_an_item_title_with_markup_shows_as_text(browser: webdriver.Chrome, service: Service_) -> None:
    sign_in(browser, service, READ_TOKEN)
    open_page(browser, service, "/items?matched=all", "tr.item")
    titles = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "tr.item .item-title")]
    assert XSS_TITLE in titles, titles
    assert browser.execute_script("return window.__xss === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "tr.item[data-id=x1] .item-title a"), (
        "a javascript: link is no link"
    )
    with pytest.raises(NoAlertPresentException):
        _ = browser.switch_to.alert.text
    # Searching narrows the list.
    search = browser.find_element(By.NAME, "q")
    search.clear()
    search.send_keys("copper")
    browser.find_element(By.CSS_SELECTOR, "#item-search button").click()
    WebDriverWait(browser, 15).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.item")) == 1)
    assert browser.find_element(By.CSS_SELECTOR, "tr.item").get_attribute("data-id") == "p1"


def test_the_playground_highlights_the_terms_of_a_prosecution_story(
    browser: webdriver.Chrome, service: Service_
) -> None:
    sign_in(browser, service, READ_TOKEN, "/playground")
    box = browser.find_element(By.ID, "playground-text")
    box.send_keys(STORY)
    browser.find_element(By.CSS_SELECTOR, "#playground-form button").click()
    wait_for(browser, "#fired li.fired")
    fired = [
        li.get_attribute("data-rule") for li in browser.find_elements(By.CSS_SELECTOR, "#fired li.fired")
    ]
    assert "prosecution-en" in fired
    marked = {m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, "#highlighted mark")}
    assert {"gallium", "prosecutors"} <= marked, marked
    assert any("smuggling" in m for m in marked), marked
    # The highlighted text is the pasted text, unchanged.
    assert browser.find_element(By.ID, "highlighted").text.split() == STORY.split()
    reasons = browser.find_elements(By.CSS_SELECTOR, "#why-not li.why-not")
    assert reasons and all(r.find_elements(By.CSS_SELECTOR, "ul li") for r in reasons), "each says why"
    assert console_errors(browser) == []


def test_a_silence_created_in_the_page_shows_in_the_api_and_expires(
    browser: webdriver.Chrome, service: Service_
) -> None:
    sign_in(browser, service, WRITE_TOKEN, "/silences")
    form = browser.find_element(By.ID, "silence-form")
    form.find_element(By.NAME, "rule").send_keys("prosecution-en")
    form.find_element(By.NAME, "duration").clear()
    form.find_element(By.NAME, "duration").send_keys("3h")
    form.find_element(By.NAME, "reason").send_keys("court reporting week <b>noisy</b>")
    form.find_element(By.NAME, "author").send_keys("browser-test")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    row = wait_for(browser, "tr.silence[data-state=active]")
    listed = api(service, "/api/v1/silences")["silences"]
    made = [s for s in listed if s["author"] == "browser-test"]
    assert len(made) == 1
    assert made[0]["matchers"] == [{"name": "rule", "value": "prosecution-en"}]
    assert made[0]["reason"] == "court reporting week <b>noisy</b>"
    assert row.get_attribute("data-id") == made[0]["id"]
    assert "court reporting week <b>noisy</b>" in row.text, "the reason shows as text"

    row.find_element(By.CSS_SELECTOR, "button.expire").click()
    wait_for(browser, f"tr.silence[data-id='{made[0]['id']}'][data-state=expired]")
    ended = api(service, "/api/v1/silences?all=true")["silences"]
    assert [s["state"] for s in ended if s["id"] == made[0]["id"]] == ["expired"]


def test_a_typo_in_the_silence_form_shows_the_did_you_mean(
    browser: webdriver.Chrome, service: Service_
) -> None:
    sign_in(browser, service, WRITE_TOKEN, "/silences")
    form = browser.find_element(By.ID, "silence-form")
    form.find_element(By.NAME, "rule").send_keys("prosecution-eng")
    form.find_element(By.NAME, "reason").send_keys("r")
    form.find_element(By.NAME, "author").send_keys("a")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: "did you mean" in d.find_element(By.ID, "silence-result").text)
    assert "'prosecution-en'" in browser.find_element(By.ID, "silence-result").text


def test_a_backtest_of_a_pasted_rule_file_shows_what_it_adds(
    browser: webdriver.Chrome, service: Service_
) -> None:
    sign_in(browser, service, READ_TOKEN, "/backtest")
    rule = (
        "id: browser-copper\ntitle: Copper strikes (test)\ncategory: supply-disruption\nseverity: low\n"
        "description: Written for the browser test.\nmatch:\n  all: [copper, strike]\n"
    )
    browser.find_element(By.ID, "backtest-rules").send_keys(rule)
    file_box = browser.find_element(By.ID, "backtest-file")
    file_box.clear()
    file_box.send_keys("browser.yaml")
    browser.find_element(By.CSS_SELECTOR, "#backtest-form button").click()
    row = wait_for(browser, "#backtest-rows tr.change-add")
    assert row.get_attribute("data-id") == "p1"
    assert "browser-copper (strike, copper)" in row.text, "the terms, in text order"
    assert "1 alerts added" in browser.find_element(By.ID, "backtest-summary").text


def test_a_kept_item_opens_in_the_playground(browser: webdriver.Chrome, service: Service_) -> None:
    sign_in(browser, service, READ_TOKEN, "/items")
    row = wait_for(browser, "tr.item[data-id=p1]")
    row.find_element(By.LINK_TEXT, "Try in the playground").click()
    box = wait_for(browser, "#playground-text")
    assert box.get_attribute("value").startswith("Port strike delays copper")
    assert "item=p1" in browser.current_url
    assert console_errors(browser) == []
