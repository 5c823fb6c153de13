"""The database layer on PostgreSQL (docs/DATABASE.md).

plan        pure decisions: rows, offsets, session tags, pruning schedule
migrations  the shipped SQL (sql/*.sql) and the one function that applies and records it
store       the sink's psycopg side: batch + offsets in one transaction, cut-off, prune
sink        `sessionwarden sink postgres`: the Kafka loop around plan and store
guard       for services: bind a session to a transaction or a dedicated connection
cluster     a throwaway PostgreSQL cluster (tests, benchmarks, demo)
sandbox     a database with sink / owner / app roles and a protected sample table
"""
