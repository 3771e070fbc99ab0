-- Adversarial security suite: hostile search_path, operators and casts; the
-- tracked-table owner; fail-open holes of track_user_table; one rule for
-- "live"; the grant profiles; argument bounds, actors and the current session.
--
-- Everything runs in one transaction that is rolled back. Ordinary roles are
-- named sectap_*; SET ROLE acts as them. Values are passed between statements
-- in psql variables (\gset), so that no statement run under a hostile
-- search_path needs an operator of its own. Statements whose output is not a
-- test result end in \g /dev/null.
BEGIN;
SELECT plan(118);

CREATE ROLE sectap_mallory NOLOGIN;
CREATE ROLE sectap_enduser NOLOGIN;
CREATE ROLE sectap_backend NOLOGIN;
CREATE ROLE sectap_auditor NOLOGIN;
CREATE ROLE sectap_admin NOLOGIN;

-- sectap_app belongs to the superuser: recording tables and the tracked tables
-- of an honest application.
CREATE SCHEMA sectap_app;
GRANT USAGE ON SCHEMA sectap_app TO PUBLIC;
CREATE TABLE sectap_app.exercised (fn regprocedure NOT NULL, result text);
GRANT INSERT ON sectap_app.exercised TO sectap_mallory;

--------------------------------------------------------------------------------
-- 1. Hostile search_path, operators and functions vs every SECURITY DEFINER function
--------------------------------------------------------------------------------

CREATE SCHEMA sectap_evil AUTHORIZATION sectap_mallory;
SET ROLE sectap_mallory;
CREATE TABLE sectap_evil.called (who name DEFAULT current_user, what text);
GRANT USAGE ON SCHEMA sectap_evil TO PUBLIC;
GRANT INSERT ON sectap_evil.called TO PUBLIC;
-- =, <>, <, >, <=, >= for text, uuid, timestamptz, bytea and interval: each
-- logs its call, then answers as the builtin does.
DO $do$
DECLARE
    r     record;
    fname text;
BEGIN
    FOR r IN
        SELECT o.oprname, t.typname, p.proname
          FROM pg_catalog.pg_operator o
          JOIN pg_catalog.pg_type t ON t.oid = o.oprleft
          JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
         WHERE o.oprnamespace = 'pg_catalog'::regnamespace
           AND o.oprleft = o.oprright
           AND o.oprname IN ('=', '<>', '<', '>', '<=', '>=')
           AND o.oprleft IN ('text'::regtype, 'uuid'::regtype, 'timestamptz'::regtype,
                             'bytea'::regtype, 'interval'::regtype)
    LOOP
        fname := 'evil_' || r.proname;
        EXECUTE format($f$
            CREATE FUNCTION sectap_evil.%I(a pg_catalog.%I, b pg_catalog.%I) RETURNS boolean
            LANGUAGE plpgsql SECURITY INVOKER AS $b$
            BEGIN
                INSERT INTO sectap_evil.called (what) VALUES (%L);
                RETURN pg_catalog.%I(a, b);
            END
            $b$$f$, fname, r.typname, r.typname,
            format('%s(%s,%s)', r.oprname, r.typname, r.typname), r.proname);
        EXECUTE format('CREATE OPERATOR sectap_evil.%s (LEFTARG = pg_catalog.%I, RIGHTARG = pg_catalog.%I, '
                       'FUNCTION = sectap_evil.%I)', r.oprname, r.typname, r.typname, fname);
    END LOOP;
END
$do$;
-- Functions that shadow builtins an unpinned function would call unqualified.
CREATE FUNCTION sectap_evil.now() RETURNS timestamptz LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO sectap_evil.called (what) VALUES ('now()');
    RETURN pg_catalog.now();
END
$$;
CREATE FUNCTION sectap_evil.current_setting(setting text) RETURNS text LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO sectap_evil.called (what) VALUES ('current_setting(text)');
    RETURN pg_catalog.current_setting(setting);
END
$$;
CREATE FUNCTION sectap_evil.octet_length(t text) RETURNS integer LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO sectap_evil.called (what) VALUES ('octet_length(text)');
    RETURN pg_catalog.octet_length(t);
END
$$;
CREATE FUNCTION sectap_evil.jsonb_typeof(j jsonb) RETURNS text LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO sectap_evil.called (what) VALUES ('jsonb_typeof(jsonb)');
    RETURN pg_catalog.jsonb_typeof(j);
END
$$;
-- Control: under the hostile search_path, unqualified comparisons and calls run hers.
SET search_path = sectap_evil, pg_catalog;
SELECT 'a'::text = 'b'::text, 'a'::text <> 'b'::text, 'a'::text < 'b'::text,
       'a'::text > 'b'::text, 'a'::text <= 'b'::text, 'a'::text >= 'b'::text,
       gen_random_uuid() = gen_random_uuid(), gen_random_uuid() <> gen_random_uuid(),
       gen_random_uuid() < gen_random_uuid(), gen_random_uuid() > gen_random_uuid(),
       gen_random_uuid() <= gen_random_uuid(), gen_random_uuid() >= gen_random_uuid(),
       'epoch'::timestamptz = 'epoch'::timestamptz, 'epoch'::timestamptz <> 'epoch'::timestamptz,
       'epoch'::timestamptz < 'epoch'::timestamptz, 'epoch'::timestamptz > 'epoch'::timestamptz,
       'epoch'::timestamptz <= 'epoch'::timestamptz, 'epoch'::timestamptz >= 'epoch'::timestamptz,
       '\x00'::bytea = '\x01'::bytea, '\x00'::bytea <> '\x01'::bytea, '\x00'::bytea < '\x01'::bytea,
       '\x00'::bytea > '\x01'::bytea, '\x00'::bytea <= '\x01'::bytea, '\x00'::bytea >= '\x01'::bytea,
       '1 s'::interval = '2 s'::interval, '1 s'::interval <> '2 s'::interval,
       '1 s'::interval < '2 s'::interval, '1 s'::interval > '2 s'::interval,
       '1 s'::interval <= '2 s'::interval, '1 s'::interval >= '2 s'::interval \g /dev/null
SELECT now(), current_setting('search_path'), octet_length('x'::text), jsonb_typeof('{}') \g /dev/null
RESET search_path;
RESET ROLE;
SELECT is((SELECT count(DISTINCT what)::int FROM sectap_evil.called WHERE what LIKE '%,%'), 30,
          'control: under search_path sectap_evil, pg_catalog all 30 of mallory''s operators replace the builtins');
SELECT is(ARRAY(SELECT DISTINCT what FROM sectap_evil.called WHERE what NOT LIKE '%,%' ORDER BY 1),
          ARRAY['current_setting(text)', 'jsonb_typeof(jsonb)', 'now()', 'octet_length(text)'],
          'control: under that search_path her now, current_setting, octet_length and jsonb_typeof replace the builtins');
