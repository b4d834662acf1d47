"""The console in a real browser: Debian's Chromium driven by Selenium through
chromium-driver, against the API process's pages served by uvicorn on 127.0.0.1.

A screenshot of each page is written to var/test-artifacts/console/ (or
$AMANA_TEST_ARTIFACTS/console/); docs/console.md shows those of a run. Every request the
pages made is read from the browser's own network log and must have gone to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.api import create_app
from archive.catalog.models import QuarantineEntry, QuarantineStatus
from archive.catalog.models_governance import (
    AuditEvent,
    ProfileVersion,
    ProfileVersionStatus,
    Source,
)
from tests.catalog.conftest import mint, revised_national_profile
from tests.console.conftest import (
    Seeded,
    app_on_orthanc,
    archived_instance,
    burned_in_bytes,
    burned_in_original,
    seed,
    write_archived,
)
from tests.paths import PROFILES_DIR, REPO_ROOT
from tests.pixels.imaging import COLUMNS, ROWS
from tests.support.orthanc import Orthanc

ARTIFACTS = Path(os.environ.get("AMANA_TEST_ARTIFACTS", REPO_ROOT / "var" / "test-artifacts"))
WAIT_S = 30  # a ceiling for a loaded machine, not a measured duration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture()
def server(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    """The API app (console included) in a real uvicorn server on 127.0.0.1."""
    app = create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        quarantine_dir=tmp_path / "quarantine",
        spool_dir=tmp_path / "spool",
        release_dir=tmp_path / "released",
        archive_dir=tmp_path / "archive",
    )
    with _serve(app) as base:
        yield base


@contextmanager
def _serve(app: FastAPI) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(WAIT_S)


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "apt: chromium chromium-driver (make deps-test)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # the test may run as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--window-size=1280,900",
        "--lang=en-US",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: WebDriver, name: str) -> None:
    folder = ARTIFACTS / "console"
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))


def _requested_urls(driver: WebDriver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _sign_in(driver: WebDriver, base: str, token: str) -> None:
    driver.get(f"{base}/console/")
    WebDriverWait(driver, WAIT_S).until(expected_conditions.url_contains("/console/login"))
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "sign-out"))
    )


def _cells(driver: WebDriver, table_id: str) -> list[list[str]]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]


@pytest.mark.ocr  # the quarantine preview runs the pixel step
def test_console_in_chromium(
    sessions: sessionmaker[Session], tmp_path: Path, server: str, browser: WebDriver
) -> None:
    """Rule: an auditor signs in, searches studies, sees a study's
    thumbnail from the archive, and answers "who sent how many studies,
    under which profile version, and what was quarantined and why" from the Reports page; a
    steward opens a quarantined instance and sends it back through the pipeline, opens
    another beside its masked regions and releases it (confirmed); a steward
    proposes a profile version that lints clean, tries it on a sample (before-values
    masked), and only another steward may approve and activate it; an admin registers a
    hospital and disables it; the Arabic
    pages are right to left; /docs and /redoc render; no page asks anything of a host
    other than 127.0.0.1."""
    seeded: Seeded = seed(sessions, tmp_path / "quarantine")
    auditor = mint(sessions, "auditor")
    steward = mint(sessions, "steward")

    # What the receivers record anyway: a start, and an unregistered PACS refused.
    audit.record(sessions, audit.application_activity("receiver", started=True))
    audit.record(sessions, audit.association_refused("PACS_X", "10.9.9.9", "unregistered"))

    browser.get(f"{server}/console/login")
    _shot(browser, "01-sign-in")
    _sign_in(browser, server, auditor)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    sources = {row[0] for row in _cells(browser, "sources")}
    assert {"CHU_RABAT (CHU Rabat)", "CHU_FES (CHU Fes)"} <= sources
    assert [row[:2] for row in _cells(browser, "refusals")] == [["PACS_X", "1"]]
    _shot(browser, "02-overview")

    browser.get(f"{server}/console/studies")
    field = browser.find_element(By.NAME, "source")
    field.send_keys("CHU_RABAT")
    browser.find_element(By.ID, "search").click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_contains("source=CHU_RABAT"))
    found = {row[0] for row in _cells(browser, "studies")}
    assert found == seeded.studies["CHU_RABAT (CHU Rabat)"]
    _shot(browser, "03-studies")
    write_archived(tmp_path / "archive", "2.25.101/2.25.101.1/2.25.101.1.1.dcm", True)
    browser.find_element(By.LINK_TEXT, "2.25.101").click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_contains("/studies/2.25.101"))
    thumb = WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "thumb-1"))
    )
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.execute_script("return arguments[0].complete", thumb)
    )
    assert browser.execute_script("return arguments[0].naturalWidth", thumb) > 0
    _shot(browser, "04-study")

    browser.get(
        f"{server}/console/reports?received_from=2026-11-23&received_to=2026-11-29&period=week"
    )
    totals = {row[0]: row[1:] for row in _cells(browser, "by-source")}
    for label in seeded.studies:
        expected = [
            str(len(seeded.studies[label])),
            str(seeded.instances[label]),
            str(sum(seeded.quarantined.get(label, {}).values())),
        ]
        assert totals[label] == expected, label
    reasons = {(row[0], row[2]): row[3] for row in _cells(browser, "quarantined")}
    assert reasons[("CHU_RABAT (CHU Rabat)", "burned_in_text")] == "1"
    _shot(browser, "05-reports")

    browser.get(f"{server}/console/audit?verify=1")
    assert "intact" in browser.find_element(By.ID, "verdict").text.lower()
    _shot(browser, "06-audit")
    browser.get(f"{server}/console/sources")
    assert {row[0] for row in _cells(browser, "source-list")} == {"CHU_FES", "CHU_RABAT"}
    _shot(browser, "06b-sources")
    browser.find_element(By.ID, "sign-out").click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_contains("/console/login"))

    _sign_in(browser, server, steward)
    browser.get(f"{server}/console/quarantine")
    _shot(browser, "07-quarantine")
    entry = seeded.entries[0]
    browser.find_element(By.ID, f"entry-{entry}").click()
    browser.find_element(By.ID, "confirm-retry").click()
    browser.find_element(By.ID, "retry").click()
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "done"))
    )
    _shot(browser, "08-quarantine-retried")
    # Another entry: the original beside its masked regions, then released.
    held = seeded.entries[1]
    burned_in_original(tmp_path / "quarantine", sessions, held)
    browser.get(f"{server}/console/quarantine/{held}")
    browser.find_element(By.ID, "show-preview").click()
    frame = WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "preview-frame-1"))
    )
    shown = browser.execute_script(
        "return [arguments[0].complete, arguments[0].naturalWidth, arguments[0].naturalHeight]",
        frame,
    )
    assert shown[0] and shown[1] > 2 * COLUMNS and shown[2] > ROWS, shown  # two panels
    assert browser.find_element(By.ID, "preview-outcome").text == "archived"
    _shot(browser, "08b-quarantine-before-after")
    browser.find_element(By.ID, "back-to-entry").click()
    browser.find_element(By.ID, "release").click()  # unticked: the browser asks first
    assert browser.find_elements(By.CSS_SELECTOR, "#confirm-release:invalid")
    browser.find_element(By.ID, "confirm-release").click()
    browser.find_element(By.ID, "release").click()
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "entry-status"), "RELEASED")
    )
    _shot(browser, "08c-quarantine-released")
    assert (tmp_path / "released" / f"quarantine-{held}.dcm").is_file()
    with sessions() as session:
        assert session.get_one(QuarantineEntry, entry).status is QuarantineStatus.RETRIED
        assert session.get_one(QuarantineEntry, held).status is QuarantineStatus.RELEASED
        actors = set(session.scalars(select(AuditEvent.actor)))
    assert {auditor.partition(".")[0], steward.partition(".")[0]} <= actors

    # Four eyes: the proposer cannot approve; a second steward approves and activates.
    (tmp_path / "revised").mkdir()
    revised = revised_national_profile(tmp_path / "revised")
    browser.get(f"{server}/console/profiles")
    browser.find_element(By.ID, "profile-file").send_keys(str(revised))
    browser.find_element(By.ID, "propose").click()
    refusal = WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "my-refusal"))
    )
    assert refusal.text == "proposer cannot approve"
    assert browser.find_element(By.ID, "four-eyes").text == "second approval missing"
    assert browser.find_elements(By.CSS_SELECTOR, "#diff tbody tr code")  # the changes shown
    proposal_url = browser.current_url
    assert browser.find_element(By.ID, "lint").tag_name == "p"  # lints clean
    _shot(browser, "09-profile-proposed")
    sample = tmp_path / "sample.dcm"
    sample.write_bytes(burned_in_bytes())
    browser.find_element(By.ID, "samples").send_keys(str(sample))
    browser.find_element(By.ID, "dry-run").click()
    tried = WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#sample-1 .outcome"))
    )
    assert tried.text == "archived"
    assert "Testpatient" not in browser.page_source
    _shot(browser, "09b-profile-dry-run")
    browser.get(proposal_url)
    browser.find_element(By.ID, "sign-out").click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_contains("/console/login"))
    second = mint(sessions, "steward")
    _sign_in(browser, server, second)
    browser.get(proposal_url)
    browser.find_element(By.ID, "confirm-approve").click()
    browser.find_element(By.ID, "approve").click()
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "activate"))
    )
    browser.find_element(By.ID, "confirm-activate").click()
    browser.find_element(By.ID, "activate").click()
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "version-status"), "ACTIVE")
    )
    _shot(browser, "10-profile-activated")
    with sessions() as session:
        version_id = int(proposal_url.rstrip("/").rsplit("/", 1)[1])
        pv = session.get_one(ProfileVersion, version_id)
        assert pv.status is ProfileVersionStatus.ACTIVE
        assert pv.proposed_by == steward.partition(".")[0]
        assert [a.approved_by for a in pv.approvals] == [second.partition(".")[0]]

    # An admin registers a hospital and disables it.
    browser.find_element(By.ID, "sign-out").click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_contains("/console/login"))
    _sign_in(browser, server, mint(sessions, "admin"))
    browser.get(f"{server}/console/sources")
    for field, value in (("new-ae-title", "CHU_OUJDA"), ("new-address", "10.7.0.0/16")):
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "add-source").click()
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "disable-CHU_OUJDA"))
    ).click()
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.presence_of_element_located((By.ID, "enable-CHU_OUJDA"))
    )
    _shot(browser, "13-admin-sources")
    with sessions() as session:
        oujda = session.scalars(select(Source).where(Source.ae_title == "CHU_OUJDA")).one()
        assert oujda.enabled is False
    browser.find_element(By.ID, "sign-out").click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_contains("/console/login"))
    _sign_in(browser, server, second)

    browser.get(f"{server}/console/quarantine/{entry}")
    browser.find_element(By.ID, "lang-ar").click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_contains("lang=ar"))
    html = browser.find_element(By.TAG_NAME, "html")
    assert (html.get_attribute("dir"), html.get_attribute("lang")) == ("rtl", "ar")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("الحجر")
    _shot(browser, "11-arabic")
    browser.get(f"{server}/console/quarantine")  # the choice is remembered
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("dir") == "rtl"

    # The API's own documentation, rendered from the vendored viewers.
    browser.get(f"{server}/docs")
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".swagger-ui .info .title"), "Amana"
        )
    )
    _shot(browser, "12-api-docs")
    browser.get(f"{server}/redoc")
    WebDriverWait(browser, WAIT_S).until(
        expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), "Amana")
    )

    urls = _requested_urls(browser)
    for asset in ("console.css", "docs/swagger-ui-bundle.js", "docs/redoc.standalone.js"):
        assert any(u.endswith(f"/console/static/{asset}") for u in urls), asset
    # chrome:, data:, about: and blob: (ReDoc's worker, made in the page) never leave the
    # browser; anything on the network must be ours.
    in_browser = ("chrome", "data", "about", "blob")
    network = [u for u in urls if urlsplit(u).scheme not in in_browser]
    assert [u for u in network if urlsplit(u).hostname != "127.0.0.1"] == []
    assert {urlsplit(u).scheme for u in network} == {"http"}


def test_dicomweb_thumbnail_in_chromium(
    sessions: sessionmaker[Session], tmp_path: Path, browser: WebDriver
) -> None:
    """Rule: with the archive a DICOMweb service (a real Orthanc) and no archive folder,
    the study page shows the series' picture, retrieved from the archive through WADO-RS."""
    seed(sessions, tmp_path / "quarantine")
    orthanc = Orthanc(tmp_path / "orthanc").start()
    try:
        store, app = app_on_orthanc(sessions, tmp_path, orthanc)
        middle = "2.25.101/2.25.101.1/2.25.101.1.1.dcm"
        store.put_many([(Path(middle), archived_instance(middle, bright_right=True))])
        with _serve(app) as base:
            _sign_in(browser, base, mint(sessions, "auditor"))
            browser.get(f"{base}/console/studies/2.25.101")
            thumb = WebDriverWait(browser, WAIT_S).until(
                expected_conditions.presence_of_element_located((By.ID, "thumb-1"))
            )
            WebDriverWait(browser, WAIT_S).until(
                lambda d: d.execute_script("return arguments[0].complete", thumb)
            )
            assert browser.execute_script("return arguments[0].naturalWidth", thumb) > 0
    finally:
        orthanc.stop()
