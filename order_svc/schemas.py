"""What the order endpoints accept, what the consumed events carry, and how an order is shown."""

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, StringConstraints, field_validator

from common.validation import Schema
from order_svc.models import Order, OrderItem, OrderStatus

MAX_PRICE = Decimal("1000000000")  # as the catalog allows
MAX_QUANTITY = 10_000  # per item
MAX_ITEMS = 100  # per order
MAX_TOTAL = Decimal("9999999999.99")  # what orders.total_price (12 digits, 2 decimals) holds


def _json_number(value: Any) -> Any:
    # JSON numbers only: pydantic would otherwise accept "899.99" as a string.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a number")
    return value


def _user_id(value: Any) -> Any:
    # The seed sends the id as a string ("1"); a number is as good.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


ProductId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Price = Annotated[Decimal, BeforeValidator(_json_number), Field(gt=0, le=MAX_PRICE, decimal_places=2)]
# Quantities are strict integers: "2", 2.0 and true are refused rather than guessed at.
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
Line = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ItemInput(Schema):
    product_id: ProductId
    quantity: Quantity
    price: Price  # the unit price the customer saw; it must be the catalog's


class ShippingAddress(Schema):
    line1: Line
    line2: Annotated[str, StringConstraints(max_length=200)] | None = None
    city: Short
    state: Short
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    country: Short


class NewOrder(Schema):
    # The customer is the caller; a body that names another user is refused (403), not obeyed.
    user_id: Annotated[str, BeforeValidator(_user_id), StringConstraints(min_length=1, max_length=20)] | None = None
    items: Annotated[list[ItemInput], Field(min_length=1, max_length=MAX_ITEMS)]
    shipping_address: ShippingAddress

    @field_validator("items")
    @classmethod
    def _each_product_once(cls, items: list[ItemInput]) -> list[ItemInput]:
        seen: set[str] = set()
        for item in items:
            if item.product_id in seen:
                raise ValueError(f"product {item.product_id} is listed twice; give it once with the total quantity")
            seen.add(item.product_id)
        if order_total(items) > MAX_TOTAL:
            raise ValueError(f"the order's total may not exceed {MAX_TOTAL}")
        return items


class StatusChange(Schema):
    status: OrderStatus


class Page(Schema):
    skip: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=100)] = 20


def order_total(items: list[ItemInput]) -> Decimal:
    """Exact, in Decimal: 249.99 + 2 x 179.99 is 609.97."""
    return sum((item.price * item.quantity for item in items), Decimal(0))


# The payloads of consumed events (common/messages.py). Unknown fields are ignored: producers may add some.


class ProductEvent(BaseModel):
    """product.created / product.updated / product.deleted: the product as the catalog's API returns it."""

    id: ProductId = Field(alias="_id")
    name: Annotated[str, StringConstraints(max_length=200)]
    price: Annotated[Decimal, Field(ge=0, le=MAX_PRICE, decimal_places=2)]


class StockUpdated(BaseModel):
    """stock.updated: a product's available quantity after a change."""

    product_id: ProductId
    stock: Annotated[int, Field(ge=0)]


class SagaRejected(BaseModel):
    order_id: str
    reason: str


class SagaExpired(BaseModel):
    order_id: str


def money(amount: Decimal) -> float:
    """A price as a JSON number: the float nearest an amount with 2 decimals prints as that amount (899.99)."""
    return float(amount)


def item_view(item: OrderItem) -> dict[str, Any]:
    return {"product_id": item.product_id, "quantity": item.quantity, "price": money(item.price)}


def order_view(order: Order, items: list[OrderItem]) -> dict[str, Any]:
    """An order as the seed shows it, in its key order; `status_reason` only when the saga gave one."""
    view = {
        "_id": str(order.id),
        "user_id": str(order.user_id),
        "items": [item_view(item) for item in items],
        "total_price": money(order.total_price),
        "status": order.status.value,
        "shipping_address": order.shipping_address,
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
    }
    if order.status_reason is not None:
        view["status_reason"] = order.status_reason
    return view
