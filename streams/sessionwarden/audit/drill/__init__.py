"""`sessionwarden drill`: sessions keep using their permissions up to and past their deadlines
through every enforcement point (HTTP, WebSocket, PostgreSQL, browser pages); the audit proves
each layer refused access in time. docs/DRILL.md describes the cases and the report."""
