-- The row-level guard: a statement on a protected table fails unless the transaction is bound
-- to a session (sessionwarden.tenant, sessionwarden.session_id) that is not revoked.

-- Raises SQLSTATE 28000 for an unbound or revoked session, else returns true. SECURITY
-- DEFINER: callers need no access to the revocation table. Policies call it as
-- (SELECT sessionwarden.require_session()), an init plan evaluated once per statement.
CREATE FUNCTION sessionwarden.require_session() RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bound_tenant  text := nullif(current_setting('sessionwarden.tenant', true), '');
    bound_session text := nullif(current_setting('sessionwarden.session_id', true), '');
    revoked_for   text;
BEGIN
    IF bound_tenant IS NULL OR bound_session IS NULL THEN
        RAISE EXCEPTION 'sessionwarden: no session is bound to this transaction'
            USING ERRCODE = '28000',
                  HINT = 'bind one with set_config(''sessionwarden.tenant'', ..., true) and '
                         'set_config(''sessionwarden.session_id'', ..., true)';
    END IF;
    SELECT r.reason INTO revoked_for
      FROM sessionwarden.revoked_sessions r
     WHERE r.tenant = bound_tenant AND r.session_id = bound_session;
    IF FOUND THEN
        RAISE EXCEPTION 'sessionwarden: the session is revoked (%)', revoked_for
            USING ERRCODE = '28000';
    END IF;
    RETURN true;
END
$$;

REVOKE ALL ON FUNCTION sessionwarden.require_session() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sessionwarden.require_session() TO PUBLIC;

-- Puts a table under the guard: enables row-level security and adds the RESTRICTIVE policy
-- sessionwarden_guard for every command and role. A restrictive policy only narrows what
-- permissive policies allow, so when the table has none, a permissive sessionwarden_allow
-- (every row) is added beside it. Run it as the table's owner; idempotent.
CREATE FUNCTION sessionwarden.protect(target regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    EXECUTE format('DROP POLICY IF EXISTS sessionwarden_guard ON %s', target);
    EXECUTE format(
        'CREATE POLICY sessionwarden_guard ON %s AS RESTRICTIVE FOR ALL TO PUBLIC '
        'USING ((SELECT sessionwarden.require_session())) '
        'WITH CHECK ((SELECT sessionwarden.require_session()))', target);
    IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = target AND polpermissive) THEN
        EXECUTE format(
            'CREATE POLICY sessionwarden_allow ON %s AS PERMISSIVE FOR ALL TO PUBLIC '
            'USING (true) WITH CHECK (true)', target);
    END IF;
END
$$;

GRANT EXECUTE ON FUNCTION sessionwarden.protect(regclass) TO PUBLIC;
