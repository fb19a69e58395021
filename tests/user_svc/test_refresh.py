from tests.user_svc.conftest import SEED_CUSTOMER, bearer, login, register


async def refresh(client, token: str):
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_returns_a_new_working_pair(client):
    await register(client)
    tokens = await login(client, SEED_CUSTOMER["email"], SEED_CUSTOMER["password"])
    response = await refresh(client, tokens["refresh_token"])
    assert response.status_code == 200
    renewed = response.json()
    assert renewed["token_type"] == "bearer"
    assert renewed["refresh_token"] != tokens["refresh_token"]
    assert (await client.get("/api/v1/users/me", headers=bearer(renewed))).status_code == 200


async def test_a_refresh_token_works_once_and_its_reuse_revokes_the_family(client):
    await register(client)
    tokens = await login(client, SEED_CUSTOMER["email"], SEED_CUSTOMER["password"])
    renewed = (await refresh(client, tokens["refresh_token"])).json()
    reuse = await refresh(client, tokens["refresh_token"])
    assert reuse.status_code == 401
    # The reuse means a copy leaked: the successor is revoked too.
    assert (await refresh(client, renewed["refresh_token"])).status_code == 401


async def test_logout_revokes_the_refresh_token(client):
    await register(client)
    tokens = await login(client, SEED_CUSTOMER["email"], SEED_CUSTOMER["password"])
    response = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401


async def test_an_access_token_is_not_a_refresh_token_and_vice_versa(client):
    await register(client)
    tokens = await login(client, SEED_CUSTOMER["email"], SEED_CUSTOMER["password"])
    assert (await refresh(client, tokens["access_token"])).status_code == 401
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert me.status_code == 401


async def test_garbage_refresh_token_is_401_and_missing_one_422(client):
    assert (await refresh(client, "garbage")).status_code == 401
    response = await client.post("/api/v1/auth/refresh", json={})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "refresh_token"
