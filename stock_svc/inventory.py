"""Use cases on inventory items.

Every change of quantities goes through `apply_change`, in the caller's transaction and under the item's row
lock: it saves the quantities, then records the history row and writes the stock events, so the change, its
history and its events commit or roll back together.
"""

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.timezone import now
from tortoise.transactions import in_transaction

from common.errors import Conflict, NotFound
from common.messages import STOCK_LOW, STOCK_UPDATED
from common.outbox import Event, write_events
from common.topics import STOCK_UPDATES
from stock_svc.models import ChangeType, InventoryItem, StockHistory
from stock_svc.schemas import Adjustment, ItemUpdate, NewItem, Page

DB = "stock_svc"

MAX_STOCK = 2_147_483_647  # available + reserved must fit the PostgreSQL integer columns


def initial_threshold(quantity: int) -> int:
    """The reorder threshold of a new item: 10% of its initial stock, rounded down (50 gives 5, 100 gives 10)."""
    return quantity // 10


def stock_events(item: InventoryItem, causation_id: str | None) -> list[Event]:
    """stock.updated after every change, and stock.low while the item is at or under its reorder threshold."""
    payload = {"product_id": item.product_id, "stock": item.available_quantity}
    event_types = [STOCK_UPDATED]
    if item.available_quantity <= item.reorder_threshold:
        event_types.append(STOCK_LOW)
    return [Event(STOCK_UPDATES, t, "inventory", item.product_id, payload, causation_id) for t in event_types]


async def record_change(
    connection: BaseDBAsyncClient,
    item: InventoryItem,
    change_type: ChangeType,
    change: int,
    before: tuple[int, int],
    reference: str | None,
    causation_id: str | None,
) -> None:
    """The history row and the stock events of a change already saved to `item`."""
    await StockHistory.create(
        item_id=item.id,
        type=change_type,
        change=change,
        available_before=before[0],
        available_after=item.available_quantity,
        reserved_before=before[1],
        reserved_after=item.reserved_quantity,
        reference=reference,
        using_db=connection,
    )
    for event in stock_events(item, causation_id):
        await write_events(connection, [event])


async def apply_change(
    connection: BaseDBAsyncClient,
    item: InventoryItem,
    change_type: ChangeType,
    *,
    available_delta: int = 0,
    reserved_delta: int = 0,
    reference: str | None = None,
    causation_id: str | None = None,
) -> None:
    """Move the quantities of the locked `item` and record the change. Callers check availability first (to
    answer with the numbers); the CHECK constraints stop anything that slips past them."""
    before = (item.available_quantity, item.reserved_quantity)
    item.available_quantity += available_delta
    item.reserved_quantity += reserved_delta
    if item.available_quantity + item.reserved_quantity > MAX_STOCK:
        raise Conflict(f"The stock of {item.product_id} would exceed {MAX_STOCK} units", product_id=item.product_id)
    await item.save(
        update_fields=["available_quantity", "reserved_quantity", "reorder_threshold", "updated_at"],
        using_db=connection,
    )
    # A confirmation leaves available stock alone: its change is the reserved units that left the store.
    change = available_delta or reserved_delta
    await record_change(connection, item, change_type, change, before, reference, causation_id)


async def lock_item(connection: BaseDBAsyncClient, product_id: str) -> InventoryItem:
    """The product's item, locked until the end of the transaction; 404 if there is none (or it is retired)."""
    item = (
        await InventoryItem.filter(product_id=product_id, retired_at=None)
        .select_for_update()
        .using_db(connection)
        .first()
    )
    if item is None:
        raise NotFound(f"No inventory for product {product_id}", product_id=product_id)
    return item


async def lock_items(connection: BaseDBAsyncClient, **conditions: Any) -> list[InventoryItem]:
    """The items matching `conditions`, locked in product id order. Every transaction that locks several items
    takes them in this order, so no two of them wait for each other in a cycle."""
    query = InventoryItem.filter(**conditions).order_by("product_id").select_for_update()
    return await query.using_db(connection)


