import asyncio

from tests.user_svc.conftest import SEED_ADDRESS, bearer, login, register, signed_in_customer

ADDRESSES = "/api/v1/users/me/addresses"


async def test_create_list_update_delete(client):
    _, headers = await signed_in_customer(client)
    created = (await client.post(ADDRESSES, json=SEED_ADDRESS, headers=headers)).json()
    assert (await client.get(ADDRESSES, headers=headers)).json() == [created]

    updated = await client.put(f"{ADDRESSES}/{created['id']}", json={"city": "Other City"}, headers=headers)
    assert updated.status_code == 200
    assert updated.json() == {**created, "city": "Other City"}

    assert (await client.delete(f"{ADDRESSES}/{created['id']}", headers=headers)).status_code == 204
    assert (await client.get(ADDRESSES, headers=headers)).json() == []
    assert (await client.delete(f"{ADDRESSES}/{created['id']}", headers=headers)).status_code == 404


async def test_a_new_default_address_replaces_the_old_default(client):
    _, headers = await signed_in_customer(client)
    first = (await client.post(ADDRESSES, json=SEED_ADDRESS, headers=headers)).json()
    second = (await client.post(ADDRESSES, json={**SEED_ADDRESS, "line1": "9 Other Road"}, headers=headers)).json()
    listed = (await client.get(ADDRESSES, headers=headers)).json()
    assert [(a["id"], a["is_default"]) for a in listed] == [(first["id"], False), (second["id"], True)]

    await client.put(f"{ADDRESSES}/{first['id']}", json={"is_default": True}, headers=headers)
    listed = (await client.get(ADDRESSES, headers=headers)).json()
    assert [(a["id"], a["is_default"]) for a in listed] == [(first["id"], True), (second["id"], False)]


async def test_concurrent_default_addresses_leave_exactly_one_default(client):
    _, headers = await signed_in_customer(client)
    responses = await asyncio.gather(
        *(client.post(ADDRESSES, json={**SEED_ADDRESS, "line1": f"{n} Street"}, headers=headers) for n in range(8))
    )
    assert {response.status_code for response in responses} <= {201, 409}
    listed = (await client.get(ADDRESSES, headers=headers)).json()
    assert sum(address["is_default"] for address in listed) == 1


async def test_another_users_address_is_not_found(client):
    _, headers = await signed_in_customer(client)
    created = (await client.post(ADDRESSES, json=SEED_ADDRESS, headers=headers)).json()
    await register(client, email="other@example.com")
    other = bearer(await login(client, "other@example.com", "Password123"))
    assert (await client.put(f"{ADDRESSES}/{created['id']}", json={"city": "X"}, headers=other)).status_code == 404
    assert (await client.delete(f"{ADDRESSES}/{created['id']}", headers=other)).status_code == 404


async def test_invalid_address_is_422_naming_fields(client):
    _, headers = await signed_in_customer(client)
    response = await client.post(ADDRESSES, json={"line1": "", "city": 5}, headers=headers)
    assert response.status_code == 422
    assert {p["field"] for p in response.json()["fields"]} == {"line1", "city", "state", "postal_code", "country"}
    assert (await client.get(ADDRESSES, headers=headers)).json() == []
    response = await client.put(f"{ADDRESSES}/1", json={"city": None}, headers=headers)
    assert response.status_code == 422
