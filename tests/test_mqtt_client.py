"""The connection helpers the sink and the gateway share: a reader/writer pair ends with the
first failure and leaves the calling task un-cancelled, so a reconnect loop can tell a
broken connection from a request to stop."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from monitor.mqtt.client import check_cancelled, run_until_one_fails


class Broken(Exception):
    pass


async def test_first_failure_is_raised_the_other_is_cancelled_the_caller_is_not() -> None:
    other_cancelled = asyncio.Event()

    async def fails() -> None:
        await asyncio.sleep(0)
        raise Broken("connection lost")

    async def runs() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            other_cancelled.set()
            raise

    with pytest.raises(Broken, match="connection lost"):
        await run_until_one_fails(fails(), runs())
    assert other_cancelled.is_set()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    check_cancelled()  # does not raise: nobody asked this task to stop


async def test_a_stop_request_cancels_both_and_is_seen() -> None:
    started = asyncio.Event()
    seen: list[str] = []

    async def loop() -> None:
        async def side(name: str) -> None:
            try:
                started.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                seen.append(name)
                raise

        await run_until_one_fails(side("reader"), side("writer"))

    task = asyncio.create_task(loop())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(seen) == ["reader", "writer"]


async def test_check_cancelled_raises_after_a_swallowed_cancellation() -> None:
    """What Python 3.11's ``asyncio.wait_for`` does when the awaited call completes as the
    cancellation arrives: the cancellation is lost, but the task still says it is
    cancelling, and check_cancelled() turns that back into CancelledError."""
    proceed = asyncio.Event()
    after = asyncio.Event()

    async def swallows() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # the swallow
            await proceed.wait()
        after.set()
        check_cancelled()
        raise AssertionError("check_cancelled() should have raised")

    task = asyncio.create_task(swallows())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert after.is_set()
