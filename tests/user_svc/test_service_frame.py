"""What every service shares: health, readiness, JWKS, the error format, request ids."""

from common.tokens import JwksKeys, TokenVerifier
from tests.support import assert_refuses_bodies_over_the_limit
from tests.user_svc.conftest import SEED_CUSTOMER, login, register


async def test_health_and_ready(client):
    assert (await client.get("/health")).json() == {"status": "ok", "service": "user_svc"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "broker": True}}


async def test_tokens_verify_with_the_published_jwks(client):
    user = await register(client)
    tokens = await login(client, SEED_CUSTOMER["email"], SEED_CUSTOMER["password"])
    verifier = TokenVerifier(JwksKeys(f"{client.base_url}/api/v1/.well-known/jwks.json"))
    principal = await verifier.principal(tokens["access_token"])
    assert (principal.user_id, principal.role) == (user["id"], "user")


async def test_unknown_route_and_method_use_the_json_error_format(client):
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong_method = await client.delete("/api/v1/auth/register")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


async def test_request_id_is_echoed(client):
    response = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


async def test_openapi_document_lists_the_user_endpoints(client):
    document = (await client.get("/api/v1/docs/user_svc/openapi.json")).json()
    assert document["info"]["title"] == "User service"
    assert {"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/users/me"} <= set(document["paths"])


async def test_a_body_over_the_limit_is_a_json_413(client):
    await assert_refuses_bodies_over_the_limit(client, "/api/v1/auth/register")
