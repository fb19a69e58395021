"""The saga console in Chromium against the whole system: signing in, a customer following their order's saga to
COMPLETED and a cancelled one through its release, another customer kept out, an admin's list with its state
filter and an admin's retry of a FAILED saga, and API and network errors shown as messages."""

import re
from collections.abc import Awaitable, Callable

import httpx
from playwright.async_api import Page, expect

from tests.cluster import ADMIN, Cluster, eventually, new_customer
from tests.console.conftest import OpenPage, require_chromium, screenshot

require_chromium()


async def place_order(api: httpx.AsyncClient, customer: dict[str, str], product_id: str, quantity: int = 1) -> str:
    address = {"line1": "1 Test Street", "city": "Testville", "state": "TS", "postal_code": "1", "country": "Test"}
    body = {"items": [{"product_id": product_id, "quantity": quantity, "price": 25.0}], "shipping_address": address}
    response = await api.post("/orders/", json=body, headers=customer)
    response.raise_for_status()
    return response.json()["_id"]


async def saga_state(api: httpx.AsyncClient, headers: dict[str, str], order_id: str, *states: str) -> dict:
    """The saga once it is in one of `states` (through the API)."""
    response = await eventually(
        lambda: api.get(f"/sagas/{order_id}", headers=headers),
        lambda r: r.status_code == 200 and r.json()["state"] in states,
        timeout=30,
    )
    return response.json()


async def pay(api: httpx.AsyncClient, customer: dict[str, str], order_id: str) -> None:
    response = await api.put(f"/orders/{order_id}/status", json={"status": "paid"}, headers=customer)
    response.raise_for_status()


def header_state(page: Page):
    return page.locator(".saga-head [data-state]")


def path_states(page: Page):
    return page.locator("ol.path > li")


def step_row(page: Page, step: str):
    return page.locator(f".tl-row[data-step='{step}']")


# ---------------------------------------------------------------------------------------------------- signing in


async def test_the_gateway_serves_the_console(console_url: str) -> None:
    async with httpx.AsyncClient(base_url=console_url) as client:
        page = await client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert '<script type="module" src="/assets/console.js">' in page.text
        assets = [("/assets/console.js", "javascript"), ("/assets/console.css", "text/css")]
        for asset, kind in [*assets, ("/assets/favicon.svg", "image/svg+xml")]:
            response = await client.get(asset)
            assert response.status_code == 200 and kind in response.headers["content-type"], asset


