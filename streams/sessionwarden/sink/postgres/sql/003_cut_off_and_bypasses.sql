-- What the guard and protect() close beyond a statement's rows (docs/DATABASE.md, "What the
-- guard closes and what it does not"):
--   * session_tag(): the tag of a (tenant, session) computed in the database, the same bytes as
--     sessionwarden.sink.postgres.plan.session_tag, so a service in any language can ask for it;
--   * require_session() marks the transaction with a shared advisory lock keyed by the tag
--     (held to the end of the transaction, whatever application_name says), so the sink finds
--     every backend inside a transaction that read for the session, and refuses while the
--     backend holds a WITH HOLD cursor (its rows are computed once and outlive the binding);
--   * protect() covers the table's partitions and inheritance children, forces row-level
--     security on the owner, guards TRUNCATE with a trigger, revokes the TRUNCATE grants the
--     owner made, and warns of every bypass bypasses() finds.

-- The tag: 32 lower-case hex digits, the first 16 bytes of SHA-256 over the UTF-8 bytes of
-- <number of code points of tenant, decimal> ':' <tenant> U+001F <session_id>.
CREATE FUNCTION sessionwarden.session_tag(tenant text, session_id text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN left(encode(sha256(convert_to(
    length(tenant)::text || ':' || tenant || chr(31) || session_id, 'UTF8')), 'hex'), 32);

GRANT EXECUTE ON FUNCTION sessionwarden.session_tag(text, text) TO PUBLIC;

-- The advisory-lock key of a tag: its first 16 hex digits as a signed 64-bit integer (pg_locks
-- shows it as classid = the first 8 hex digits, objid = the next 8, objsubid = 1).
CREATE FUNCTION sessionwarden.tag_lock_key(tag text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ('x' || left(tag, 16))::bit(64)::bigint;

GRANT EXECUTE ON FUNCTION sessionwarden.tag_lock_key(text) TO PUBLIC;

CREATE OR REPLACE FUNCTION sessionwarden.require_session() RETURNS boolean
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

-- TRUNCATE is not a row operation: row-level security never sees it. This trigger puts it
-- under the same guard (a bound, live session), for every role, the owner included.
CREATE FUNCTION sessionwarden.guard_truncate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sessionwarden.require_session();
    RETURN NULL;
END
$$;

GRANT EXECUTE ON FUNCTION sessionwarden.guard_truncate() TO PUBLIC;

-- Roles that skip row-level security: superusers and BYPASSRLS roles.
CREATE FUNCTION sessionwarden.bypasses_rls(role oid) RETURNS boolean
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
RETURN coalesce((SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE oid = role), false);

-- The partitions and inheritance children of a table, at every depth.
CREATE FUNCTION sessionwarden.descendants(parent oid) RETURNS SETOF oid
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
WITH RECURSIVE d(child) AS (
    SELECT inhrelid FROM pg_inherits WHERE inhparent = parent
    UNION
    SELECT i.inhrelid FROM pg_inherits i JOIN d ON i.inhparent = d.child
)
SELECT child FROM d
$$;

-- Every way around the guard of a protected table (a table with the sessionwarden_guard
-- policy) that the catalogs show: one row per finding, empty when none is found. What it
-- cannot see (a function whose body names the table through dynamic SQL, a copy already made)
-- is listed in docs/DATABASE.md.
CREATE FUNCTION sessionwarden.bypasses(target regclass DEFAULT NULL)
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
       'TRUNCATE is not under the guard: the sessionwarden_guard_truncate trigger is missing'
       || ' or disabled'
  FROM t
 WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g
                    WHERE g.tgrelid = t.oid AND g.tgname = 'sessionwarden_guard_truncate'
                      AND g.tgenabled IN ('O', 'A'))
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
$$;

GRANT EXECUTE ON FUNCTION sessionwarden.bypasses(regclass) TO PUBLIC;

-- Puts one table under the guard (protect() does it for a table and all its descendants).
CREATE FUNCTION sessionwarden.protect_relation(target regclass) RETURNS void
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

-- Puts a table under the guard, with its partitions and inheritance children (read directly,
-- a child skips its parent's policies): enables and forces row-level security (the owner, and
-- its views and SECURITY DEFINER functions, are guarded too), adds the RESTRICTIVE policy
-- sessionwarden_guard for every command and role (and a permissive sessionwarden_allow when
-- the table has no permissive policy), guards TRUNCATE with a trigger, revokes TRUNCATE from
-- the roles the caller granted it to, and warns of every bypass left. Run it as the owner of
-- the tables; idempotent (run it again after adding a partition).
CREATE OR REPLACE FUNCTION sessionwarden.protect(target regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    child oid;
    found record;
BEGIN
    PERFORM sessionwarden.protect_relation(target);
    FOR child IN SELECT * FROM sessionwarden.descendants(target) LOOP
        PERFORM sessionwarden.protect_relation(child::regclass);
    END LOOP;
    FOR found IN SELECT * FROM sessionwarden.bypasses(target) LOOP
        RAISE WARNING 'sessionwarden: % %: %', found.kind, found.object, found.detail;
    END LOOP;
END
$$;
