"""The static site in a real headless Chromium (Debian's, driven by Playwright): links work from
file://, no script from data runs, no request leaves the machine; a screenshot is kept.

CI installs chromium (see .ci/run). On a machine without it this test says so and skips; under
CI=true it fails instead, so a missing browser can never hide a broken site."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from test_build import EVIL_PLATFORM, EVIL_TITLE, site  # noqa: F401  (the shared built site)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium); CI runs this test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def test_site_in_a_real_browser(browser, site):  # noqa: F811
    _, runs, summary = site
    page = browser.new_page(viewport={"width": 1200, "height": 1600})
    requests, dialogs, errors = [], [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: errors.append(str(error)))
    blocked = []  # a Content Security Policy violation is reported on the console
    page.on("console", lambda message: "Content Security Policy" in message.text and blocked.append(message.text))

    page.goto((summary.out / "index.html").as_uri())
    assert page.title() == "Impact assessments — impactbook"
    assert page.locator("#plans").inner_text().count("ship") == 1
    assert EVIL_TITLE in page.locator("#plans").inner_text(), "the hostile title shows as text"
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 2
    page.select_option("select[data-filter=decision]", "ship")
    assert page.locator("#runs tbody tr:visible").count() == 2
    page.select_option("select[data-filter=status]", "FAILED")
    assert page.locator("#runs tbody tr:visible").count() == 0, "our filter script runs (allowed by its hash)"
    page.select_option("select[data-filter=status]", "")

    page.click(f"text={runs[0]}")
    assert page.url.endswith(f"runs/{runs[0]}.html")
    assert page.locator(".ib-decision").inner_text().startswith("SIMULATED Decision: SHIP"), "labels lead the banner"
    assert "All artifacts match SHA256SUMS" in page.locator(".ib-site").inner_text()
    assert EVIL_PLATFORM in page.inner_text("body"), "a hostile category value shows as text"
    theme = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--jp-ui-font-size1')")
    assert theme.strip(), "the report's theme, shared by every run page under assets/, applies"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=False)

    page.click("text=All plans and runs")
    page.click("a[href^='compare/']")
    assert "Comparison of 2 runs" in page.inner_text("h1")
    assert "conversion" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "comparison-page.png"), full_page=True)

    page.goto((summary.out / "plans/example.html").as_uri())
    assert page.locator("img[alt^='Relative effect of conversion']").count() == 1
    page.screenshot(path=str(ARTIFACTS / "plan-page.png"), full_page=True)

    assert page.evaluate("window.__pwned") is None, "no script from data ran"
    assert dialogs == [] and errors == [] and blocked == []
    outside = [url for url in requests if not url.startswith(("file://", "data:"))]
    assert outside == [], f"requests left the machine: {outside}"
