// Self-test for the Okta Management API emulator: node --test e2e/okta-api/test.mjs
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const TOKEN = 'secret-ssws-token';
let proc;
let base;

async function start(args) {
  const child = spawn(process.execPath, [path.join(here, 'server.js'), '--port', '0', '--token', TOKEN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const rl = createInterface({ input: child.stdout });
  const line = await new Promise((resolve, reject) => {
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  const ready = JSON.parse(line);
  assert.equal(ready.ready, true);
  assert.ok(ready.port > 0);
  return { child, base: `http://127.0.0.1:${ready.port}`, ready };
}

before(async () => {
  ({ child: proc, base } = await start([]));
});
after(() => proc.kill());

const auth = { Authorization: `SSWS ${TOKEN}` };
const api = (p, headers = auth) => fetch(p.startsWith('http') ? p : base + p, { headers });
async function ctl(method, p, body) {
  const r = await fetch(base + p, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const j = await r.json();
  assert.equal(r.status, 200, `${method} ${p}: ${JSON.stringify(j)}`);
  return j;
}
function nextLink(res) {
  // fetch joins repeated Link headers with ", ".
  const m = (res.headers.get('link') || '').match(/<([^>]+)>;\s*rel="next"/);
  return m ? m[1] : null;
}
async function collect(first) {
  let url = first;
  const items = [];
  let pages = 0;
  while (url) {
    const r = await api(url);
    assert.equal(r.status, 200, url);
    items.push(...(await r.json()));
    pages++;
    url = nextLink(r);
  }
  return { items, pages };
}

// A small fixed directory.
const SMALL = {
  users: [
    { id: '00ualice000000000001', profile: { login: 'alice@example.com', firstName: 'Alice', lastName: 'A' }, lastUpdated: '2024-01-01T00:00:00.000Z' },
    { id: '00ubob00000000000002', profile: { login: 'bob@example.com', firstName: 'Bob', lastName: 'B' }, lastUpdated: '2024-01-02T00:00:00.000Z' },
    { id: '00ucarol000000000003', status: 'SUSPENDED', profile: { login: 'carol@example.com' }, lastUpdated: '2024-01-03T00:00:00.000Z' },
    { id: '00udave0000000000004', status: 'DEPROVISIONED', profile: { login: 'dave@example.com' }, lastUpdated: '2024-01-04T00:00:00.000Z' },
    { id: '00ueve00000000000005', status: 'STAGED', profile: { login: 'eve@example.com' }, lastUpdated: '2024-01-05T00:00:00.000Z' },
  ],
  groups: [
    { id: '00geveryone000000000', type: 'BUILT_IN', profile: { name: 'Everyone' }, members: ['alice@example.com', 'bob@example.com', 'carol@example.com', 'dave@example.com', 'eve@example.com'], lastUpdated: '2024-01-01T00:00:00.000Z', lastMembershipUpdated: '2024-01-01T00:00:00.000Z' },
    { id: '00gadmins00000000000', profile: { name: 'admins', description: 'Admins' }, members: ['alice@example.com', 'dave@example.com'], lastUpdated: '2024-01-01T00:00:00.000Z', lastMembershipUpdated: '2024-01-01T00:00:00.000Z' },
    { id: '00gdevs0000000000000', profile: { name: 'devs' }, members: ['00ubob00000000000002', 'alice@example.com', 'carol@example.com'], lastUpdated: '2024-01-01T00:00:00.000Z', lastMembershipUpdated: '2024-01-01T00:00:00.000Z' },
    { id: '00gappgrp00000000000', type: 'APP_GROUP', profile: { name: 'ad-sales' }, members: [], lastUpdated: '2024-01-01T00:00:00.000Z', lastMembershipUpdated: '2024-01-01T00:00:00.000Z' },
  ],
};

beforeEach(async () => {
  await ctl('POST', '/__test/reset');
  await ctl('POST', '/__test/rate-limits', { reset: true, windowSeconds: 60, enabled: true });
  await ctl('PUT', '/__test/data', SMALL);
});

test('paging over several pages visits every non-deprovisioned user exactly once', async () => {
  const gen = await ctl('POST', '/__test/generate', { users: 450, groups: 3, seed: 7, deprovisioned: 10, suspended: 5 });
  assert.equal(gen.users, 450);
  const first = await api('/api/v1/users?limit=200');
  const links = first.headers.get('link');
  assert.match(links, new RegExp(`<${base}/api/v1/users\\?limit=200>; rel="self"`));
  assert.match(links, new RegExp(`<${base}/api/v1/users\\?limit=200&after=[^>]+>; rel="next"`));
  const { items, pages } = await collect('/api/v1/users?limit=200');
  assert.equal(pages, 3);
  assert.equal(items.length, 440);
  assert.equal(new Set(items.map((u) => u.id)).size, 440);
  assert.ok(items.every((u) => u.status !== 'DEPROVISIONED'));
  assert.ok(items.every((u) => /^00u[0-9A-Za-z]{17}$/.test(u.id)));
  // Limit above the max is capped at 200; no limit means 200.
  assert.equal((await (await api('/api/v1/users?limit=5000')).json()).length, 200);
  assert.equal((await (await api('/api/v1/users')).json()).length, 200);
  // Exactly full last page: no rel="next" on it.
  const exact = await collect('/api/v1/users?limit=110');
  assert.equal(exact.pages, 4);
  assert.equal(exact.items.length, 440);
  // Absolute links use the request's Host header.
  // (fetch won't override Host, so use node:http.)
  const http = await import('node:http');
  const link = await new Promise((resolve, reject) => {
    http.get(`${base}/api/v1/users?limit=100`, { headers: { ...auth, Host: 'acme.okta.example:8443' } }, (r) => {
      r.resume();
      resolve(r.headers.link);
    }).on('error', reject);
  });
  // node:http hands repeated Link headers over joined with ", ".
  assert.match(link, /<http:\/\/acme\.okta\.example:8443\/api\/v1\/users\?limit=100&after=[^>]+>; rel="next"/);
  // Garbage cursor -> 400.
  assert.equal((await api('/api/v1/users?after=nonsense')).status, 400);
});

test('paging is stable while users are added', async () => {
  const r1 = await api('/api/v1/users?limit=2');
  const page1 = await r1.json();
  await ctl('POST', '/__test/users', { id: '00u00000000000000000', profile: { login: 'zed@example.com' } }); // sorts first
  const { items } = await collect(nextLink(r1));
  const ids = [...page1, ...items].map((u) => u.id);
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual(ids, ['00ualice000000000001', '00ubob00000000000002', '00ucarol000000000003', '00ueve00000000000005']);
});

test('user objects follow Okta shapes', async () => {
  const [u] = await (await api('/api/v1/users?limit=1')).json();
  for (const k of ['id', 'status', 'created', 'activated', 'statusChanged', 'lastLogin', 'lastUpdated', 'passwordChanged', 'profile', 'credentials', '_links']) {
    assert.ok(k in u, k);
  }
  assert.equal(u.profile.login, 'alice@example.com');
  assert.equal(u.profile.email, 'alice@example.com');
  assert.equal(u._links.self.href, `${base}/api/v1/users/${u.id}`);
  const byLogin = await (await api('/api/v1/users/alice@example.com')).json();
  assert.equal(byLogin.id, u.id);
  assert.equal((await api('/api/v1/users/nobody')).status, 404);
});

test('default list excludes DEPROVISIONED; filters and search', async () => {
  const all = (await collect('/api/v1/users')).items.map((u) => u.profile.login);
  assert.deepEqual(all, ['alice@example.com', 'bob@example.com', 'carol@example.com', 'eve@example.com']);

  const q = async (kind, expr) => (await collect(`/api/v1/users?${kind}=${encodeURIComponent(expr)}`)).items.map((u) => u.profile.login);
  assert.deepEqual(await q('filter', 'status eq "DEPROVISIONED"'), ['dave@example.com']);
  assert.deepEqual(await q('filter', 'status eq "ACTIVE"'), ['alice@example.com', 'bob@example.com']);
  assert.deepEqual(await q('filter', 'status eq "SUSPENDED" or status eq "DEPROVISIONED"'), ['carol@example.com', 'dave@example.com']);
  // lastUpdated filter without status: DEPROVISIONED users are not returned.
  assert.deepEqual(await q('filter', 'lastUpdated gt "2024-01-02T00:00:00.000Z"'), ['carol@example.com', 'eve@example.com']);
  assert.deepEqual(await q('filter', 'lastUpdated ge "2024-01-02T00:00:00.000Z" and status eq "ACTIVE"'), ['bob@example.com']);
  assert.deepEqual(await q('filter', '(status eq "DEPROVISIONED" or status eq "STAGED") and lastUpdated gt "2024-01-01T00:00:00.000Z"'), ['dave@example.com', 'eve@example.com']);
  assert.deepEqual(await q('filter', 'profile.login eq "BOB@example.com"'), ['bob@example.com']);
  // search: any property, and DEPROVISIONED users match like any other.
  assert.deepEqual(await q('search', 'lastUpdated gt "2024-01-03T00:00:00.000Z"'), ['dave@example.com', 'eve@example.com']);
  assert.deepEqual(await q('search', 'profile.firstName sw "Al"'), ['alice@example.com']);

  // A change moves lastUpdated past the watermark.
  const watermark = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  const changed = await ctl('PATCH', '/__test/users/bob@example.com', { profile: { lastName: 'Builder' } });
  assert.ok(changed.lastUpdated > watermark);
  assert.deepEqual(await q('filter', `lastUpdated gt "${watermark}"`), ['bob@example.com']);
  // Deactivation: gone from the default list and from a plain lastUpdated filter,
  // visible with an explicit status clause or through search.
  const w2 = changed.lastUpdated;
  const deact = await ctl('POST', '/__test/users/alice@example.com/deactivate');
  assert.equal(deact.status, 'DEPROVISIONED');
  assert.ok(deact.statusChanged > w2);
  assert.deepEqual(await q('filter', `lastUpdated gt "${w2}"`), []);
  assert.deepEqual(await q('filter', `lastUpdated gt "${w2}" and status eq "DEPROVISIONED"`), ['alice@example.com']);
  assert.deepEqual(await q('search', `lastUpdated gt "${w2}"`), ['alice@example.com']);
  assert.ok(!(await collect('/api/v1/users')).items.some((u) => u.profile.login === 'alice@example.com'));

  // Bad expressions -> 400 E0000031.
  for (const bad of ['status eq ACTIVE', 'status eq', 'profile.department eq "x"', 'lastUpdated gt "yesterday"', 'status sw "A"']) {
    const r = await api(`/api/v1/users?filter=${encodeURIComponent(bad)}`);
    assert.equal(r.status, 400, bad);
    assert.equal((await r.json()).errorCode, 'E0000031');
  }
});

test('groups: list, filters, members, membership timestamps', async () => {
  const groups = (await collect('/api/v1/groups')).items;
  assert.equal(groups.length, 4);
  const admins = groups.find((g) => g.profile.name === 'admins');
  assert.equal(admins.type, 'OKTA_GROUP');
  for (const k of ['id', 'created', 'lastUpdated', 'lastMembershipUpdated', 'objectClass', 'type', 'profile', '_links']) assert.ok(k in admins, k);
  assert.equal(admins._links.users.href, `${base}/api/v1/groups/${admins.id}/users`);

  const gq = async (expr) => (await collect(`/api/v1/groups?filter=${encodeURIComponent(expr)}`)).items.map((g) => g.profile.name).sort();
  assert.deepEqual(await gq('type eq "BUILT_IN"'), ['Everyone']);
  assert.deepEqual(await gq('type eq "OKTA_GROUP" or type eq "APP_GROUP"'), ['ad-sales', 'admins', 'devs']);

  // Members include every status (membership survives deactivation).
  const members = (await collect(`/api/v1/groups/${admins.id}/users`)).items.map((u) => u.profile.login);
  assert.deepEqual(members, ['alice@example.com', 'dave@example.com']);
  const everyone = await collect('/api/v1/groups/00geveryone000000000/users?limit=2');
  assert.equal(everyone.pages, 3);
  assert.equal(everyone.items.length, 5);
  assert.equal((await api('/api/v1/groups/00gnope/users')).status, 404);

  // Membership change bumps lastMembershipUpdated (not lastUpdated, not the user's lastUpdated).
  const watermark = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  const bobBefore = await (await api('/api/v1/users/bob@example.com')).json();
  const res = await ctl('PUT', '/__test/groups/admins/users/bob@example.com');
  assert.equal(res.changed, true);
  await ctl('DELETE', '/__test/groups/devs/users/carol@example.com');
  assert.deepEqual(await gq(`lastMembershipUpdated gt "${watermark}"`), ['admins', 'devs']);
  assert.deepEqual(await gq(`lastUpdated gt "${watermark}"`), []);
  assert.deepEqual(await gq(`lastUpdated gt "${watermark}" or lastMembershipUpdated gt "${watermark}"`), ['admins', 'devs']);
  const bobAfter = await (await api('/api/v1/users/bob@example.com')).json();
  assert.equal(bobAfter.lastUpdated, bobBefore.lastUpdated);
  const m2 = (await collect(`/api/v1/groups/${admins.id}/users`)).items.map((u) => u.profile.login);
  assert.deepEqual(m2, ['alice@example.com', 'bob@example.com', 'dave@example.com']);
  // Renaming a group bumps lastUpdated.
  await ctl('PATCH', '/__test/groups/devs', { profile: { name: 'developers' } });
  assert.deepEqual(await gq(`lastUpdated gt "${watermark}"`), ['developers']);
  // expand=stats
  const [st] = await (await api(`/api/v1/groups?filter=${encodeURIComponent('type eq "BUILT_IN"')}&expand=stats`)).json();
  assert.equal(st._embedded.stats.usersCount, 5);
  // A user added later joins Everyone.
  await ctl('POST', '/__test/users', { profile: { login: 'new@example.com' } });
  assert.equal((await collect('/api/v1/groups/00geveryone000000000/users')).items.length, 6);
});

test('401 without SSWS token or with a bad one', async () => {
  for (const headers of [{}, { Authorization: 'SSWS wrong' }, { Authorization: `Bearer ${TOKEN}` }, { Authorization: TOKEN }]) {
    const r = await api('/api/v1/users', headers);
    assert.equal(r.status, 401);
    const body = await r.json();
    assert.equal(body.errorCode, 'E0000011');
    assert.equal(body.errorSummary, 'Invalid token provided');
    assert.equal(body.errorLink, 'E0000011');
    assert.match(body.errorId, /^oae/);
    assert.deepEqual(body.errorCauses, []);
  }
  // Token rotation.
  await ctl('POST', '/__test/tokens', { tokens: ['other'] });
  assert.equal((await api('/api/v1/users')).status, 401);
  assert.equal((await api('/api/v1/users', { Authorization: 'SSWS other' })).status, 200);
  await ctl('POST', '/__test/tokens', { tokens: [TOKEN] });
  const stats = await ctl('GET', '/__test/stats');
  assert.equal(stats.unauthorized, 5);
});

test('429 with reset headers, per bucket, then recovery', async () => {
  await ctl('POST', '/__test/rate-limits', { limit: 3, windowSeconds: 2 });
  // Start at the beginning of a fresh window so all 4 calls share one.
  const ms = Date.now() % 2000;
  if (ms > 1500) await new Promise((r) => setTimeout(r, 2000 - ms + 20));
  const rem = [];
  for (let i = 0; i < 3; i++) {
    const r = await api('/api/v1/users');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-rate-limit-limit'), '3');
    rem.push(Number(r.headers.get('x-rate-limit-remaining')));
  }
  assert.deepEqual(rem, [2, 1, 0]);
  const r = await api('/api/v1/users');
  assert.equal(r.status, 429);
  const body = await r.json();
  assert.equal(body.errorCode, 'E0000047');
  assert.equal(body.errorSummary, 'API call exceeded rate limit due to too many requests.');
  assert.equal(r.headers.get('x-rate-limit-remaining'), '0');
  const reset = Number(r.headers.get('x-rate-limit-reset'));
  const now = Date.now() / 1000;
  assert.ok(reset > now && reset <= now + 2.01, `reset ${reset} now ${now}`);
  // Other buckets are independent.
  assert.equal((await api('/api/v1/groups')).status, 200);
  // After the reset time the bucket is open again.
  await new Promise((res) => setTimeout(res, reset * 1000 - Date.now() + 20));
  const ok = await api('/api/v1/users');
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('x-rate-limit-remaining'), '2');

  // Forced 429s: next N requests (optionally one bucket).
  await ctl('POST', '/__test/rate-limits', { reset: true });
  await ctl('POST', '/__test/force-429', { count: 2, bucket: 'members', resetSeconds: 3 });
  assert.equal((await api('/api/v1/users')).status, 200);
  const f1 = await api('/api/v1/groups/00gadmins00000000000/users');
  assert.equal(f1.status, 429);
  const fr = Number(f1.headers.get('x-rate-limit-reset'));
  assert.ok(fr >= Date.now() / 1000 + 2 && fr <= Date.now() / 1000 + 4);
  assert.equal((await api('/api/v1/groups/00gadmins00000000000/users')).status, 429);
  assert.equal((await api('/api/v1/groups/00gadmins00000000000/users')).status, 200);
  const stats = await ctl('GET', '/__test/stats');
  assert.equal(stats.rateLimited, 3);
  assert.equal(stats.endpoints['/api/v1/users'].rateLimited, 1);
  assert.equal(stats.endpoints['/api/v1/groups/{id}/users'].rateLimited, 2);
});

test('rate-limit headers on every response', async () => {
  const r = await api('/api/v1/groups');
  assert.equal(r.headers.get('x-rate-limit-limit'), '500');
  assert.equal(r.headers.get('x-rate-limit-remaining'), '499');
  assert.match(r.headers.get('x-rate-limit-reset'), /^\d{10}$/);
  const u = await api('/api/v1/users');
  assert.equal(u.headers.get('x-rate-limit-limit'), '600');
  const m = await api('/api/v1/groups/00gadmins00000000000/users');
  assert.equal(m.headers.get('x-rate-limit-limit'), '1200');
});

test('down modes: connection reset, 503, count, hang', async () => {
  await ctl('POST', '/__test/down', { mode: 'reset' });
  await assert.rejects(api('/api/v1/users'));
  await assert.rejects(api('/api/v1/groups'));
  // Control endpoints keep working while the API is down.
  await ctl('GET', '/__test/health');
  await ctl('POST', '/__test/down', { mode: '503' });
  const r = await api('/api/v1/users');
  assert.equal(r.status, 503);
  assert.equal((await r.json()).errorCode, 'E0000009');
  await ctl('POST', '/__test/down', { mode: 'off' });
  assert.equal((await api('/api/v1/users')).status, 200);
  // Only the next N requests.
  await ctl('POST', '/__test/down', { mode: '503', count: 2 });
  assert.equal((await api('/api/v1/users')).status, 503);
  assert.equal((await api('/api/v1/users')).status, 503);
  assert.equal((await api('/api/v1/users')).status, 200);
  // hang: no answer; client times out.
  await ctl('POST', '/__test/down', { mode: 'hang', count: 1 });
  await assert.rejects(fetch(base + '/api/v1/users', { headers: auth, signal: AbortSignal.timeout(300) }));
  assert.equal((await api('/api/v1/users')).status, 200);
  const stats = await ctl('GET', '/__test/stats');
  assert.equal(stats.down, 6);
});

test('stats count API calls per endpoint', async () => {
  await ctl('POST', '/__test/stats/reset');
  await collect('/api/v1/users?limit=2'); // 2 pages
  await collect('/api/v1/groups');
  await collect('/api/v1/groups/00geveryone000000000/users?limit=2'); // 3 pages
  await api('/api/v1/users', {});
  const s = await ctl('GET', '/__test/stats');
  assert.equal(s.total, 7);
  assert.equal(s.endpoints['/api/v1/users'].calls, 3);
  assert.equal(s.endpoints['/api/v1/users'].ok, 2);
  assert.equal(s.endpoints['/api/v1/users'].unauthorized, 1);
  assert.equal(s.endpoints['/api/v1/groups'].calls, 1);
  assert.equal(s.endpoints['/api/v1/groups/{id}/users'].calls, 3);
  assert.equal(s.byStatus['200'], 6);
  assert.equal(s.byStatus['401'], 1);
  assert.equal(s.rateLimited, 0);
  const log = await ctl('GET', '/__test/requests');
  assert.equal(log.length, 7);
  assert.equal(log[0].url, '/api/v1/users?limit=2');
});

test('generator: 10,000 users / 1,000 groups, full sync is fast and deterministic', async () => {
  const t0 = Date.now();
  const g = await ctl('POST', '/__test/generate', { users: 10000, groups: 1000, seed: 42 });
  const genMs = Date.now() - t0;
  assert.equal(g.users, 10000);
  assert.equal(g.groups, 1000);
  // Okta's real limits (members: 1,200/min) would 429 the second walk below.
  await ctl('POST', '/__test/rate-limits', { enabled: false });
  await ctl('POST', '/__test/stats/reset');
  const t1 = Date.now();
  const users = await collect('/api/v1/users?limit=200');
  const groups = await collect('/api/v1/groups?limit=200');
  let memberPages = 0;
  let memberships = 0;
  // Sequential like a careful client, but a few at a time to keep the test quick.
  const queue = groups.items.map((x) => x.id);
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (queue.length) {
      const id = queue.shift();
      const m = await collect(`/api/v1/groups/${id}/users?limit=200`);
      memberPages += m.pages;
      memberships += m.items.length;
    }
  }));
  const syncMs = Date.now() - t1;
  assert.equal(users.items.length, 10000 - 100); // 1% DEPROVISIONED by default
  assert.equal(new Set(users.items.map((u) => u.id)).size, users.items.length);
  assert.equal(groups.items.length, 1000);
  assert.equal(memberships, g.memberships);
  const s = await ctl('GET', '/__test/stats');
  const calls = users.pages + groups.pages + memberPages;
  assert.equal(s.total, calls);
  console.log(`# generate 10k/1k: ${genMs} ms; full sync (limit=200): ${calls} calls ` +
    `(users ${users.pages}, groups ${groups.pages}, members ${memberPages}), ${memberships} memberships, ${syncMs} ms`);
  assert.ok(syncMs < 30000, `full sync took ${syncMs} ms`);
  // The same with Okta's default page sizes for groups (10000) and members (1000).
  let defaultPages = 0;
  for (const x of groups.items) defaultPages += (await collect(`/api/v1/groups/${x.id}/users`)).pages;
  console.log(`# members with default limit (1000): ${defaultPages} calls`);
  // Same seed, same ids.
  const again = await ctl('POST', '/__test/generate', { users: 10000, groups: 1000, seed: 42 });
  assert.equal(again.memberships, g.memberships);
  const first = await (await api('/api/v1/users?limit=1')).json();
  assert.equal(first[0].id, users.items[0].id);
});

test('--data, --generate and TLS flags at start-up', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(path.join(tmpdir(), 'okta-api-'));
  const file = path.join(dir, 'data.json');
  writeFileSync(file, JSON.stringify(SMALL));
  const a = await start(['--data', file, '--rate-limit', 'users=5', '--rate-window', '2']);
  try {
    assert.equal(a.ready.users, 5);
    const r = await fetch(`${a.base}/api/v1/users`, { headers: auth });
    assert.equal(r.headers.get('x-rate-limit-limit'), '5');
    assert.equal((await r.json()).length, 4);
  } finally { a.child.kill(); }
  const b = await start(['--generate', 'users=1000,groups=50,seed=3', '--rate-limit', 'off']);
  try {
    assert.equal(b.ready.users, 1000);
    assert.equal(b.ready.groups, 50);
  } finally { b.child.kill(); }
  // TLS with a throwaway self-signed cert, when openssl is available.
  const { spawnSync } = await import('node:child_process');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  if (gen.status !== 0) return;
  const c = await start(['--tls-cert', cert, '--tls-key', key]);
  try {
    assert.match(c.ready.url, /^https:/);
    const https = await import('node:https');
    const { readFileSync } = await import('node:fs');
    const res = await new Promise((resolve, reject) => {
      https.get(`https://127.0.0.1:${c.ready.port}/api/v1/users`, { headers: auth, ca: readFileSync(cert) }, (r) => {
        let d = '';
        r.on('data', (x) => { d += x; });
        r.on('end', () => resolve({ status: r.statusCode, link: r.headers.link, body: d }));
      }).on('error', reject);
    });
    assert.equal(res.status, 200);
    assert.match(String(res.link), /<https:\/\/127\.0\.0\.1:\d+\/api\/v1\/users>; rel="self"/);
  } finally { c.child.kill(); }
});
