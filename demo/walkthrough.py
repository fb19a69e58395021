"""The seed guide, request for request, against a running system (DESIGN §9: two accounts, an admin for the
products and a customer for the orders; the reservation is asynchronous; payment confirms it).

Each step prints its request and the response, checks what the guide says, and the walk stops with a clear
message at the first mismatch. It can run again on the same system: an existing customer signs in, and the
checks look for this run's products and orders among earlier ones.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

CUSTOMER = {
    "email": "customer@example.com",
    "password": "Password123",
    "first_name": "Example",
    "last_name": "Customer",
    "phone": "555-123-4567",
}
ADDRESS = {
    "line1": "123 Example Street",
    "line2": "Apt 4B",
    "city": "Example City",
    "state": "EX",
    "postal_code": "12345",
    "country": "Example Country",
}
PRODUCTS = [
    {
        "name": "Premium Smartphone",
        "description": "Latest model with high-end camera and long battery life",
        "category": "Electronics",
        "price": 899.99,
        "quantity": 50,
    },
    {
        "name": "Wireless Noise-Cancelling Headphones",
        "description": "Premium headphones with active noise cancellation",
        "category": "Audio",
        "price": 249.99,
        "quantity": 100,
    },
    {
        "name": "Smart Fitness Watch",
        "description": "Waterproof fitness tracker with heart rate monitoring",
        "category": "Wearables",
        "price": 179.99,
        "quantity": 75,
    },
]
USER_FIELDS = ["id", "email", "first_name", "last_name", "phone", "is_active", "created_at", "addresses", "role"]
PRODUCT_FIELDS = ["name", "description", "category", "price", "quantity", "_id"]
INVENTORY_FIELDS = [
    "product_id",
    "available_quantity",
    "reserved_quantity",
    "reorder_threshold",
    "id",
    "created_at",
    "updated_at",
]
ORDER_FIELDS = ["_id", "user_id", "items", "total_price", "status", "shipping_address", "created_at", "updated_at"]


class Mismatch(AssertionError):
    """The system answered differently from the guide."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Mismatch(message)