DELETE FROM sectap_evil.called;

-- Mallory may call every SECURITY DEFINER function of sessrev, found in
-- pg_proc, and validate_session with its C++ body validate_session_record,
-- which calls two of them (touch_session, validate_retired_token) itself.
CREATE TEMP VIEW sectap_definer_surface AS
SELECT p.oid::regprocedure AS fn FROM pg_proc p
 WHERE p.pronamespace = 'sessrev'::regnamespace
   AND (p.prosecdef OR p.oid IN ('sessrev.validate_session(text)'::regprocedure,
                                 'sessrev.validate_session_record(text)'::regprocedure));
GRANT USAGE ON SCHEMA sessrev TO sectap_mallory;
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT fn FROM sectap_definer_surface LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO sectap_mallory', f);
    END LOOP;
END
$$;

-- Sessions to act on; idle_timeout on and a stale last_active_at take the
-- idle and touch branches of validate_session.
SET LOCAL sessrev.idle_timeout = '1h';
SELECT session_id AS h1_id, token AS h1_tok FROM sessrev.create_session('sectap-h') \gset
SELECT session_id AS h2_id FROM sessrev.create_session('sectap-h') \gset
SELECT session_id AS h3_id FROM sessrev.create_session('sectap-h') \gset
SELECT session_id AS h4_id, token AS h4_tok FROM sessrev.create_session('sectap-h') \gset
SELECT session_id AS h5_id FROM sessrev.create_session('sectap-h') \gset
UPDATE sessrev.sessions SET last_active_at = now() - interval '10 minutes' WHERE id = :'h1_id';
SELECT (now() + interval '1 hour')::text AS jwt_exp \gset
SELECT sessrev.hash_token(:'h1_tok') AS h1_hash, now()::text AS h_now \gset

-- Every call, as mallory under her search_path, with valid arguments; no
-- statement here uses an operator of its own. The emergency logout comes last:
-- it revokes only this section's sessions.
SET ROLE sectap_mallory;
SET search_path = sectap_evil, pg_catalog;
INSERT INTO sectap_app.exercised SELECT 'sessrev.validate_session(text)', string_agg(r::text, ';')
  FROM sessrev.validate_session(:'h1_tok') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.set_current_session(uuid)', string_agg(r::text, ';')
  FROM sessrev.set_current_session(:'h1_id') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.my_sessions()', string_agg(r::text, ';')
  FROM sessrev.my_sessions() r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.my_security_events(integer)', string_agg(r::text, ';')
  FROM sessrev.my_security_events(50) r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.metrics()', string_agg(r::text, ';')
  FROM sessrev.metrics() r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.release_user_id(text)', string_agg(r::text, ';')
  FROM sessrev.release_user_id('sectap-released') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.user_sessions(text)', string_agg(r::text, ';')
  FROM sessrev.user_sessions('sectap-h') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.extend_session(uuid,interval)', string_agg(r::text, ';')
  FROM sessrev.extend_session(:'h1_id', '1 hour') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.revoke_my_session(uuid)', string_agg(r::text, ';')
  FROM sessrev.revoke_my_session(:'h2_id') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.revoke_session(uuid,text,text)', string_agg(r::text, ';')
  FROM sessrev.revoke_session(:'h3_id', 'sectap hostile', 'sectap') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.revoke_token(text,text,text)', string_agg(r::text, ';')
  FROM sessrev.revoke_token(:'h4_tok', 'sectap hostile', 'sectap') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.jwt_issued_at(text)', string_agg(r::text, ';')
  FROM sessrev.jwt_issued_at('sectap-h') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.rotate_token(text)', string_agg(r::text, ';')
  FROM sessrev.rotate_token(:'h1_tok') r;
-- The rotated-out token, within sessrev.reuse_interval: the retired-token branch.
INSERT INTO sectap_app.exercised SELECT 'sessrev.validate_session(text)', string_agg(r::text, ';')
  FROM sessrev.validate_session(:'h1_tok') r;
-- validate_session's body and internal helpers, called directly.
INSERT INTO sectap_app.exercised SELECT 'sessrev.validate_session_record(text)', string_agg(r::text, ';')
  FROM sessrev.validate_session_record(:'h1_tok') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.touch_session(uuid,timestamptz,timestamptz)', string_agg(r::text, ';')
  FROM sessrev.touch_session(:'h1_id', :'h_now', :'h_now') r;
-- A standby's forwarded touch (1.3).
INSERT INTO sectap_app.exercised SELECT 'sessrev.forward_touch(uuid,timestamptz,timestamptz)', string_agg(r::text, ';')
  FROM sessrev.forward_touch(:'h1_id', :'h_now', :'h_now') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.report_token_reuse(bytea)', string_agg(r::text, ';')
  FROM sessrev.report_token_reuse(:'h1_hash') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.validate_retired_token(bytea)', string_agg(r::text, ';')
  FROM sessrev.validate_retired_token(:'h1_hash') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.revoke_my_other_sessions()', string_agg(r::text, ';')
  FROM sessrev.revoke_my_other_sessions() r;
INSERT INTO sectap_app.exercised
SELECT 'sessrev.create_session(text,interval,inet,text,text,jsonb)', string_agg(r::text, ';')
  FROM sessrev.create_session('sectap-h2', '1 hour', '192.0.2.1',
                              'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0',
                              NULL, '{"k": "v"}') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.revoke_user_sessions(text,text,text,uuid)', string_agg(r::text, ';')
  FROM sessrev.revoke_user_sessions('sectap-h2', 'sectap hostile', 'sectap',
                                    '00000000-0000-0000-0000-000000000000') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.revoke_jwt(text,timestamptz,text,text,text)', string_agg(r::text, ';')
  FROM sessrev.revoke_jwt('sectap-jti-hostile', :'jwt_exp', 'sectap-h', 'sectap hostile', 'sectap') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.revoke_user_tokens_before(text,timestamptz)', string_agg(r::text, ';')
  FROM sessrev.revoke_user_tokens_before('sectap-h') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.cleanup_expired_sessions(interval,interval)', string_agg(r::text, ';')
  FROM sessrev.cleanup_expired_sessions('7 days', '30 days') r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.run_cleanup_now()', string_agg(r::text, ';')
  FROM sessrev.run_cleanup_now() r;
INSERT INTO sectap_app.exercised SELECT 'sessrev.cache_reset()', string_agg(r::text, ';')
  FROM sessrev.cache_reset() r;
-- The distributed layout's (071 runs it there): on a single server it
-- refuses (55000) before reading anything.
DO $$
BEGIN
    PERFORM sessrev.revoke_user_in_shard('sectap-h', 'sectap hostile');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    INSERT INTO sectap_app.exercised VALUES ('sessrev.revoke_user_in_shard(text,text)', SQLSTATE);
