"""Requests refused before any route sees them: control characters in the URL.

NUL and other control characters have no place in a file name or selection term, and
PostgreSQL refuses NUL in a string (which made ``/jsonfilelist`` answer 500); refusing them
here keeps every route, present and future, from having to.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RefuseControlCharacters:
    """ASGI middleware: 400 for a path or query string with a control character (decoded)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = unquote(scope.get("query_string", b"").decode("latin-1"))
            if CONTROL.search(scope["path"]) or CONTROL.search(query):
                detail = "control characters are not accepted in the URL"
                await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)
