"""The saga's transitions, driven event by event against its real database."""

import asyncio
from datetime import timedelta

from tortoise.transactions import in_transaction

from saga.models import SagaState
from saga.orchestrator import Orchestrator
from saga.timer import handle_due_sagas
from tests.saga.conftest import cause, commands, orchestrator, place, relay_publishes, run, saga_of, stock_reserved

RESERVE = {"order_id": None, "items": [{"product_id": "p-1", "quantity": 1}, {"product_id": "p-2", "quantity": 2}]}


async def test_happy_path_reserve_pay_confirm(client):
    saga = orchestrator()
    order_id = await place(saga)
    assert (await saga_of(order_id)).state == SagaState.RESERVING
    assert await commands(order_id) == [("stock.reserve", {**RESERVE, "order_id": order_id})]

    await run(stock_reserved(saga), order_id)
    awaiting = await saga_of(order_id)
    assert awaiting.state == SagaState.AWAITING_PAYMENT
    assert awaiting.payment_deadline is not None and awaiting.due_at == awaiting.payment_deadline

    await run(saga.order_paid, order_id)
    assert (await saga_of(order_id)).state == SagaState.CONFIRMING
    assert (await commands(order_id))[-1] == ("stock.confirm", {"order_id": order_id})

    await run(saga.stock_confirmed, order_id)
    done = await saga_of(order_id)
    assert (done.state, done.due_at) == (SagaState.COMPLETED, None)


async def test_rejection_compensates_then_rejects_the_order(client):
    saga = orchestrator()
    order_id = await place(saga)
    await run(saga.stock_rejected, {"order_id": order_id, "reason": "not enough stock for p-2"})
    assert (await saga_of(order_id)).state == SagaState.RELEASING
    assert (await commands(order_id))[-1] == ("stock.release", {"order_id": order_id})

    await run(saga.stock_released, order_id)
    rejected = await saga_of(order_id)
    assert (rejected.state, rejected.reason) == (SagaState.REJECTED, "not enough stock for p-2")
    assert (await commands(order_id))[-1] == (
        "saga.rejected",
        {"order_id": order_id, "reason": "not enough stock for p-2"},
    )


async def test_cancel_while_awaiting_payment_releases(client):
    saga = orchestrator()
    order_id = await place(saga)
    await run(stock_reserved(saga), order_id)
    await run(saga.order_cancelled, order_id)
    assert (await saga_of(order_id)).state == SagaState.RELEASING
    await run(saga.stock_released, order_id)
    assert (await saga_of(order_id)).state == SagaState.CANCELLED
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve", "stock.release"]


async def test_cancel_racing_the_reservation_still_releases(client):
    saga = orchestrator()
    order_id = await place(saga)
    await run(saga.order_cancelled, order_id)  # before stock answered the reservation
    await run(stock_reserved(saga), order_id)  # the reservation's reply arrives late: ignored
    assert (await saga_of(order_id)).state == SagaState.RELEASING
    await run(saga.stock_released, order_id)
    assert (await saga_of(order_id)).state == SagaState.CANCELLED


async def test_a_cancel_racing_a_rejection_ends_cancelled_as_the_order_does(client):
    """order.cancelled and stock.rejected travel on different topics: either may arrive first. order_svc keeps the
    cancelled order cancelled (it ignores saga.rejected then), so the saga must end CANCELLED, not REJECTED."""
    saga = orchestrator()
    releasing = await place(saga)
    await run(saga.stock_rejected, {"order_id": releasing, "reason": "insufficient stock"})
    await run(saga.order_cancelled, releasing)  # while the release is under way
    await run(saga.stock_released, releasing)
    ended = await saga_of(releasing)
    assert (ended.state, ended.reason) == (
        SagaState.CANCELLED,
        "the order was cancelled (stock had rejected it: insufficient stock)",
    )
    assert [event for event, _ in await commands(releasing)] == ["stock.reserve", "stock.release"]

    rejected = await place(saga)
    await run(saga.stock_rejected, {"order_id": rejected, "reason": "insufficient stock"})
    await run(saga.stock_released, rejected)
    await run(saga.order_cancelled, rejected)  # after the saga ended: the verdict reached a cancelled order
    assert (await saga_of(rejected)).state == SagaState.CANCELLED


async def test_payment_during_the_reservation_confirms_right_after_it(client):
    saga = orchestrator()
    order_id = await place(saga)
    await run(saga.order_paid, order_id)
    await run(stock_reserved(saga), order_id)
    assert (await saga_of(order_id)).state == SagaState.CONFIRMING


async def test_payment_deadline_asks_the_orders_to_cancel_then_releases(client):
    saga = orchestrator(payment_timeout=0.05)
    order_id = await place(saga)
    await run(stock_reserved(saga), order_id)
    await asyncio.sleep(0.1)
    assert await handle_due_sagas(saga) == 1
    asked = await saga_of(order_id)
    assert (asked.state, asked.due_at) == (SagaState.AWAITING_PAYMENT, None)  # the stock held until order_svc answers
    assert (await commands(order_id))[-1] == ("saga.expired", {"order_id": order_id})
    assert await handle_due_sagas(saga) == 0  # asked once

    await run(saga.order_cancelled, order_id)  # order_svc cancelled the still pending order
    releasing = await saga_of(order_id)
    assert (releasing.state, releasing.reason) == (SagaState.RELEASING, "payment deadline passed")
    await run(saga.stock_released, order_id)
    assert (await saga_of(order_id)).state == SagaState.EXPIRED
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve", "saga.expired", "stock.release"]