END
$$;
-- The emergency logout is a cut-off that revokes every session made in this
-- transaction (their created_at is its start), so it is undone after its
-- effect is read.
SAVEPOINT sectap_emergency;
SELECT coalesce(string_agg(r::text, ';'), '(null)') AS ra_result
  FROM sessrev.revoke_all_sessions('sectap hostile', 'sectap') r \gset
RESET ROLE;
SELECT sessrev.is_revoked(:'h1_tok') AS ra_h1_revoked \gset
ROLLBACK TO SAVEPOINT sectap_emergency;
INSERT INTO sectap_app.exercised VALUES ('sessrev.revoke_all_sessions(text,text)', :'ra_result');
RESET search_path;
RESET ROLE;
RESET sessrev.idle_timeout;

SELECT set_eq($$SELECT DISTINCT fn FROM sectap_app.exercised$$,
              $$SELECT fn FROM sectap_definer_surface$$,
              'every SECURITY DEFINER function of sessrev (and validate_session) was called under the hostile search_path');
SELECT is((SELECT count(DISTINCT fn)::int FROM sectap_app.exercised),
          (SELECT count(*)::int FROM sectap_definer_surface),
          'as many SECURITY DEFINER functions were exercised as pg_proc lists');
SELECT is(ARRAY(SELECT who || ': ' || what FROM sectap_evil.called), '{}'::text[],
          'none of mallory''s operators or functions ran inside any SECURITY DEFINER function');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'sectap_mallory'), false,
          'mallory is not superuser after calling every SECURITY DEFINER function');
SELECT is(ARRAY[(SELECT revoked_reason FROM sessrev.sessions WHERE id = :'h2_id'),
                (SELECT revoked_reason FROM sessrev.sessions WHERE id = :'h3_id'),
                (SELECT revoked_reason FROM sessrev.sessions WHERE id = :'h4_id'),
                (SELECT revoked_reason FROM sessrev.sessions WHERE id = :'h5_id'),
                CASE WHEN :'ra_h1_revoked' THEN 'emergency cut-off' END],
          ARRAY['Signed out by user', 'sectap hostile', 'sectap hostile',
                'Signed out from other devices', 'emergency cut-off'],
          'under the hostile search_path the functions still did their work');
SELECT is((SELECT count(*)::int FROM sectap_app.exercised
            WHERE fn = 'sessrev.validate_session(text)'::regprocedure AND result IS NOT NULL), 2,
          'under the hostile search_path validate_session validated the token and its rotated-out one');

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA sessrev FROM sectap_mallory;

--------------------------------------------------------------------------------
-- 2. The owner of a tracked table runs none of her code with sessrev's rights
--------------------------------------------------------------------------------

GRANT EXECUTE ON FUNCTION sessrev.track_user_table(regclass, name, name[], name[]),
                          sessrev.untrack_user_table(regclass),
                          sessrev.user_table_changed() TO sectap_mallory;
SELECT session_id AS alice_id FROM sessrev.create_session('sectap-alice') \gset
SELECT session_id AS bob_id FROM sessrev.create_session('sectap-bob') \gset
SELECT session_id AS dave_id FROM sessrev.create_session('sectap-dave') \gset

SET ROLE sectap_mallory;
SET search_path = sectap_evil, pg_catalog;
CREATE TYPE sectap_evil.sectap_evt AS ENUM ('member', 'admin');
-- Her casts try to make her superuser; the attempt is logged even when it fails.
CREATE FUNCTION sectap_evil.evil(e sectap_evil.sectap_evt) RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO sectap_evil.called (what) VALUES ('cast sectap_evt AS json');
    BEGIN
        ALTER ROLE sectap_mallory SUPERUSER;
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RETURN pg_catalog.to_json(pg_catalog.format('%s', e));
END
$$;
CREATE FUNCTION sectap_evil.evil_text(e sectap_evil.sectap_evt) RETURNS text
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO sectap_evil.called (what) VALUES ('cast sectap_evt AS text');
    BEGIN
        ALTER ROLE sectap_mallory SUPERUSER;
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RETURN pg_catalog.format('%s', e);
END
$$;
CREATE FUNCTION sectap_evil.evil_evt_eq(a sectap_evil.sectap_evt, b sectap_evil.sectap_evt) RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO sectap_evil.called (what) VALUES ('=(sectap_evt,sectap_evt)');
    BEGIN
        ALTER ROLE sectap_mallory SUPERUSER;
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RETURN pg_catalog.enum_eq(a, b);
END
$$;
CREATE CAST (sectap_evil.sectap_evt AS json) WITH FUNCTION sectap_evil.evil(sectap_evil.sectap_evt);
CREATE CAST (sectap_evil.sectap_evt AS text) WITH FUNCTION sectap_evil.evil_text(sectap_evil.sectap_evt);
CREATE OPERATOR sectap_evil.= (LEFTARG = sectap_evil.sectap_evt, RIGHTARG = sectap_evil.sectap_evt,
                               FUNCTION = sectap_evil.evil_evt_eq);
CREATE TABLE sectap_evil.sectap_users (id text PRIMARY KEY, pw text, role sectap_evil.sectap_evt);
INSERT INTO sectap_evil.sectap_users VALUES ('sectap-alice', 'pw', 'member'),
                                            ('sectap-bob', 'pw', 'member'),
                                            ('sectap-dave', 'pw', 'member');
-- Control: to_jsonb of a row (what the 1.0 trigger did, as sessrev) runs her cast.
SELECT pg_catalog.to_jsonb(u) FROM sectap_evil.sectap_users u \g /dev/null
RESET search_path;
RESET ROLE;
SELECT ok((SELECT count(*) FROM sectap_evil.called WHERE what = 'cast sectap_evt AS json') > 0,
          'control: to_jsonb of a row of her table runs mallory''s cast');
DELETE FROM sectap_evil.called;

SET ROLE sectap_mallory;
SET search_path = sectap_evil, pg_catalog;
SELECT sessrev.track_user_table('sectap_users', 'id', '{pw}', '{role}') \g /dev/null
UPDATE sectap_evil.sectap_users SET role = 'admin' WHERE id OPERATOR(pg_catalog.=) 'sectap-alice';
UPDATE sectap_evil.sectap_users SET pw = 'reset' WHERE id OPERATOR(pg_catalog.=) 'sectap-bob';
DELETE FROM sectap_evil.sectap_users WHERE id OPERATOR(pg_catalog.=) 'sectap-dave';
RESET search_path;
RESET ROLE;

SELECT is(ARRAY(SELECT who || ': ' || what FROM sectap_evil.called), '{}'::text[],
          'none of mallory''s casts or operators ran while her tracked table was updated and deleted from');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'sectap_mallory'), false,
          'the owner of a tracked table is not superuser after changing it');
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'alice_id'), 'Privileges changed',
          'changing the enum privilege column of her table revoked alice''s session (Privileges changed)');
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'bob_id'), 'Credentials reset',
          'changing the credential column of her table revoked bob''s session (Credentials reset)');
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'dave_id'), 'User deleted',
          'deleting a row of her table revoked dave''s session (User deleted)');

