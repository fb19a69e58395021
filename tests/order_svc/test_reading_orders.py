"""GET /orders (the caller's own, newest first, skip/limit) and GET /orders/{id} (the owner or an admin; for
anyone else, and for an id that names no order, 404: another customer's orders are not revealed)."""

import pytest

from tests.order_svc.conftest import ORDERS, get_order, place


async def test_the_list_is_the_callers_own_newest_first(client, customer, other_customer):
    placed = [await place(client, customer) for _ in range(3)]
    others = await place(client, other_customer)
    assert (await client.get(ORDERS, headers=customer)).json() == placed[::-1]
    assert (await client.get(f"{ORDERS}/", headers=other_customer)).json() == [others]


async def test_skip_and_limit_page_through_the_list(client, customer):
    placed = [(await place(client, customer))["_id"] for _ in range(5)][::-1]

    async def page(query: str) -> list[str]:
        response = await client.get(f"{ORDERS}/?{query}", headers=customer)
        assert response.status_code == 200, response.text
        return [order["_id"] for order in response.json()]

    assert await page("limit=2") == placed[:2]
    assert await page("skip=2&limit=2") == placed[2:4]
    assert await page("skip=4") == placed[4:]
    assert await page("skip=5") == []


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("limit=101", "limit"), ("skip=-1", "skip")])
async def test_a_bad_page_is_422_naming_the_parameter(client, customer, query, field):
    response = await client.get(f"{ORDERS}/?{query}", headers=customer)
    assert response.status_code == 422
    assert [problem["field"] for problem in response.json()["fields"]] == [field]


async def test_an_admin_sees_any_order_but_lists_only_their_own(client, customer, admin):
    order = await place(client, customer)
    assert await get_order(client, admin, order["_id"]) == order
    assert (await client.get(ORDERS, headers=admin)).json() == []


async def test_another_customers_order_is_not_found(client, customer, other_customer):
    order = await place(client, customer)
    path = f"{ORDERS}/{order['_id']}"
    for response in (
        await client.get(path, headers=other_customer),
        await client.put(f"{path}/status", json={"status": "paid"}, headers=other_customer),
        await client.delete(path, headers=other_customer),
    ):
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    assert (await get_order(client, customer, order["_id"]))["status"] == "pending"


@pytest.mark.parametrize("order_id", ["not-an-id", "123", "00000000-0000-0000-0000-000000000000"])
async def test_an_id_that_names_no_order_is_not_found(client, customer, admin, order_id):
    for headers in (customer, admin):
        assert (await client.get(f"{ORDERS}/{order_id}", headers=headers)).status_code == 404
        assert (await client.delete(f"{ORDERS}/{order_id}", headers=headers)).status_code == 404
        status = await client.put(f"{ORDERS}/{order_id}/status", json={"status": "paid"}, headers=headers)
        assert status.status_code == 404


async def test_reading_needs_a_token(client, customer):
    order = await place(client, customer)
    for path in (ORDERS, f"{ORDERS}/", f"{ORDERS}/{order['_id']}"):
        response = await client.get(path)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
