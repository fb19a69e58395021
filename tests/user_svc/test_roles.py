from tests.user_svc.conftest import ADMIN_EMAIL, bearer, login, signed_in_admin, signed_in_customer
from user_svc.accounts import ensure_admin
from user_svc.models import Role, User


async def test_admin_changes_a_role_and_the_next_token_carries_it(client):
    user, _ = await signed_in_customer(client)
    admin = await signed_in_admin(client)
    response = await client.put(f"/api/v1/users/{user['id']}/role", json={"role": "admin"}, headers=admin)
    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    promoted = bearer(await login(client, user["email"], "Password123"))
    assert (await client.put(f"/api/v1/users/{user['id']}/role", json={"role": "user"}, headers=promoted)).is_success


async def test_a_user_cannot_change_roles(client):
    user, headers = await signed_in_customer(client)
    response = await client.put(f"/api/v1/users/{user['id']}/role", json={"role": "admin"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert (await client.put(f"/api/v1/users/{user['id']}/role", json={"role": "admin"})).status_code == 401


async def test_unknown_user_is_404_and_unknown_role_422(client):
    admin = await signed_in_admin(client)
    assert (await client.put("/api/v1/users/999999/role", json={"role": "user"}, headers=admin)).status_code == 404
    beyond_any_id = await client.put("/api/v1/users/2147483648/role", json={"role": "user"}, headers=admin)
    assert beyond_any_id.status_code == 404
    response = await client.put("/api/v1/users/1/role", json={"role": "superuser"}, headers=admin)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "role"


async def test_first_admin_bootstrap_is_idempotent_and_restores_the_configured_password(client):
    admin = await User.get(email=ADMIN_EMAIL)
    admin.role = Role.USER
    await admin.save()
    await ensure_admin(ADMIN_EMAIL, "Rotated12345")
    await ensure_admin(ADMIN_EMAIL, "Rotated12345")
    assert await User.filter(email=ADMIN_EMAIL).count() == 1
    assert (await User.get(email=ADMIN_EMAIL)).role == Role.ADMIN
    await login(client, ADMIN_EMAIL, "Rotated12345")