--------------------------------------------------------------------------------
-- 3. track_user_table does not fail open
--------------------------------------------------------------------------------

CREATE TABLE sectap_app.accounts (id text PRIMARY KEY, pw text, role text);
INSERT INTO sectap_app.accounts VALUES ('sectap-carol', 'pw', 'member'), ('sectap-erin', 'pw', 'member'),
                                       ('sectap-frank', 'pw', 'member'), ('sectap-gina', 'pw', 'member');
SELECT sessrev.track_user_table('sectap_app.accounts', 'id', '{pw}', '{role}') \g /dev/null

-- (a) id changes
SELECT session_id AS carol_id, token AS carol_tok FROM sessrev.create_session('sectap-carol') \gset
UPDATE sectap_app.accounts SET id = 'sectap-carol2' WHERE id = 'sectap-carol';
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'carol_id'), 'User id changed',
          '(a) changing a user''s id revokes the sessions of the old id (User id changed)');
INSERT INTO sectap_app.accounts VALUES ('sectap-carol', 'pw', 'member');
SELECT is((SELECT count(*)::int FROM sessrev.user_sessions('sectap-carol')), 0,
          '(a) a new user registering the old id has no live session');
SELECT is((SELECT count(*)::int FROM sessrev.validate_session(:'carol_tok')), 0,
          '(a) the old id''s token does not validate for the new user');

-- (b) TRUNCATE
CREATE TABLE sectap_app.members (id text PRIMARY KEY, pw text);
INSERT INTO sectap_app.members VALUES ('sectap-m1', 'pw'), ('sectap-m2', 'pw');
SELECT sessrev.track_user_table('sectap_app.members', 'id', '{pw}') \g /dev/null
SELECT session_id AS m1_id FROM sessrev.create_session('sectap-m1') \gset
SELECT session_id AS m2_id FROM sessrev.create_session('sectap-m2') \gset
TRUNCATE sectap_app.members;
SELECT is(ARRAY[(SELECT revoked_reason FROM sessrev.sessions WHERE id = :'m1_id'),
                (SELECT revoked_reason FROM sessrev.sessions WHERE id = :'m2_id')],
          ARRAY['User deleted', 'User deleted'],
          '(b) TRUNCATE of a tracked table revokes every user''s sessions');
-- A partitioned users table is refused: TRUNCATE of one partition would fire
-- no trigger of the parent's, so tracking could not keep its promise.
CREATE TABLE sectap_app.tenants (id text, pw text, region text) PARTITION BY LIST (region);
CREATE TABLE sectap_app.tenants_eu PARTITION OF sectap_app.tenants FOR VALUES IN ('eu');
SELECT throws_ok($$SELECT sessrev.track_user_table('sectap_app.tenants', 'id', '{pw}')$$, '0A000', NULL,
                 '(b) a partitioned table cannot be tracked (a partition''s TRUNCATE would go unseen)');

-- (c) renamed columns stay tracked
SELECT session_id AS erin_id FROM sessrev.create_session('sectap-erin') \gset
ALTER TABLE sectap_app.accounts RENAME COLUMN pw TO password;
UPDATE sectap_app.accounts SET password = 'new' WHERE id = 'sectap-erin';
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'erin_id'), 'Credentials reset',
          '(c) after RENAME COLUMN pw TO password a credential change still revokes');

-- (d) tracked columns cannot be dropped
SELECT throws_ok($$ALTER TABLE sectap_app.accounts DROP COLUMN password$$, '2BP01', NULL,
                 '(d) dropping a tracked credential column is refused');
SELECT throws_ok($$ALTER TABLE sectap_app.accounts DROP COLUMN role$$, '2BP01', NULL,
                 '(d) dropping a tracked privilege column is refused');
SELECT throws_ok($$ALTER TABLE sectap_app.accounts DROP COLUMN id$$, '2BP01', NULL,
                 '(d) dropping the tracked id column is refused');

-- (e) changes applied as a replica revoke too
SELECT session_id AS frank_id FROM sessrev.create_session('sectap-frank') \gset
SET LOCAL session_replication_role = replica;
UPDATE sectap_app.accounts SET role = 'admin' WHERE id = 'sectap-frank';
SET LOCAL session_replication_role = origin;
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'frank_id'), 'Privileges changed',
          '(e) under session_replication_role = replica a privilege change still revokes');

-- (f) a tracked column changed by the table's own BEFORE trigger
CREATE TABLE sectap_app.plans (id text PRIMARY KEY, plan text, role text);
CREATE FUNCTION sectap_app.derive_role() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.role := CASE WHEN NEW.plan = 'pro' THEN 'admin' ELSE 'member' END;
    RETURN NEW;
END
$$;
CREATE TRIGGER derive_role BEFORE INSERT OR UPDATE ON sectap_app.plans
    FOR EACH ROW EXECUTE FUNCTION sectap_app.derive_role();
INSERT INTO sectap_app.plans (id, plan) VALUES ('sectap-hank', 'free');
SELECT sessrev.track_user_table('sectap_app.plans', 'id', '{}', '{role}') \g /dev/null
SELECT session_id AS hank_id FROM sessrev.create_session('sectap-hank') \gset
UPDATE sectap_app.plans SET plan = 'pro' WHERE id = 'sectap-hank';
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'hank_id'), 'Privileges changed',
          '(f) a privilege column changed by the table''s own BEFORE UPDATE trigger still revokes');

-- (g) a user changing their own credentials keeps the session they did it from
SELECT session_id AS g1_id, token AS g1_tok FROM sessrev.create_session('sectap-gina') \gset
SELECT session_id AS g2_id FROM sessrev.create_session('sectap-gina') \gset
SELECT session_id AS g3_id FROM sessrev.create_session('sectap-gina') \gset
SELECT count(*) FROM sessrev.validate_session(:'g1_tok') \g /dev/null
UPDATE sectap_app.accounts SET password = 'mine' WHERE id = 'sectap-gina';
SELECT is(sessrev.is_revoked(:'g1_id'::uuid), false,
          '(g) a user changing their own credentials keeps the current session');
SELECT is(ARRAY[(SELECT revoked_reason FROM sessrev.sessions WHERE id = :'g2_id'),
                (SELECT revoked_reason FROM sessrev.sessions WHERE id = :'g3_id')],
          ARRAY['Credentials changed', 'Credentials changed'],
          '(g) and their other sessions are revoked (Credentials changed)');
SELECT count(*) FROM sessrev.validate_session('sectap-no-such-token') \g /dev/null

