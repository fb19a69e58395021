"""Seed guide steps 3.1 to 4.4 (the catalog's part), request for request."""

from bson import ObjectId

from tests.catalog_svc.conftest import SEED_PRODUCTS


async def test_seed_steps_3_and_4(client, admin, customer):
    created = []
    for product in SEED_PRODUCTS:  # steps 3.1, 3.2, 3.3
        response = await client.post("/api/v1/products/", json=product, headers=admin)
        assert response.status_code == 201, response.text
        body = response.json()
        assert list(body) == ["name", "description", "category", "price", "quantity", "_id"]
        assert ObjectId.is_valid(body["_id"])
        assert body == {**product, "_id": body["_id"]}
        created.append(body)
    phone, headphones, watch = created

    # Step 4.1: the guide sends a token; the list needs none, and either way shows the three in creation order.
    assert (await client.get("/api/v1/products/", headers=customer)).json() == created
    assert (await client.get("/api/v1/products/")).json() == created

    # Step 4.3
    response = await client.get("/api/v1/products/", params={"category": "Electronics"}, headers=customer)
    assert response.json() == [phone]

    # Step 4.4
    response = await client.get("/api/v1/products/", params={"min_price": 100, "max_price": 300}, headers=customer)
    assert response.json() == [headphones, watch]


async def test_prices_are_exact_json_numbers(client, admin):
    response = await client.post("/api/v1/products/", json=SEED_PRODUCTS[0], headers=admin)
    assert b'"price":899.99' in response.content
    fetched = await client.get(f"/api/v1/products/{response.json()['_id']}")
    assert b'"price":899.99' in fetched.content
