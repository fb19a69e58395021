"""Use cases on inventory items.

Every change of quantities is described by `stock_change` (its history row and its stock events) and written in
the caller's transaction, under the item's row lock, so that the change, its history and its events commit or roll
back together. The admin paths write it through the ORM (`apply_change`); the saga's commands write it in their
own set-based statements (stock_svc/reservations.py): the same rows and events either way.
"""

from dataclasses import dataclass

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


@dataclass(frozen=True)
class StockChange:
    """One change of an item's quantities: the values of its history row, and the events that report it."""

    item_id: int
    type: ChangeType
    change: int
    available_before: int
    available_after: int
    reserved_before: int
    reserved_after: int
    reference: str | None
    events: list[Event]


def stock_change(
    item_id: int,
    product_id: str,
    reorder_threshold: int,
    change_type: ChangeType,
    *,
    before: tuple[int, int],
    after: tuple[int, int],
    reference: str | None,
    causation_id: str | None,
) -> StockChange:
    """The item's change from `before` to `after` (available, reserved units): stock.updated after every change,
    and stock.low while the item is at or under its reorder threshold; 409 if the stock would not fit the columns.
    Callers check availability first (to answer with the numbers); the CHECK constraints stop anything that slips
    past them."""
    available, reserved = after
    if available + reserved > MAX_STOCK:
        raise Conflict(f"The stock of {product_id} would exceed {MAX_STOCK} units", product_id=product_id)
    # A confirmation leaves available stock alone: its change is the reserved units that left the store.
    change = (available - before[0]) or (reserved - before[1])
    payload = {"product_id": product_id, "stock": available}
    event_types = [STOCK_UPDATED, STOCK_LOW] if available <= reorder_threshold else [STOCK_UPDATED]
    events = [Event(STOCK_UPDATES, t, "inventory", product_id, payload, causation_id) for t in event_types]
    return StockChange(item_id, change_type, change, before[0], available, before[1], reserved, reference, events)


async def record_change(connection: BaseDBAsyncClient, change: StockChange) -> None:
    """The history row and the stock events of a change already saved to its item."""
    await StockHistory.create(
        item_id=change.item_id,
        type=change.type,
        change=change.change,
        available_before=change.available_before,
        available_after=change.available_after,
        reserved_before=change.reserved_before,
        reserved_after=change.reserved_after,
        reference=change.reference,
        using_db=connection,
    )
    await write_events(connection, change.events)


async def apply_change(
    connection: BaseDBAsyncClient,
    item: InventoryItem,
    change_type: ChangeType,
    *,
    available_delta: int = 0,
    reserved_delta: int = 0,
    reference: str | None = None,
) -> None:
    """Move the quantities of the locked `item`, save them and record the change."""
    before = (item.available_quantity, item.reserved_quantity)
    after = (before[0] + available_delta, before[1] + reserved_delta)
    change = stock_change(
        item.id,
        item.product_id,
        item.reorder_threshold,
        change_type,
        before=before,
        after=after,
        reference=reference,
        causation_id=None,
    )
    item.available_quantity, item.reserved_quantity = after
    await item.save(
        update_fields=["available_quantity", "reserved_quantity", "reorder_threshold", "updated_at"],
        using_db=connection,
    )
    await record_change(connection, change)


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
    created = stock_change(
        item.id,
        product_id,
        threshold,
        ChangeType.CREATED,
        before=(0, 0),
        after=(available, 0),
        reference=reference,
        causation_id=causation_id,
    )
    await record_change(connection, created)
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


async def adjust_stock(connection: BaseDBAsyncClient, adjustment: Adjustment) -> InventoryItem:
    """Add units to, or remove units from, the available stock (in the caller's transaction); 409 if that would
    make it negative."""
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
