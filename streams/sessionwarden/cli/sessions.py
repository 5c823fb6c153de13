"""`sessionwarden sessions`: a tenant's (or a user's) live sessions, from the enforcer's
committed state (its changelog, read_committed), with their deadlines and what ends them next.

Session ids are printed as the salted hash the log lines use (``log_salt``), so a listing can
be matched against the logs without handing out a credential; raw ids need ``--raw-ids`` and
the setting ``sessions_allow_raw_ids``. User ids are printed as they are (the operator acts
on them).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from sessionwarden.cli.options import Subcommands, load, positive
from sessionwarden.config.settings import Settings
from sessionwarden.errors import SessionwardenError
from sessionwarden.ops.logs import SessionHasher

if TYPE_CHECKING:
    from sessionwarden.enforcer.engine.live import Listing, LiveSession
    from sessionwarden.policy import Policy

EXTRA = None


class RawIdsRefused(SessionwardenError):
    """Raw session ids were asked for where the settings do not allow them."""


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _in(seconds: float) -> str:
    """``in 4m05s`` / ``overdue 12s``: a deadline relative to now."""
    left = abs(round(seconds))
    if left >= 3600:
        text = f"{left // 3600}h{left % 3600 // 60:02d}m"
    else:
        text = f"{left // 60}m{left % 60:02d}s"
    return f"in {text}" if seconds >= 0 else f"overdue {text}"


def document(s: LiveSession, session: str, raw: bool) -> dict[str, Any]:
    """One session as a JSON document (``--json``)."""
    return {
        "tenant": s.tenant,
        ("session_id" if raw else "session_hash"): session,
        "user_id": s.user_id,
        "user_type": s.user_type,
        "risk_profile": s.risk_profile,
        "started_at": iso(s.started_at),
        "last_activity": iso(s.last_activity),
        "idle_deadline": iso(s.idle_deadline),
        "absolute_deadline": iso(s.absolute_deadline),
        "ends_at": iso(s.ends_at),
        "ends_by": s.ends_by,
    }


def render(
    listing: Listing,
    tenant: str,
    user_id: str | None,
    show: Callable[[str], str],
    raw: bool,
    as_json: bool,
    now: float,
    out: TextIO,
    err: TextIO,
) -> None:
    """Print the listing: JSON lines, or a table with a heading; ``show`` maps a session id to
    what is printed for it."""
    whose = f"user {user_id} of tenant {tenant}" if user_id is not None else f"tenant {tenant}"
    if listing.unreadable:
        err.write(f"warning: {listing.unreadable} changelog records did not decode (skipped)\n")
    if not listing.sessions:
        known = f" ({listing.ended} ended sessions remembered)" if listing.ended else ""
        (err if as_json else out).write(f"no live sessions for {whose}{known}\n")
        return
    if as_json:
        for s in listing.sessions:
            out.write(orjson.dumps(document(s, show(s.session_id), raw)).decode() + "\n")
        return
    out.write(f"{len(listing.sessions)} live sessions for {whose}\n")
    head = "SESSION" if raw else "SESSION (hash)"
    rows = [
        (
            show(s.session_id),
            s.user_id,
            iso(s.started_at),
            iso(s.last_activity),
            iso(s.idle_deadline),
            iso(s.absolute_deadline),
            f"{s.ends_by} {_in(s.ends_at - now)}",
        )
        for s in listing.sessions
    ]
    heads = ("USER", "STARTED", "LAST ACTIVITY", "IDLE DEADLINE", "ABSOLUTE DEADLINE", "ENDS NEXT")
    table = [(head, *heads), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(heads))]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


def sessions(
    settings: Settings,
    tenant: str,
    user_id: str | None,
    as_json: bool,
    raw_ids: bool,
    timeout: float,
    out: TextIO,
    err: TextIO,
    policy: Policy | None = None,
) -> int:
    from sessionwarden.enforcer.live_reader import read_live_sessions

    if raw_ids and not settings.logging.allow_raw_session_ids:
        raise RawIdsRefused(
            "--raw-ids needs the setting sessions_allow_raw_ids "
            "(SESSIONWARDEN_SESSIONS_ALLOW_RAW_IDS=true); without it, session ids are printed "
            "as the salted hash the log lines use"
        )
    listing = read_live_sessions(settings, tenant, user_id, policy, timeout)
    if listing.sessions and not raw_ids and not settings.logging.salt:
        err.write(
            "warning: log_salt is empty: these session hashes use a random salt and match no "
            "log line; set log_salt as the processes do\n"
        )
    hasher = SessionHasher(settings.logging.salt)
    show: Callable[[str], str] = str if raw_ids else hasher
    render(listing, tenant, user_id, show, raw_ids, as_json, time.time(), out, err)
    return 0


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "sessions", help="list a tenant's live sessions from the enforcer's committed state"
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--user", help="only this user's sessions")
    parser.add_argument("--json", action="store_true", help="one JSON document per session")
    parser.add_argument(
        "--raw-ids",
        action="store_true",
        help="raw session ids instead of their hash (needs sessions_allow_raw_ids)",
    )
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=30.0,
        help="seconds to read the changelog to its end (default 30)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    settings, policy = load(args)
    try:
        return sessions(
            settings,
            args.tenant,
            args.user,
            args.json,
            args.raw_ids,
            args.timeout,
            sys.stdout,
            sys.stderr,
            policy,
        )
    except BrokenPipeError:
        return 0
