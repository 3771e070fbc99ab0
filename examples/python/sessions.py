"""An application's sessions through sessrev, with psycopg 3.

The server connects as a role with sessrev's backend profile
(sessrev.grant_backend); the emergency logout, kept from it, goes through an
operator's connection. Each request runs in one transaction that starts with
validate_session: the session is current for that transaction only, so a
pooled connection (PgBouncer, transaction pooling) never carries it to another
client.
"""
from contextlib import contextmanager


@contextmanager
def session(conn, token):
    """A transaction that validated token: yields the session's row as
    (session_id, user_id, expires_at), or None when the token has no live
    session (then nothing else runs in it)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT session_id, user_id, expires_at FROM sessrev.validate_session(%s)", (token,)).fetchone()
        yield row


def login(conn, user_id, ip=None, user_agent=None):
    """Log in (after the password was checked): (session_id, token)."""
    return conn.execute(
        "SELECT session_id, token FROM sessrev.create_session(%s, ip_address => %s, user_agent => %s)",
        (user_id, ip, user_agent)).fetchone()


def authenticate(conn, token):
    """Each request: who is this? None: answer 401."""
    with session(conn, token) as s:
        return s[1] if s else None


def my_sessions(conn, token):
    with session(conn, token) as s:
        if not s:
            return None
        return conn.execute(
            "SELECT id, device_info, host(ip_address), last_active_at, is_current FROM sessrev.my_sessions()").fetchall()


def my_security_events(conn, token):
    with session(conn, token) as s:
        if not s:
            return None
        return conn.execute(
            "SELECT occurred_at, action, device_info, host(ip_address), reason FROM sessrev.my_security_events(50)").fetchall()


def revoke_my_session(conn, token, session_id):
    with session(conn, token) as s:
        return s and conn.execute("SELECT sessrev.revoke_my_session(%s)", (session_id,)).fetchone()[0]


def sign_out_other_devices(conn, token):
    with session(conn, token) as s:
        return s and conn.execute("SELECT sessrev.revoke_my_other_sessions()").fetchone()[0]


def logout(conn, token):
    return conn.execute("SELECT sessrev.revoke_token(%s)", (token,)).fetchone()[0]


def logout_everywhere(conn, token):
    """Every session of the user, this one included, and their JWTs issued before now."""
    with session(conn, token) as s:
        return s and conn.execute(
            "SELECT sessrev.revoke_user_sessions(%s, 'Logged out everywhere', %s)", (s[1], s[1])).fetchone()[0]


def force_logout(conn, user_id, admin):
    return conn.execute("SELECT sessrev.revoke_user_sessions(%s, 'Forced logout', %s)", (user_id, admin)).fetchone()[0]


def emergency_logout(admin_conn, reason, admin):
    """Everyone: every session and JWT issued before now (operators only)."""
    admin_conn.execute("SELECT sessrev.revoke_all_sessions(%s, %s)", (reason, admin))


def change_password(conn, token, new_hash):
    """In the request that validated the session: the tracked users table
    makes the database revoke the user's other sessions in this transaction."""
    with session(conn, token) as s:
        return s and conn.execute(
            "UPDATE app.users SET password_hash = %s WHERE id = %s", (new_hash, s[1])).rowcount


def jwt_issued_at(conn, user_id):
    return int(conn.execute("SELECT sessrev.jwt_issued_at(%s)", (user_id,)).fetchone()[0])


def revoke_jwt(conn, jti, exp, user_id, reason):
    return conn.execute("SELECT sessrev.revoke_jwt(%s, to_timestamp(%s), %s, %s)",
                        (jti, exp, user_id, reason)).fetchone()[0]


def revoke_user_tokens(conn, user_id):
    conn.execute("SELECT sessrev.revoke_user_tokens_before(%s)", (user_id,))


def is_jwt_revoked(conn, jti, sub, iat):
    return conn.execute("SELECT sessrev.is_jwt_revoked(%s, %s, to_timestamp(%s))", (jti, sub, iat)).fetchone()[0]
