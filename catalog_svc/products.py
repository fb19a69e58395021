"""Use cases on products. Each change and its product event (topic product-topic) commit in one transaction."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from catalog_svc.schemas import ProductInput, ProductQuery, ProductUpdate, product_view
from common.errors import NotFound
from common.messages import PRODUCT_CREATED, PRODUCT_DELETED, PRODUCT_UPDATED
from common.mongo_outbox import ensure_outbox_indexes, write_event_mongo
from common.outbox import Event
from common.topics import PRODUCT_EVENTS

PRODUCTS = "products"

T = TypeVar("T")


def product_event(event_type: str, product: dict[str, Any]) -> Event:
    return Event(
        topic=PRODUCT_EVENTS,
        event_type=event_type,
        aggregate_type="product",
        aggregate_id=product["_id"],
        payload=product,
    )


def _object_id(product_id: str) -> ObjectId:
    """The id as MongoDB stores it; anything that is not a product id cannot name a product: 404."""
    if not ObjectId.is_valid(product_id):
        raise NotFound(f"Product {product_id} not found")
    return ObjectId(product_id)


class Catalog:
    def __init__(self, client: AsyncMongoClient, database: AsyncDatabase) -> None:
        self._client = client
        self._database = database
        self._products = database[PRODUCTS]
        # Every change increments the one outbox counter, so changes to this database run one at a time anyway:
        # queueing them here spares the write-conflict retries among this process's requests (and nx-27017,
        # the local MongoDB-wire server, fails transactions that overlap). Correctness does not depend on it.
        self._writing = asyncio.Lock()

    async def ensure_indexes(self) -> None:
        """Indexes for the list filters (category, price range) and the outbox's collections."""
        await self._products.create_index([("category", ASCENDING), ("price_cents", ASCENDING)], name="category_price")
        await self._products.create_index([("price_cents", ASCENDING)], name="price")
        await ensure_outbox_indexes(self._database)

    async def reachable(self, timeout: float = 1.0) -> bool:
        try:
            await asyncio.wait_for(self._database.command("ping"), timeout)
        except (PyMongoError, TimeoutError):
            return False
        return True

    async def create(self, data: ProductInput) -> dict[str, Any]:
        now = datetime.now(UTC)
        document = {"_id": ObjectId(), **data.document(), "created_at": now, "updated_at": now}
        product = product_view(document)

        async def change(session: AsyncClientSession) -> None:
            await self._products.insert_one(document, session=session)
            await write_event_mongo(self._database, session, product_event(PRODUCT_CREATED, product))

        await self._in_transaction(change)
        return product

    async def get(self, product_id: str) -> dict[str, Any]:
        document = await self._products.find_one({"_id": _object_id(product_id)})
        if document is None:
            raise NotFound(f"Product {product_id} not found")
        return product_view(document)

    async def search(self, query: ProductQuery) -> list[dict[str, Any]]:
        """Products matching the filters, oldest first (ObjectIds grow with creation time): a stable order
        for paging with skip and limit."""
        selector: dict[str, Any] = {}
        if query.category is not None:
            selector["category"] = query.category
        if price := query.price_cents_range():
            selector["price_cents"] = price
        cursor = self._products.find(selector).sort("_id", ASCENDING).skip(query.skip).limit(query.limit)
        return [product_view(document) async for document in cursor]

    async def categories(self) -> list[str]:
        return sorted(await self._products.distinct("category"))

    async def update(self, product_id: str, update: ProductUpdate) -> dict[str, Any]:
        object_id = _object_id(product_id)
        changes = update.document()
        if not changes:
            return await self.get(product_id)

        async def change(session: AsyncClientSession) -> dict[str, Any]:
            # $currentDate rather than a client date: nx-27017 stores a $set date as text.
            document = await self._products.find_one_and_update(
                {"_id": object_id},
                {"$set": changes, "$currentDate": {"updated_at": True}},
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if document is None:
                raise NotFound(f"Product {product_id} not found")
            product = product_view(document)
            await write_event_mongo(self._database, session, product_event(PRODUCT_UPDATED, product))
            return product

        return await self._in_transaction(change)

    async def delete(self, product_id: str) -> None:
        object_id = _object_id(product_id)

        async def change(session: AsyncClientSession) -> None:
            document = await self._products.find_one_and_delete({"_id": object_id}, session=session)
            if document is None:
                raise NotFound(f"Product {product_id} not found")
            await write_event_mongo(self._database, session, product_event(PRODUCT_DELETED, product_view(document)))

        await self._in_transaction(change)

    async def _in_transaction(self, change: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run `change` in a transaction; transient errors (a write conflict on the outbox counter with a
        concurrent change) retry it whole."""
        async with self._writing, self._client.start_session() as session:
            return await session.with_transaction(change)
