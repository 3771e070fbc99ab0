// The flows of examples/node/sessions.js against a real server, as the
// backend role (DATABASE_URL) and an operator (ADMIN_URL); examples/run runs
// it once directly and once through PgBouncer in transaction pooling.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import * as s from './sessions.js';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 8 });
const admin = new pg.Pool({ connectionString: process.env.ADMIN_URL, max: 1 });
after(async () => { await pool.end(); await admin.end(); });

const mac = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36';
const iphone = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1';
let n = 0;
async function newUser() {
  const id = `node-${process.pid}-${++n}`;
  await pool.query('INSERT INTO app.users (id, password_hash) VALUES ($1, $2)', [id, 'hash-1']);
  return id;
}

test('log in with device and IP, validate each request, list my sessions', async () => {
  const user = await newUser();
  const a = await s.login(pool, user, { ip: '203.0.113.7', userAgent: mac });
  await s.login(pool, user, { ip: '198.51.100.23', userAgent: iphone });
  assert.equal(await s.authenticate(pool, a.token), user);
  assert.equal(await s.authenticate(pool, 'not-a-token'), null);
  const sessions = await s.mySessions(pool, a.token);
  assert.deepEqual(sessions.map((x) => [x.device_info, x.ip, x.is_current]).sort(),
    [['Chrome on macOS', '203.0.113.7', true], ['Safari on iOS', '198.51.100.23', false]]);
});

test('revoke one device, sign out other devices, log out, log out everywhere', async () => {
  const user = await newUser();
  const [a, b, c, d] = [await s.login(pool, user), await s.login(pool, user), await s.login(pool, user), await s.login(pool, user)];
  assert.equal(await s.revokeMySession(pool, a.token, b.sessionId), true);
  assert.equal(await s.authenticate(pool, b.token), null);
  assert.equal(await s.signOutOtherDevices(pool, a.token), 2);
  assert.equal(await s.authenticate(pool, c.token), null);
  assert.equal(await s.authenticate(pool, d.token), null);
  assert.equal(await s.authenticate(pool, a.token), user);
  assert.equal(await s.logout(pool, a.token), true);
  assert.equal(await s.authenticate(pool, a.token), null);
  const e = await s.login(pool, user);
  const f = await s.login(pool, user);
  assert.equal(await s.logoutEverywhere(pool, e.token), 2);
  assert.equal(await s.authenticate(pool, e.token), null);
  assert.equal(await s.authenticate(pool, f.token), null);
  const events = (await s.mySecurityEvents(pool, (await s.login(pool, user)).token)).map((x) => x.action);
  assert.ok(events.includes('SESSION_CREATED') && events.includes('SESSION_REVOKED'), events.join());
});

test('a password change keeps this session and revokes the others (track_user_table)', async () => {
  const user = await newUser();
  const a = await s.login(pool, user);
  const b = await s.login(pool, user);
  assert.equal(await s.changePassword(pool, a.token, 'hash-2'), 1);
  assert.equal(await s.authenticate(pool, a.token), user);
  assert.equal(await s.authenticate(pool, b.token), null);
});

test('an administrator forces a user out', async () => {
  const user = await newUser();
  const a = await s.login(pool, user);
  assert.equal(await s.forceLogout(pool, user, 'admin@example.com'), 1);
  assert.equal(await s.authenticate(pool, a.token), null);
});

test('JWTs: revoke one, cut off a user, issue with jwt_issued_at', async () => {
  const user = await newUser();
  const iat = await s.jwtIssuedAt(pool, user);
  const exp = iat + 3600;
  assert.equal(await s.isJwtRevoked(pool, { jti: `${user}-j1`, sub: user, iat }), false);
  assert.equal(await s.revokeJwt(pool, `${user}-j1`, exp, user, 'Stolen phone'), true);
  assert.equal(await s.isJwtRevoked(pool, { jti: `${user}-j1`, sub: user, iat }), true);
  assert.equal(await s.isJwtRevoked(pool, { jti: `${user}-j2`, sub: user, iat }), false);
  await s.revokeUserTokens(pool, user);
  assert.equal(await s.isJwtRevoked(pool, { jti: `${user}-j2`, sub: user, iat }), true);
  const reissued = await s.jwtIssuedAt(pool, user);
  assert.equal(await s.isJwtRevoked(pool, { jti: `${user}-j3`, sub: user, iat: reissued }), false);
});

test('0 stale answers: every revocation is refused by the next request on every pooled connection', async () => {
  let checks = 0;
  let stale = 0;
  for (let i = 0; i < 100; i++) {
    const user = await newUser();
    const other = await s.login(pool, user);
    const victim = await s.login(pool, user);
    assert.equal(await s.authenticate(pool, victim.token), user);   // cached as live
    switch (i % 5) {
      case 0: await s.logout(pool, victim.token); break;
      case 1: await s.revokeMySession(pool, other.token, victim.sessionId); break;
      case 2: await s.signOutOtherDevices(pool, other.token); break;
      case 3: await s.forceLogout(pool, user, 'admin'); break;
      default: await s.changePassword(pool, other.token, `hash-${i}`);
    }
    const answers = await Promise.all(Array.from({ length: 8 }, () => s.authenticate(pool, victim.token)));
    checks += answers.length;
    stale += answers.filter((a) => a !== null).length;
  }
  console.log(`# ${checks} checks after revocations, ${stale} stale`);
  assert.equal(stale, 0);
});

test('no current session leaks from one pooled client to another', async () => {
  const user = await newUser();
  const { token } = await s.login(pool, user);
  let leaks = 0;
  await Promise.all(Array.from({ length: 400 }, async (_, i) => {
    if (i % 2 === 0) {
      assert.equal(await s.authenticate(pool, token), user);
    } else {
      const { rows } = await pool.query('SELECT sessrev.current_user_id() AS u, sessrev.current_session_id() AS s');
      if (rows[0].u !== null || rows[0].s !== null) leaks++;
    }
  }));
  assert.equal(leaks, 0);
});

test('emergency logout: every earlier session refused, a new login works', async () => {
  const user = await newUser();
  const a = await s.login(pool, user);
  await s.emergencyLogout(admin, 'Signing key compromised', 'security-team');
  assert.equal(await s.authenticate(pool, a.token), null);
  const b = await s.login(pool, user);
  assert.equal(await s.authenticate(pool, b.token), user);
});
