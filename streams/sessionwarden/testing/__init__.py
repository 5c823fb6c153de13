"""The one harness that the tests, the benchmarks and the drill share (never imported by the
services themselves: import-linter keeps it to sessionwarden.audit, tests/ and bench/).

children    start a child and wait for its ready line; stop one, or a whole tree
services    Sessionwarden's own services in subprocesses (enforcer, PostgreSQL sink)
events      the one builder of authentication events (login, activity, logout, role change)
collector   a topic read in a thread, every record with the moment it arrived
waiting     wait on a condition with a deadline
example     the example service (examples/service/app.py) in this process
browser     Debian's Chromium through Playwright, and the example's pages
serve       an ASGI app on uvicorn in a thread
pg_cluster  a throwaway PostgreSQL cluster
pg_sandbox  a database with the sink / owner / app roles and a protected sample table
relying_party  a back-channel logout receiver, for Keycloak's logout tokens
"""
