"""The soak's customers and admins, through the gateway as any client: orders at an open-loop rate, each paid,
cancelled, abandoned or paid right at its deadline; admins restocking scarce products and changing prices.

Every order is sent with an Idempotency-Key, and sent again with the same key until it gets a final answer (a
2xx or a 4xx): a timeout or a 5xx says nothing about whether the order exists, so a careful client retries. One in
ten is also sent a second time on purpose. The soak then checks that each key placed at most one order and that
every order answered 201 exists.
"""

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from soak.schedule import Fate, OrderPlan, OrderPlans
from tests.cluster import ADMIN, eventually, new_customer, sign_in

CUSTOMER_PASSWORD = "Password123"  # tests.cluster.new_customer's
ADDRESS = {"line1": "1 Soak Street", "city": "Loadville", "state": "LD", "postal_code": "1", "country": "Test"}
CUSTOMERS = 20
PRODUCTS = 30
SCARCE = 4  # products with a hundred units or so, restocked now and then: orders race for them
PLENTY = 1_000_000
TOKEN_REFRESH = 600.0  # seconds
# Between two sends of a request whose answer said nothing: a random pause up to 0.5 s, doubling to 8 s ("full
# jitter", as careful clients back off). A fixed 0.5 s sent thousands of orders twice a second each while the
# gateway was down (seed 21), on the 2 cores the system under test needs.
RETRY_PAUSE = 0.5
MAX_RETRY_PAUSE = 8.0
# Requests sent at once, one connection each; the others wait their turn in the client, in a semaphore's O(1) queue
# rather than httpcore's pool, which scans its connections for every queued request: with thousands queued while
# the system was slow, the client spent most of a core there and timed out its own requests (PoolTimeout).
IN_FLIGHT = 200
GIVE_UP_AFTER = 120.0  # seconds a request is sent again before the client gives up (counted, and checked)


@dataclass
class Tally:
    """What the clients saw."""

    answers: Counter = field(default_factory=Counter)  # (request, status or error name) -> count
    accepted: dict[str, str] = field(default_factory=dict)  # order id -> Idempotency-Key
    fates: Counter = field(default_factory=Counter)
    gave_up: Counter = field(default_factory=Counter)  # request -> count
    restocks: int = 0
    price_changes: int = 0

    def as_dict(self) -> dict:
        return {
            "answers": dict(sorted((f"{request} {outcome}", n) for (request, outcome), n in self.answers.items())),
            "orders_accepted": len(self.accepted),
            "fates": dict(self.fates),
            "gave_up": dict(self.gave_up),
            "restocks": self.restocks,
            "price_changes": self.price_changes,
        }


def _form(email: str) -> dict[str, str]:
    return {"username": email, "password": CUSTOMER_PASSWORD}


