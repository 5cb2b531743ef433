"""The gateway's guards that are not about one resource: CORS, request body limits.

CORS is closed unless `cors_origins` names the origins (the dashboard is served from the same
origin and needs none).

Body limits are counted on the bytes as they arrive, so a body over the limit is refused with
413 before it is read to the end, let alone parsed; a Content-Length over the limit is refused
before a single byte is read. (FastAPI's own `max_body_size` answers a declared-too-large body
with a plain-text 413 and a streamed one with JSON; here both are the API's JSON `Problem`.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Every body but a `/predict` history is a small JSON object (`POST /train`: two fields).
DEFAULT_MAX_BODY_BYTES = 64 * 1024


def add_cors(app: FastAPI, origins: list[str]) -> None:
    """Allow the configured origins only; with none configured, no CORS header is ever sent."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        allow_credentials=False,  # the admin token travels in a header, never in a cookie
    )


def too_large(limit: int) -> str:
    return f"the request body exceeds this endpoint's limit of {limit} bytes"


class BodyLimit:
    """Pure ASGI: a declared length over the limit is answered at once; a streamed body is cut
    off where it passes the limit (an `HTTPException` the route's handlers turn into the 413)."""

    def __init__(self, app: ASGIApp, *, default: int, limits: Mapping[str, int]) -> None:
        self.app = app
        self.default = default
        self.limits = dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _problem(send, 413, too_large(limit))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, too_large(limit))
            return message

        await self.app(scope, counted, send)


async def _problem(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
