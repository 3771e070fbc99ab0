// A reference web console on sessrev: an end user's sessions page (each device
// with its browser, OS, IP and last activity, a Revoke button per device,
// "sign out other devices", the account's security history) and an
// administrator's page (find a user, force logout, emergency logout with
// confirmation, the audit trail). Node's http module and pg only; each pool
// connects as a role of one grant profile:
//   DATABASE_URL  backend  (sessrev.grant_backend): log in, find a user, force logout
//   WEB_URL       end user (sessrev.grant_end_user): everything a signed-in user does
//   AUDIT_URL     auditor  (sessrev.grant_auditor): the audit trail
//   ADMIN_URL     operator (EXECUTE on revoke_all_sessions): emergency logout
// The session token lives in an HttpOnly, SameSite=Strict cookie (which is
// also what keeps other sites from posting these forms).
import http from 'node:http';
import crypto from 'node:crypto';
import pg from 'pg';
import { withSession } from '../sessions.js';

const backend = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const web = new pg.Pool({ connectionString: process.env.WEB_URL });
const audit = new pg.Pool({ connectionString: process.env.AUDIT_URL });
const ops = new pg.Pool({ connectionString: process.env.ADMIN_URL, max: 1 });

const passwordHash = (password) => crypto.createHash('sha256').update(password).digest('hex');
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const time = (t) => (t ? new Date(t).toISOString().replace('T', ' ').slice(0, 19) : '');

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}
td,th{border-bottom:1px solid #ddd;padding:.4em .8em;text-align:left}th{background:#f4f4f4}
.current{font-weight:bold}form.inline{display:inline}button{cursor:pointer}.danger{background:#c0392b;color:#fff;border:0;padding:.5em 1em}
</style></head><body>${body}</body></html>`;
}

function tokenOf(req) {
  const m = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie || '');
  return m ? decodeURIComponent(m[1]) : null;
}

async function formOf(req) {
  let data = '';
  for await (const chunk of req) data += chunk;
  return Object.fromEntries(new URLSearchParams(data));
}

// Runs fn(client, session) as the end-user role in a transaction that
// validated the request's token; null when it has no live session.
function asUser(req, fn) {
  const token = tokenOf(req);
  return token ? withSession(web, token, fn) : null;
}

const routes = {
  'GET /login': async () => ({ html: page('Sign in', `<h1>Sign in</h1><form method="post" action="/login">
    <label>User <input name="user" id="user"></label> <label>Password <input name="password" id="password" type="password"></label>
    <button id="sign-in">Sign in</button></form>`) }),

  'POST /login': async (req) => {
    const f = await formOf(req);
    const { rows } = await backend.query('SELECT id FROM app.users WHERE id = $1 AND password_hash = $2',
      [f.user, passwordHash(f.password || '')]);
    if (!rows.length) return { status: 401, html: page('Sign in', '<p>Wrong user or password. <a href="/login">Again</a></p>') };
    const ip = (req.socket.remoteAddress || '').replace(/^::ffff:/, '');
    const s = (await backend.query(
      'SELECT token FROM sessrev.create_session($1, ip_address => $2, user_agent => $3)',
      [f.user, ip, req.headers['user-agent'] || null])).rows[0];
    return { redirect: '/sessions', cookie: `sid=${encodeURIComponent(s.token)}; HttpOnly; SameSite=Strict; Path=/` };
  },

  'POST /logout': async (req) => {
    const token = tokenOf(req);
    if (token) await web.query('SELECT sessrev.revoke_token($1)', [token]);
    return { redirect: '/login', cookie: 'sid=; Max-Age=0; Path=/' };
  },

  'GET /sessions': (req) => asUser(req, async (c, s) => {
    const sessions = (await c.query(`SELECT id, device_info, host(ip_address) AS ip, last_active_at, created_at, is_current
                                      FROM sessrev.my_sessions()`)).rows;
    const events = (await c.query(`SELECT occurred_at, action, device_info, host(ip_address) AS ip, reason
                                    FROM sessrev.my_security_events(20)`)).rows;
    const rows = sessions.map((x) => `<tr class="${x.is_current ? 'current' : ''}" data-session="${esc(x.id)}">
      <td>${esc(x.device_info)}${x.is_current ? ' (this device)' : ''}</td><td>${esc(x.ip)}</td>
      <td>${time(x.last_active_at)}</td><td>${time(x.created_at)}</td>
      <td>${x.is_current ? '' : `<form class="inline" method="post" action="/sessions/revoke">
        <input type="hidden" name="id" value="${esc(x.id)}"><button class="revoke">Revoke</button></form>`}</td></tr>`).join('');
    const history = events.map((e) => `<tr><td>${time(e.occurred_at)}</td><td>${esc(e.action)}</td><td>${esc(e.device_info)}</td>
      <td>${esc(e.ip)}</td><td>${esc(e.reason)}</td></tr>`).join('');
    return { html: page('Your sessions', `<h1>Signed in as ${esc(s.user_id)}</h1>
      <h2>Where you're signed in</h2><table id="sessions"><tr><th>Device</th><th>IP</th><th>Last activity</th><th>Signed in</th><th></th></tr>${rows}</table>
      <form class="inline" method="post" action="/sessions/others"><button id="sign-out-others">Sign out other devices</button></form>
      <form class="inline" method="post" action="/logout"><button id="logout">Log out</button></form>
      <h2>Security history</h2><table id="history"><tr><th>When</th><th>What</th><th>Device</th><th>IP</th><th>Reason</th></tr>${history}</table>`) };
  }),

  'POST /sessions/revoke': async (req) => {
    const f = await formOf(req);
    return asUser(req, async (c) => {
      await c.query('SELECT sessrev.revoke_my_session($1)', [f.id]);
      return { redirect: '/sessions' };
    });
  },

  'POST /sessions/others': (req) => asUser(req, async (c) => {
    await c.query('SELECT sessrev.revoke_my_other_sessions()');
    return { redirect: '/sessions' };
  }),

  // Administrators: a user whose app.users row says so, signed in as usual.
  'GET /admin': (req, url) => asAdmin(req, async (admin) => {
    const user = url.searchParams.get('user') || '';
    let found = '';
    if (user) {
      const sessions = (await backend.query(
        'SELECT device_info, host(ip_address) AS ip, last_active_at FROM sessrev.user_sessions($1)', [user])).rows;
      const trail = (await audit.query(
        `SELECT created_at, action, actor, details ->> 'reason' AS reason, host(ip_address) AS ip
           FROM sessrev.session_audit_log WHERE user_id = $1 ORDER BY id DESC LIMIT 50`, [user])).rows;
      found = `<h2>${esc(user)}: ${sessions.length} live session(s)</h2>
        <table id="user-sessions"><tr><th>Device</th><th>IP</th><th>Last activity</th></tr>${sessions.map((x) =>
          `<tr><td>${esc(x.device_info)}</td><td>${esc(x.ip)}</td><td>${time(x.last_active_at)}</td></tr>`).join('')}</table>
        <form method="post" action="/admin/force"><input type="hidden" name="user" value="${esc(user)}">
          <button id="force-logout">Force logout of ${esc(user)}</button></form>
        <h2>Audit trail</h2><table id="audit"><tr><th>When</th><th>Action</th><th>Actor</th><th>Reason</th><th>IP</th></tr>${trail.map((e) =>
          `<tr><td>${time(e.created_at)}</td><td>${esc(e.action)}</td><td>${esc(e.actor)}</td><td>${esc(e.reason)}</td><td>${esc(e.ip)}</td></tr>`).join('')}</table>`;
    }
    return { html: page('Administration', `<h1>Administration (${esc(admin)})</h1>
      <form method="get" action="/admin"><label>Find a user <input name="user" id="find" value="${esc(user)}"></label> <button id="find-user">Find</button></form>
      ${found}
      <h2>Emergency</h2><form method="get" action="/admin/emergency"><button id="emergency" class="danger">Emergency logout of everyone…</button></form>`) };
  }),

  // The emergency logout asks first, on a page of its own.
  'GET /admin/emergency': (req) => asAdmin(req, async () => ({ html: page('Emergency logout', `<h1>Log out every user on every device?</h1>
      <p>Every session and every JWT issued before now stops working at once, yours included.</p>
      <form method="post" action="/admin/emergency"><input type="hidden" name="confirm" value="yes">
        <button id="confirm-emergency" class="danger">Yes, log out everyone</button></form> <a href="/admin" id="cancel">Cancel</a>`) })),

  'POST /admin/force': async (req) => {
    const f = await formOf(req);
    return asAdmin(req, async (admin) => {
      await backend.query("SELECT sessrev.revoke_user_sessions($1, 'Forced logout', $2)", [f.user, admin]);
      return { redirect: `/admin?user=${encodeURIComponent(f.user)}` };
    });
  },

  'POST /admin/emergency': async (req) => {
    const f = await formOf(req);
    return asAdmin(req, async (admin) => {
      if (f.confirm !== 'yes') return { status: 400, html: page('Emergency', '<p>Not confirmed.</p>') };
      await ops.query("SELECT sessrev.revoke_all_sessions('Emergency logout', $1)", [admin]);
      return { redirect: '/login', cookie: 'sid=; Max-Age=0; Path=/' };
    });
  },
};

async function asAdmin(req, fn) {
  const user = await asUser(req, async (c, s) => s.user_id);
  if (!user) return null;
  const { rows } = await backend.query('SELECT is_admin FROM app.users WHERE id = $1', [user]);
  if (!rows.length || !rows[0].is_admin) return { status: 403, html: page('Forbidden', '<p>Administrators only.</p>') };
  return fn(user);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://console');
  const route = routes[`${req.method} ${url.pathname}`];
  try {
    const out = route ? await route(req, url) : { status: 404, html: page('Not found', '<p>Not found.</p>') };
    if (out === null) {  // no live session: sign in again
      res.writeHead(303, { Location: '/login', 'Set-Cookie': 'sid=; Max-Age=0; Path=/' });
      return res.end();
    }
    const headers = { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' };
    if (out.cookie) headers['Set-Cookie'] = out.cookie;
    if (out.redirect) {
      res.writeHead(303, { ...headers, Location: out.redirect });
      return res.end();
    }
    res.writeHead(out.status || 200, headers);
    res.end(out.html);
  } catch (error) {
    console.error(error);
    res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end('internal error');
  }
});
server.listen(Number(process.env.PORT || 3000), '127.0.0.1', () => console.log(`console on ${server.address().port}`));