class Shop:
    """The soak's clients of one running system."""

    def __init__(self, api: httpx.AsyncClient, seed: int, payment_timeout: float, rates: tuple[float, float]) -> None:
        self.api, self.payment_timeout = api, payment_timeout
        self.plans = OrderPlans(seed, CUSTOMERS, PRODUCTS, rates)
        self.rng = random.Random(f"{seed}:admin")
        self.jitter = random.Random(f"{seed}:retry")
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)
        self.tally = Tally()
        self.customers: list[dict[str, str]] = []
        self.products: list[str] = []
        self.prices: dict[str, float] = {}
        self.admin: dict[str, str] = {}
        self._tasks: set[asyncio.Task] = set()

    async def open(self, run_id: str) -> None:
        """The admin signed in, the customers registered, the products created and their stock known."""
        self.admin = await sign_in(self.api, ADMIN)
        self.emails = [f"soak-{run_id}-{n}@example.com" for n in range(CUSTOMERS)]
        self.customers = list(await asyncio.gather(*(new_customer(self.api, email) for email in self.emails)))
        for n in range(PRODUCTS):
            quantity = self.rng.randint(50, 150) if n < SCARCE else PLENTY
            body = {"name": f"Soak {n}", "description": "", "category": "Soak", "price": 10.0, "quantity": quantity}
            response = await self.api.post("/products/", json=body, headers=self.admin)
            response.raise_for_status()
            self.products.append(response.json()["_id"])
            self.prices[self.products[-1]] = 10.0
        for product_id in self.products:
            await eventually(
                lambda product_id=product_id: self.api.get(f"/inventory/{product_id}", headers=self.admin),
                lambda response: response.status_code == 200,
            )

    async def run(self, seconds: float) -> None:
        """Orders at the plans' rate and admins at work for `seconds`; then every started order's story finishes
        (its payment or cancellation sent), however long that takes."""
        admins = asyncio.create_task(self._admins(seconds))
        signing_in = asyncio.create_task(self._stay_signed_in())
        started = time.monotonic()
        next_at = started
        while (elapsed := time.monotonic() - started) < seconds:
            self._spawn(self._order(self.plans.next()))
            next_at += 1.0 / self.plans.rate(elapsed)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await admins
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        signing_in.cancel()

    async def _stay_signed_in(self) -> None:
        """New access tokens every 10 minutes (they live 15): a soak may run for hours."""
        while True:
            await asyncio.sleep(TOKEN_REFRESH)
            accounts = [(self.admin, ADMIN), *zip(self.customers, map(_form, self.emails), strict=True)]
            for headers, form in accounts:
                try:
                    headers.update(await sign_in(self.api, form))  # in place: every later request carries it
                except httpx.HTTPError as error:  # user_svc or the gateway down just now: the old token holds
                    print(f"  soak: could not sign in again: {error!r}", flush=True)

    def _spawn(self, story) -> None:
        task = asyncio.create_task(story)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _order(self, plan: OrderPlan) -> None:
        customer = self.customers[plan.customer]
        key = str(uuid.uuid4())
        body = {
            "items": [
                {"product_id": self.products[p], "quantity": quantity, "price": self.prices[self.products[p]]}
                for p, quantity in plan.products
            ],
            "shipping_address": ADDRESS,
        }
        headers = {**customer, "Idempotency-Key": key}
        sends = [self._send("place", "POST", "/orders/", json=body, headers=headers)]
        if plan.sent_twice:
            sends.append(self._send("place again", "POST", "/orders/", json=body, headers=headers, after=0.05))
        answers = await asyncio.gather(*sends)
        placed = {answer.json()["_id"] for answer in answers if answer is not None and answer.status_code == 201}
        if len(placed) > 1:
            raise AssertionError(f"one Idempotency-Key placed {len(placed)} orders: {placed}")
        if not placed:
            return  # refused (a price just changed, or not enough stock): nothing to follow
        order_id = placed.pop()
        self.tally.accepted[order_id] = key
        self.tally.fates[plan.fate] += 1
        if plan.fate == Fate.ABANDON:
            return
        if plan.fate == Fate.PAY_AT_DEADLINE:
            await asyncio.sleep(max(0.0, self.payment_timeout + plan.delay))
        else:
            await asyncio.sleep(plan.delay)
        if plan.fate == Fate.CANCEL:
            await self._send("cancel", "DELETE", f"/orders/{order_id}", headers=customer)
        else:
            request = "pay at deadline" if plan.fate == Fate.PAY_AT_DEADLINE else "pay"
            await self._send(request, "PUT", f"/orders/{order_id}/status", json={"status": "paid"}, headers=customer)

    async def _send(
        self, request: str, method: str, path: str, after: float = 0.0, **arguments
    ) -> httpx.Response | None:
        """The request, sent again while its answer says nothing (no answer, or 5xx); None if it never got one."""
        await asyncio.sleep(after)
        give_up = time.monotonic() + GIVE_UP_AFTER
        for attempt in itertools.count():
            try:
                async with self._in_flight:
                    response = await self.api.request(method, path, **arguments)
            except httpx.HTTPError as error:
                self.tally.answers[(request, type(error).__name__)] += 1
            else:
                self.tally.answers[(request, response.status_code)] += 1
                if response.status_code < 500:
                    return response
            if time.monotonic() > give_up:
                self.tally.gave_up[request] += 1
                return None
            await asyncio.sleep(self.jitter.uniform(0.0, min(MAX_RETRY_PAUSE, RETRY_PAUSE * 2 ** min(attempt, 4))))

    async def _admins(self, seconds: float) -> None:
        """Every 2-6 s: a scarce product restocked, or a product's price changed."""
        ends = time.monotonic() + seconds
        for turn in itertools.count():
            await asyncio.sleep(self.rng.uniform(2.0, 6.0))
            if time.monotonic() >= ends:
                return
            if turn % 2 == 0:
                product_id = self.products[self.rng.randrange(SCARCE)]
                body = {"product_id": product_id, "quantity_change": self.rng.randint(25, 100)}
                keyed = {**self.admin, "Idempotency-Key": str(uuid.uuid4())}  # a restock sent again applies once
                response = await self._send("restock", "POST", "/inventory/adjust", json=body, headers=keyed)
                self.tally.restocks += response is not None and response.status_code == 200
            else:
                product_id = self.products[self.rng.randrange(PRODUCTS)]
                price = round(self.rng.uniform(5.0, 50.0), 2)
                response = await self._send(
                    "change price", "PUT", f"/products/{product_id}", json={"price": price}, headers=self.admin
                )
                if response is not None and response.status_code == 200:
                    self.prices[product_id] = price
                    self.tally.price_changes += 1
