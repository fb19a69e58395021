"""What the inventory endpoints accept, what the consumed events carry, and how items and history are shown."""

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from common.validation import PartialUpdate, Schema
from stock_svc.models import InventoryItem, StockHistory

MAX_QUANTITY = 1_000_000_000  # per request

ProductId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
OrderId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# Quantities in JSON bodies are strict integers: "5", 5.0 and true are refused rather than guessed at.
Quantity = Annotated[int, Field(strict=True, gt=0, le=MAX_QUANTITY)]
Stock = Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]


class NewItem(Schema):
    product_id: ProductId
    available_quantity: Stock
    reorder_threshold: Stock | None = None  # 10% of the available quantity when not given


class ItemUpdate(PartialUpdate):
    available_quantity: Stock | None = None
    reorder_threshold: Stock | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> "ItemUpdate":
        if not self.changes():
            raise ValueError("give available_quantity, reorder_threshold or both")
        return self


class ReservationRequest(Schema):
    """The body of /reserve and /release."""

    product_id: ProductId
    quantity: Quantity
    order_id: OrderId


class Adjustment(Schema):
    product_id: ProductId
    quantity_change: Annotated[int, Field(strict=True, ge=-MAX_QUANTITY, le=MAX_QUANTITY)]
    reference_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None

    @field_validator("quantity_change")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must not be 0")
        return value


class StockCheck(Schema):
    product_id: ProductId
    quantity: Annotated[int, Field(gt=0, le=MAX_QUANTITY)] = 1


class Page(Schema):
    skip: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


# The payloads of consumed events (common/messages.py). Unknown fields are ignored: producers may add some.


class ProductRef(BaseModel):
    id: ProductId = Field(alias="_id")


class ProductCreated(ProductRef):
    quantity: Annotated[int, Field(ge=0, le=MAX_QUANTITY)]


class OrderLine(BaseModel):
    product_id: ProductId
    quantity: Quantity


class ReserveCommand(BaseModel):
    order_id: OrderId
    items: Annotated[list[OrderLine], Field(min_length=1)]


class OrderCommand(BaseModel):
    """stock.release and stock.confirm."""

    order_id: OrderId


def item_view(item: InventoryItem) -> dict:
    return {
        "product_id": item.product_id,
        "available_quantity": item.available_quantity,
        "reserved_quantity": item.reserved_quantity,
        "reorder_threshold": item.reorder_threshold,
        "id": item.id,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


def history_view(entry: StockHistory, product_id: str) -> dict:
    return {
        "id": entry.id,
        "product_id": product_id,
        "type": entry.type.value,
        "change": entry.change,
        "available_before": entry.available_before,
        "available_after": entry.available_after,
        "reserved_before": entry.reserved_before,
        "reserved_after": entry.reserved_after,
        "reference": entry.reference,
        "created_at": entry.created_at.isoformat(),
    }
