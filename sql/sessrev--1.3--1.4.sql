-- sessrev 1.3 -> 1.4: validate_session inlined into the caller's query.
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.4'" to load this file. \quit

--------------------------------------------------------------------------------
-- validate_session as an SQL function PostgreSQL inlines: the caller's query
-- calls the C++ validate_session_record once, in a subquery (it is volatile,
-- so never pulled up and never called twice), instead of scanning a
-- set-returning function through a tuplestore. Same rows, same rights. The
-- body is parsed here, once (BEGIN ATOMIC), so the caller's search_path never
-- picks what it calls.
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.validate_session_record(token text, OUT session_id uuid, OUT user_id text,
                                                OUT expires_at timestamptz,
                                                OUT last_active_at timestamptz, OUT metadata jsonb)
RETURNS record
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'validate_session_record';
COMMENT ON FUNCTION sessrev.validate_session_record(text) IS
    'validate_session''s answer as one record, NULL when the token has no live session; only for roles that may execute validate_session(text). Call validate_session, which PostgreSQL inlines into a query over this.';

-- STABLE (not VOLATILE) only so that the planner inlines it: the body's own
-- call is volatile and runs exactly once per scan.
CREATE OR REPLACE FUNCTION sessrev.validate_session(token text)
RETURNS TABLE (session_id uuid, user_id text, expires_at timestamptz,
               last_active_at timestamptz, metadata jsonb)
    LANGUAGE sql STABLE PARALLEL UNSAFE ROWS 1
BEGIN ATOMIC
    SELECT (v.s).session_id, (v.s).user_id, (v.s).expires_at, (v.s).last_active_at, (v.s).metadata
      FROM (SELECT sessrev.validate_session_record(validate_session.token) AS s) AS v
     WHERE (v.s).session_id IS NOT NULL;
END;

-- The one privilege to grant stays EXECUTE on validate_session:
-- validate_session_record answers only a role that holds it (checked in C++
-- on every call), so it may be executable by anyone who can reach the schema.
GRANT EXECUTE ON FUNCTION sessrev.validate_session_record(text) TO PUBLIC;

--------------------------------------------------------------------------------
-- An update from 1.0 or 1.1 ran 1.2's REVOKE ... ON ALL FUNCTIONS, which
-- recorded the grants a DBA had made on sessrev's functions as the
-- extension's own (pg_init_privs): pg_dump left them out, and a restore lost
-- them. The extension itself grants EXECUTE to no role but PUBLIC: only the
-- owner's and PUBLIC's entries are its own.
--------------------------------------------------------------------------------

UPDATE pg_catalog.pg_init_privs i
   SET initprivs = ARRAY(SELECT pg_catalog.makeaclitem(a.grantee, a.grantor, a.privilege_type, a.is_grantable)
                           FROM pg_catalog.aclexplode(i.initprivs) a
                          WHERE a.grantee OPERATOR(pg_catalog.=) 0
                             OR a.grantee OPERATOR(pg_catalog.=) p.proowner)
  FROM pg_catalog.pg_proc p
 WHERE i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
   AND i.objoid OPERATOR(pg_catalog.=) p.oid
   AND i.privtype OPERATOR(pg_catalog.=) 'e'
   AND p.pronamespace OPERATOR(pg_catalog.=) 'sessrev'::pg_catalog.regnamespace;
