"""Request bodies of the product's own HTTP endpoints, read within bounds: at most ``limit``
bytes (a declared ``Content-Length`` beyond it is refused before anything is read) and within
``timeout_s`` in all (a caller that sends its body a byte at a time holds a connection and a
task for no longer). Every endpoint that reads a body reads it here, and answers a
:class:`BodyRefused` in its own error format with its status (413 or 408).
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import Request

from sessionwarden.errors import SessionwardenError

BODY_TIMEOUT_S: Final = 10.0


class BodyRefused(SessionwardenError):
    """A body too large (413) or too slow (408); ``message`` is for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request: Request, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The whole body of ``request``, or :class:`BodyRefused`."""
    too_large = BodyRefused(413, f"the body is larger than {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise too_large
    except TimeoutError:
        raise BodyRefused(408, f"the body did not arrive within {timeout_s:g} s") from None
    return bytes(body)
