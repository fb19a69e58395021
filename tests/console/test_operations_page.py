"""The operations page in Chromium against the whole system: a paused relay's backlog grows and drains, a poison
event is set aside and re-driven from the page once its cause is fixed, a FAILED saga is retried from the page,
and a customer sees no Operations link and gets 403 from its API."""

import asyncpg
import httpx
from playwright.async_api import Page, expect

from common.database import asyncpg_dsn
from tests.cluster import ADMIN, Cluster, eventually, new_customer
from tests.console.conftest import OpenPage, require_chromium, screenshot
from tests.console.test_console import place_order, saga_state

require_chromium()

OPERATIONS = "/#/operations"
POISON = "Poisoned lamp"  # order_svc's price view refuses this product until the trigger goes
REFUSE_POISON = f"""
CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.name = '{POISON}' THEN RAISE EXCEPTION 'the price view refuses %', NEW.name; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON product_prices FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


def outbox_figure(page: Page, store: str, name: str):
    return page.locator(f"#ops-outboxes tr[data-store='{store}'] td[data-figure='{name}']")


async def orders_database(cluster: Cluster) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(cluster.database_url("ORDER_DATABASE_URL")))


async def test_a_customer_sees_no_operations_link_and_gets_403(open_page: OpenPage, api: httpx.AsyncClient) -> None:
    customer = await new_customer(api, "not-an-operator@example.com")
    for path in ("/operations/outboxes", "/operations/consumers", "/operations/dead-letters", "/orders/orphans"):
        assert (await api.get(path, headers=customer)).status_code == 403
        assert (await api.get(path)).status_code == 401
    page = await open_page("not-an-operator@example.com")
    nav = page.get_by_role("navigation", name="Sections")
    await expect(nav.get_by_role("link", name="Sagas")).to_be_visible()
    await expect(nav.get_by_role("link", name="Operations")).to_be_hidden()
    await page.goto(OPERATIONS)
    await expect(page.get_by_role("heading", name="Admins only")).to_be_visible()


async def test_a_paused_relay_shows_a_growing_backlog_that_drains_on_resume(
    cluster: Cluster, open_page: OpenPage, api: httpx.AsyncClient, product: str
) -> None:
    customer = await new_customer(api, "patient-customer@example.com")
    page = await open_page(ADMIN["username"], ADMIN["password"])
    await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Operations").click()
    await expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible()
    await expect(outbox_figure(page, "orders", "unpublished")).to_have_text("0")
    await expect(page.locator("#ops-consumers tr[data-group]").first).to_be_visible()

    with cluster.relays_paused():
        await place_order(api, customer, product)
        await expect(outbox_figure(page, "orders", "unpublished")).to_have_text("1")
        await place_order(api, customer, product)
        await place_order(api, customer, product)
        await expect(outbox_figure(page, "orders", "unpublished")).to_have_text("3")  # the page lives on
    await expect(outbox_figure(page, "orders", "unpublished")).to_have_text("0")
    await expect(page.locator("#ops-outboxes .error-text")).to_have_count(0)
    # The saga consumed the orders: its group is on the broker's books now, and none of its partitions is behind.
    saga_partitions = page.locator("#ops-consumers tr[data-group='saga'][data-topic='order-events']")
    await expect(saga_partitions.first).to_be_visible()
    await expect(saga_partitions.locator("td[data-figure='lag']").filter(has_not_text="0")).to_have_count(0)


async def test_a_poison_event_is_redriven_from_the_page_once_its_cause_is_fixed(
    cluster: Cluster, open_page: OpenPage, api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    orders = await orders_database(cluster)
    try:
        await orders.execute(REFUSE_POISON)
        body = {"name": POISON, "description": "", "category": "Test", "price": 30.0, "quantity": 10}
        created = await api.post("/products/", json=body, headers=admin)
        created.raise_for_status()
        product_id = created.json()["_id"]

        page = await open_page(ADMIN["username"], ADMIN["password"], path=OPERATIONS)
        letter = page.locator("#ops-dead-letters tr[data-source='inbox']").filter(has_text="product.created")
        await expect(letter).to_have_count(1, timeout=60_000)  # five failed attempts, then set aside
        await expect(letter).to_contain_text("the price view refuses")
        await expect(outbox_figure(page, "orders", "dead_letters")).to_have_text(
            "0"
        )  # an inbox letter, not an outbox's
        await letter.get_by_role("button", name="Details").click()
        details = page.locator("#ops-dead-letters tr.ops-details")
        await expect(details).to_contain_text(POISON)  # the payload
        await expect(details).to_contain_text("order_svc")  # the consumer
        await screenshot(page, "console-operations.png", full_page=True)

        await orders.execute("DROP TRIGGER refuse_poison ON product_prices")
        await letter.get_by_role("button", name="Re-drive").click()
        dialog = page.get_by_role("dialog", name="Re-drive dead letters?")
        await dialog.get_by_role("button", name="Re-drive").click()
        await expect(page.locator(".notice-success")).to_contain_text("Re-drove 1 dead letter")
        await expect(letter).to_have_count(0)
        await eventually(
            lambda: orders.fetchval("SELECT count(*) FROM product_prices WHERE product_id = $1", product_id),
            lambda count: count == 1,
        )
        customer = await new_customer(api, "poison-buyer@example.com")
        await saga_state(api, customer, await place_order_of(api, customer, product_id), "AWAITING_PAYMENT")
    finally:
        await orders.execute("DROP TRIGGER IF EXISTS refuse_poison ON product_prices")
        await orders.close()


async def place_order_of(api: httpx.AsyncClient, customer: dict[str, str], product_id: str) -> str:
    address = {"line1": "1 Test Street", "city": "Testville", "state": "TS", "postal_code": "1", "country": "Test"}
    body = {"items": [{"product_id": product_id, "quantity": 1, "price": 30.0}], "shipping_address": address}
    response = await eventually(  # the stock view learns of the product from its own event
        lambda: api.post("/orders/", json=body, headers=customer), lambda r: r.status_code == 201
    )
    return response.json()["_id"]


async def test_a_failed_saga_is_retried_from_the_page(
    cluster: Cluster, open_page: OpenPage, api: httpx.AsyncClient, admin: dict[str, str], product: str
) -> None:
    customer = await new_customer(api, "stranded-customer@example.com")
    async with cluster.killed("stock_svc") as stock_back:
        order_id = await place_order(api, customer, product)
        await saga_state(api, admin, order_id, "FAILED")
        page = await open_page(ADMIN["username"], ADMIN["password"], path=OPERATIONS)
        failed = page.locator(f"#ops-stuck tr[data-order-id='{order_id}']")
        await expect(failed).to_contain_text("no reply from stock after 2 attempts")
        # stock_svc stays down until the retry: back earlier, its late reply would move the saga on by itself.
        await failed.get_by_role("button", name="Retry").click()
        await expect(page.locator(".notice-success")).to_contain_text("Retry started")
        await expect(failed).to_have_count(0)
        await stock_back()
        await saga_state(api, admin, order_id, "AWAITING_PAYMENT")
