"""Playwright driving Debian's Chromium against pytest-django's live server.

Playwright's sync API keeps an asyncio loop running in the test's thread, and Django refuses
database calls from a thread with a running loop unless DJANGO_ALLOW_ASYNC_UNSAFE is set. The
``playwright`` fixture sets it only while a module's browser is up, so other tests keep the check.
"""

import os
import re
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: run scripts/ensure_chromium.sh (make browser)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as instance:
            yield instance
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def site(live_server, settings):
    """The live server, with PayPal's return and cancel URLs pointing back at it."""
    settings.SITE_URL = live_server.url
    return live_server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.browser_test_failed = report.failed
    return report


@pytest.fixture
def open_page(request, browser, site):
    """``open_page(**context_options)``: a fresh browser context (its own cookies) on the live server."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    contexts = []

    def open_(**options):
        options = {"locale": "en-US", "viewport": {"width": 1100, "height": 900}, **options}
        context = browser.new_context(base_url=site.url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_
    failed = getattr(request.node, "browser_test_failed", False)
    for index, context in enumerate(contexts):
        if failed and context.pages:
            # What the browser showed when the test failed, for whoever reads the CI artifacts.
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)
            context.pages[-1].screenshot(path=str(SCREENSHOTS / f"{name}-FAILED-{index}.png"), full_page=True)
        context.close()


@pytest.fixture
def page(open_page):
    return open_page()


@pytest.fixture
def screenshot(request):
    """``screenshot(page, "step")`` saves test-artifacts/screenshots/<test>-<nn>-<step>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)
    taken = []

    def take(page, step: str) -> Path:
        taken.append(step)
        path = SCREENSHOTS / f"{test_name}-{len(taken):02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
