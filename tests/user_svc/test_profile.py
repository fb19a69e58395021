import pytest

from tests.user_svc.conftest import SEED_CUSTOMER, login, signed_in_customer


async def test_profile_update_changes_only_the_given_fields(client):
    user, headers = await signed_in_customer(client)
    response = await client.put("/api/v1/users/me", json={"first_name": "Changed"}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {**user, "first_name": "Changed"}
    assert (await client.get("/api/v1/users/me", headers=headers)).json()["first_name"] == "Changed"


async def test_phone_may_be_cleared_but_names_may_not(client):
    _, headers = await signed_in_customer(client)
    assert (await client.put("/api/v1/users/me", json={"phone": None}, headers=headers)).json()["phone"] is None
    response = await client.put("/api/v1/users/me", json={"first_name": None}, headers=headers)
    assert response.status_code == 422
    assert response.json()["fields"] == [{"field": "first_name", "problem": "Value error, may not be null"}]


async def test_email_taken_by_another_user_is_409(client):
    _, headers = await signed_in_customer(client)
    response = await client.put("/api/v1/users/me", json={"email": "admin@example.com"}, headers=headers)
    assert response.status_code == 409


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer not.a.token", "Basic dXNlcjpwYXNz", "Bearer eyJhbGciOiJub25lIn0.e30."]
)
async def test_me_needs_a_valid_bearer_token(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_password_change_needs_the_current_password_and_signs_out_elsewhere(client):
    _, headers = await signed_in_customer(client)
    other_session = await login(client, SEED_CUSTOMER["email"], SEED_CUSTOMER["password"])
    wrong = await client.put(
        "/api/v1/users/me/password",
        json={"current_password": "Wrong12345", "new_password": "NewPassword1"},
        headers=headers,
    )
    assert wrong.status_code == 401
    weak = await client.put(
        "/api/v1/users/me/password",
        json={"current_password": SEED_CUSTOMER["password"], "new_password": "weak"},
        headers=headers,
    )
    assert weak.status_code == 422
    changed = await client.put(
        "/api/v1/users/me/password",
        json={"current_password": SEED_CUSTOMER["password"], "new_password": "NewPassword1"},
        headers=headers,
    )
    assert changed.status_code == 204
    old = await client.post("/api/v1/auth/login", data={"username": SEED_CUSTOMER["email"], "password": "Password123"})
    assert old.status_code == 401
    await login(client, SEED_CUSTOMER["email"], "NewPassword1")
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": other_session["refresh_token"]})
    assert refreshed.status_code == 401
