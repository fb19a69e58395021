"""What the product endpoints accept (pydantic models) and how they present a product.

Prices are exact: the API takes and shows them as JSON numbers with at most 2 decimals (899.99), and MongoDB
stores integer cents (`price_cents`), which every server compares exactly and sorts correctly.
"""

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, ValidationInfo, field_validator

from common.validation import PartialUpdate, Schema

MAX_PRICE = Decimal("1000000000")
MAX_QUANTITY = 1_000_000_000


def _json_number(value: Any) -> Any:
    # JSON numbers only: pydantic would otherwise accept "899.99" as a string.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a number")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5000)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Price = Annotated[Decimal, BeforeValidator(_json_number), Field(gt=0, le=MAX_PRICE, decimal_places=2)]
Quantity = Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]
PriceFilter = Annotated[Decimal, Field(ge=0, le=MAX_PRICE)]


def cents(price: Decimal) -> int:
    """The exact number of cents of a price with at most 2 decimals."""
    return int(price * 100)


class ProductInput(Schema):
    name: Name
    description: Description = ""
    category: Category
    price: Price
    quantity: Quantity

    def document(self) -> dict[str, Any]:
        """The fields as MongoDB stores them."""
        return {
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "price_cents": cents(self.price),
            "quantity": self.quantity,
        }


class ProductUpdate(PartialUpdate):
    """PUT changes only the fields it names (the others keep their values)."""

    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    price: Price | None = None
    quantity: Quantity | None = None

    def document(self) -> dict[str, Any]:
        changes = self.changes()
        if "price" in changes:
            changes["price_cents"] = cents(changes.pop("price"))
        return changes


class ProductQuery(Schema):
    category: Category | None = None
    min_price: PriceFilter | None = None
    max_price: PriceFilter | None = None
    skip: int = Field(0, ge=0, le=1_000_000)
    limit: int = Field(50, ge=1, le=100)

    @field_validator("max_price")
    @classmethod
    def _not_below_min_price(cls, max_price: Decimal | None, info: ValidationInfo) -> Decimal | None:
        min_price = info.data.get("min_price")
        if max_price is not None and min_price is not None and max_price < min_price:
            raise ValueError("must be greater than or equal to min_price")
        return max_price

    def price_cents_range(self) -> dict[str, int]:
        """The price bounds in whole cents, rounded inwards so that the filter stays exact (inclusive)."""
        bounds = {}
        if self.min_price is not None:
            bounds["$gte"] = int((self.min_price * 100).to_integral_value(rounding=ROUND_CEILING))
        if self.max_price is not None:
            bounds["$lte"] = int((self.max_price * 100).to_integral_value(rounding=ROUND_FLOOR))
        return bounds


def product_view(document: dict[str, Any]) -> dict[str, Any]:
    """A product as the API returns it and as its events carry it (the seed's fields, in its order)."""
    return {
        "name": document["name"],
        "description": document["description"],
        "category": document["category"],
        # Correctly rounded division: the float nearest the exact price, which JSON prints as 899.99.
        "price": document["price_cents"] / 100,
        "quantity": document["quantity"],
        "_id": str(document["_id"]),
    }