async def test_a_payment_racing_the_deadline_keeps_its_stock(client):
    """order_svc took the payment just before the saga's saga.expired reached it: the order stays paid, and its
    order.paid, arriving after the deadline, confirms the stock instead of finding it released."""
    saga = orchestrator(payment_timeout=0.05)
    order_id = await place(saga)
    await run(stock_reserved(saga), order_id)
    await asyncio.sleep(0.1)
    assert await handle_due_sagas(saga) == 1
    await run(saga.order_paid, order_id)
    assert (await saga_of(order_id)).state == SagaState.CONFIRMING
    await run(saga.stock_confirmed, order_id)
    assert (await saga_of(order_id)).state == SagaState.COMPLETED
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve", "saga.expired", "stock.confirm"]


async def test_unanswered_command_is_resent_then_the_saga_fails(client):
    saga = orchestrator(step_timeout=0.01, step_max_attempts=3)
    order_id = await place(saga)
    for _ in range(2):
        await relay_publishes()
        await asyncio.sleep(0.1)
        await handle_due_sagas(saga)
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve"] * 3
    await relay_publishes()
    await asyncio.sleep(0.1)
    await handle_due_sagas(saga)
    failed = await saga_of(order_id)
    assert (failed.state, failed.failed_in) == (SagaState.FAILED, SagaState.RESERVING)
    assert failed.reason == "no reply from stock after 3 attempts"
    # Retried automatically after as long again as the saga has lived, at least FAILED_RETRY_DELAY (300 s here).
    assert failed.due_at is not None
    assert failed.due_at - failed.updated_at >= timedelta(seconds=300)


async def test_a_command_still_in_the_outbox_is_not_resent_and_its_wait_not_counted(client):
    """The relay or the broker is away: copies of the command would queue behind it, and the wait says nothing
    about stock. The saga waits without spending its attempts, and resends once the command has left."""
    saga = orchestrator(step_timeout=0.01, step_max_attempts=2)
    order_id = await place(saga)
    for _ in range(5):
        await asyncio.sleep(0.05)
        await handle_due_sagas(saga)
    waiting = await saga_of(order_id)
    assert waiting.state == SagaState.RESERVING
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve"]
    await relay_publishes()
    await asyncio.sleep(0.05)
    await handle_due_sagas(saga)
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve"] * 2


async def test_a_failed_saga_is_retried_automatically_and_a_late_reply_still_counts(client):
    saga, order_id = await _reservation_failed()

    await asyncio.sleep(0.1)  # past the retry's due time
    assert await handle_due_sagas(saga) == 1
    retried = await saga_of(order_id)
    assert (retried.state, retried.failed_in, retried.reason) == (SagaState.RESERVING, None, None)
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve"] * 2

    await relay_publishes()
    await asyncio.sleep(0.05)
    await handle_due_sagas(saga)  # stock still silent: FAILED again
    assert (await saga_of(order_id)).state == SagaState.FAILED
    await run(stock_reserved(saga), order_id)  # stock applied a copy at last: its reply is not ignored
    assert (await saga_of(order_id)).state == SagaState.AWAITING_PAYMENT


async def test_a_payment_while_the_reservation_failed_confirms_once_the_retry_reserves(client):
    """Paid while the reservation had FAILED (stock away): the retry reserves, and the saga confirms at once rather
    than wait for a payment that came already (found by a soak: 21 paid orders waited for ever, their stock held)."""
    saga, order_id = await _reservation_failed()
    await run(saga.order_paid, order_id)
    await asyncio.sleep(0.1)  # past the retry's due time
    assert await handle_due_sagas(saga) == 1
    await run(stock_reserved(saga), order_id)
    assert (await saga_of(order_id)).state == SagaState.CONFIRMING


async def _reservation_failed() -> tuple[Orchestrator, str]:
    """A saga whose one reservation command got no reply in time: FAILED, its automatic retry due in 0.05 s."""
    saga = orchestrator(step_timeout=0.01, step_max_attempts=1, failed_retry_delay=0.05)
    order_id = await place(saga)
    await relay_publishes()
    await asyncio.sleep(0.05)
    await handle_due_sagas(saga)
    assert (await saga_of(order_id)).state == SagaState.FAILED
    return saga, order_id


async def test_duplicates_change_nothing(client):
    saga = orchestrator()
    order_id = await place(saga)
    async with in_transaction("saga") as connection:  # the same order placed again, under another event id
        await saga.orders_placed(connection, [({"order_id": order_id, "user_id": "7", "items": []}, cause())])
    await run(stock_reserved(saga), order_id)
    await run(stock_reserved(saga), order_id)
    await run(saga.stock_released, order_id)  # a reply that does not fit the state
    assert (await saga_of(order_id)).state == SagaState.AWAITING_PAYMENT
    assert [event for event, _ in await commands(order_id)] == ["stock.reserve"]


async def test_unknown_order_is_ignored(client):
    saga = orchestrator()
    await run(stock_reserved(saga), "7b1e9f5e-0000-4000-8000-000000000000")
    await run(saga.order_paid, "7b1e9f5e-0000-4000-8000-000000000000")


async def test_a_rejection_whose_release_failed_still_tells_the_orders_why(client):
    """The release after a rejection gets no reply in time (FAILED), then stock's late reply arrives: the saga ends
    REJECTED and its saga.rejected carries a reason, which order_svc needs to apply it."""
    saga = orchestrator(step_timeout=0.01, step_max_attempts=1)
    order_id = await place(saga)
    await run(saga.stock_rejected, {"order_id": order_id, "reason": "insufficient stock"})
    await relay_publishes()
    await asyncio.sleep(0.05)
    await handle_due_sagas(saga)
    assert (await saga_of(order_id)).state == SagaState.FAILED
    await run(saga.stock_released, order_id)
    assert (await saga_of(order_id)).state == SagaState.REJECTED
    event, payload = (await commands(order_id))[-1]
    assert event == "saga.rejected" and payload["reason"]
