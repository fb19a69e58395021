"""Seed guide steps 1.1 to 2, request for request."""

from datetime import datetime

from tests.user_svc.conftest import SEED_ADDRESS, SEED_CUSTOMER, bearer, login, register

EXPECTED_USER_FIELDS = [
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "is_active",
    "created_at",
    "addresses",
    "role",
]


async def test_register_login_profile_and_address(client):
    user = await register(client)
    assert list(user) == EXPECTED_USER_FIELDS
    assert {k: user[k] for k in ("email", "first_name", "last_name", "phone", "is_active", "addresses", "role")} == {
        "email": "customer@example.com",
        "first_name": "Example",
        "last_name": "Customer",
        "phone": "555-123-4567",
        "is_active": True,
        "addresses": [],
        "role": "user",
    }
    assert isinstance(user["id"], int)
    assert datetime.fromisoformat(user["created_at"]).utcoffset() is not None

    tokens = await login(client, SEED_CUSTOMER["email"], SEED_CUSTOMER["password"])
    assert tokens["token_type"] == "bearer"
    assert tokens["access_token"].startswith("eyJhbGciOiJS")
    assert tokens["refresh_token"].startswith("eyJhbGciOiJS")

    me = await client.get("/api/v1/users/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json() == user

    created = await client.post("/api/v1/users/me/addresses", json=SEED_ADDRESS, headers=bearer(tokens))
    assert created.status_code == 201
    address = created.json()
    assert list(address) == ["id", *SEED_ADDRESS]
    assert {k: v for k, v in address.items() if k != "id"} == SEED_ADDRESS

    me = await client.get("/api/v1/users/me", headers=bearer(tokens))
    assert me.json()["addresses"] == [address]
