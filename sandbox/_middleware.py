"""The ASGI middleware of every emulator: logs each request, applies the rate limit and the faults."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from sandbox._faults import ConnectionDropped, FaultRule
from sandbox._store import LoggedRequest

if TYPE_CHECKING:
    from sandbox._core import Emulator


class FaultMiddleware:
    """ASGI middleware: logs requests and injects the configured faults."""

    def __init__(self, app: Starlette, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if "/_admin/" in path:
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        if (limit := self.emulator.rate_limit) is not None:
            wait, limit_headers = limit.hit()
            if wait is not None:
                retry = {"Retry-After": str(max(math.ceil(wait), 1))}
                refused = JSONResponse({"detail": "Request was throttled."}, status_code=429,
                                       headers={**limit_headers, **retry})  # fmt: skip
                await refused(scope, receive, send)
                self.emulator.requests.append(LoggedRequest(method, path, query, 429))
                return
            if limit_headers:
                send = _with_headers(send, limit_headers)
        write = self.emulator.is_record_write(method, path)
        dropping = self.emulator.faults.pick(method, path, write=write, rewrite=True)
        if dropping is not None and dropping.field:
            receive = await _without_field(receive, self.emulator.vendor_keys(dropping.field))
        rule = self.emulator.faults.pick(method, path, write=write)
        status_box: list[int] = []

        async def logging_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status_box.append(int(message["status"]))
            await send(message)

        def log(status: int) -> None:
            self.emulator.requests.append(LoggedRequest(method, path, query, status))

        if rule is None:
            await self.app(scope, receive, logging_send)
            log(status_box[0] if status_box else 0)
            return
        if rule.kind == "slow":
            await asyncio.sleep(rule.delay_s)
            await self.app(scope, receive, logging_send)
            log(status_box[0] if status_box else 0)
            return
        if rule.kind == "late":
            held: list[Any] = []

            async def holding(message: Any) -> None:
                held.append(message)

            await self.app(scope, receive, holding)  # the answer as the records stand now, logged as answered
            log(next((int(m["status"]) for m in held if m["type"] == "http.response.start"), 0))
            await asyncio.sleep(rule.delay_s)
            for message in held:
                await send(message)
            return
        if rule.kind == "error_before" or rule.kind == "rate_limit" or (rule.kind == "drop" and not rule.after):
            await _respond_fault(rule, scope, receive, send)
            log(rule.status if rule.kind == "error_before" else 429 if rule.kind == "rate_limit" else 0)
            return
        # error_after / drop after / kill: apply the write, then lose the response.
        await self.app(scope, receive, _discard)
        if rule.kind == "kill":
            log(0)
            self.emulator.kill()
            raise ConnectionDropped("sandbox fault: the emulator was killed")
        await _respond_fault(rule, scope, receive, send)
        log(rule.status if rule.kind == "error_after" else 0)


def _with_headers(send: Send, headers: Mapping[str, str]) -> Send:
    """``send`` adding ``headers`` to the response start."""
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def sending(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def _discard(message: Any) -> None:
    return None


async def _without_field(receive: Receive, keys: tuple[str, ...]) -> Receive:
    """Read the whole body, drop ``keys`` (dotted: nested) from a JSON object, replay it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: nothing to rewrite
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in keys:
            *parents, last = key.split(".")
            holder: Any = body
            for parent in parents:
                holder = holder.get(parent) if isinstance(holder, dict) else None
            if isinstance(holder, dict):
                holder.pop(last, None)
        raw = json.dumps(body).encode()
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if sent:
            return await receive()  # the disconnect, once the app waits for it
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay


async def _respond_fault(rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
    if rule.kind == "drop":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"partial', "more_body": True})
        raise ConnectionDropped("sandbox fault: connection dropped")
    if rule.kind == "rate_limit":
        headers = {} if rule.retry_after is None else {"Retry-After": _fmt(rule.retry_after)}
        response: Response = JSONResponse({"detail": "Request was throttled."}, status_code=429, headers=headers)
    else:
        response = JSONResponse(
            {"error": "internal_error", "message": "sandbox fault injected"},
            status_code=rule.status,
        )
    await response(scope, receive, send)


def _fmt(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


__all__ = ["FaultMiddleware"]
