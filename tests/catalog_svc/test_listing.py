"""Listing: filters by category and an inclusive, exact price range; stable paging; the categories."""

from tests.catalog_svc.conftest import create_product


async def names(client, **params) -> list[str]:
    response = await client.get("/api/v1/products/", params=params)
    assert response.status_code == 200, response.text
    return [product["name"] for product in response.json()]


async def test_price_range_is_inclusive_and_exact_to_the_cent(client, admin):
    for name, price in [("a", 99.99), ("b", 100), ("c", 100.01), ("d", 299.99), ("e", 300), ("f", 300.01)]:
        await create_product(client, admin, name=name, price=price)
    assert await names(client, min_price=100, max_price=300) == ["b", "c", "d", "e"]
    assert await names(client, min_price="100.00", max_price="300.00") == ["b", "c", "d", "e"]
    assert await names(client, min_price=100.001, max_price=299.999) == ["c", "d"]
    assert await names(client, min_price=300.01) == ["f"]
    assert await names(client, max_price=99.99) == ["a"]
    assert await names(client, min_price=150, max_price=150) == []


async def test_category_and_price_filters_combine(client, admin):
    await create_product(client, admin, name="cheap audio", category="Audio", price=20)
    await create_product(client, admin, name="dear audio", category="Audio", price=2000)
    await create_product(client, admin, name="cheap phone", category="Electronics", price=20)
    assert await names(client, category="Audio", max_price=100) == ["cheap audio"]
    assert await names(client, category="audio") == []  # categories match exactly
    assert await names(client, category="Toys") == []


async def test_paging_is_stable_in_creation_order(client, admin):
    created = [(await create_product(client, admin, name=f"p{n:02}"))["name"] for n in range(12)]
    pages = [await names(client, skip=skip, limit=5) for skip in (0, 5, 10)]
    assert pages == [created[0:5], created[5:10], created[10:12]]
    assert await names(client) == created


async def test_default_limit_is_50(client, admin):
    for n in range(51):
        await create_product(client, admin, name=f"p{n:02}")
    assert len(await names(client)) == 50
    assert len(await names(client, limit=100)) == 51


async def test_categories_are_distinct_and_sorted(client, admin):
    assert (await client.get("/api/v1/products/categories")).json() == []
    for category in ["Wearables", "Audio", "Electronics", "Audio"]:
        await create_product(client, admin, category=category)
    assert (await client.get("/api/v1/products/categories")).json() == ["Audio", "Electronics", "Wearables"]


async def test_a_whole_price_is_a_number(client, admin):
    product = await create_product(client, admin, price=100)
    assert product["price"] == 100
    assert isinstance((await client.get(f"/api/v1/products/{product['_id']}")).json()["price"], float)
