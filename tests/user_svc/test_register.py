import json

import pytest
from tortoise import connections

from tests.user_svc.conftest import SEED_CUSTOMER, register


async def outbox_rows() -> list[dict]:
    return await connections.get("user_svc").execute_query_dict(
        "SELECT aggregate_type, aggregate_id, event_type, topic, payload, headers FROM outbox ORDER BY position"
    )


async def test_user_created_event_commits_with_the_user(client):
    user = await register(client)
    [row] = [row for row in await outbox_rows() if row["aggregate_id"] == str(user["id"])]
    assert (row["aggregate_type"], row["event_type"], row["topic"]) == ("user", "user.created", "user-events")
    payload = json.loads(row["payload"])
    assert payload["email"] == "customer@example.com"
    assert "password" not in json.dumps(payload)
    assert json.loads(row["headers"])["correlation_id"]


async def test_duplicate_email_is_409_and_writes_nothing(client):
    await register(client)
    before = await outbox_rows()
    response = await client.post("/api/v1/auth/register", json={**SEED_CUSTOMER, "email": "Customer@Example.COM"})
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert response.json()["field"] == "email"
    assert await outbox_rows() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"password": "Short1"}, "password"),
        ({"password": "NoDigitsHere"}, "password"),
        ({"first_name": 42}, "first_name"),
        ({"phone": "call me maybe"}, "phone"),
        ({"is_admin": True}, "is_admin"),
        ({"last_name": ""}, "last_name"),
    ],
)
async def test_invalid_field_is_422_naming_it(client, change, field):
    before = await outbox_rows()
    response = await client.post("/api/v1/auth/register", json={**SEED_CUSTOMER, **change})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    assert [problem["field"] for problem in body["fields"]] == [field]
    assert await outbox_rows() == before


async def test_missing_fields_are_each_named(client):
    response = await client.post("/api/v1/auth/register", json={"email": "a@example.com"})
    assert response.status_code == 422
    assert {problem["field"] for problem in response.json()["fields"]} == {"password", "first_name", "last_name"}


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"", b"\xff\xfe"])
async def test_body_that_is_not_a_json_object_is_400(client, body):
    response = await client.post("/api/v1/auth/register", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "request_id" in response.json()


async def test_phone_is_optional(client):
    user = await register(client, phone=None)
    assert user["phone"] is None


@pytest.mark.parametrize("text", ["Ex\x00ample", "Ex\udc80ample"])
async def test_text_the_database_cannot_store_is_422(client, text):
    before = await outbox_rows()
    body = json.dumps({**SEED_CUSTOMER, "first_name": text})  # ASCII, escapes included, as a client may send
    response = await client.post("/api/v1/auth/register", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "first_name"
    assert await outbox_rows() == before
