"""The moderation UI in a real Chromium (Debian's chromium + chromedriver, no download):
a municipal moderator signs in, sees only their municipality, takes and resolves items with
the keyboard and the forms, reads the history; another municipality's moderator gets 404;
an item stored while the queue is open appears without a reload. Screenshots of the queue
and of an item page go to the test's directory and to the artefacts folder
($DOZOR_TEST_ARTIFACTS, else <repo>/.artifacts/; and to docs/img with
DOZOR_UPDATE_SCREENSHOTS=1; see tests/support/artifacts.py)."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from services.broker import free_port
from services.moderation.store import ItemFilter
from services.moderation.web.views import read_topic_names
from services.settings import DEFAULT_MODEL_DIR
from tests.support.observe import wait_for

from tests.support.artifacts import artifacts_dir, keep
from tests.support.moderation import START
from tests.support.moderation_web import make_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):  # pragma: no cover - make system-deps
    pytest.fail("Chromium and chromedriver are missing: run `make system-deps`",
                pytrace=False)


class LiveServer:
    """The app under uvicorn in a thread, on a free port of localhost."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        # localhost is a secure context: Chromium keeps Secure cookies over plain http there
        return f"http://localhost:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=20, message="uvicorn started")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,900", "--lang=ru-RU",
                     "--no-first-run", "--disable-extensions", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync"):
        options.add_argument(argument)
    # the driver path is given, so Selenium Manager has nothing to look up or download
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def screenshot(driver: webdriver.Chrome, path: Path, name: str) -> Path:
    """A PNG of the whole page, beyond the window (Chrome DevTools Protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000),
                 "scale": 1}})
    target = path / name
    target.write_bytes(base64.b64decode(shot["data"]))
    keep(target)  # the artefacts folder (and docs/img with DOZOR_UPDATE_SCREENSHOTS=1)
    return target


def sign_in(driver: webdriver.Chrome, base: str, login: str, password: str) -> None:
    driver.get(base + "/")
    driver.find_element(By.NAME, "login").send_keys(login)
    driver.find_element(By.NAME, "password").send_keys(password + Keys.ENTER)
    wait_for(lambda: driver.find_elements(By.ID, "queue"), timeout=15, message="the queue page")


def row_ids(driver: webdriver.Chrome) -> list[str]:
    return [r.get_attribute("data-flag-id") for r in driver.find_elements(By.CSS_SELECTOR, "tr.item-row")]


def seed(store, make_flag):
    """A morning in Ухта and one item of Сыктывкар."""
    post = {"kind": "post", "action": "new", "page_id": "vk:-170002", "item_id": "300",
            "thread_id": "300", "by_page": True, "author_id": "-170002",
            "text": "С 1 июня начинается ремонт дорог на улицах Ленина и Октябрьской.",
            "url": "https://vk.com/wall-170002_300", "created_at": START - 6 * 3600}
    ukhta = dict(page_id="vk:-170002", municipality="Ухта", page_name="Администрация МО ГО «Ухта»",
                 thread_id="300", link="https://vk.com/wall-170002_300")
    question = make_flag("unanswered_question", item_id="311", created_at=START - 5 * 3600,
                         author_id="1311",
                         deadline_at=START - 1800, scores={"question": 0.93, "negative": 0.41},
                         text_="Когда отремонтируют дорогу на Октябрьской? Уже третий год ямы.",
                         topic="roads", **ukhta)
    toxic = make_flag("toxic", item_id="312", created_at=START - 4 * 3600, author_id="1312",
                      scores={"toxic": 0.88, "negative": 0.8, "question": 0.05},
                      text_="<script>alert(1)</script> Опять всё сделали через одно место!",
                      **ukhta)
    negative = make_flag("strongly_negative", item_id="313", created_at=START - 3 * 3600,
                         author_id="1313",
                         scores={"negative": 0.92, "toxic": 0.2, "question": 0.1},
                         text_="Ужасная работа администрации, никто ничего не делает.", **ukhta)
    spike = make_flag("negative_spike", page_id="vk:-170002", municipality="Ухта",
                      page_name="Администрация МО ГО «Ухта»", item_id="spike:313",
                      created_at=START - 2 * 3600, text_="Ужасная работа администрации",
                      details={"negative_count": 7, "comments_in_window": 10, "share": 0.7,
                               "window_start": START - 3 * 3600, "window_end": START - 2 * 3600})
    theirs = make_flag("toxic", municipality="Сыктывкар", page_name="Администрация Сыктывкара",
                       page_id="vk:-170001", created_at=START - 3600,
                       text_="Комментарий из Сыктывкара")
    store.upsert_flags([question, toxic, negative, spike, theirs])
    comments = [
        {"kind": "comment", "action": "new", "page_id": "vk:-170002", "item_id": item_id,
         "thread_id": "300", "by_page": False, "author_id": f"1{item_id}", "text": text,
         "url": f"https://vk.com/wall-170002_300?reply={item_id}", "created_at": created}
        for item_id, text, created in [
            ("310", "Давно пора!", START - 5.5 * 3600),
            ("311", question["text"], question["created_at"]),
            ("312", toxic["text"], toxic["created_at"]),
            ("313", negative["text"], negative["created_at"]),
        ]
    ]
    store.record_events([post] + comments)
    return question, toxic, negative, spike, theirs


def test_a_municipal_moderator_works_the_queue_in_chromium(pg_store, make_flag, tmp_path):
    store = pg_store
    ukhta = store.add_user("ukhta", "municipal", "пароль-ukhta", display_name="Мария Ухтинская",
                           municipalities=["Ухта"])
    syk = store.add_user("syk", "municipal", "пароль-syk", municipalities=["Сыктывкар"])

    question, toxic, negative, spike, theirs = seed(store, make_flag)
    app = make_app(store, poll_seconds=1.0, topic_names=read_topic_names(DEFAULT_MODEL_DIR))
    driver = chromium()
    try:
        with LiveServer(app) as server:
            base = server.url
            sign_in(driver, base, "ukhta", "пароль-ukhta")

            # only Ухта: the overdue question first, then the oldest
            assert row_ids(driver) == [question["flag_id"], toxic["flag_id"],
                                       negative["flag_id"], spike["flag_id"]]
            assert "Сыктывкар" not in driver.page_source
            # the «Тема» column: the model's name of the question's theme, «—» without one
            def topic_of(flag):
                return driver.find_element(
                    By.CSS_SELECTOR, f'tr[data-flag-id="{flag["flag_id"]}"] td.topic').text
            assert (topic_of(question), topic_of(toxic)) == ("Дороги", "—")
            assert driver.find_elements(By.CSS_SELECTOR, f'tr[data-flag-id="{question["flag_id"]}"].overdue')
            # the comment's markup is text on the page, not an element
            assert "<script>alert(1)</script> Опять" in driver.find_element(By.ID, "queue").text
            assert driver.execute_script("return window.__xss === undefined")

            # keyboard: j selects the first row, j the next, t takes it
            body = driver.find_element(By.TAG_NAME, "body")
            body.send_keys("j")
            body.send_keys("j")
            selected = driver.find_element(By.CSS_SELECTOR, "tr.item-row.selected")
            assert selected.get_attribute("data-flag-id") == toxic["flag_id"]
            body.send_keys("t")
            wait_for(lambda: store.get_item(ukhta, toxic["flag_id"]).status == "in_progress",
                     timeout=10, message="t took the item")
            wait_for(lambda: "в работе" in driver.find_element(
                By.CSS_SELECTOR, f'tr[data-flag-id="{toxic["flag_id"]}"]').text,
                timeout=10, message="the row shows it in progress")
            screenshot(driver, tmp_path, "moderation-queue.png")

            # r resolves the selected row with a note typed into the prompt
            driver.find_element(By.TAG_NAME, "body").send_keys("k")
            selected = driver.find_element(By.CSS_SELECTOR, "tr.item-row.selected")
            assert selected.get_attribute("data-flag-id") == question["flag_id"]
            driver.find_element(By.TAG_NAME, "body").send_keys("r")
            alert = wait_for(lambda: _alert(driver), timeout=10, message="the note prompt")
            alert.send_keys("Передали в дорожный отдел, ответ дан в комментариях")
            alert.accept()
            wait_for(lambda: store.get_item(ukhta, question["flag_id"]).status == "resolved",
                     timeout=10, message="r resolved the item")
            item = store.get_item(ukhta, question["flag_id"])
            assert (item.resolution, item.resolution_note) == (
                "answered", "Передали в дорожный отдел, ответ дан в комментариях")
            wait_for(lambda: question["flag_id"] not in row_ids(driver), timeout=10,
                     message="the resolved row leaves the open queue")

            # the item page: take with the button, resolve with a note, the history shows it
            driver.get(f"{base}/items/{negative['flag_id']}")
            driver.find_element(By.ID, "take").click()
            wait_for(lambda: driver.find_elements(By.ID, "release"), timeout=10,
                     message="the item page after taking")
            driver.find_element(By.NAME, "note").send_keys("Ответили жителю, комментарий оставлен")
            driver.find_element(By.ID, "resolve-answered").click()
            wait_for(lambda: "Решено." in driver.page_source, timeout=10, message="resolved")
            history = driver.find_element(By.CSS_SELECTOR, "table.audit").text
            assert "Мария Ухтинская взят в работу" in history
            assert "Мария Ухтинская решён: отвечено" in history
            assert "Ответили жителю, комментарий оставлен" in history
            stored = store.get_item(ukhta, negative["flag_id"])
            assert (stored.status, stored.resolution) == ("resolved", "answered")

            # the toxic comment's page: the thread around it, for the screenshot
            driver.get(f"{base}/items/{toxic['flag_id']}")
            page_text = driver.find_element(By.TAG_NAME, "main").text
            assert "С 1 июня начинается ремонт дорог" in page_text
            assert "Давно пора!" in page_text
            assert "токсичный комментарий" in page_text
            screenshot(driver, tmp_path, "moderation-item.png")

            # a new item appears while the queue is open, without a reload
            driver.get(base + "/")
            driver.execute_script("window.__noReload = 'still here'")
            fresh = make_flag("toxic", page_id="vk:-170002", municipality="Ухта",
                              page_name="Администрация МО ГО «Ухта»", created_at=START - 60,
                              text_="Новый комментарий, пока очередь открыта")
            store.upsert_flags([fresh])
            wait_for(lambda: fresh["flag_id"] in row_ids(driver), timeout=15,
                     message="the new item in the open queue")
            assert driver.execute_script("return window.__noReload") == "still here"

            # another municipality's moderator: 404 by URL and by API
            driver.delete_all_cookies()
            sign_in(driver, base, "syk", "пароль-syk")
            assert row_ids(driver) == [theirs["flag_id"]]
            driver.get(f"{base}/items/{toxic['flag_id']}")
            assert driver.find_element(By.TAG_NAME, "h1").text == "404"
            assert "Элемент не найден." in driver.page_source
            assert "Опять всё сделали" not in driver.page_source
            token = store.create_token(syk, "бот")
            api = httpx.get(f"{base}/api/v1/items/{toxic['flag_id']}",
                            headers={"Authorization": f"Bearer {token}"})
            assert api.status_code == 404
            assert store.list_items(syk, ItemFilter()).total == 1
    finally:
        driver.quit()
    for name in ("moderation-queue.png", "moderation-item.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        assert (artifacts_dir() / name).read_bytes() == (tmp_path / name).read_bytes()


def _alert(driver):
    try:
        return driver.switch_to.alert
    except NoAlertPresentException:
        return None
