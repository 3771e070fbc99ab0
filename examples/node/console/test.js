// The console (server.js) in a real browser: headless Chromium (Debian's,
// CHROMIUM) driven by puppeteer-core. Two browser contexts sign in as the same
// user; one revokes the other, whose next request is refused; "sign out other
// devices"; an administrator finds the user, sees the audit trail, forces a
// logout, and confirms (on a page of its own) an emergency logout that
// refuses everyone. With
// SCREENSHOTS set, saves the pages there (docs/console-*.png).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const port = Number(process.env.CONSOLE_PORT || 3077);
const base = `http://127.0.0.1:${port}`;
const mac = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36';
const iphone = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1';
const alice = `alice-${process.pid}`;
const admin = `admin-${process.pid}`;
let server;
let browser;

before(async () => {
  const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
  await db.query(`INSERT INTO app.users (id, password_hash, is_admin) VALUES
    ($1, encode(sha256('alice-pw'), 'hex'), false), ($2, encode(sha256('admin-pw'), 'hex'), true)`, [alice, admin]);
  await db.end();
  server = spawn(process.execPath, [path.join(here, 'server.js')], {
    env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => server.stdout.once('data', resolve));
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function signIn(userAgent, user, password) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setUserAgent(userAgent);
  await page.setViewport({ width: 1000, height: 700 });
  await page.goto(`${base}/login`);
  await page.type('#user', user);
  await page.type('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('#sign-in')]);
  return page;
}

// Whether the page's next request is served signed in (else the console
// sends it to the sign-in page).
async function signedIn(page) {
  await page.goto(`${base}/sessions`);
  return new URL(page.url()).pathname === '/sessions';
}

async function shot(page, name) {
  if (process.env.SCREENSHOTS) await page.screenshot({ path: path.join(process.env.SCREENSHOTS, `console-${name}.png`), fullPage: true });
}

test('two devices: one revokes the other, whose next request is refused', async () => {
  const laptop = await signIn(mac, alice, 'alice-pw');
  const phone = await signIn(iphone, alice, 'alice-pw');
  await laptop.reload();
  const devices = await laptop.$$eval('#sessions tr[data-session] td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(devices.sort(), ['Chrome on macOS (this device)', 'Safari on iOS']);
  assert.equal(await laptop.$$eval('#sessions tr[data-session] td:nth-child(2)', (tds) => tds[0].textContent), '127.0.0.1');
  await shot(laptop, 'sessions');
  await Promise.all([laptop.waitForNavigation(), laptop.click('#sessions tr:not(.current) button.revoke')]);
  assert.equal(await signedIn(phone), false, 'the revoked device is signed out at its next request');
  assert.equal(await signedIn(laptop), true, 'the device that revoked it is not');
  const history = await laptop.$eval('#history', (t) => t.textContent);
  assert.match(history, /SESSION_REVOKED/);
});

test('sign out other devices', async () => {
  const laptop = await signIn(mac, alice, 'alice-pw');
  const phone = await signIn(iphone, alice, 'alice-pw');
  await Promise.all([laptop.waitForNavigation(), laptop.click('#sign-out-others')]);
  assert.equal(await signedIn(phone), false);
  assert.equal(await signedIn(laptop), true);
  assert.equal(await laptop.$$eval('#sessions tr[data-session]', (rows) => rows.length), 1);
});

test('an administrator finds the user, reads the audit trail and forces a logout', async () => {
  const laptop = await signIn(mac, alice, 'alice-pw');
  const adminPage = await signIn(mac, admin, 'admin-pw');
  await adminPage.goto(`${base}/admin`);
  await adminPage.type('#find', alice);
  await Promise.all([adminPage.waitForNavigation(), adminPage.click('#find-user')]);
  const trail = await adminPage.$eval('#audit', (t) => t.textContent);
  assert.match(trail, /SESSION_CREATED/);
  assert.match(trail, /SESSION_REVOKED/);
  await shot(adminPage, 'admin');
  await Promise.all([adminPage.waitForNavigation(), adminPage.click('#force-logout')]);
  assert.equal(await signedIn(laptop), false, 'the forced-out user is refused at the next request');
  assert.match(await adminPage.$eval('#audit', (t) => t.textContent), /Forced logout/);
  assert.match(await adminPage.$eval('h2', (h) => h.textContent), /0 live session/);
});

test('an emergency logout, confirmed, refuses everyone', async () => {
  const laptop = await signIn(mac, alice, 'alice-pw');
  const adminPage = await signIn(mac, admin, 'admin-pw');
  await adminPage.goto(`${base}/admin`);
  await Promise.all([adminPage.waitForNavigation(), adminPage.click('#emergency')]);
  assert.match(await adminPage.$eval('h1', (h) => h.textContent), /Log out every user on every device\?/);
  assert.equal(await signedIn(laptop), true, 'asking changes nothing');
  await shot(adminPage, 'emergency');
  await Promise.all([adminPage.waitForNavigation(), adminPage.click('#confirm-emergency')]);
  assert.equal(await signedIn(laptop), false);
  assert.equal(await signedIn(adminPage), false, 'the administrator too');
  const again = await signIn(mac, alice, 'alice-pw');
  assert.equal(await signedIn(again), true, 'signing in again works');
});
