"""One SET in, one outcome out: verified, checked against replay, mapped, validated.

:meth:`Intake.receive` runs the decisions in order and returns an :class:`Accepted` (the input
event to publish, and the jti reserved for it) or an :class:`Ignored`, or raises
:class:`Refused` / :class:`Unavailable`. The shell publishes an accepted event and then calls
:meth:`Intake.settle`: the jti is remembered only once the event is on auth.events, and freed
if publishing failed. Pure but for the transmitters' JWKS fetches; time is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from sessionwarden.contracts.inputs import AUTH_EVENT_ADAPTER, AuthEvent
from sessionwarden.gate.jwt import JwtRules
from sessionwarden.ssf.errors import INVALID_REQUEST
from sessionwarden.ssf.receiver.mapping import Ignored, to_input
from sessionwarden.ssf.receiver.refusal import Refused, Unavailable
from sessionwarden.ssf.receiver.replay import Claim, JtiStore, Key
from sessionwarden.ssf.receiver.verify import Trust, rules_of, verify_set


@dataclass(frozen=True)
class Accepted:
    """A SET whose input event is to be published; ``key`` is its reserved (issuer, jti)."""

    key: Key
    event: AuthEvent


@dataclass(frozen=True)
class Skipped:
    """A valid SET that publishes nothing: ``reason`` is why (``stream_event``,
    ``unmapped_level``, ``unsupported_event``); its jti is remembered like any other."""

    key: Key
    reason: str


class Replayed(Refused):
    """A SET whose (issuer, jti) was taken before. Push refuses it (``invalid_request``); a
    poll acknowledges it again, since RFC 8936 transmitters deliver a SET until it is
    acknowledged (our acknowledgement may have been lost)."""


@dataclass(frozen=True)
class IntakeRules:
    iat_window_s: float
    leeway_s: float
    max_token_bytes: int


class Intake:
    """The receiver's decisions for every configured transmitter, by name."""

    def __init__(self, trusts: Mapping[str, Trust], store: JtiStore, rules: IntakeRules) -> None:
        self.trusts = dict(trusts)
        self.store = store
        self.rules = rules
        self._jwt_rules: dict[str, JwtRules] = {
            name: rules_of(t, rules.iat_window_s, rules.leeway_s, rules.max_token_bytes)
            for name, t in trusts.items()
        }

    def receive(self, transmitter: str, token: str, now: float) -> Accepted | Skipped:
        """The outcome of ``token`` from ``transmitter``; raises :class:`Refused` (its RFC 8935
        code) or :class:`Unavailable` (try again later)."""
        trust = self.trusts[transmitter]
        event = verify_set(token, trust, self._jwt_rules[transmitter], now)
        mapped = to_input(event, trust, now)  # before the claim: a refused SET reserves nothing
        key = (event.issuer, event.jti)
        expires = event.iat + self.rules.iat_window_s + self.rules.leeway_s
        claim = self.store.claim(key, expires, now)
        if claim is Claim.SEEN:
            raise Replayed(INVALID_REQUEST, "a SET with this jti was received before")
        if claim is Claim.PENDING:
            raise Unavailable("the same SET is being taken right now")
        if claim is Claim.FULL:
            raise Unavailable("the jti store is full")
        if isinstance(mapped, Ignored):
            self.store.commit(key)
            return Skipped(key, mapped.reason)
        try:
            return Accepted(key, AUTH_EVENT_ADAPTER.validate_python(mapped))
        except ValidationError as exc:
            self.store.release(key)
            where = sorted({".".join(map(str, e["loc"])) or e["type"] for e in exc.errors()})
            text = f"the event does not fit the input schema: {', '.join(where)}"
            raise Refused(INVALID_REQUEST, text[:300]) from None

    def settle(self, key: Key, published: bool) -> None:
        """After publishing: remember the jti, or free it for the transmitter's retry."""
        if published:
            self.store.commit(key)
        else:
            self.store.release(key)
