import asyncio

from stream.handoff import Handoff


def test_take_returns_a_fetched_batch_whole_when_it_fits() -> None:
    async def scenario() -> list[int]:
        handoff = Handoff()
        await handoff.put([1, 2, 3])
        return await handoff.take(limit=10, within_seconds=0)

    assert asyncio.run(scenario()) == [1, 2, 3]


def test_take_joins_waiting_batches_up_to_the_limit_and_keeps_the_rest() -> None:
    async def scenario() -> list[list[int]]:
        handoff = Handoff()
        await handoff.put([1, 2, 3])
        await handoff.put([4, 5, 6])
        first = await handoff.take(limit=4, within_seconds=0)
        second = await handoff.take(limit=4, within_seconds=0)
        return [first, second]

    assert asyncio.run(scenario()) == [[1, 2, 3, 4], [5, 6]]


def test_a_batch_larger_than_the_limit_is_split_in_order() -> None:
    async def scenario() -> list[list[int]]:
        handoff = Handoff()
        await handoff.put(list(range(7)))
        return [await handoff.take(limit=3, within_seconds=0) for _ in range(3)]

    assert asyncio.run(scenario()) == [[0, 1, 2], [3, 4, 5], [6]]


def test_take_waits_within_the_window_for_more() -> None:
    async def scenario() -> list[int]:
        handoff = Handoff()
        await handoff.put([1])

        async def later() -> None:
            await asyncio.sleep(0.01)
            await handoff.put([2])

        putting = asyncio.create_task(later())
        taken = await handoff.take(limit=5, within_seconds=1.0)
        await putting
        return taken

    assert asyncio.run(scenario()) == [1, 2]


def test_take_stops_at_the_end_of_the_window() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        handoff = Handoff()
        await handoff.put([1])
        taken = await handoff.take(limit=5, within_seconds=0.01)
        await handoff.put([2])
        return taken, await handoff.take(limit=5, within_seconds=0)

    assert asyncio.run(scenario()) == ([1], [2])


def test_put_waits_while_the_queue_is_full() -> None:
    async def scenario() -> list[bool]:
        handoff = Handoff(max_batches=1)
        await handoff.put([1])
        putting = asyncio.create_task(handoff.put([2]))
        await asyncio.sleep(0.01)
        blocked = not putting.done()
        first = await handoff.take(limit=1, within_seconds=0)
        await asyncio.sleep(0)
        await putting
        second = await handoff.take(limit=1, within_seconds=0)
        return [blocked, first == [1], second == [2]]

    assert asyncio.run(scenario()) == [True, True, True]
