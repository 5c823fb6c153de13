"""`sessionwarden dashboard`: the security team's live view of revocations, sessions and alerts."""
