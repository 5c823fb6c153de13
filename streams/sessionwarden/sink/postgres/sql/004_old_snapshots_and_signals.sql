-- Closes what an old snapshot, an unsignalable backend and replica mode left open
-- (docs/DATABASE.md, "What the guard closes and what it does not"):
--   * require_session() looks the session up with a fresh snapshot under READ COMMITTED
--     (VOLATILE), and refuses (40001) a snapshot that predates the latest revocation write;
--     a trigger on revoked_sessions records that write's transaction id in
--     last_revocation_write, a sequence (non-transactional: every snapshot reads its current
--     value);
--   * bind() binds a session, names the backend with its tag and asks the guard, in one
--     statement: the binding every service should use, in any language;
--   * cut_off() signals the backends of revoked sessions one at a time: a backend the sink may
--     not signal (a superuser's) is counted and skipped, never fatal;
--   * the TRUNCATE trigger fires in every session_replication_role (ENABLE ALWAYS), and
--     bypasses() reports the trigger left otherwise and the roles that may SET replica mode.

CREATE SEQUENCE sessionwarden.last_revocation_write AS bigint MINVALUE 0 START 0;
REVOKE ALL ON SEQUENCE sessionwarden.last_revocation_write FROM PUBLIC;

-- Every write to the revocation set records its transaction id there, whoever writes (the sink,
-- an operator by hand): set at the end of each INSERT or UPDATE statement, never lowered by a
-- value this server has issued (another sink may have written since), and replacing one in the
-- server's future (a database restored from a dump into another cluster).
CREATE FUNCTION sessionwarden.record_revocation_write() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mine bigint := pg_current_xact_id()::text::bigint;
    last bigint := coalesce(pg_sequence_last_value('sessionwarden.last_revocation_write'), 0);
BEGIN
    PERFORM setval('sessionwarden.last_revocation_write',
                   CASE WHEN last < pg_snapshot_xmax(pg_current_snapshot())::text::bigint
                        THEN greatest(last, mine) ELSE mine END);
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION sessionwarden.record_revocation_write() FROM PUBLIC;

CREATE TRIGGER record_revocation_write
    AFTER INSERT OR UPDATE ON sessionwarden.revoked_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION sessionwarden.record_revocation_write();
ALTER TABLE sessionwarden.revoked_sessions ENABLE ALWAYS TRIGGER record_revocation_write;

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
    RETURN true;
END
$$;


-- Binds the transaction (local, the default) or the connection (local = false) to a session:
-- sets sessionwarden.tenant, sessionwarden.session_id and application_name ('swt:<tag>' or
-- 'swc:<tag>'), then asks the guard, which marks the transaction for the cut-off and refuses
-- an unbound or revoked session (28000). Returns the tag. Call it as the transaction's first
-- statement. SECURITY INVOKER: it changes only the caller's own settings.
CREATE FUNCTION sessionwarden.bind(tenant text, session_id text, local boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    tag text := sessionwarden.session_tag(tenant, session_id);
BEGIN
    IF tag IS NULL OR local IS NULL THEN
        RAISE EXCEPTION 'sessionwarden: tenant, session_id and local must not be null'
            USING ERRCODE = '28000';
    END IF;
    PERFORM pg_catalog.set_config('sessionwarden.tenant', tenant, local),
            pg_catalog.set_config('sessionwarden.session_id', session_id, local),
            pg_catalog.set_config('application_name',
                                  CASE WHEN local THEN 'swt:' ELSE 'swc:' END || tag, local);
    PERFORM sessionwarden.require_session();
    RETURN tag;
END
$$;

GRANT EXECUTE ON FUNCTION sessionwarden.bind(text, text, boolean) TO PUBLIC;

-- The cut-off of the backends of revoked sessions (the sink calls it after each commit): a
-- backend named for one of the tags (application_name swt:/swc:<tag>) or holding the
-- advisory-lock mark of one. A running statement of a transaction-bound backend is cancelled;
-- every other backend (dedicated, idle in or between statements of the transaction, state
-- unknown) is terminated; with terminate_all every one is. Each signal is sent on its own: one
-- the caller may not send (a superuser's backend; no pg_signal_backend) is counted in refused
-- with a WARNING naming the pid, and the others still go.
CREATE FUNCTION sessionwarden.cut_off(tags text[], terminate_all boolean DEFAULT false,
                                      OUT cancelled integer, OUT terminated integer,
                                      OUT refused integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
BEGIN
    cancelled := 0;
    terminated := 0;
    refused := 0;
    FOR b IN
        WITH revoked AS (SELECT DISTINCT unnest(tags) AS tag)
        SELECT a.pid,
               terminate_all OR starts_with(a.application_name, 'swc:')
                   OR a.state IS DISTINCT FROM 'active' AS terminate
          FROM pg_stat_activity a
         WHERE a.pid <> pg_backend_pid()
           AND ((left(a.application_name, 4) IN ('swc:', 'swt:')
                 AND substr(a.application_name, 5) IN (SELECT tag FROM revoked))
                OR a.pid IN (SELECT l.pid
                               FROM pg_locks l
                              WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
                                AND l.database = (SELECT oid FROM pg_database
                                                   WHERE datname = current_database())
                                AND lpad(to_hex(l.classid::bigint), 8, '0')
                                    || lpad(to_hex(l.objid::bigint), 8, '0')
                                    IN (SELECT left(tag, 16) FROM revoked)))
    LOOP
        BEGIN
            IF b.terminate THEN
                IF pg_terminate_backend(b.pid) THEN
                    terminated := terminated + 1;
                END IF;
            ELSIF pg_cancel_backend(b.pid) THEN
                cancelled := cancelled + 1;
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            refused := refused + 1;
            RAISE WARNING 'sessionwarden: may not signal backend % of a revoked session', b.pid
                USING DETAIL = SQLERRM;
        END;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION sessionwarden.cut_off(text[], boolean) FROM PUBLIC;

-- protect() again, with the TRUNCATE trigger fired in every session_replication_role.
CREATE OR REPLACE FUNCTION sessionwarden.protect_relation(target regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    grantee text;
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
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
    EXECUTE format('DROP TRIGGER IF EXISTS sessionwarden_guard_truncate ON %s', target);
    EXECUTE format(
        'CREATE TRIGGER sessionwarden_guard_truncate BEFORE TRUNCATE ON %s '
        'FOR EACH STATEMENT EXECUTE FUNCTION sessionwarden.guard_truncate()', target);
    EXECUTE format(
        'ALTER TABLE %s ENABLE ALWAYS TRIGGER sessionwarden_guard_truncate', target);
    FOR grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
          FROM pg_class c
         CROSS JOIN LATERAL aclexplode(c.relacl) a
          LEFT JOIN pg_roles r ON r.oid = a.grantee
         WHERE c.oid = target AND a.privilege_type = 'TRUNCATE'
           AND a.grantee <> c.relowner AND a.grantor = c.relowner
    LOOP
        EXECUTE format('REVOKE TRUNCATE ON %s FROM %s', target, grantee);
        RAISE WARNING 'sessionwarden: revoked TRUNCATE on % from %', target, grantee;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION sessionwarden.bypasses(target regclass DEFAULT NULL)
RETURNS TABLE (protected regclass, kind text, object text, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH t AS (
    SELECT c.oid, c.oid::regclass AS rel, c.relname, c.relowner, c.relrowsecurity,
           c.relforcerowsecurity, c.relacl
      FROM pg_class c
     WHERE (target IS NULL AND EXISTS (SELECT 1 FROM pg_policy p
                                        WHERE p.polrelid = c.oid
                                          AND p.polname = 'sessionwarden_guard'))
        OR c.oid = target
)
SELECT t.rel, 'not_protected', t.rel::text,
       'row-level security is off or the sessionwarden_guard policy is missing: run'
       || ' sessionwarden.protect()'
  FROM t
 WHERE NOT t.relrowsecurity
    OR NOT EXISTS (SELECT 1 FROM pg_policy p
                    WHERE p.polrelid = t.oid AND p.polname = 'sessionwarden_guard')
UNION ALL
SELECT t.rel, 'unprotected_child', d.child::regclass::text,
       'a partition or inheritance child without the guard: reading it directly skips the'
       || ' parent''s policies; run sessionwarden.protect() on the parent again'
  FROM t
 CROSS JOIN LATERAL sessionwarden.descendants(t.oid) AS d(child)
 WHERE NOT EXISTS (SELECT 1 FROM pg_policy p
                    WHERE p.polrelid = d.child AND p.polname = 'sessionwarden_guard')
    OR NOT EXISTS (SELECT 1 FROM pg_class c
                    WHERE c.oid = d.child AND c.relrowsecurity AND c.relforcerowsecurity)
UNION ALL
SELECT t.rel, 'not_forced', t.rel::text,
       'the owner skips row-level security (and so do its views and SECURITY DEFINER'
       || ' functions): ALTER TABLE ... FORCE ROW LEVEL SECURITY'
  FROM t
 WHERE NOT t.relforcerowsecurity
UNION ALL
SELECT t.rel, 'truncate_unguarded', t.rel::text,
       'TRUNCATE is not always under the guard: the sessionwarden_guard_truncate trigger is'
       || ' missing, disabled, or not ENABLE ALWAYS (session_replication_role = replica skips'
       || ' it); run sessionwarden.protect() again as the table''s owner'
  FROM t
 WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g
                    WHERE g.tgrelid = t.oid AND g.tgname = 'sessionwarden_guard_truncate'
                      AND g.tgenabled = 'A')
UNION ALL
SELECT t.rel, 'truncate_grant', coalesce(r.rolname, 'PUBLIC'),
       'may TRUNCATE (guarded by the trigger, but past any permissive policy of yours)'
  FROM t
 CROSS JOIN LATERAL aclexplode(t.relacl) a
  LEFT JOIN pg_roles r ON r.oid = a.grantee
 WHERE a.privilege_type = 'TRUNCATE' AND a.grantee <> t.relowner
UNION ALL
SELECT t.rel, 'bypassrls_role', r.rolname,
       'a BYPASSRLS role with privileges on the table: row-level security never runs for it'
  FROM t
  JOIN pg_roles r ON r.rolbypassrls AND NOT r.rolsuper
 WHERE has_table_privilege(r.oid, t.oid, 'SELECT, INSERT, UPDATE, DELETE')
UNION ALL
SELECT DISTINCT t.rel, CASE v.relkind WHEN 'm' THEN 'materialized_view' ELSE 'view' END,
       v.oid::regclass::text,
       CASE v.relkind
           WHEN 'm' THEN 'a materialized view holds a copy of the rows, outside the guard'
           ELSE 'a view owned by a role that skips row-level security, without'
                || ' security_invoker: it reads the table past the guard'
       END
  FROM t
  JOIN pg_depend d ON d.refobjid = t.oid AND d.classid = 'pg_rewrite'::regclass
  JOIN pg_rewrite w ON w.oid = d.objid
  JOIN pg_class v ON v.oid = w.ev_class AND v.oid <> t.oid
 WHERE v.relkind = 'm'
    OR (v.relkind = 'v' AND sessionwarden.bypasses_rls(v.relowner)
        AND NOT coalesce((SELECT o.option_value::boolean
                            FROM pg_options_to_table(v.reloptions) o
                           WHERE o.option_name = 'security_invoker'), false))
UNION ALL
SELECT DISTINCT t.rel, 'security_definer', f.oid::regprocedure::text,
       'a SECURITY DEFINER function owned by a role that skips row-level security, whose'
       || ' body names the table: it reads the table past the guard'
  FROM t
  JOIN pg_proc f ON f.prosecdef AND sessionwarden.bypasses_rls(f.proowner)
 WHERE f.pronamespace <> 'sessionwarden'::regnamespace
   AND (EXISTS (SELECT 1 FROM pg_depend d
                 WHERE d.classid = 'pg_proc'::regclass AND d.objid = f.oid
                   AND d.refobjid = t.oid)
        OR strpos(lower(f.prosrc), lower(t.relname)) > 0)
UNION ALL
SELECT t.rel, 'replication_role', coalesce(r.rolname, 'PUBLIC'),
       'may SET session_replication_role: replica mode skips every trigger not ENABLE ALWAYS'
       || ' (and foreign-key checks)'
  FROM t
 CROSS JOIN pg_parameter_acl p
 CROSS JOIN LATERAL aclexplode(p.paracl) a
  LEFT JOIN pg_roles r ON r.oid = a.grantee
 WHERE p.parname = 'session_replication_role' AND a.privilege_type = 'SET'
   AND NOT coalesce(r.rolsuper, false)
$$;