async def find_item(product_id: str, include_retired: bool = False) -> InventoryItem:
    query = InventoryItem.filter(product_id=product_id)
    if not include_retired:
        query = query.filter(retired_at=None)
    item = await query.first()
    if item is None:
        raise NotFound(f"No inventory for product {product_id}", product_id=product_id)
    return item


async def add_item(
    connection: BaseDBAsyncClient,
    product_id: str,
    available: int,
    threshold: int,
    reference: str | None = None,
    causation_id: str | None = None,
) -> InventoryItem:
    item = await InventoryItem.create(
        product_id=product_id, available_quantity=available, reorder_threshold=threshold, using_db=connection
    )
    await record_change(connection, item, ChangeType.CREATED, available, (0, 0), reference, causation_id)
    return item


async def create_item(new: NewItem) -> InventoryItem:
    """An admin's new item; 409 if the product has one (even a retired one: product ids are never reused)."""
    threshold = new.reorder_threshold
    if threshold is None:
        threshold = initial_threshold(new.available_quantity)
    try:
        async with in_transaction(DB) as connection:
            return await add_item(connection, new.product_id, new.available_quantity, threshold)
    except IntegrityError:
        raise Conflict(f"Inventory for product {new.product_id} already exists", product_id=new.product_id) from None


async def create_item_for_product(
    connection: BaseDBAsyncClient, product_id: str, quantity: int, causation_id: str
) -> None:
    """The item of a newly created product; a product that already has one (a repeated event) changes nothing."""
    if await InventoryItem.exists(product_id=product_id, using_db=connection):
        return
    threshold = initial_threshold(quantity)
    await add_item(connection, product_id, quantity, threshold, reference=causation_id, causation_id=causation_id)


async def retire_item(connection: BaseDBAsyncClient, product_id: str) -> None:
    """The product was deleted: its item leaves the API. Quantities stay as they are, so what orders hold can
    still be released or confirmed."""
    await InventoryItem.filter(product_id=product_id, retired_at=None).using_db(connection).update(retired_at=now())


async def list_items(page: Page) -> list[InventoryItem]:
    return await InventoryItem.filter(retired_at=None).order_by("id").offset(page.skip).limit(page.limit)


async def low_stock_items(page: Page) -> list[InventoryItem]:
    """Items at or under their reorder threshold."""
    query = InventoryItem.filter(retired_at=None, available_quantity__lte=F("reorder_threshold"))
    return await query.order_by("id").offset(page.skip).limit(page.limit)


async def check_stock(product_id: str, quantity: int) -> dict:
    item = await find_item(product_id)
    return {
        "product_id": product_id,
        "requested": quantity,
        "available": item.available_quantity,
        "in_stock": item.available_quantity >= quantity,
    }


async def update_item(product_id: str, update: ItemUpdate) -> InventoryItem:
    """Set the available quantity and/or the reorder threshold (reserved units are not touched)."""
    changes = update.changes()
    async with in_transaction(DB) as connection:
        item = await lock_item(connection, product_id)
        item.reorder_threshold = changes.get("reorder_threshold", item.reorder_threshold)
        available = changes.get("available_quantity", item.available_quantity)
        await apply_change(connection, item, ChangeType.UPDATED, available_delta=available - item.available_quantity)
    return item


async def adjust_stock(adjustment: Adjustment) -> InventoryItem:
    """Add units to, or remove units from, the available stock; 409 if that would make it negative."""
    async with in_transaction(DB) as connection:
        item = await lock_item(connection, adjustment.product_id)
        if item.available_quantity + adjustment.quantity_change < 0:
            raise Conflict(
                f"Cannot remove {-adjustment.quantity_change} units of {item.product_id}:"
                f" {item.available_quantity} available",
                product_id=item.product_id,
                requested=adjustment.quantity_change,
                available=item.available_quantity,
            )
        await apply_change(
            connection,
            item,
            ChangeType.ADJUSTED,
            available_delta=adjustment.quantity_change,
            reference=adjustment.reference_id,
        )
    return item


async def history_of(product_id: str, page: Page) -> list[StockHistory]:
    """The item's changes, newest first (kept after the product is deleted)."""
    item = await find_item(product_id, include_retired=True)
    return await StockHistory.filter(item_id=item.id).order_by("-id").offset(page.skip).limit(page.limit)
