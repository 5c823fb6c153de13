"""The error codes of RFC 8935 section 2.4 (push) and RFC 8936 section 2.4.4 (``setErrs``).

A receiver that refuses a SET answers ``400`` with ``{"err": code, "description": text}`` (push)
or lists ``{"err": code, "description": text}`` under the SET's jti (poll); a transmitter must
not send the same SET again after either.
"""

from __future__ import annotations

from typing import Final

INVALID_REQUEST: Final = "invalid_request"
"""The request body cannot be parsed as a SET, or the SET is invalid."""
INVALID_KEY: Final = "invalid_key"
"""The SET's key (signature or encryption) is not one the receiver knows or accepts."""
INVALID_ISSUER: Final = "invalid_issuer"
"""The SET's issuer is not one the receiver accepts."""
INVALID_AUDIENCE: Final = "invalid_audience"
"""The SET's audience does not name the receiver."""
AUTHENTICATION_FAILED: Final = "authentication_failed"
"""The transmitter could not be authenticated."""
ACCESS_DENIED: Final = "access_denied"
"""The transmitter is not authorized to send this SET."""

SET_ERROR_CODES: Final = frozenset(
    {
        INVALID_REQUEST,
        INVALID_KEY,
        INVALID_ISSUER,
        INVALID_AUDIENCE,
        AUTHENTICATION_FAILED,
        ACCESS_DENIED,
    }
)

MAX_DESCRIPTION = 512
"""Descriptions longer than this are cut: they travel back to the other party and into logs."""


def set_error(code: str, description: str) -> dict[str, str]:
    """The error body of RFC 8935 section 2.3 (and one entry of RFC 8936 ``setErrs``)."""
    if code not in SET_ERROR_CODES:
        raise ValueError(f"not an RFC 8935 error code: {code!r}")
    return {"err": code, "description": description[:MAX_DESCRIPTION]}
