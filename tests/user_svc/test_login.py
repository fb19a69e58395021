from tortoise import connections

from common.retention import purge
from tests.user_svc.conftest import SEED_CUSTOMER, register
from user_svc.sessions import login_throttle_purge


def form(email: str, password: str) -> dict:
    return {"username": email, "password": password}


async def test_unknown_email_and_wrong_password_get_the_same_401(client):
    await register(client)
    unknown = await client.post("/api/v1/auth/login", data=form("nobody@example.com", "Password123"))
    wrong = await client.post("/api/v1/auth/login", data=form(SEED_CUSTOMER["email"], "Wrong12345"))
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda body: {k: v for k, v in body.items() if k != "request_id"}  # noqa: E731
    assert strip(unknown.json()) == strip(wrong.json())


async def test_email_is_case_insensitive(client):
    await register(client)
    response = await client.post("/api/v1/auth/login", data=form("CUSTOMER@example.com", "Password123"))
    assert response.status_code == 200


async def test_json_body_is_rejected_with_400(client):
    response = await client.post("/api/v1/auth/login", json=form(SEED_CUSTOMER["email"], "Password123"))
    assert response.status_code == 400


async def test_missing_form_field_is_422(client):
    response = await client.post("/api/v1/auth/login", data={"username": SEED_CUSTOMER["email"]})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "password"


async def test_failed_attempts_lock_the_account_with_retry_after(client, user_settings):
    await register(client)
    for _ in range(user_settings.login_max_failures_per_account):
        response = await client.post("/api/v1/auth/login", data=form(SEED_CUSTOMER["email"], "Wrong12345"))
        assert response.status_code == 401
    # Even the right password is refused until the window ends.
    response = await client.post("/api/v1/auth/login", data=form(SEED_CUSTOMER["email"], "Password123"))
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= user_settings.login_window_seconds
    assert response.json()["error"] == "too_many_requests"


async def test_successful_login_resets_the_account_counter(client, user_settings):
    await register(client)
    for _ in range(user_settings.login_max_failures_per_account - 1):
        await client.post("/api/v1/auth/login", data=form(SEED_CUSTOMER["email"], "Wrong12345"))
    assert (await client.post("/api/v1/auth/login", data=form(SEED_CUSTOMER["email"], "Password123"))).is_success
    response = await client.post("/api/v1/auth/login", data=form(SEED_CUSTOMER["email"], "Wrong12345"))
    assert response.status_code == 401


async def test_attempts_per_client_are_limited(client, user_settings):
    for attempt in range(user_settings.login_max_attempts_per_client):
        response = await client.post("/api/v1/auth/login", data=form(f"user{attempt}@example.com", "Password123"))
        assert response.status_code == 401
    response = await client.post("/api/v1/auth/login", data=form("another@example.com", "Password123"))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


async def test_ended_throttle_windows_are_purged(client, user_settings):
    for _ in range(2):
        await client.post("/api/v1/auth/login", data={"username": "nobody@example.com", "password": "wrong"})
    database = connections.get("user_svc")
    assert (await database.execute_query_dict("SELECT count(*) AS n FROM login_throttle"))[0]["n"] == 2
    await database.execute_query(
        "UPDATE login_throttle SET window_started_at = now() - make_interval(secs => $1 + 1)"
        " WHERE key LIKE 'account:%'",
        [user_settings.login_window_seconds],
    )
    assert await purge("user_svc", [login_throttle_purge(user_settings.login_window_seconds)]) == {"login_throttle": 1}
    left = await database.execute_query_dict("SELECT key FROM login_throttle")
    assert [row["key"].split(":")[0] for row in left] == ["client"]  # its window still runs
