"""The flows of sessions.py against a real server, as the backend role
(DATABASE_URL) and an operator (ADMIN_URL), over several connections at once;
examples/run runs it once directly and once through PgBouncer in transaction
pooling."""
import os
import threading
import unittest

import psycopg

import sessions as s

MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1")


def connect(url):
    # Through PgBouncer in transaction pooling (before 1.21), a server-side
    # prepared statement may be gone at the next execution: psycopg prepares
    # a query after its fifth run unless told not to.
    pooled = os.environ.get("POOLED") == "1"
    return psycopg.connect(url, autocommit=True, prepare_threshold=None if pooled else 5)


class Sessions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.conns = [connect(os.environ["DATABASE_URL"]) for _ in range(4)]
        cls.conn = cls.conns[0]
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        for c in cls.conns:
            c.close()

    def new_user(self):
        Sessions.n += 1
        user = f"py-{os.getpid()}-{Sessions.n}"
        self.conn.execute("INSERT INTO app.users (id, password_hash) VALUES (%s, 'hash-1')", (user,))
        return user

    def test_1_login_validate_list(self):
        user = self.new_user()
        _, token = s.login(self.conn, user, "203.0.113.7", MAC)
        s.login(self.conn, user, "198.51.100.23", IPHONE)
        self.assertEqual(s.authenticate(self.conns[1], token), user)
        self.assertIsNone(s.authenticate(self.conns[1], "not-a-token"))
        rows = s.my_sessions(self.conns[2], token)
        self.assertEqual(sorted((r[1], r[2], r[4]) for r in rows),
                         [("Chrome on macOS", "203.0.113.7", True), ("Safari on iOS", "198.51.100.23", False)])

    def test_2_devices(self):
        user = self.new_user()
        (_, a), (b_id, b), (_, c), (_, d) = [s.login(self.conn, user) for _ in range(4)]
        self.assertTrue(s.revoke_my_session(self.conn, a, b_id))
        self.assertIsNone(s.authenticate(self.conns[1], b))
        self.assertEqual(s.sign_out_other_devices(self.conn, a), 2)
        self.assertIsNone(s.authenticate(self.conns[2], c))
        self.assertIsNone(s.authenticate(self.conns[3], d))
        self.assertEqual(s.authenticate(self.conns[1], a), user)
        self.assertTrue(s.logout(self.conn, a))
        self.assertIsNone(s.authenticate(self.conns[1], a))
        (_, e), (_, f) = s.login(self.conn, user), s.login(self.conn, user)
        self.assertEqual(s.logout_everywhere(self.conn, e), 2)
        self.assertIsNone(s.authenticate(self.conns[1], e))
        self.assertIsNone(s.authenticate(self.conns[2], f))
        actions = [r[1] for r in s.my_security_events(self.conn, s.login(self.conn, user)[1])]
        self.assertIn("SESSION_REVOKED", actions)

    def test_3_password_change(self):
        user = self.new_user()
        (_, a), (_, b) = s.login(self.conn, user), s.login(self.conn, user)
        self.assertEqual(s.change_password(self.conn, a, "hash-2"), 1)
        self.assertEqual(s.authenticate(self.conns[1], a), user)
        self.assertIsNone(s.authenticate(self.conns[2], b))

    def test_4_force_logout(self):
        user = self.new_user()
        _, a = s.login(self.conn, user)
        self.assertEqual(s.force_logout(self.conn, user, "admin@example.com"), 1)
        self.assertIsNone(s.authenticate(self.conns[1], a))

    def test_5_jwt(self):
        user = self.new_user()
        iat = s.jwt_issued_at(self.conn, user)
        self.assertFalse(s.is_jwt_revoked(self.conns[1], f"{user}-j1", user, iat))
        self.assertTrue(s.revoke_jwt(self.conn, f"{user}-j1", iat + 3600, user, "Stolen phone"))
        self.assertTrue(s.is_jwt_revoked(self.conns[1], f"{user}-j1", user, iat))
        self.assertFalse(s.is_jwt_revoked(self.conns[2], f"{user}-j2", user, iat))
        s.revoke_user_tokens(self.conn, user)
        self.assertTrue(s.is_jwt_revoked(self.conns[3], f"{user}-j2", user, iat))
        self.assertFalse(s.is_jwt_revoked(self.conns[1], f"{user}-j3", user, s.jwt_issued_at(self.conn, user)))

    def test_6_no_stale_answer(self):
        checks = stale = 0
        for i in range(100):
            user = self.new_user()
            _, other = s.login(self.conn, user)
            victim_id, victim = s.login(self.conn, user)
            self.assertEqual(s.authenticate(self.conns[1], victim), user)  # cached as live
            if i % 5 == 0:
                s.logout(self.conn, victim)
            elif i % 5 == 1:
                s.revoke_my_session(self.conn, other, victim_id)
            elif i % 5 == 2:
                s.sign_out_other_devices(self.conn, other)
            elif i % 5 == 3:
                s.force_logout(self.conn, user, "admin")
            else:
                s.change_password(self.conn, other, f"hash-{i}")
            for c in self.conns:
                checks += 1
                stale += s.authenticate(c, victim) is not None
        print(f"# {checks} checks after revocations, {stale} stale")
        self.assertEqual(stale, 0)

    def test_7_no_current_session_leak(self):
        user = self.new_user()
        _, token = s.login(self.conn, user)
        leaks = []

        def validate(c):
            for _ in range(100):
                self.assertEqual(s.authenticate(c, token), user)

        def look(c):
            for _ in range(100):
                if c.execute("SELECT sessrev.current_user_id(), sessrev.current_session_id()").fetchone() != (None, None):
                    leaks.append(1)

        threads = [threading.Thread(target=validate, args=(self.conns[i],)) for i in (0, 1)]
        threads += [threading.Thread(target=look, args=(self.conns[i],)) for i in (2, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(leaks, [])

    def test_8_emergency_logout(self):
        user = self.new_user()
        _, a = s.login(self.conn, user)
        with connect(os.environ["ADMIN_URL"]) as admin:
            s.emergency_logout(admin, "Signing key compromised", "security-team")
        self.assertIsNone(s.authenticate(self.conns[1], a))
        _, b = s.login(self.conn, user)
        self.assertEqual(s.authenticate(self.conns[2], b), user)


if __name__ == "__main__":
    unittest.main(verbosity=2)
