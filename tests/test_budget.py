"""The FIFO concurrency budget: bounded, fair, and cancellation-safe."""

from __future__ import annotations

import asyncio

from dijkwacht.budget import Budget


async def test_bounds_and_order():
    budget = Budget(2)
    running, peak, order = 0, 0, []

    async def job(i):
        nonlocal running, peak
        async with budget:
            running += 1
            peak = max(peak, running)
            order.append(i)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(job(i) for i in range(10)))
    assert peak == 2
    assert order == list(range(10))


async def test_cancelled_waiter_does_not_leak_a_slot():
    budget = Budget(1)
    await budget.__aenter__()
    waiter = asyncio.ensure_future(budget.__aenter__())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    await budget.__aexit__()
    async with budget:  # the slot came back
        pass
    assert budget._free == 1 and not budget._waiters


async def test_slot_handed_over_during_cancellation_is_returned():
    budget = Budget(1)
    await budget.__aenter__()
    waiter = asyncio.ensure_future(budget.__aenter__())
    await asyncio.sleep(0)
    await budget.__aexit__()  # hands the slot to the waiter...
    waiter.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(waiter, return_exceptions=True)
    assert budget._free == 1


async def test_resize_wakes_waiters_or_shrinks_as_slots_return():
    budget = Budget(1)
    await budget.acquire()
    waiters = [asyncio.ensure_future(budget.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    budget.resize(3)  # two more slots: two waiters run at once
    await asyncio.sleep(0)
    assert [w.done() for w in waiters] == [True, True, False]
    budget.resize(1)  # three in use, one allowed: the next two releases retire their slots
    budget.release()
    budget.release()
    await asyncio.sleep(0)
    assert not waiters[2].done()
    budget.release()  # the third release hands its slot on
    await asyncio.sleep(0)
    assert waiters[2].done()
    budget.release()
    assert budget._free == 1 and not budget._waiters
