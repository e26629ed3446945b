"""worker/engine/ahead.py: one page fetched ahead, and nothing left running when the consumer stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from worker.engine.ahead import ahead


class Listing:
    """Pages 1..n, each a turn of the loop away; what was asked for and whether it was closed."""

    def __init__(self, n: int, *, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.asked: list[int] = []
        self.closed = False

    async def pages(self) -> AsyncIterator[int]:
        try:
            for page in range(1, self.n + 1):
                self.asked.append(page)
                await asyncio.sleep(0)
                if page == self.fail_at:
                    raise ConnectionError(f"page {page} failed")
                yield page
        finally:
            self.closed = True


async def test_given_pages_when_consumed_then_each_comes_once_in_order_with_the_next_already_asked() -> None:
    listing = Listing(4)
    got: list[tuple[int, list[int]]] = []

    async with aclosing(ahead(listing.pages())) as pages:
        async for page in pages:  # a consumer that never awaits: the next page is asked for all the same
            got.append((page, list(listing.asked)))

    assert [page for page, _ in got] == [1, 2, 3, 4]
    assert [asked[-1] for _, asked in got[:3]] == [2, 3, 4], "the next page was asked for while this one was worked on"
    assert listing.closed


async def test_given_the_consumer_fails_when_a_page_is_being_fetched_then_the_fetch_stops_and_the_listing_closes() -> (
    None
):
    listing = Listing(10)

    async def consume() -> None:
        async with aclosing(ahead(listing.pages())) as pages:
            async for page in pages:
                if page == 2:
                    raise RuntimeError("planning failed")

    with pytest.raises(RuntimeError, match="planning failed"):
        await consume()

    await asyncio.sleep(0)
    assert listing.closed
    assert max(listing.asked) <= 3, "nothing is listed past the page ahead"


async def test_given_a_page_fails_to_list_when_consumed_then_its_error_follows_the_pages_before() -> None:
    listing = Listing(5, fail_at=3)
    got: list[int] = []

    async def consume() -> None:
        async with aclosing(ahead(listing.pages())) as pages:
            async for page in pages:
                got.append(page)

    with pytest.raises(ConnectionError, match="page 3 failed"):
        await consume()

    assert got == [1, 2]
    assert listing.closed
