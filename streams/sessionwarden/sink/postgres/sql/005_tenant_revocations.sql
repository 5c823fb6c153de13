-- Mass revocations (docs/DATABASE.md, "Mass revocation"): a tenant_revocation record holds
-- every session of its tenant until the per-session rows that follow it are all stored.
--   * revoked_tenants: one row per (tenant, enforcer partition) held; release_offsets, set when
--     the record's complete copy is read, are the revocation topic's end offsets then: once
--     every partition's stored offset has reached them, every per-session row is in and the
--     sink deletes the hold (in the transaction that stores those offsets);
--   * require_session() refuses every session of a held tenant (28000);
--   * a write of a hold records its transaction id like a revocation's (the old-snapshot check).

CREATE TABLE sessionwarden.revoked_tenants (
    tenant           text NOT NULL,
    source_partition integer NOT NULL,
    revocation_id    uuid NOT NULL,
    command_id       uuid NOT NULL,
    started_by       timestamptz NOT NULL,
    effective_at     timestamptz NOT NULL,
    keep_until       timestamptz NOT NULL,
    release_offsets  jsonb,
    held_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, source_partition)
);

REVOKE ALL ON sessionwarden.revoked_tenants FROM PUBLIC;

CREATE TRIGGER record_revocation_write
    AFTER INSERT OR UPDATE ON sessionwarden.revoked_tenants
    FOR EACH STATEMENT EXECUTE FUNCTION sessionwarden.record_revocation_write();
ALTER TABLE sessionwarden.revoked_tenants ENABLE ALWAYS TRIGGER record_revocation_write;

CREATE OR REPLACE FUNCTION sessionwarden.require_session() RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bound_tenant  text := nullif(current_setting('sessionwarden.tenant', true), '');
    bound_session text := nullif(current_setting('sessionwarden.session_id', true), '');
    revoked_for   text;
    last_write    bigint;
BEGIN
    IF bound_tenant IS NULL OR bound_session IS NULL THEN
        RAISE EXCEPTION 'sessionwarden: no session is bound to this transaction'
            USING ERRCODE = '28000',
                  HINT = 'bind one with set_config(''sessionwarden.tenant'', ..., true) and '
                         'set_config(''sessionwarden.session_id'', ..., true)';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_cursors WHERE is_holdable) THEN
        RAISE EXCEPTION 'sessionwarden: a WITH HOLD cursor is open on this connection'
            USING ERRCODE = '28000',
                  DETAIL = 'a held cursor keeps its rows after the transaction that computed '
                           'them, where no guard and no cut-off reaches them',
                  HINT = 'close it (CLOSE name) before touching a protected table';
    END IF;
    -- Mark the transaction before looking the session up: a cut-off that runs after this
    -- statement's revocation check finds the mark (a lock taken after the check could miss it).
    IF NOT pg_try_advisory_xact_lock_shared(
            sessionwarden.tag_lock_key(sessionwarden.session_tag(bound_tenant, bound_session)))
    THEN
        RAISE EXCEPTION 'sessionwarden: the transaction cannot be marked for the cut-off'
            USING ERRCODE = '28000',
                  DETAIL = 'another backend holds the session''s advisory lock exclusively';
    END IF;
    -- VOLATILE: under READ COMMITTED each statement here takes a fresh snapshot, so the
    -- lookup below sees every revocation committed before the mark (a cursor declared earlier
    -- included). A REPEATABLE READ / SERIALIZABLE transaction keeps its snapshot: if the latest
    -- revocation write has ended and that snapshot does not show it, the lookup may be stale.
    -- The write is not visible in the snapshot ⇒ refuse (40001, retry). Still in progress ⇒ it
    -- commits after the mark above, and the cut-off after it finds the mark. Too old to know
    -- (NULL) ⇒ older than every snapshot, so visible.
    last_write := pg_sequence_last_value('sessionwarden.last_revocation_write');
    IF last_write IS NOT NULL
       AND pg_xact_status(last_write::text::xid8) IN ('committed', 'aborted')
       AND NOT pg_visible_in_snapshot(last_write::text::xid8, pg_current_snapshot())
    THEN
        RAISE EXCEPTION 'sessionwarden: the revocation set changed after this transaction''s snapshot'
            USING ERRCODE = '40001',
                  HINT = 'retry the transaction';
    END IF;
    SELECT r.reason INTO revoked_for
      FROM sessionwarden.revoked_sessions r
     WHERE r.tenant = bound_tenant AND r.session_id = bound_session;
    IF FOUND THEN
        RAISE EXCEPTION 'sessionwarden: the session is revoked (%)', revoked_for
            USING ERRCODE = '28000';
    END IF;
    -- A mass revocation of the tenant is being applied: every session of it is refused until
    -- the sink has stored every per-session row of it (then the sink deletes the hold).
    PERFORM 1 FROM sessionwarden.revoked_tenants h WHERE h.tenant = bound_tenant;
    IF FOUND THEN
        RAISE EXCEPTION 'sessionwarden: every session of the tenant is revoked (operator)'
            USING ERRCODE = '28000';
    END IF;
    RETURN true;
END
$$;
