"""The dashboard in a real browser: headless Chromium (the system's, driven
by Selenium through the system's ChromeDriver) against `docket serve`.

The server runs without processors; a second `docket serve` on the same
state directory is the processors, started and stopped by the test, so the
page is seen before a 2,000-document job starts and while it moves, and a
queued job can be cancelled from the page. Screenshots are kept in
`DOCKET_ARTIFACTS` (default `tests/python/artifacts`).
"""

import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ROOT, Server, docket_bin

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = pathlib.Path(os.environ.get("DOCKET_ARTIFACTS", ROOT / "tests" / "python" / "artifacts"))
WAIT = 60


def serve(state: pathlib.Path, workers: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [docket_bin(), "serve", "--addr", "127.0.0.1:0", "--state", str(state),
         "--workers", str(workers), "--evaluator", "wordstats", "--max-documents", "5000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert line.startswith("listening on "), f"docket serve printed {line!r}"
    return process, line.split()[-1]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture()
def api(tmp_path):
    process, url = serve(tmp_path, 0)
    try:
        yield Server(url, tmp_path)
    finally:
        stop(process)


@pytest.fixture()
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("the browser tests need Chromium and ChromeDriver (Debian: chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1400"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """The console's errors since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def shot(driver, name: str) -> pathlib.Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def sign_in(driver, url: str, token: str) -> None:
    driver.get(url + "/dashboard")
    field = WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "key"))
    if not field.is_displayed():
        driver.find_element(By.ID, "sign-out").click()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "scope").is_displayed())


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def percent(driver) -> float:
    match = re.match(r"([\d.]+) %", text(driver, "progress-text"))
    assert match, text(driver, "progress-text")
    return float(match.group(1))


def submit(api: Server, token: str, n: int, broken: set[int] = frozenset()) -> str:
    """Uploads `n` text files of a few words as files are uploaded, those
    in `broken` as cut-short PDFs instead (each fails alone, a data
    failure); returns the job's id."""
    files = []
    for i in range(n):
        if i in broken:
            files.append(("file", (f"doc-{i}.pdf", b"%PDF-1.7 cut short", "application/pdf")))
        else:
            words = f"document {i} " + "lorem ipsum dolor sit amet " * (1 + i % 7)
            files.append(("file", (f"doc-{i}.txt", words.encode(), "text/plain")))
    response = requests.post(
        api.url + "/api/v1/batch/upload",
        headers={"Authorization": f"Bearer {token}"},
        files=files,
        data={"evaluator": "wordstats", "tolerated_failure_percent": "100"},
        timeout=120,
    )
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def test_the_dashboard_follows_a_job_shows_its_failures_and_cancels(api, browser):
    acme, _ = api.key("acme", "premium")
    job = submit(api, acme, 2000, {3, 1500})

    sign_in(browser, api.url, acme)
    assert text(browser, "scope") == "tenant acme"
    WebDriverWait(browser, WAIT).until(lambda d: "queued" in text(d, "jobs-by-status"))
    browser.get(api.url + f"/dashboard#/jobs/{job}")
    WebDriverWait(browser, WAIT).until(lambda d: text(d, "job-title") == job)
    before = percent(browser)
    shot(browser, "dashboard-1-job-before")

    # One processor: the job takes a few of the page's refreshes.
    processors, _ = serve(api.state, 1)
    try:
        WebDriverWait(browser, WAIT).until(lambda d: percent(d) > before)
        moved = percent(browser)
        shot(browser, "dashboard-2-job-moving")
        assert moved > before
        WebDriverWait(browser, WAIT).until(lambda d: text(d, "job-status") == "completed")
        WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "documents-panel").is_displayed())
    finally:
        stop(processors)
    assert "1998 completed, 2 failed" in text(browser, "progress-text")
    # The failures by category, with the failed documents as samples.
    failures = text(browser, "failures")
    assert "DATA: 2 items" in failures, failures
    assert "doc-3.pdf" in failures and "doc-1500.pdf" in failures and "unreadable PDF" in failures
    # The failed documents, filtered, with their category.
    Select(browser.find_element(By.ID, "documents-status")).select_by_value("failed")
    WebDriverWait(browser, WAIT).until(lambda d: text(d, "documents-count").startswith("2 documents"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#documents tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == ["doc-3.pdf", "doc-1500.pdf"]
    assert all("DATA:" in r.text for r in rows)
    # Sorted by score, highest first, over the rows loaded.
    Select(browser.find_element(By.ID, "documents-status")).select_by_value("completed")
    WebDriverWait(browser, WAIT).until(lambda d: text(d, "documents-count").startswith("200 documents"))
    Select(browser.find_element(By.ID, "documents-sort")).select_by_value("score-desc")
    scores = [float(r.find_elements(By.TAG_NAME, "td")[3].text)
              for r in browser.find_elements(By.CSS_SELECTOR, "#documents tbody tr")]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1], scores
    shot(browser, "dashboard-3-job-finished")

    # Retry: the recovery job of the two failed documents opens.
    browser.find_element(By.ID, "retry").click()
    WebDriverWait(browser, WAIT).until(lambda d: text(d, "job-title") not in ("", job))
    recovery = text(browser, "job-title")
    _, _, report = api.call("GET", f"/api/v1/batch/status/{recovery}", acme)
    assert report["progress"]["total_documents"] == 2

    # Cancel a queued job (no processor runs now) from its page.
    queued = submit(api, acme, 300)
    browser.get(api.url + f"/dashboard#/jobs/{queued}")
    WebDriverWait(browser, WAIT).until(lambda d: text(d, "job-title") == queued)
    cancel = browser.find_element(By.ID, "cancel")
    WebDriverWait(browser, WAIT).until(lambda d: cancel.is_enabled())
    cancel.click()
    assert cancel.text == "Click again to cancel"
    cancel.click()
    WebDriverWait(browser, WAIT).until(lambda d: text(d, "job-status") == "cancelled")
    _, _, report = api.call("GET", f"/api/v1/batch/status/{queued}", acme)
    assert report["status"] == "cancelled"
    shot(browser, "dashboard-4-cancelled")
    assert console_errors(browser) == []


def test_a_tenant_sees_only_its_jobs_and_an_operator_every_tenants(api, browser):
    acme, _ = api.key("acme", "premium")
    globex, _ = api.key("globex", "standard")
    operator, _ = api.key("ops", "operator")
    job = submit(api, acme, 40)
    processors, _ = serve(api.state, 2)
    try:
        api.wait_finished(acme, job)
    finally:
        stop(processors)

    sign_in(browser, api.url, globex)
    assert text(browser, "scope") == "tenant globex"
    WebDriverWait(browser, WAIT).until(lambda d: "no job ran" in text(d, "active-jobs"))
    assert job not in browser.page_source
    assert not browser.find_element(By.ID, "queues-card").is_displayed()
    assert console_errors(browser) == []
    browser.get(api.url + f"/dashboard#/jobs/{job}")
    WebDriverWait(browser, WAIT).until(lambda d: text(d, "message") == f"No job {job} is visible to this key.")
    assert not browser.find_element(By.ID, "job").is_displayed()
    shot(browser, "dashboard-5-other-tenant")
    # The one error is the API's 404 for the job.
    errors = console_errors(browser)
    assert len(errors) == 1 and "404" in errors[0], errors

    sign_in(browser, api.url, operator)
    browser.get(api.url + "/dashboard#/")
    WebDriverWait(browser, WAIT).until(lambda d: job in text(d, "active-jobs"))
    assert text(browser, "scope") == "operator: every tenant"
    assert "acme" in text(browser, "active-jobs")
    assert browser.find_element(By.ID, "queues-card").is_displayed()
    assert "work-normal" in text(browser, "queues")
    assert int(text(browser, "last-hour")) == 40
    shot(browser, "dashboard-6-operator")
    browser.find_element(By.LINK_TEXT, job).click()
    WebDriverWait(browser, WAIT).until(lambda d: text(d, "job-status") == "completed")
    assert console_errors(browser) == []
