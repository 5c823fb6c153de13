-- Sessionwarden's PostgreSQL schema: the schema itself and the record of applied migrations.
-- Idempotent: run before every migration.
CREATE SCHEMA IF NOT EXISTS sessionwarden;

CREATE TABLE IF NOT EXISTS sessionwarden.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    sha256     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
