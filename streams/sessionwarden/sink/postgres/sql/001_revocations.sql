-- The current revocation set and the Kafka offsets it reflects, written in one transaction.

-- One row per revoked session. keep_until is effective_at plus the policy's longest absolute
-- timeout: no session can still be valid after it, so the row is pruned then (fail closed).
CREATE TABLE sessionwarden.revoked_sessions (
    tenant           text NOT NULL,
    session_id       text NOT NULL,
    user_id          text NOT NULL,
    reason           text NOT NULL,
    revocation_id    uuid NOT NULL,
    effective_at     timestamptz NOT NULL,
    keep_until       timestamptz NOT NULL,
    revoked_at       timestamptz NOT NULL DEFAULT now(),
    records          integer NOT NULL DEFAULT 1,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    PRIMARY KEY (tenant, session_id)
);

CREATE INDEX revoked_sessions_keep_until ON sessionwarden.revoked_sessions (keep_until);

-- The next offset to read per partition of the revocation topic ("offsets stored outside
-- Kafka"): the sink seeks here on assignment, and advances it in the transaction of the rows.
CREATE TABLE sessionwarden.sink_offsets (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Only the owner (the sink's role) reads or writes these tables; services go through the guard.
REVOKE ALL ON sessionwarden.revoked_sessions, sessionwarden.sink_offsets FROM PUBLIC;
GRANT USAGE ON SCHEMA sessionwarden TO PUBLIC;