@dataclass
class Walkthrough:
    client: httpx.Client
    admin_email: str
    admin_password: str
    say: Callable[[str], None] = print
    settle_timeout: float = 15.0  # how long to wait for what happens asynchronously (inventory, saga)
    state: dict[str, Any] = field(default_factory=dict)

    # --- plumbing ----------------------------------------------------------------------------------------------------

    def call(self, step: str, method: str, path: str, status: int | tuple[int, ...], **options: Any) -> httpx.Response:
        self.say(f"\n== {step}\n{method} {path}")
        if "json" in options:
            self.say(json.dumps(options["json"], indent=2))
        if "data" in options:
            self.say(httpx.QueryParams(options["data"]).__str__())
        response = self.client.request(method, path, **options)
        self.say(f"-> {response.status_code}")
        if response.content:
            try:
                self.say(json.dumps(response.json(), indent=2))
            except ValueError:
                self.say(response.text)
        expected = status if isinstance(status, tuple) else (status,)
        expect(response.status_code in expected, f"{step}: expected status {status}, got {response.status_code}")
        return response

    def eventually(self, what: str, probe: Callable[[], Any], accept: Callable[[Any], bool]) -> Any:
        """Poll `probe` until `accept` holds (things that happen asynchronously), then return its last value."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            value = probe()
            if accept(value):
                return value
            if time.monotonic() > deadline:
                raise Mismatch(f"{what}: still {value!r} after {self.settle_timeout} s")
            time.sleep(0.1)

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.state[who]}"}

    # --- the guide -----------------------------------------------------------------------------------------------

    def run(self) -> None:
        for step in (
            self.register_and_sign_in,
            self.add_address,
            self.create_products,
            self.browse_and_check_inventory,
            self.place_orders,
            self.view_and_manage_orders,
            self.check_inventory_after,
        ):
            step()
        self.say("\nThe walk-through matches the guide.")

    def register_and_sign_in(self) -> None:
        response = self.call("1.1 Register a new user", "POST", "/auth/register", (201, 409), json=CUSTOMER)
        if response.status_code == 201:
            user = response.json()
            expect(list(user) == USER_FIELDS, f"1.1: user fields {list(user)}")
            expect(user["addresses"] == [] and user["is_active"], "1.1: a new user is active, without addresses")
        else:
            self.say("(registered by an earlier run: signing in)")
        form = {"username": CUSTOMER["email"], "password": CUSTOMER["password"]}
        tokens = self.call("1.2 Login", "POST", "/auth/login", 200, data=form).json()
        expect(tokens["token_type"] == "bearer", "1.2: token_type bearer")
        self.state["customer"] = tokens["access_token"]
        me = self.call("1.3 Verify authentication", "GET", "/users/me", 200, headers=self.bearer("customer")).json()
        expect(me["email"] == CUSTOMER["email"], "1.3: the signed-in user")
        self.state["user_id"] = me["id"]
        admin = {"username": self.admin_email, "password": self.admin_password}
        self.state["admin"] = self.call("(admin) Login", "POST", "/auth/login", 200, data=admin).json()["access_token"]

    def add_address(self) -> None:
        body = {**ADDRESS, "is_default": True}
        address = self.call(
            "2 Add a shipping address", "POST", "/users/me/addresses", 201, json=body, headers=self.bearer("customer")
        ).json()
        expect({k: v for k, v in address.items() if k != "id"} == body, "2: the address as sent")

    def create_products(self) -> None:
        self.state["products"] = []
        for number, product in enumerate(PRODUCTS, start=1):
            created = self.call(
                f"3.{number} Create product {number} (admin)",
                "POST",
                "/products/",
                201,
                json=product,
                headers=self.bearer("admin"),
            ).json()
            expect(list(created) == PRODUCT_FIELDS, f"3.{number}: product fields {list(created)}")
            expect({k: v for k, v in created.items() if k != "_id"} == product, f"3.{number}: the product as sent")
            self.state["products"].append(created)

    def browse_and_check_inventory(self) -> None:
        ours = self.state["products"]
        listed = self.call("4.1 Get all products", "GET", "/products/?limit=100", 200, headers=self.bearer("customer"))
        ids = [product["_id"] for product in listed.json()]
        if len(ids) < 100:  # otherwise earlier runs' products fill the first page
            expect(all(product["_id"] in ids for product in ours), "4.1: this run's products are listed")
        for number, (product, threshold) in enumerate(zip(ours[:2], (5, 10), strict=True), start=1):
            path = f"/inventory/{product['_id']}"
            self.say(f"\n== 4.2 Inventory of product {number} (created from product.created)")
            self.eventually(
                f"4.2: inventory of product {number}",
                lambda path=path: self.client.get(path, headers=self.bearer("customer")).status_code,
                lambda status: status == 200,
            )
            item = self.call(
                f"4.2 Check inventory for product {number}", "GET", path, 200, headers=self.bearer("customer")
            ).json()
            expect(list(item) == INVENTORY_FIELDS, f"4.2: inventory fields {list(item)}")
            expected = (product["quantity"], 0, threshold)
            actual = (item["available_quantity"], item["reserved_quantity"], item["reorder_threshold"])
            expect(actual == expected, f"4.2: available, reserved, threshold {actual}, expected {expected}")
        electronics = self.call("4.3 Filter by category", "GET", "/products/?category=Electronics&limit=100", 200)
        expect(all(p["category"] == "Electronics" for p in electronics.json()), "4.3: only Electronics")
        expect(ours[0]["_id"] in [p["_id"] for p in electronics.json()], "4.3: the smartphone is listed")
        ranged = self.call("4.4 Filter by price range", "GET", "/products/?min_price=100&max_price=300&limit=100", 200)
        expect(all(100 <= p["price"] <= 300 for p in ranged.json()), "4.4: prices within 100..300")
        ranged_ids = [p["_id"] for p in ranged.json()]
        expect(ours[1]["_id"] in ranged_ids and ours[2]["_id"] in ranged_ids, "4.4: headphones and watch listed")
        expect(ours[0]["_id"] not in ranged_ids, "4.4: the smartphone is not")

    def place_orders(self) -> None:
        me = self.call("5.1 Get the user id", "GET", "/users/me", 200, headers=self.bearer("customer")).json()
        user_id = str(me["id"])
        products = self.state["products"]
        orders = [
            [(products[0], 1)],
            [(products[1], 1), (products[2], 2)],
        ]
        self.state["orders"] = []
        for number, lines in enumerate(orders, start=2):
            body = {
                "user_id": user_id,
                "items": [{"product_id": p["_id"], "quantity": q, "price": p["price"]} for p, q in lines],
                "shipping_address": ADDRESS,
            }
            order = self.call(
                f"5.{number} Place an order", "POST", "/orders/", 201, json=body, headers=self.bearer("customer")
            ).json()
            expect(list(order) == ORDER_FIELDS, f"5.{number}: order fields {list(order)}")
            total = sum(Decimal(str(p["price"])) * q for p, q in lines)
            expect(Decimal(str(order["total_price"])) == total, f"5.{number}: total {order['total_price']} != {total}")
            expect((order["status"], order["user_id"]) == ("pending", user_id), f"5.{number}: pending, for the user")
            self.state["orders"].append(order)

    def view_and_manage_orders(self) -> None:
        first, second = self.state["orders"]
        shown = self.call(
            "6.1 Get order details", "GET", f"/orders/{first['_id']}", 200, headers=self.bearer("customer")
        ).json()
        expect(shown == first, "6.1: the order as placed")
        listed = self.call("6.2 List the user's orders", "GET", "/orders/", 200, headers=self.bearer("customer")).json()
        expect([o["_id"] for o in listed[:2]] == [second["_id"], first["_id"]], "6.2: newest first")
        for order in (first, second):
            self.say(f"\n== (saga) the reservation of order {order['_id']}")
            self.eventually(
                "the saga reserving the order's stock",
                lambda order=order: self._saga_state(order["_id"]),
                lambda state: state == "AWAITING_PAYMENT",
            )
        paid = self.call(
            "6.3 Update order status",
            "PUT",
            f"/orders/{first['_id']}/status",
            200,
            json={"status": "paid"},
            headers=self.bearer("customer"),
        ).json()
        expect(paid["status"] == "paid", "6.3: paid")
        self.call("6.4 Cancel an order", "DELETE", f"/orders/{second['_id']}", 204, headers=self.bearer("customer"))
        cancelled = self.call(
            "6.4 Verify the cancellation", "GET", f"/orders/{second['_id']}", 200, headers=self.bearer("customer")
        ).json()
        expect(cancelled["status"] == "cancelled", "6.4: cancelled")

    def check_inventory_after(self) -> None:
        first, second = self.state["orders"]
        for order, final in ((first, "COMPLETED"), (second, "CANCELLED")):
            self.say(f"\n== (saga) order {order['_id']} ends {final}")
            self.eventually(
                f"the saga of order {order['_id']}",
                lambda o=order: self._saga_state(o["_id"]),
                lambda state, final=final: state == final,
            )
            self.call("(saga) Inspect", "GET", f"/sagas/{order['_id']}", 200, headers=self.bearer("customer"))
        products = self.state["products"]
        # DESIGN §9: payment confirms the reservation, so the unit leaves the store (reserved back to 0).
        for number, product, expected in ((1, products[0], (49, 0)), (2, products[1], (100, 0))):
            item = self.call(
                f"6.5 Inventory of product {number}",
                "GET",
                f"/inventory/{product['_id']}",
                200,
                headers=self.bearer("customer"),
            ).json()
            actual = (item["available_quantity"], item["reserved_quantity"])
            expect(actual == expected, f"6.5: product {number} available, reserved {actual}, expected {expected}")

    def _saga_state(self, order_id: str) -> str | None:
        response = self.client.get(f"/sagas/{order_id}", headers=self.bearer("customer"))
        return response.json()["state"] if response.status_code == 200 else None
