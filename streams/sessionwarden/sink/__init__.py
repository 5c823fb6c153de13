"""Processors that write the revocation stream into a store: PostgreSQL (postgres/)."""
