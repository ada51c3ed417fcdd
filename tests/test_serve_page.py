"""The chat page of `anygpt serve` in a real headless browser (Debian's chromium and chromedriver):
a text turn, a picture upload, a picture reply and a spoken reply that plays."""

import os
import shutil

import pytest
from PIL import Image, ImageDraw

webdriver = pytest.importorskip("selenium.webdriver")

pytestmark = pytest.mark.tiny_default
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,1300",
                 "--autoplay-policy=no-user-gesture-required", "--use-fake-device-for-media-stream",
                 "--use-fake-ui-for-media-stream"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_script_timeout(120)
    yield driver
    driver.quit()


def wait(driver, script, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def turn(driver, text, want, *, picture=None):
    from selenium.webdriver.support.ui import Select

    before = driver.execute_script("return document.querySelectorAll('.msg.assistant, .msg.error').length")
    if picture is not None:
        driver.find_element("id", "image-file").send_keys(str(picture))
        wait(driver, "return document.querySelectorAll('#attachments .chip').length > 0", 10)
    box = driver.find_element("id", "text")
    box.clear()
    box.send_keys(text)
    Select(driver.find_element("id", "want")).select_by_value(want)
    driver.find_element("id", "send").click()
    wait(driver, f"return document.querySelectorAll('.msg.assistant, .msg.error').length > {before} "
                 "&& !document.getElementById('send').disabled")
    return driver.execute_script("const m = document.querySelectorAll('.msg.assistant, .msg.error');"
                                 "return m[m.length - 1].className")


def test_a_conversation_in_the_browser(browser, served, tmp_path):
    url, _ = served("tiny")
    browser.get(url + "/")
    wait(browser, "return document.getElementById('model').textContent === 'tiny'", 30)
    assert browser.find_element("id", "voice").find_elements("tag name", "option")

    # a text turn
    assert turn(browser, "Hello there.", "text") == "msg assistant"
    # a picture upload, described in text
    picture = tmp_path / "heart.png"
    image = Image.new("RGB", (64, 64), (220, 220, 220))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(200, 30, 30))
    image.save(picture)
    assert turn(browser, "Please describe the picture briefly.", "text", picture=picture) == "msg assistant"
    assert browser.execute_script("return document.querySelector('.msg.user img').naturalWidth") == 64
    reply = browser.execute_script("const m = document.querySelectorAll('.msg.assistant'); return m[m.length - 1].innerText")
    assert reply.strip()
    # a picture reply
    assert turn(browser, "a large blue star in the middle. Please generation an image.", "image") == "msg assistant"
    wait(browser, "const m = document.querySelectorAll('.msg.assistant');"
                  "const img = m[m.length - 1].querySelector('img'); return img && img.complete && img.naturalWidth === 64", 20)
    # a spoken reply: its player has the whole reply, with a duration
    assert turn(browser, "the dog runs across the field. Please read the given text.", "speech") == "msg assistant"
    duration = wait(browser, "const a = document.querySelector('.msg.assistant audio[data-kind=speech]');"
                             "return a && a.readyState >= 1 && a.duration", 20)
    assert duration > 0.3
    assert browser.execute_script("return document.getElementById('status').textContent").startswith("done in")
    shot = os.environ.get("ANYGPT_PAGE_SCREENSHOT")  # docs/serve-page.png is made this way
    if shot:
        browser.save_screenshot(shot)


def test_errors_show_in_the_page(browser, served):
    url, _ = served("tiny", max_jobs=1)
    browser.get(url + "/")
    wait(browser, "return document.getElementById('model').textContent === 'tiny'", 30)
    browser.execute_script("document.getElementById('api-key').value = ''")
    # a reply modality the request cannot have: a streamed speech reply in WAV is refused by the server
    browser.execute_script("""
        const body = {stream: true, modalities: ['audio'], audio: {format: 'wav'}, messages: [{role: 'user', content: 'hi'}]};
        window.__done = false; converse(body).then(() => window.__done = true);""")
    wait(browser, "return window.__done")
    text = browser.execute_script("const m = document.querySelectorAll('.msg.error'); return m[m.length - 1].innerText")
    assert "400" in text and "pcm16" in text
