"""The saga console (console/, served by the gateway at `/`) in a real browser: Debian's Chromium driven by
Playwright's async API, against the whole system started as tests/system does (tests/cluster.py).

Playwright's own browser download cannot work on our machines: the tests use /usr/bin/chromium (`apt-get install
chromium`; .ci/run installs it). With UPDATE_SCREENSHOTS=1 the tests also write docs/console-*.png.
"""

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.cluster import ADMIN, ROOT, Cluster, eventually, sign_in

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Headless in containers and CI: no GPU, no background traffic, and no sandbox when running as root.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 860}
SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"
DOCS = ROOT / "docs"
PASSWORD = "Password123"  # tests.cluster.new_customer's

# A short step timeout and two sends, so that a saga whose stock_svc is down is FAILED within 4.5 s (1.5 s + 3 s);
# a reply slower than 1.5 s only makes the saga send its command again (stock answers a repeat with its first reply).
# A FAILED saga stays FAILED until an admin retries it (no automatic retry within the tests).
SERVICE_ENV = {
    "SAGA_TIMER_INTERVAL": "0.1",
    "STEP_TIMEOUT": "1.5",
    "STEP_MAX_ATTEMPTS": "2",
    "FAILED_RETRY_DELAY": "3600",
}

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    running = await Cluster(service_env=SERVICE_ENV).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def console_url(cluster: Cluster) -> str:
    return cluster.api.removesuffix("/api/v1")


@pytest.fixture(scope="module")
async def api(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster.api, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
async def admin(api: httpx.AsyncClient) -> dict[str, str]:
    return await sign_in(api, ADMIN)


@pytest.fixture(scope="module")
async def product(api: httpx.AsyncClient, admin: dict[str, str]) -> str:
    body = {"name": "Console lamp", "description": "", "category": "Test", "price": 25.0, "quantity": 1000}
    response = await api.post("/products/", json=body, headers=admin)
    response.raise_for_status()
    product_id = response.json()["_id"]
    await eventually(lambda: api.get(f"/inventory/{product_id}", headers=admin), lambda r: r.status_code == 200)
    return product_id


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    args = [*CHROMIUM_ARGS, "--no-sandbox"] if os.geteuid() == 0 else CHROMIUM_ARGS
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        yield launched
        await launched.close()


def require_chromium() -> None:
    """Skip the module without Chromium on a developer's machine; fail in CI (.ci/run installs it)."""
    if not CHROMIUM.is_file():
        message = f"the console tests need Chromium at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_page(browser: Browser, console_url: str) -> AsyncIterator[OpenPage]:
    """`await open_page()`: a page of its own browser context (its own sessionStorage) on the console;
    `await open_page(username, password)` signs in through the form first. A script error in any page fails the
    test."""
    contexts, errors = [], []

    async def open_one(username: str | None = None, password: str = PASSWORD, path: str = "/") -> Page:
        context = await browser.new_context(base_url=console_url, viewport=VIEWPORT, locale="en-GB")
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        await page.goto(path)
        if username is not None:
            await sign_in_through_the_form(page, username, password)
            await expect(page.locator("#session-email")).to_have_text(username)
        return page

    yield open_one
    for context in contexts:
        await context.close()
    assert errors == [], "the console raised script errors"


async def sign_in_through_the_form(page: Page, username: str, password: str) -> None:
    await expect(page.get_by_role("heading", name="Sign in to the saga console")).to_be_visible()
    await page.get_by_label("Email").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    """docs/<name>, only with UPDATE_SCREENSHOTS=1 (CI does not rewrite them)."""
    if not SCREENSHOTS:
        return
    DOCS.mkdir(exist_ok=True)
    await page.mouse.move(0, 0)  # no hover highlight
    await page.evaluate("document.activeElement?.blur()")  # no focus ring
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top, where it belongs
    await page.screenshot(path=str(DOCS / name), full_page=full_page, animations="disabled")
