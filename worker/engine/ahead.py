"""The next page listed while this one is planned and written: a prefetch of one page.

The source's listing and the target's writes use two connections, so the
next page's request can be in flight while the engine works on this one:
the wait for a page overlaps the work on the one before (a no-op whose pages
are not planned again spends its time listing; a first sync at some latency
does not stop writing to list). At most one page is held ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def ahead(pages: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Yield each page of ``pages`` while the next one is already being fetched.

    When the consumer stops early (an error, a cancellation), the fetch in flight is
    cancelled and ``pages`` closed before this generator finishes.
    """
    following: asyncio.Future[T] = asyncio.ensure_future(anext(pages))
    try:
        while True:
            try:
                page = await following
            except StopAsyncIteration:
                return
            following = asyncio.ensure_future(anext(pages))
            await asyncio.sleep(0)  # the next page's request goes out before this one is handed over
            yield page
    finally:
        if not following.done():
            following.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
            await following
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            await aclose()


__all__ = ["ahead"]