-- (h) id columns of other types
CREATE TABLE sectap_app.numbered (id integer PRIMARY KEY, pw text);
INSERT INTO sectap_app.numbered VALUES (42, 'pw');
SELECT sessrev.track_user_table('sectap_app.numbered', 'id', '{pw}') \g /dev/null
SELECT session_id AS n42_id FROM sessrev.create_session('42') \gset
DELETE FROM sectap_app.numbered WHERE id = 42;
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'n42_id'), 'User deleted',
          '(h) an integer id column works: deleting user 42 revokes the sessions of user_id ''42''');
CREATE TABLE sectap_app.uuided (id uuid PRIMARY KEY, pw text);
INSERT INTO sectap_app.uuided VALUES ('6f1c1a2e-7d3b-4c5a-9e8f-0a1b2c3d4e5f', 'pw');
SELECT sessrev.track_user_table('sectap_app.uuided', 'id', '{pw}') \g /dev/null
SELECT session_id AS u_id FROM sessrev.create_session('6f1c1a2e-7d3b-4c5a-9e8f-0a1b2c3d4e5f') \gset
UPDATE sectap_app.uuided SET pw = 'new' WHERE id = '6f1c1a2e-7d3b-4c5a-9e8f-0a1b2c3d4e5f';
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'u_id'), 'Credentials reset',
          '(h) a uuid id column works: a credential change revokes the sessions of its text form');

-- (i) a table made anew with its columns renumbered (a restored dump, a table
-- Citus rebuilt), carrying a copy of the trigger: it refuses, rather than
-- watch the columns that now have the tracked numbers.
CREATE TABLE sectap_app.renumbered (junk int, id text PRIMARY KEY, note text, pw text);
ALTER TABLE sectap_app.renumbered DROP COLUMN junk;
SELECT sessrev.track_user_table('sectap_app.renumbered', 'id', '{pw}') \g /dev/null
-- Made anew: pw is column 3, and 4 (the number the trigger tracks) is extra.
CREATE TABLE sectap_app.rebuilt (id text PRIMARY KEY, note text, pw text, extra text);
INSERT INTO sectap_app.rebuilt VALUES ('sectap-ivy', 'n', 'pw', 'e');
SELECT replace(pg_get_triggerdef(oid), 'sectap_app.renumbered', 'sectap_app.rebuilt') AS copied_trigger
  FROM pg_trigger WHERE tgrelid = 'sectap_app.renumbered'::regclass AND tgname = 'sessrev_revoke_sessions' \gset
:copied_trigger;
SELECT session_id AS ivy_id FROM sessrev.create_session('sectap-ivy') \gset
SELECT throws_like($$UPDATE sectap_app.rebuilt SET pw = 'new' WHERE id = 'sectap-ivy'$$,
                   '%numbers other columns than it watches%',
                   '(i) a tracking trigger copied onto a renumbered table refuses a credential change');
SELECT throws_like($$UPDATE sectap_app.rebuilt SET extra = 'x' WHERE id = 'sectap-ivy'$$,
                   '%numbers other columns than it watches%',
                   '(i) and a change of the column that now has the tracked number');
SELECT is(sessrev.is_revoked(:'ivy_id'::uuid), false, '(i) nothing was revoked by the wrong column');
INSERT INTO sectap_app.renumbered VALUES ('sectap-ivy', 'n', 'pw');
UPDATE sectap_app.renumbered SET pw = 'new' WHERE id = 'sectap-ivy';
SELECT is((SELECT revoked_reason FROM sessrev.sessions WHERE id = :'ivy_id'), 'Credentials reset',
          '(i) the original table, dropped column and all, still revokes on its credential column');

--------------------------------------------------------------------------------
-- 4. One rule for "live"
--------------------------------------------------------------------------------

SET LOCAL sessrev.idle_timeout = '1h';
CREATE TEMP TABLE sectap_states (state text, token text, id uuid, user_id text);
INSERT INTO sectap_states SELECT 'live', token, session_id, 'sectap-live'
  FROM sessrev.create_session('sectap-live');
INSERT INTO sectap_states SELECT 'revoked', token, session_id, 'sectap-revoked'
  FROM sessrev.create_session('sectap-revoked');
SELECT sessrev.revoke_session(id, 'sectap', 'sectap') FROM sectap_states WHERE state = 'revoked' \g /dev/null
WITH s AS (
    INSERT INTO sessrev.sessions (user_id, token_hash, created_at, last_active_at, expires_at)
    VALUES ('sectap-expired', sessrev.hash_token('sectap-expired-token'),
            now() - interval '2 hours', now() - interval '2 minutes', now() - interval '1 minute')
    RETURNING id, user_id)
INSERT INTO sectap_states SELECT 'expired', 'sectap-expired-token', id, user_id FROM s;
WITH s AS (
    INSERT INTO sessrev.sessions (user_id, token_hash, created_at, last_active_at, expires_at)
    VALUES ('sectap-idle', sessrev.hash_token('sectap-idle-token'),
            now() - interval '3 hours', now() - interval '2 hours', now() + interval '1 day')
    RETURNING id, user_id)
INSERT INTO sectap_states SELECT 'idle', 'sectap-idle-token', id, user_id FROM s;
INSERT INTO sectap_states SELECT 'deleted', token, session_id, 'sectap-deleted'
  FROM sessrev.create_session('sectap-deleted');
DELETE FROM sessrev.sessions WHERE id = (SELECT id FROM sectap_states WHERE state = 'deleted');
INSERT INTO sectap_states SELECT 'rotated', token, session_id, 'sectap-rotated'
  FROM sessrev.create_session('sectap-rotated');
SELECT token AS rot_new_tok FROM sessrev.rotate_token((SELECT token FROM sectap_states WHERE state = 'rotated')) \gset
SELECT is((SELECT count(*)::int FROM sessrev.validate_session((SELECT token FROM sectap_states WHERE state = 'rotated'))), 1,
          'within sessrev.reuse_interval a rotated-out token still validates (requests in flight)');
-- After the interval: reuse_interval 0 and a retirement one second old.
SET LOCAL sessrev.reuse_interval = 0;
UPDATE sessrev.retired_tokens SET retired_at = now() - interval '1 second'
 WHERE session_id = (SELECT id FROM sectap_states WHERE state = 'rotated');
SELECT is((SELECT count(*)::int FROM sessrev.validate_session((SELECT token FROM sectap_states WHERE state = 'rotated'))), 0,
          'after sessrev.reuse_interval a rotated-out token does not validate');
SELECT is((SELECT revoked_reason FROM sessrev.sessions s JOIN sectap_states t ON t.id = s.id WHERE t.state = 'rotated'),
          'Token reuse detected', 'presenting a rotated-out token after reuse_interval revokes its session');
SELECT is(sessrev.is_revoked(:'rot_new_tok'), true, 'and the token it was rotated to is revoked with it');

