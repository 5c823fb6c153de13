"""Why a SET is refused, as RFC 8935 says it: an error code and a description."""

from __future__ import annotations

from sessionwarden.errors import SessionwardenError
from sessionwarden.ssf.errors import SET_ERROR_CODES, set_error


class Refused(SessionwardenError):
    """A SET (or a push request) the receiver will not take; ``code`` is an RFC 8935 error
    code. The description travels back to the transmitter: it never quotes the token."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        if code not in SET_ERROR_CODES:
            raise ValueError(f"not an RFC 8935 error code: {code!r}")
        self.code = code
        self.description = description
        self.status = status
        super().__init__(f"{code}: {description}")

    def body(self) -> dict[str, str]:
        return set_error(self.code, self.description)


class Unavailable(SessionwardenError):
    """The receiver cannot decide now (the keys cannot be loaded, the jti store is full, the
    broker did not take the events): push answers 503, poll neither acknowledges nor refuses,
    so the transmitter delivers the SET again."""
