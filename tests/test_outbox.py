"""The per-connection outbox: bounded, ordered, and it wakes its writer."""

from __future__ import annotations

import trio
import trio.testing

from quartchat.outbox import Outbox


async def test_items_come_out_in_order_and_a_full_outbox_refuses_more() -> None:
    box = Outbox[int](3)
    assert [box.put(i) for i in range(4)] == [True, True, True, False]
    assert await box.take_all() == [0, 1, 2]
    assert box.put(9)
    assert await box.take_all() == [9]


async def test_a_waiting_writer_is_woken_by_the_first_item_and_gets_all_that_came() -> None:
    box = Outbox[str](10)
    got: list[list[str]] = []

    async def writer() -> None:
        got.append(await box.take_all())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        box.put("a")
        box.put("b")
    assert got == [["a", "b"]]


async def test_a_cancelled_wait_leaves_the_outbox_usable() -> None:
    box = Outbox[str](10)
    with trio.move_on_after(0.01):
        await box.take_all()
    box.put("later")
    assert await box.take_all() == ["later"]
