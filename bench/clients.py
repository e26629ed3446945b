"""Bare clients: the same Thredfi creates custsync makes, with nothing else around them.

Each takes a business token first (the two-step OAuth custsync does), then
POSTs every payload with at most ``concurrency`` requests in flight and
returns how many answers were 2xx. What the fastest of them reaches against
the sandbox is the ceiling a sync could reach on this machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

import httpx

from sandbox.fake import fake_customers
from sandbox.thredfi import SANDBOX_API_KEY, SANDBOX_BUSINESS_ID, SANDBOX_PARTNER_UUID

CUSTOMERS = f"/v1/platform/businesses/{SANDBOX_BUSINESS_ID}/customers/"


def thredfi_payloads(count: int, *, tag: str = "bench") -> list[dict[str, Any]]:
    """``count`` create bodies in Thredfi's shape, each with its own ``external_id``."""
    return [
        {
            "individual_name": fake.name if fake.kind == "individual" else "",
            "company_name": fake.company_name or "",
            "email": fake.email,
            "office_phone": fake.phone,
            "address_line1": fake.address_line1,
            "city": fake.city,
            "state_county": fake.state,
            "postal_code": fake.postal_code,
            "country": fake.country,
            "external_id": f"{tag}:{i}",
        }
        for i, fake in enumerate(fake_customers(count, seed=11))
    ]


async def _in_flight(count: int, concurrency: int, one: Callable[[int], Awaitable[bool]]) -> int:
    """Run ``one(i)`` for every i with at most ``concurrency`` running; the number that succeeded."""
    slots = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> bool:
        async with slots:
            return bool(await one(i))

    done = await asyncio.gather(*(bounded(i) for i in range(count)))
    return sum(done)


async def _httpx_token(http: httpx.AsyncClient) -> str:
    grant = {"grant_type": "client_credentials"}
    partner = await http.post("/v1/platform/oauth2/token/", auth=(SANDBOX_PARTNER_UUID, SANDBOX_API_KEY), data=grant)
    business = await http.post(
        f"/v1/platform/{SANDBOX_BUSINESS_ID}/oauth2/token/",
        headers={"Authorization": f"Bearer {partner.json()['access_token']}"},
    )
    return str(business.json()["access_token"])


async def create_httpx(
    base_url: str,
    payloads: Sequence[Mapping[str, Any]],
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """httpx, with its own transport or the one given."""
    async with httpx.AsyncClient(
        base_url=base_url, transport=transport, limits=httpx.Limits(max_connections=concurrency), timeout=30
    ) as http:
        http.headers["Authorization"] = f"Bearer {await _httpx_token(http)}"

        async def one(i: int) -> bool:
            return (await http.post(CUSTOMERS, json=payloads[i])).is_success

        return await _in_flight(len(payloads), concurrency, one)


async def create_httpx_aiohttp(base_url: str, payloads: Sequence[Mapping[str, Any]], concurrency: int) -> int:
    """httpx over httpx-aiohttp's transport."""
    from httpx_aiohttp import AiohttpTransport

    transport = AiohttpTransport(limits=httpx.Limits(max_connections=concurrency))
    return await create_httpx(base_url, payloads, concurrency, transport)


async def create_aiohttp(base_url: str, payloads: Sequence[Mapping[str, Any]], concurrency: int) -> int:
    """aiohttp alone."""
    import aiohttp

    base = base_url.rstrip("/")
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        grant = {"grant_type": "client_credentials"}
        auth = aiohttp.BasicAuth(SANDBOX_PARTNER_UUID, SANDBOX_API_KEY)
        async with http.post(f"{base}/v1/platform/oauth2/token/", auth=auth, data=grant) as answer:
            partner = (await answer.json())["access_token"]
        async with http.post(
            f"{base}/v1/platform/{SANDBOX_BUSINESS_ID}/oauth2/token/", headers={"Authorization": f"Bearer {partner}"}
        ) as answer:
            token = (await answer.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        async def one(i: int) -> bool:
            async with http.post(f"{base}{CUSTOMERS}", json=payloads[i], headers=headers) as answer:
                await answer.read()
                return 200 <= answer.status < 300

        return await _in_flight(len(payloads), concurrency, one)


#: name → the coroutine function; the bench measures each one that imports.
CLIENTS: dict[str, Callable[[str, Sequence[Mapping[str, Any]], int], Coroutine[Any, Any, int]]] = {
    "httpx": create_httpx,
    "aiohttp": create_aiohttp,
    "httpx+aiohttp transport": create_httpx_aiohttp,
}


def available(name: str) -> bool:
    """Whether a client's library is installed."""
    module = {"httpx": "httpx", "aiohttp": "aiohttp", "httpx+aiohttp transport": "httpx_aiohttp"}[name]
    try:
        __import__(module)
    except ImportError:
        return False
    return True
