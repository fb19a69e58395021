"""Reserving and releasing over HTTP: units move between available and reserved, never below zero."""

from stock_svc.models import Reservation, ReservationStatus
from tests.stock_svc.conftest import create_item, get_item, quantities


async def reserve(client, admin, quantity: int, order_id: str = "o-1", product_id: str = "product-1"):
    body = {"product_id": product_id, "quantity": quantity, "order_id": order_id}
    return await client.post("/api/v1/inventory/reserve", json=body, headers=admin)


async def release(client, admin, quantity: int, order_id: str = "o-1", product_id: str = "product-1"):
    body = {"product_id": product_id, "quantity": quantity, "order_id": order_id}
    return await client.post("/api/v1/inventory/release", json=body, headers=admin)


async def test_reserve_moves_units_from_available_to_reserved(client, admin):
    await create_item(client, admin, "product-1", 100)
    response = await reserve(client, admin, 20)
    assert response.status_code == 200
    assert quantities(response.json()) == (80, 20)
    assert quantities((await reserve(client, admin, 5)).json()) == (75, 25)
    reservation = await Reservation.get(order_id="o-1")
    assert (reservation.quantity, reservation.status) == (25, ReservationStatus.HELD)


async def test_reserving_more_than_available_is_a_conflict_with_the_numbers(client, admin, user):
    await create_item(client, admin, "product-1", 3)
    response = await reserve(client, admin, 5)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "conflict"
    assert (body["product_id"], body["requested"], body["available"]) == ("product-1", 5, 3)
    assert quantities(await get_item(client, user, "product-1")) == (3, 0)
    assert await Reservation.all().count() == 0


async def test_release_gives_back_what_the_order_holds(client, admin):
    await create_item(client, admin, "product-1", 10)
    await reserve(client, admin, 6)
    response = await release(client, admin, 4)
    assert response.status_code == 200
    assert quantities(response.json()) == (8, 2)
    assert (await Reservation.get(order_id="o-1")).quantity == 2
    assert quantities((await release(client, admin, 2)).json()) == (10, 0)
    assert (await Reservation.get(order_id="o-1")).status == ReservationStatus.RELEASED


async def test_releasing_more_than_the_order_holds_is_a_conflict_with_the_numbers(client, admin, user):
    await create_item(client, admin, "product-1", 10)
    await reserve(client, admin, 2, order_id="o-1")
    await reserve(client, admin, 5, order_id="o-2")
    response = await release(client, admin, 3, order_id="o-1")  # the product has 7 reserved, the order only 2
    assert response.status_code == 409
    body = response.json()
    assert (body["order_id"], body["requested"], body["reserved"]) == ("o-1", 3, 2)
    nothing_held = await release(client, admin, 1, order_id="o-3")
    assert nothing_held.status_code == 409
    assert nothing_held.json()["reserved"] == 0
    assert quantities(await get_item(client, user, "product-1")) == (3, 7)


async def test_a_released_order_can_reserve_again(client, admin):
    await create_item(client, admin, "product-1", 10)
    await reserve(client, admin, 4)
    await release(client, admin, 4)
    assert quantities((await reserve(client, admin, 1)).json()) == (9, 1)
    reservation = await Reservation.get(order_id="o-1")
    assert (reservation.quantity, reservation.status) == (1, ReservationStatus.HELD)