-- Every function agrees: only the live session is live.
SELECT is(ARRAY(SELECT state FROM sectap_states WHERE NOT sessrev.is_revoked(token) ORDER BY state), ARRAY['live'],
          'is_revoked(token) is false for the live session only (not revoked, expired, idle, deleted, rotated out)');
SELECT is(ARRAY(SELECT state FROM sectap_states WHERE NOT sessrev.is_revoked(id) ORDER BY state), ARRAY['live'],
          'is_revoked(id) is false for the live session only');
SELECT is(ARRAY(SELECT t.state FROM sectap_states t JOIN sessrev.sessions s ON s.id = t.id
                 WHERE sessrev.session_is_live(s.revoked, s.expires_at, s.last_active_at) ORDER BY t.state),
          ARRAY['live'], 'session_is_live is true on the live session''s row only');
SELECT is(ARRAY(SELECT t.state FROM sectap_states t JOIN sessrev.active_sessions a ON a.id = t.id ORDER BY t.state),
          ARRAY['live'], 'active_sessions lists the live session only');
SELECT is(ARRAY(SELECT t.state FROM sectap_states t WHERE EXISTS
                 (SELECT 1 FROM sessrev.user_sessions(t.user_id) u WHERE u.id = t.id) ORDER BY t.state),
          ARRAY['live'], 'user_sessions lists the live session only');
SELECT is(ARRAY(SELECT t.state FROM sectap_states t WHERE EXISTS
                 (SELECT 1 FROM sessrev.validate_session(t.token)) ORDER BY t.state),
          ARRAY['live'], 'validate_session returns a row for the live session only');
SELECT is(ARRAY(SELECT t.state FROM sectap_states t
                 WHERE sessrev.extend_session(t.id, '1 hour') IS NOT NULL ORDER BY t.state),
          ARRAY['live'], 'extend_session extends the live session only (NULL for the others)');
SELECT is(ARRAY(SELECT t.state FROM sectap_states t
                 WHERE sessrev.revoke_session(t.id, 'sectap', 'sectap') ORDER BY t.state),
          ARRAY['expired', 'idle', 'live'],
          'revoke_session revokes every session not yet revoked, expired and idle ones too (1.5)');
RESET sessrev.idle_timeout;
RESET sessrev.reuse_interval;

--------------------------------------------------------------------------------
-- 5. Grant profiles
--------------------------------------------------------------------------------

SELECT sessrev.grant_end_user('sectap_enduser') \g /dev/null
SELECT sessrev.grant_backend('sectap_backend') \g /dev/null
SELECT sessrev.grant_auditor('sectap_auditor') \g /dev/null

-- End user: only the session its own token validated.
SELECT session_id AS e1_id, token AS e1_tok FROM sessrev.create_session('sectap-eu') \gset
SELECT session_id AS e2_id FROM sessrev.create_session('sectap-eu') \gset
SELECT session_id AS e3_id FROM sessrev.create_session('sectap-eu') \gset
SELECT session_id AS e4_id, token AS e4_tok FROM sessrev.create_session('sectap-eu') \gset
SELECT session_id AS o1_id, token AS o1_tok FROM sessrev.create_session('sectap-other') \gset

SET ROLE sectap_enduser;
SELECT is((SELECT count(*)::int FROM sessrev.validate_session(:'e1_tok')), 1, 'end user may call validate_session');
SELECT is(sessrev.current_session_id(), :'e1_id'::uuid, 'end user may call current_session_id');
SELECT is(sessrev.current_user_id(), 'sectap-eu', 'end user may call current_user_id');
SELECT is(sessrev.is_revoked(:'e1_tok'::text), false, 'end user may call is_revoked(text)');
SELECT is((SELECT count(*)::int FROM sessrev.my_sessions()), 4, 'end user may call my_sessions');
SELECT is(sessrev.revoke_my_session(:'o1_id'), false,
          'revoke_my_session of another user''s session returns false');
SELECT is(sessrev.is_revoked(:'o1_tok'::text), false, 'and leaves the other user''s session live');
SELECT is(sessrev.revoke_my_session(:'e2_id'), true, 'end user may call revoke_my_session on their own session');
SELECT is(sessrev.revoke_token(:'e4_tok'), true, 'end user may call revoke_token');
SELECT is(sessrev.revoke_my_other_sessions(), 1, 'end user may call revoke_my_other_sessions');
SELECT is((SELECT count(*)::int FROM sessrev.rotate_token(:'e1_tok')), 1, 'end user may call rotate_token');
SELECT is(ARRAY(SELECT action || coalesce('/' || reason, '') FROM sessrev.my_security_events() ORDER BY 1),
          ARRAY['REVOKE_ALL_USER/Signed out from other devices',
                'SESSION_CREATED', 'SESSION_CREATED', 'SESSION_CREATED', 'SESSION_CREATED',
                'SESSION_REVOKED/Signed out by user', 'SESSION_REVOKED/Signed out from other devices',
                'SESSION_REVOKED/User logout', 'TOKEN_ROTATED', 'USER_TOKENS_CUTOFF'],
          'end user may call my_security_events: their own logins, revocations and rotation, with reasons');
SELECT is((SELECT count(*)::int FROM sessrev.my_security_events(1000) WHERE session_id = :'o1_id'), 0,
          'my_security_events shows nothing of another user''s sessions');
SELECT is((SELECT array_agg(DISTINCT session_id) FROM sessrev.my_security_events() WHERE is_current),
          ARRAY[:'e1_id'::uuid], 'my_security_events marks the events of the current session');
SELECT throws_ok($$SELECT * FROM sessrev.my_security_events(0)$$, '22023', NULL,
                 'my_security_events refuses a count out of 1..1000');
SELECT throws_ok(format('SELECT sessrev.set_current_session(%L)', :'o1_id'), '42501', NULL,
                 'end user may not call set_current_session (impersonation)');
SELECT throws_ok(format('SELECT sessrev.remember_current_session(%L, %L)', :'o1_id', 'sectap-other'), '42501', NULL,
                 'end user may not call remember_current_session (impersonation)');
SELECT throws_ok(format('SELECT sessrev.revoke_session(%L)', :'o1_id'), '42501', NULL,
                 'end user may not call revoke_session(uuid)');
SELECT throws_ok($$SELECT sessrev.revoke_user_sessions('sectap-other')$$, '42501', NULL,
                 'end user may not call revoke_user_sessions');
SELECT throws_ok($$SELECT * FROM sessrev.user_sessions('sectap-other')$$, '42501', NULL,
                 'end user may not call user_sessions');
SELECT throws_ok($$SELECT * FROM sessrev.create_session('sectap-other')$$, '42501', NULL,
                 'end user may not call create_session');
SELECT throws_ok($$SELECT sessrev.revoke_all_sessions()$$, '42501', NULL,
                 'end user may not call revoke_all_sessions');
SELECT throws_ok(format('SELECT sessrev.is_revoked(%L::uuid)', :'o1_id'), '42501', NULL,
                 'end user may not call is_revoked(uuid)');