async def test_a_wrong_password_is_a_message_and_the_right_one_signs_in(open_page: OpenPage) -> None:
    page = await open_page()
    await page.get_by_label("Email").fill(ADMIN["username"])
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    error = page.locator(".signin .form-error")
    await expect(error).to_contain_text("Incorrect email or password")
    await expect(error).to_contain_text(re.compile(r"Request id \S+"))  # the API's request_id

    await page.get_by_label("Password").fill(ADMIN["password"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Sagas", exact=True)).to_be_visible()
    await expect(page.locator("#session-role")).to_have_text("admin")
    tokens = await page.evaluate("[sessionStorage['console.access_token'], sessionStorage['console.refresh_token']]")
    assert all(tokens)


async def test_an_expired_access_token_is_refreshed_and_signing_out_revokes(
    open_page: OpenPage, api: httpx.AsyncClient
) -> None:
    page = await open_page(ADMIN["username"], ADMIN["password"])
    await expect(page.get_by_role("heading", name="Sagas", exact=True)).to_be_visible()

    # A refused access token (as an expired one is): the console refreshes the pair and carries on. Paused first,
    # so that no refresh of the list is under way when the page reloads (a rotation cut off by the reload would
    # leave the page with a used refresh token).
    await page.get_by_role("button", name="Live updates").click()
    await page.evaluate("sessionStorage.setItem('console.access_token', 'not-a-token')")
    await page.reload()
    await expect(page.get_by_role("heading", name="Sagas", exact=True)).to_be_visible()
    access = await page.evaluate("sessionStorage.getItem('console.access_token')")
    assert access and access != "not-a-token"

    refresh = await page.evaluate("sessionStorage.getItem('console.refresh_token')")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to the saga console")).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text="You are signed out")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('console.refresh_token')") is None
    refused = await eventually(
        lambda: api.post("/auth/refresh", json={"refresh_token": refresh}), lambda r: r.status_code == 401
    )
    assert refused.json()["error"] == "unauthorized"

    # Both tokens refused: back to the sign-in form, with a message.
    await page.evaluate("sessionStorage.setItem('console.access_token', 'x')")
    await page.evaluate("sessionStorage.setItem('console.refresh_token', 'y')")
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in to the saga console")).to_be_visible()
    await expect(page.locator(".notice")).to_contain_text("Your session has expired")


# ---------------------------------------------------------------------------------------------------- a customer


async def test_a_customer_follows_a_paid_order_to_completed(
    open_page: OpenPage, api: httpx.AsyncClient, product: str
) -> None:
    customer = await new_customer(api, "paying-customer@example.com")
    page = await open_page("paying-customer@example.com")
    await expect(page.get_by_role("heading", name="Your orders")).to_be_visible()
    await expect(page.locator("#session-role")).to_have_text("customer")
    await expect(page.get_by_text("You have no orders yet")).to_be_visible()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    order_id = await place_order(api, customer, product, quantity=2)
    row = page.locator(f"tr[data-order-id='{order_id}']")  # the list refreshes by itself
    await expect(row.locator("[data-state]")).to_have_text("AWAITING_PAYMENT")
    await expect(row.locator("[data-order-status]")).to_have_text("pending")
    saga_requests = [url for url in requested if "/api/v1/sagas" in url]
    assert saga_requests and all(f"order_ids={order_id}" in url for url in saga_requests)  # one per poll, not per row
    await row.get_by_role("link", name=order_id).click()

    await expect(page).to_have_url(re.compile(f"#/sagas/{order_id}$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(order_id)
    await expect(header_state(page)).to_have_text("AWAITING_PAYMENT")
    await expect(step_row(page, "reserve")).to_have_attribute("data-step-state", "succeeded")
    await expect(step_row(page, "reserve")).to_contain_text(re.compile(r"\d+ attempts?"))  # 2 if a reply was slow
    await expect(step_row(page, "await_payment")).to_have_attribute("data-step-state", "running")
    await expect(page.get_by_role("button", name="Live updates")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("tr[data-message='stock.reserved']")).to_contain_text("stock-replies")
    correlation_id = (await api.get(f"/sagas/{order_id}", headers=customer)).json()["correlation_id"]
    await expect(page.get_by_label("Summary")).to_contain_text(correlation_id)

    await pay(api, customer, order_id)
    await expect(header_state(page)).to_have_text("COMPLETED")  # no reload: the page follows the saga
    await expect(step_row(page, "await_payment")).to_have_attribute("data-step-state", "succeeded")
    await expect(step_row(page, "confirm")).to_have_attribute("data-step-state", "succeeded")
    await expect(page.locator(".tl-end")).to_have_text("COMPLETED")
    assert await path_states(page).evaluate_all("items => items.map(item => item.dataset.state)") == [
        "RESERVING",
        "AWAITING_PAYMENT",
        "CONFIRMING",
        "COMPLETED",
    ]
    await expect(page.get_by_label("Summary").locator("[data-order-status]")).to_have_text("paid")
    messages = ["order.placed", "stock.reserve", "stock.reserved", "order.paid", "stock.confirm", "stock.confirmed"]
    for message in messages:
        await expect(page.locator(f"tr[data-message='{message}']")).to_have_count(1)
    await expect(page.get_by_text("Final state: no further updates")).to_be_visible()
    await expect(page.get_by_role("button", name="Live updates")).to_have_count(0)
    await expect(page.get_by_role("button", name="Retry the failed step")).to_have_count(0)


async def test_a_cancelled_order_shows_the_release_step(
    open_page: OpenPage, api: httpx.AsyncClient, product: str
) -> None:
    customer = await new_customer(api, "cancelling-customer@example.com")
    order_id = await place_order(api, customer, product)
    page = await open_page("cancelling-customer@example.com", path=f"/#/sagas/{order_id}")
    await expect(header_state(page)).to_have_text("AWAITING_PAYMENT")

    (await api.delete(f"/orders/{order_id}", headers=customer)).raise_for_status()
    await expect(header_state(page)).to_have_text("CANCELLED")
    assert await path_states(page).evaluate_all("items => items.map(item => item.dataset.state)") == [
        "RESERVING",
        "AWAITING_PAYMENT",
        "RELEASING",
        "CANCELLED",
    ]
    await expect(step_row(page, "await_payment")).to_have_attribute("data-step-state", "abandoned")
    await expect(step_row(page, "await_payment")).to_contain_text("the order was cancelled")
    await expect(step_row(page, "release")).to_have_attribute("data-step-state", "succeeded")
    await expect(step_row(page, "release")).to_contain_text("Release stock")
    await expect(page.locator(".tl-end")).to_have_text("CANCELLED")
    await expect(page.get_by_role("row").filter(has=page.get_by_role("cell", name="Release stock"))).to_contain_text(
        "succeeded"
    )
    for message in ("order.cancelled", "stock.release", "stock.released"):
        await expect(page.locator(f"tr[data-message='{message}']")).to_have_count(1)
    await expect(page.get_by_label("Summary").locator("[data-order-status]")).to_have_text("cancelled")


async def test_another_customer_does_not_see_the_saga(
    open_page: OpenPage, api: httpx.AsyncClient, product: str
) -> None:
    owner = await new_customer(api, "owner@example.com")
    order_id = await place_order(api, owner, product)
    await new_customer(api, "stranger@example.com")
    page = await open_page("stranger@example.com")
    await expect(page.get_by_text("You have no orders yet")).to_be_visible()
    await expect(page.locator(f"tr[data-order-id='{order_id}']")).to_have_count(0)

    await page.goto(f"/#/sagas/{order_id}")
    alert = page.get_by_role("alert").filter(has=page.get_by_role("heading", name="Saga not found"))
    await expect(alert).to_contain_text(f"No saga for order {order_id}")
    await expect(alert).to_contain_text("Request id")
    await expect(page.get_by_text("AWAITING_PAYMENT")).to_have_count(0)

    await page.goto("/#/sagas/not-an-order")
    await expect(page.get_by_role("heading", name="Saga not found")).to_be_visible()
    await page.goto("/#/nowhere")
    await expect(page.get_by_role("heading", name="No such page")).to_be_visible()


# ---------------------------------------------------------------------------------------------------- errors


async def test_network_and_server_errors_show_as_messages(open_page: OpenPage) -> None:
    page = await open_page(ADMIN["username"], ADMIN["password"])
    await expect(page.get_by_role("heading", name="Sagas", exact=True)).to_be_visible()
    list_calls = re.compile(r"/api/v1/sagas\?")

    await page.route(list_calls, lambda route: route.abort("internetdisconnected"))
    alert = page.locator(".notice-error")
    await expect(alert).to_contain_text("Network error")
    await expect(alert).to_contain_text("Cannot reach the API")
    await expect(page.get_by_role("heading", name="Sagas", exact=True)).to_be_visible()  # the page stays
    await page.unroute(list_calls)
    await expect(alert).to_have_count(0)  # the next refresh succeeds and clears it

    body = {"error": "service_unavailable", "message": "The saga service is restarting", "request_id": "req-42"}
    await page.route(list_calls, lambda route: route.fulfill(status=503, json=body))
    await expect(alert).to_contain_text("Server error (503)")
    await expect(alert).to_contain_text("The saga service is restarting")
    await expect(alert).to_contain_text("req-42")
    await page.unroute(list_calls)
    await expect(alert).to_have_count(0)

    # A new token refused anyway (as by a service that cannot fetch the signing keys): an error, not a sign-out.
    refused = {"error": "unauthorized", "message": "token signed by an unknown key", "request_id": "req-43"}
    await page.route(list_calls, lambda route: route.fulfill(status=401, json=refused))
    await expect(alert).to_contain_text("The API refused the sign-in token")
    await expect(alert).to_contain_text("token signed by an unknown key")
    await page.unroute(list_calls)
    await expect(alert).to_have_count(0)
    await expect(page.locator("#session-email")).to_have_text(ADMIN["username"])

    # A saga's page that cannot load at first: a message and a way to try again, never a blank page.
    one_saga = re.compile(r"/api/v1/sagas/[^/?]+$")
    await page.route(one_saga, lambda route: route.fulfill(status=502, body="<html>Bad Gateway</html>"))
    await page.goto("/#/sagas/00000000-0000-0000-0000-000000000000")
    failed = page.get_by_role("alert").filter(has=page.get_by_role("heading", name="Could not load the saga"))
    await expect(failed).to_contain_text("The server answered 502")
    await page.unroute(one_saga)
    await failed.get_by_role("button", name="Try again").click()
    await expect(page.get_by_role("heading", name="Saga not found")).to_be_visible()


# ---------------------------------------------------------------------------------------------------- an admin


async def test_an_admin_retries_a_failed_saga(
    cluster: Cluster, open_page: OpenPage, api: httpx.AsyncClient, admin: dict[str, str], product: str
) -> None:
    customer = await new_customer(api, "unlucky-customer@example.com")
    async with cluster.killed("stock_svc") as stock_back:
        order_id = await place_order(api, customer, product, quantity=3)
        await saga_state(api, admin, order_id, "FAILED")  # two sends of stock.reserve, no reply
        # stock_svc stays down until the retry: back earlier, its late reply would move the saga on by itself.
        await _failed_saga_retried_from_the_page(stock_back, open_page, api, customer, order_id)


async def _failed_saga_retried_from_the_page(
    stock_back: Callable[[], Awaitable[None]],
    open_page: OpenPage,
    api: httpx.AsyncClient,
    customer: dict[str, str],
    order_id: str,
) -> None:
    owner_page = await open_page("unlucky-customer@example.com", path=f"/#/sagas/{order_id}")
    await expect(header_state(owner_page)).to_have_text("FAILED")
    await expect(owner_page.get_by_role("button", name="Retry the failed step")).to_have_count(0)  # admins only

    page = await open_page(ADMIN["username"], ADMIN["password"], path=f"/#/sagas/{order_id}")
    await expect(header_state(page)).to_have_text("FAILED")
    await expect(page.locator(".saga-reason")).to_have_text("no reply from stock after 2 attempts")
    await expect(step_row(page, "reserve")).to_have_attribute("data-step-state", "failed")
    await expect(step_row(page, "reserve")).to_contain_text("2 attempts")
    sends = page.locator("tr[data-message='stock.reserve'][data-direction='sent']")
    await expect(sends).to_have_count(2)  # the command, and its resend at the step's timeout: each its own event id
    ids = await sends.locator(".event-id").all_inner_texts()
    assert len(set(ids)) == 2 and all(len(event_id) == 36 for event_id in ids)

    await page.get_by_role("button", name="Retry the failed step").click()
    await expect(page.locator(".notice-success")).to_contain_text("Retry started")
    await stock_back()
    await expect(header_state(page)).to_have_text("AWAITING_PAYMENT")
    await expect(page.get_by_role("button", name="Retry the failed step")).to_have_count(0)
    await pay(api, customer, order_id)
    await expect(header_state(page)).to_have_text("COMPLETED")
    await expect(page.locator(".saga-reason")).to_have_count(0)  # the failure's reason is history now
    assert await path_states(page).evaluate_all("items => items.map(item => item.dataset.state)") == [
        "RESERVING",
        "FAILED",
        "RESERVING",
        "AWAITING_PAYMENT",
        "CONFIRMING",
        "COMPLETED",
    ]
    await expect(page.locator(".notice")).to_have_count(0, timeout=10_000)
    await screenshot(page, "console-saga.png", full_page=True)


async def test_an_admin_sees_every_saga_and_filters_by_state(
    open_page: OpenPage, api: httpx.AsyncClient, admin: dict[str, str], product: str
) -> None:
    customer = await new_customer(api, "filtered-customer@example.com")
    paid, cancelled, waiting = [await place_order(api, customer, product) for _ in range(3)]
    await saga_state(api, customer, paid, "AWAITING_PAYMENT")
    await pay(api, customer, paid)
    await saga_state(api, customer, cancelled, "AWAITING_PAYMENT")
    (await api.delete(f"/orders/{cancelled}", headers=customer)).raise_for_status()
    await saga_state(api, customer, paid, "COMPLETED")
    await saga_state(api, customer, cancelled, "CANCELLED")
    await saga_state(api, customer, waiting, "AWAITING_PAYMENT")
    every = (await api.get("/sagas", params={"limit": 500}, headers=admin)).json()

    page = await open_page(ADMIN["username"], ADMIN["password"])
    await expect(page.get_by_role("heading", name="Sagas", exact=True)).to_be_visible()
    rows = page.locator("tbody tr[data-order-id]")
    await expect(rows).to_have_count(min(len(every), 20))  # every customer's, newest first, 20 a page
    shown = await rows.evaluate_all("rows => rows.map(row => row.dataset.orderId)")
    assert shown == [saga["order_id"] for saga in every[:20]]
    await screenshot(page, "console-list.png")

    select = page.get_by_label("State")
    for state, present, absent in [("COMPLETED", paid, cancelled), ("CANCELLED", cancelled, paid)]:
        await select.select_option(state)
        await expect(page).to_have_url(re.compile(f"#/sagas\\?state={state}$"))
        await expect(page.locator(f"tr[data-order-id='{present}']")).to_have_count(1)
        await expect(page.locator(f"tr[data-order-id='{absent}']")).to_have_count(0)
        states = await rows.locator("[data-state]").evaluate_all("badges => badges.map(b => b.dataset.state)")
        assert states and set(states) == {state}
    await select.select_option("FAILED")
    await expect(page.get_by_text("No saga is FAILED.")).to_be_visible()  # the retried one has moved on

    await select.select_option("")
    await expect(page.locator(f"tr[data-order-id='{waiting}']")).to_have_count(1)
    # Pausing stops the live refresh: a new saga shows only after resuming.
    live = page.get_by_role("button", name="Live updates")
    await live.click()
    await expect(live).to_have_attribute("aria-pressed", "false")
    newest = await place_order(api, customer, product)
    await saga_state(api, customer, newest, "AWAITING_PAYMENT")
    await page.wait_for_timeout(3000)
    await expect(page.locator(f"tr[data-order-id='{newest}']")).to_have_count(0)
    await live.click()
    await expect(page.locator(f"tr[data-order-id='{newest}']")).to_have_count(1)

    await page.locator(f"tr[data-order-id='{paid}']").get_by_role("link").click()
    await expect(header_state(page)).to_have_text("COMPLETED")
    await expect(page.get_by_role("button", name="Retry the failed step")).to_have_count(0)  # not FAILED
    await page.go_back()
    await expect(page.get_by_role("heading", name="Sagas", exact=True)).to_be_visible()
