"""One readable line per output record (revocations, audit records, alerts, dead letters):
what `sessionwarden tail` prints and the demo shows."""

from __future__ import annotations

import base64
from typing import Any

import orjson


def render(doc: dict[str, Any]) -> str:
    """One readable line per record."""
    kind = doc.get("type", "?")
    if kind == "revocation":
        return (
            f"{doc['effective_at']}  REVOKED     {doc['reason']:<20} session={doc['session_id']}"
            f" user={doc['user_id']} roles={','.join(doc['roles'])}"
        )
    if kind == "revalidation":
        return (
            f"{doc['effective_at']}  REVALIDATE  +{','.join(doc['roles_granted'])}"
            f" session={doc['session_id']} user={doc['user_id']}"
        )
    if kind == "session_started":
        return (
            f"{doc['occurred_at']}  START       {doc['user_type']}/{doc['risk_profile']}"
            f" session={doc['session_id']} user={doc['user_id']}"
            f" idle={doc['idle_timeout_s']:g}s absolute={doc['absolute_timeout_s']:g}s"
        )
    if kind == "session_ended":
        signal = f" signal={doc['signal']}" if doc.get("signal") else ""
        source = f" source={doc['source']}" if doc.get("source") else ""
        return (
            f"{doc['occurred_at']}  END         {doc['reason']:<20} session={doc['session_id']}"
            f" user={doc['user_id']} after {doc['duration_s']:.1f}s{signal}{source}"
        )
    if kind == "session_risk_changed":
        ended = " ENDED" if doc["ended"] else ""
        return (
            f"{doc['occurred_at']}  RISK        {doc['risk_profile_before']}->"
            f"{doc['risk_profile']} session={doc['session_id']} user={doc['user_id']}"
            f" idle={doc['idle_timeout_s']:g}s until {doc['absolute_deadline']}{ended}"
        )
    if kind == "role_changed":
        return (
            f"{doc['occurred_at']}  ROLES       user={doc['user_id']} by={doc['actor']}"
            f" +{','.join(doc['roles_granted']) or '-'} -{','.join(doc['roles_removed']) or '-'}"
            f" privilege {doc['privilege_before']}->{doc['privilege_after']}"
        )
    if kind == "ended_session_used":
        return (
            f"{doc['occurred_at']}  USED-ENDED  {doc['session_state']} session="
            f"{doc['session_id']} user={doc['user_id']} {doc['action']} {doc['resource']}"
        )
    if kind == "high_risk_operation":
        verdict = "allowed" if doc["allowed"] else "STEP-UP REQUIRED"
        return (
            f"{doc['occurred_at']}  HIGH-RISK   {doc['action']} session={doc['session_id']}"
            f" auth age {doc['auth_age_s']:.0f}s/{doc['max_auth_age_s']:.0f}s {verdict}"
        )
    if kind == "alert":
        return (
            f"{doc['last_seen']}  ALERT {doc['severity'].upper():<8} {doc['kind']}"
            f" user={doc['user_id']}: {doc['summary']}"
        )
    if kind == "dead_letter":
        raw = base64.b64decode(doc["value_b64"])[:80]
        return (
            f"{doc['dead_lettered_at']}  DEAD-LETTER {doc['reason']} "
            f"{doc['source_topic']}[{doc['source_partition']}]@{doc['source_offset']}: "
            f"{doc['detail'][:160]} raw={raw!r}"
        )
    return orjson.dumps(doc).decode()