SELECT throws_ok($$SELECT * FROM sessrev.sessions$$, '42501', NULL, 'end user may not read sessrev.sessions');
SELECT throws_ok($$SELECT * FROM sessrev.session_audit_log$$, '42501', NULL,
                 'end user may not read sessrev.session_audit_log');
RESET ROLE;
SELECT sessrev.forget_current_session() \g /dev/null
SET ROLE sectap_enduser;
SELECT throws_ok($$SELECT * FROM sessrev.my_security_events()$$, '42501', NULL,
                 'my_security_events needs a current session');
RESET ROLE;
-- A user id freed (its row deleted from a tracked users table) and taken
-- again: the new holder sees none of the former one's events; an
-- administrator's reason is not shown to the user, sessrev's and the user's are.
SELECT session_id AS rc1_id FROM sessrev.create_session('sectap-recycled', ip_address => '203.0.113.7') \gset
INSERT INTO sectap_app.accounts VALUES ('sectap-recycled', 'pw', 'member');
DELETE FROM sectap_app.accounts WHERE id = 'sectap-recycled';
SELECT session_id AS rc2_id, token AS rc2_tok FROM sessrev.create_session('sectap-recycled') \gset
SELECT session_id AS rc3_id FROM sessrev.create_session('sectap-recycled') \gset
SELECT sessrev.revoke_session(:'rc3_id', 'Suspected fraud: case 991', 'carol') \g /dev/null
SET ROLE sectap_enduser;
SELECT count(*) FROM sessrev.validate_session(:'rc2_tok') \g /dev/null
SELECT is(ARRAY(SELECT session_id::text FROM sessrev.my_security_events() WHERE action = 'SESSION_CREATED' ORDER BY 1),
          ARRAY(SELECT unnest(ARRAY[:'rc2_id', :'rc3_id']) ORDER BY 1),
          'my_security_events shows nothing of a former holder of the same user id');
SELECT is((SELECT reason FROM sessrev.my_security_events() WHERE action = 'SESSION_REVOKED'), NULL,
          'my_security_events does not show an administrator''s reason to the user');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM sessrev.session_audit_log
            WHERE user_id = 'sectap-recycled' AND action = 'USER_ID_RELEASED'), 1,
          'deleting a tracked user row marks its id released in the audit log');
SELECT throws_ok($$SELECT sessrev.release_user_id(NULL)$$, '22004', NULL, 'release_user_id refuses NULL');
-- A cut-off ahead of the clock (written by hand) would make jwt_issued_at wait for it: refused.
INSERT INTO sessrev.user_token_cutoffs (user_id, not_before) VALUES ('sectap-future', clock_timestamp() + interval '1 hour');
SELECT throws_ok($$SELECT sessrev.jwt_issued_at('sectap-future')$$, '55000', NULL,
                 'jwt_issued_at refuses to wait for a cut-off ahead of the clock');
SELECT is(sessrev.is_revoked(:'o1_id'::uuid), false, 'the end user''s refused calls left the other user''s session live');

-- Backend: any user's sessions, but neither the emergency logout nor the tables.
SET ROLE sectap_backend;
SELECT session_id AS be1_id FROM sessrev.create_session('sectap-be') \gset
SELECT lives_ok($$SELECT sessrev.create_session('sectap-be')$$, 'backend may call create_session');
SELECT is((SELECT count(*)::int FROM sessrev.user_sessions('sectap-be')), 2, 'backend may call user_sessions');
SELECT is(sessrev.is_revoked(:'be1_id'::uuid), false, 'backend may call is_revoked(uuid)');
SELECT lives_ok(format('SELECT sessrev.set_current_session(%L)', :'be1_id'), 'backend may call set_current_session');
SELECT ok(sessrev.extend_session(:'be1_id', '1 hour') IS NOT NULL, 'backend may call extend_session');
SELECT is(sessrev.revoke_session(:'be1_id'), true, 'backend may call revoke_session(uuid)');
SELECT is(sessrev.revoke_user_sessions('sectap-be'), 1, 'backend may call revoke_user_sessions');
SELECT throws_ok($$SELECT sessrev.revoke_all_sessions()$$, '42501', NULL, 'backend may not call revoke_all_sessions');
SELECT throws_ok($$SELECT token_hash FROM sessrev.sessions$$, '42501', NULL, 'backend may not read sessrev.sessions');
SELECT throws_ok($$SELECT * FROM sessrev.session_audit_log$$, '42501', NULL,
                 'backend may not read sessrev.session_audit_log');
SELECT throws_ok($$SELECT * FROM sessrev.metrics()$$, '42501', NULL, 'backend may not call metrics');
RESET ROLE;

-- Auditor: reads the audit log, live sessions and statistics; no token hashes.
SET ROLE sectap_auditor;
SELECT lives_ok($$SELECT * FROM sessrev.session_audit_log$$, 'auditor may read sessrev.session_audit_log');
SELECT lives_ok($$SELECT * FROM sessrev.active_sessions$$, 'auditor may read sessrev.active_sessions');
SELECT lives_ok($$SELECT * FROM sessrev.cache_stats()$$, 'auditor may call cache_stats');
SELECT lives_ok($$SELECT * FROM sessrev.worker_status()$$, 'auditor may call worker_status');
SELECT lives_ok($$SELECT * FROM sessrev.metrics()$$, 'auditor may call metrics');
SELECT throws_ok($$SELECT * FROM sessrev.create_session('sectap-aud')$$, '42501', NULL,
                 'auditor may not call create_session');
SELECT throws_ok($$SELECT token_hash FROM sessrev.sessions$$, '42501', NULL,
                 'auditor may not read sessrev.sessions (token_hash)');
RESET ROLE;

--------------------------------------------------------------------------------
-- 6. Bounds, actors and the current session
--------------------------------------------------------------------------------

SELECT throws_ok($$SELECT * FROM sessrev.create_session('sectap-u', '178000000 years')$$, '22023', NULL,
                 'create_session with a ttl of 178000000 years raises 22023 (not 22008)');
SELECT throws_ok($$SELECT sessrev.revoke_jwt('sectap-j', 'infinity')$$, '22023', NULL,
                 'revoke_jwt with expires_at infinity raises 22023');
SELECT throws_ok($$SELECT sessrev.revoke_jwt('sectap-j', now() + current_setting('sessrev.max_ttl')::interval
                                                          + interval '1 day')$$, '22023', NULL,
                 'revoke_jwt with expires_at beyond now() + sessrev.max_ttl raises 22023');

-- Reasons are at most 1024 bytes.
SELECT session_id AS r1_id FROM sessrev.create_session('sectap-reason') \gset
SELECT throws_ok(format('SELECT sessrev.revoke_session(%L, repeat(%L, 1025))', :'r1_id', 'x'), '22001', NULL,
                 'revoke_session refuses a reason longer than 1024 bytes');
