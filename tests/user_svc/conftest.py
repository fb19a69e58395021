from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tortoise import connections

from common.tokens import generate_private_key_pem
from tests.support import serving
from user_svc.accounts import ensure_admin
from user_svc.app import create_user_app
from user_svc.settings import UserSettings

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "Admin12345"

SEED_CUSTOMER = {
    "email": "customer@example.com",
    "password": "Password123",
    "first_name": "Example",
    "last_name": "Customer",
    "phone": "555-123-4567",
}

SEED_ADDRESS = {
    "line1": "123 Example Street",
    "line2": "Apt 4B",
    "city": "Example City",
    "state": "EX",
    "postal_code": "12345",
    "country": "Example Country",
    "is_default": True,
}


@pytest.fixture(scope="session")
def user_settings(postgres_url: str, kafka_bootstrap: str, servers_dir: Path) -> UserSettings:
    key_file = servers_dir / "jwt-private.pem"
    key_file.write_bytes(generate_private_key_pem())
    return UserSettings(
        _env_file=None,
        USER_DATABASE_URL=f"{postgres_url}/users",
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_private_key_file=key_file,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        log_json=False,
    )


@pytest.fixture(scope="session")
async def user_app_client(user_settings: UserSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_user_app(user_settings)) as client:
        yield client


@pytest.fixture
async def client(user_app_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client of user_svc over clean tables (only the configured admin exists)."""
    await connections.get("user_svc").execute_script(
        "TRUNCATE users, addresses, refresh_tokens, login_throttle, outbox RESTART IDENTITY CASCADE"
    )
    await ensure_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    return user_app_client


async def register(client: httpx.AsyncClient, **overrides: object) -> dict:
    response = await client.post("/api/v1/auth/register", json={**SEED_CUSTOMER, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict:
    response = await client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def signed_in_customer(client: httpx.AsyncClient) -> tuple[dict, dict[str, str]]:
    user = await register(client)
    return user, bearer(await login(client, SEED_CUSTOMER["email"], SEED_CUSTOMER["password"]))


async def signed_in_admin(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))
