"""A tiny ASGI wrapper around the sandbox: tamper with chosen requests or answers.

A seam we own, for faults the emulators do not offer: a listing page that
silently lacks records, a create answered without an id or with a body that
is not JSON, a write whose field the server silently drops. Each rule
matches a method and a path (regular expression) and fires ``times`` times
(``None``: forever).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class Tamper:
    """One rule: rewrite the request body (``request``) and/or the answer body (``answer``)."""

    method: str
    path: str
    request: Callable[[Any], Any] | None = None
    answer: Callable[[bytes, str], bytes] | None = None
    #: called when the rule fires, before the request goes on (to change the emulator mid-walk)
    before: Callable[[], None] | None = None
    times: int | None = 1
    fired: int = 0

    def matches(self, scope: Scope) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        query = scope.get("query_string", b"").decode("latin-1")
        return scope["method"] == self.method and re.search(self.path, f"{scope['path']}?{query}") is not None


class TamperingApp:
    """Wrap an ASGI app; requests matching a rule are rewritten (see :class:`Tamper`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.rules: list[Tamper] = []

    def add(self, rule: Tamper) -> Tamper:
        self.rules.append(rule)
        return rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = next((r for r in self.rules if scope["type"] == "http" and r.matches(scope)), None)
        if rule is None:
            await self.app(scope, receive, send)
            return
        rule.fired += 1
        if rule.before is not None:
            rule.before()
        if rule.request is not None:
            receive = await _rewritten_request(receive, rule.request)
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"content-length"]}
        if rule.answer is None:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def buffer(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, buffer)
        body = rule.answer(b"".join(chunks), scope["path"])
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _rewritten_request(receive: Receive, rewrite: Callable[[Any], Any]) -> Receive:
    parts: list[bytes] = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps(rewrite(json.loads(b"".join(parts) or b"null"))).encode()
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def json_answer(edit: Callable[[Any], Any]) -> Callable[[bytes, str], bytes]:
    """An ``answer`` rewrite that edits the JSON body."""
    return lambda body, _path: json.dumps(edit(json.loads(body))).encode()


__all__ = ["Tamper", "TamperingApp", "json_answer"]