SELECT throws_ok($$SELECT sessrev.revoke_user_sessions('sectap-reason', repeat('x', 1025))$$, '22001', NULL,
                 'revoke_user_sessions refuses a reason longer than 1024 bytes');
SELECT throws_ok($$SELECT sessrev.revoke_jwt('sectap-jti-long', now() + interval '1 hour', NULL, repeat('x', 1025))$$,
                 '22001', NULL, 'revoke_jwt refuses a reason longer than 1024 bytes');
SELECT is(sessrev.is_revoked(:'r1_id'::uuid), false, 'the refused revocations revoked nothing');
SELECT is(sessrev.revoke_session(:'r1_id', repeat('x', 1024)), true, 'a reason of exactly 1024 bytes is accepted');

-- Without revoked_by and without a current session, the audit names no
-- application actor; db_role is session_user (not the definer), and the
-- session row's revoked_by falls back to it.
SELECT sessrev.forget_current_session() \g /dev/null
GRANT USAGE ON SCHEMA sessrev TO sectap_admin;
GRANT EXECUTE ON FUNCTION sessrev.revoke_session(uuid, text, text),
                          sessrev.revoke_user_sessions(text, text, text, uuid),
                          sessrev.revoke_all_sessions(text, text),
                          sessrev.revoke_jwt(text, timestamptz, text, text, text) TO sectap_admin;
SELECT session_id AS ac1_id FROM sessrev.create_session('sectap-actor-1') \gset
SELECT session_id AS ac2_id FROM sessrev.create_session('sectap-actor-2') \gset
SET SESSION AUTHORIZATION sectap_admin;
SELECT sessrev.revoke_session(:'ac1_id') \g /dev/null
SELECT sessrev.revoke_user_sessions('sectap-actor-2') \g /dev/null
SELECT sessrev.revoke_jwt('sectap-jti-actor', now() + interval '1 hour') \g /dev/null
RESET SESSION AUTHORIZATION;
SELECT is((SELECT revoked_by FROM sessrev.sessions WHERE id = :'ac1_id'), 'sectap_admin',
          'revoke_session without revoked_by records session_user in sessions.revoked_by');
SELECT is(ARRAY(SELECT coalesce(actor, '(null)') || ' as ' || db_role FROM sessrev.session_audit_log
                 WHERE session_id = :'ac1_id' AND action = 'SESSION_REVOKED'), ARRAY['(null) as sectap_admin'],
          'revoke_session without revoked_by audits no actor and session_user as db_role');
SELECT is((SELECT revoked_by FROM sessrev.sessions WHERE id = :'ac2_id'), 'sectap_admin',
          'revoke_user_sessions without revoked_by records session_user in sessions.revoked_by');
SELECT is(ARRAY(SELECT action || ': ' || coalesce(actor, '(null)') || ' as ' || db_role FROM sessrev.session_audit_log
                 WHERE user_id = 'sectap-actor-2' AND action <> 'SESSION_CREATED' ORDER BY id),
          ARRAY['SESSION_REVOKED: (null) as sectap_admin', 'REVOKE_ALL_USER: (null) as sectap_admin',
                'USER_TOKENS_CUTOFF: (null) as sectap_admin'],
          'revoke_user_sessions without revoked_by audits session_user as db_role of every row');
SELECT is((SELECT revoked_by FROM sessrev.jwt_denylist WHERE jti = 'sectap-jti-actor'), 'sectap_admin',
          'revoke_jwt without revoked_by records session_user in jwt_denylist.revoked_by');
SELECT is(ARRAY(SELECT coalesce(actor, '(null)') || ' as ' || db_role FROM sessrev.session_audit_log
                 WHERE action = 'JWT_REVOKED' AND details ->> 'jti' = 'sectap-jti-actor'),
          ARRAY['(null) as sectap_admin'],
          'revoke_jwt without revoked_by audits no actor and session_user as db_role');

-- The current session is forgotten whenever its validation does not stand.
SELECT session_id AS cs_id, token AS cs_tok FROM sessrev.create_session('sectap-cs') \gset
SELECT count(*) FROM sessrev.validate_session(:'cs_tok') \g /dev/null
SELECT is(sessrev.current_session_id(), :'cs_id'::uuid, 'validate_session makes its session the current one');
SELECT count(*) FROM sessrev.validate_session('sectap-no-such-token') \g /dev/null
SELECT is(sessrev.current_session_id(), NULL,
          'after a successful then a failed validate_session, current_session_id() is NULL');
SELECT is(sessrev.current_user_id(), NULL,
          'after a successful then a failed validate_session, current_user_id() is NULL');
SAVEPOINT a;
SELECT count(*) FROM sessrev.validate_session(:'cs_tok') \g /dev/null
ROLLBACK TO SAVEPOINT a;
RELEASE SAVEPOINT a;
SELECT is(sessrev.current_session_id(), NULL,
          'a validate_session rolled back to a savepoint leaves current_session_id() NULL');
SELECT set_config('sectap.token', :'cs_tok', true) \g /dev/null
DO $$
BEGIN
    PERFORM sessrev.validate_session(current_setting('sectap.token'));
    RAISE EXCEPTION 'sectap: undo';
EXCEPTION WHEN raise_exception THEN
    NULL;
END
$$;
SELECT is(sessrev.current_session_id(), NULL,
          'a validate_session undone by an exception block leaves current_session_id() NULL');

-- Last: the emergency logout revokes every session in the database.
SELECT session_id AS ac3_id FROM sessrev.create_session('sectap-actor-3') \gset
SELECT throws_ok($$SELECT sessrev.revoke_all_sessions(repeat('x', 1025))$$, '22001', NULL,
                 'revoke_all_sessions refuses a reason longer than 1024 bytes');
SELECT is(sessrev.is_revoked(:'ac3_id'::uuid), false, 'the refused emergency logout revoked nothing');
SET SESSION AUTHORIZATION sectap_admin;
SELECT sessrev.revoke_all_sessions() \g /dev/null
RESET SESSION AUTHORIZATION;
SELECT is(sessrev.is_revoked(:'ac3_id'::uuid), true,
          'revoke_all_sessions revokes every earlier session by its cut-off (1.5: no row is touched)');
SELECT is(ARRAY(SELECT action || ': ' || coalesce(actor, '(null)') || ' as ' || db_role FROM sessrev.session_audit_log
                 WHERE (session_id = :'ac3_id' AND action = 'SESSION_REVOKED')
                    OR (action = 'REVOKE_ALL' AND details ->> 'reason' = 'Emergency revocation') ORDER BY id),
          ARRAY['REVOKE_ALL: (null) as sectap_admin'],
          'revoke_all_sessions without revoked_by audits one summary row with session_user as db_role');

SELECT * FROM finish();
ROLLBACK;
