// An application's sessions through sessrev, with node-postgres (pg). The
// server connects as a role with sessrev's backend profile
// (sessrev.grant_backend); the emergency logout, kept from it, goes through an
// operator's pool. Each request runs in one transaction that starts with
// validate_session: the session is current for that transaction only, so a
// pooled connection (PgBouncer, transaction pooling) never carries it to
// another client.

// Runs fn(client, session) in a transaction that validated token; session is
// null (and fn is not called) when the token has no live session.
export async function withSession(pool, token, fn) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query(
      'SELECT session_id, user_id, expires_at FROM sessrev.validate_session($1)', [token]);
    if (rows.length === 0) {
      await client.query('ROLLBACK');
      return null;
    }
    const result = fn ? await fn(client, rows[0]) : rows[0];
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

// Log in (after the password was checked): the token goes to the client.
export async function login(pool, userId, { ip, userAgent } = {}) {
  const { rows } = await pool.query(
    'SELECT session_id, token FROM sessrev.create_session($1, ip_address => $2, user_agent => $3)',
    [userId, ip ?? null, userAgent ?? null]);
  return { sessionId: rows[0].session_id, token: rows[0].token };
}

// Each request: who is this? (null: answer 401)
export async function authenticate(pool, token) {
  const session = await withSession(pool, token);
  return session ? session.user_id : null;
}

// "Where you're signed in".
export function mySessions(pool, token) {
  return withSession(pool, token, async (client) =>
    (await client.query(
      'SELECT id, device_info, host(ip_address) AS ip, last_active_at, is_current FROM sessrev.my_sessions()')).rows);
}

// The user's own security history.
export function mySecurityEvents(pool, token) {
  return withSession(pool, token, async (client) =>
    (await client.query('SELECT occurred_at, action, device_info, host(ip_address) AS ip, reason FROM sessrev.my_security_events(50)')).rows);
}

// Revoke one of my other devices (false for an id that is not mine).
export function revokeMySession(pool, token, sessionId) {
  return withSession(pool, token, async (client) =>
    (await client.query('SELECT sessrev.revoke_my_session($1) AS revoked', [sessionId])).rows[0].revoked);
}

// "Sign out other devices".
export function signOutOtherDevices(pool, token) {
  return withSession(pool, token, async (client) =>
    (await client.query('SELECT sessrev.revoke_my_other_sessions() AS n')).rows[0].n);
}

// Log out this device.
export async function logout(pool, token) {
  return (await pool.query('SELECT sessrev.revoke_token($1) AS revoked', [token])).rows[0].revoked;
}

// "Log out everywhere": every session of the user, this one included, and
// the user's JWTs issued before now.
export function logoutEverywhere(pool, token) {
  return withSession(pool, token, async (client, session) =>
    (await client.query("SELECT sessrev.revoke_user_sessions($1, 'Logged out everywhere', $1) AS n",
      [session.user_id])).rows[0].n);
}

// An administrator forces a user out.
export async function forceLogout(pool, userId, admin) {
  return (await pool.query("SELECT sessrev.revoke_user_sessions($1, 'Forced logout', $2) AS n",
    [userId, admin])).rows[0].n;
}

// Emergency: everyone, every session and JWT issued before now (operators only).
export async function emergencyLogout(adminPool, reason, admin) {
  await adminPool.query('SELECT sessrev.revoke_all_sessions($1, $2)', [reason, admin]);
}

// A password change in the request that validated the session: the users
// table is tracked (sessrev.track_user_table), so the database revokes the
// user's other sessions in this same transaction and keeps this one.
export function changePassword(pool, token, newHash) {
  return withSession(pool, token, async (client, session) =>
    (await client.query('UPDATE app.users SET password_hash = $2 WHERE id = $1', [session.user_id, newHash])).rowCount);
}

// JWTs: the iat to issue a token with, a revocation, and the check.
export async function jwtIssuedAt(pool, userId) {
  return Number((await pool.query('SELECT sessrev.jwt_issued_at($1) AS iat', [userId])).rows[0].iat);
}

export async function revokeJwt(pool, jti, exp, userId, reason) {
  return (await pool.query('SELECT sessrev.revoke_jwt($1, to_timestamp($2), $3, $4) AS revoked',
    [jti, exp, userId, reason])).rows[0].revoked;
}

export async function revokeUserTokens(pool, userId) {
  await pool.query('SELECT sessrev.revoke_user_tokens_before($1)', [userId]);
}

export async function isJwtRevoked(pool, { jti, sub, iat }) {
  return (await pool.query('SELECT sessrev.is_jwt_revoked($1, $2, to_timestamp($3)) AS revoked',
    [jti, sub, iat])).rows[0].revoked;
}
