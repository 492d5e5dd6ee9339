// Smoke test for server.js: starts it, runs the authorization code + PKCE flow against both
// issuer forms with a plain HTTP client, and exits non-zero on the first failure.
// usage: node smoke.mjs --cert LEAF.pem --key LEAF.key --ca CA.pem   (smoke.sh makes these)

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: { cert: { type: 'string' }, key: { type: 'string' }, ca: { type: 'string' } },
});
for (const k of ['cert', 'key', 'ca']) if (!args[k]) throw new Error(`--${k} is required`);
const ca = fs.readFileSync(args.ca);

let passed = 0;
let failed = 0;
function check(cond, what, extra) {
  if (cond) {
    passed += 1;
    console.log(`ok   ${what}`);
  } else {
    failed += 1;
    console.log(`FAIL ${what}${extra !== undefined ? `: ${typeof extra === 'string' ? extra : JSON.stringify(extra)}` : ''}`);
    throw new Error(`check failed: ${what}`);
  }
}

// --- minimal HTTP client with a cookie jar (no automatic redirects) -------------------------

class Client {
  constructor() { this.jar = new Map(); }

  cookieHeader() {
    return [...this.jar.entries()].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  store(setCookie) {
    for (const c of setCookie ?? []) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => /expires=Thu, 01 Jan 1970/i.test(a)) || value === '';
      if (expired) this.jar.delete(name); else this.jar.set(name, value);
    }
  }

  request(method, url, { headers = {}, body } = {}) {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const h = { ...headers };
      if (this.jar.size) h.cookie = this.cookieHeader();
      if (body !== undefined) h['content-length'] = Buffer.byteLength(body);
      const req = https.request(u, { method, headers: h, ca }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          this.store(res.headers['set-cookie']);
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try { json = JSON.parse(text); } catch { /* not json */ }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      });
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  get(url, opts) { return this.request('GET', url, opts); }

  postForm(url, form, headers = {}) {
    return this.request('POST', url, {
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });
  }

  // follow redirects until one points at `stopPrefix` (returned, not fetched) or a non-redirect
  async follow(res, base, stopPrefix) {
    let r = res;
    for (let i = 0; i < 10 && r.status >= 300 && r.status < 400; i += 1) {
      const next = new URL(r.headers.location, base).href;
      if (stopPrefix && next.startsWith(stopPrefix)) return { stoppedAt: next, res: r };
      r = await this.get(next);
      base = next;
    }
    return { res: r };
  }
}

function basic(id, secret) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

function decodeJwt(t) {
  const [h, p, s] = t.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

function verifyJwt(token, jwks) {
  const d = decodeJwt(token);
  const jwk = jwks.keys.find((k) => k.kid === d.header.kid);
  if (!jwk || d.header.alg !== 'RS256') return null;
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  return crypto.verify('RSA-SHA256', Buffer.from(d.signingInput), key, d.signature) ? d : null;
}

// --- start the server -----------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-smoke-'));
const REDIRECT = 'https://authenticate.smoke.localhost:8443/oauth2/callback';
const POST_LOGOUT = 'https://authenticate.smoke.localhost:8443/.portcullis/signed_out';
const CLIENT = { id: 'portcullis', secret: 's3cr3t+/= value' };
const USER = {
  sub: '00u1abcdEFGH5678', email: 'alice@example.com', name: 'Alice Example',
  preferred_username: 'alice@example.com', password: 'correct horse', groups: ['Everyone', 'admins'],
};
const config = {
  tls: { cert: path.resolve(args.cert), key: path.resolve(args.key) },
  ttl: { access_token: 10, id_token: 10 },
  clients: [{
    client_id: CLIENT.id,
    client_secret: CLIENT.secret,
    redirect_uris: [REDIRECT],
    post_logout_redirect_uris: [POST_LOGOUT],
  }, {
    client_id: 'rotating',
    client_secret: 'rot-secret',
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: 'client_secret_post',
    refresh_token_rotation: 'rotate',
  }],
  users: [USER, {
    sub: '00u2bob', email: 'bob@example.com', name: 'Bob', preferred_username: 'bob@example.com',
    password: 'bobpw', groups: [],
  }],
};
const cfgPath = path.join(tmp, 'config.json');
fs.writeFileSync(cfgPath, JSON.stringify(config));

const started = Date.now();
const child = spawn(process.execPath, [path.join(here, 'server.js'), '--config', cfgPath, '--port', '0'], {
  stdio: ['ignore', 'pipe', 'pipe'],
});
let stderr = '';
child.stderr.on('data', (d) => { stderr += d; });
const ready = await new Promise((resolve, reject) => {
  let out = '';
  const timer = setTimeout(() => reject(new Error(`server not ready in 20s; stderr:\n${stderr}`)), 20000);
  child.stdout.on('data', (d) => {
    out += d;
    const nl = out.indexOf('\n');
    if (nl >= 0) {
      clearTimeout(timer);
      try { resolve(JSON.parse(out.slice(0, nl))); } catch (e) { reject(e); }
    }
  });
  child.on('exit', (code) => reject(new Error(`server exited ${code}; stderr:\n${stderr}`)));
});
console.log(`server ready in ${Date.now() - started} ms: ${JSON.stringify(ready)}`);

const base = ready.base_url;

async function events(since = 0) {
  const r = await new Client().get(`${base}/__test/events?since=${since}`);
  return r.json.events;
}

// --- one full run against an issuer ---------------------------------------------------------

async function runIssuer(id, { expectedIssuer, endpointsBase, authStyle }) {
  console.log(`\n== issuer ${id} (${expectedIssuer}) ==`);
  const startSeq = (await new Client().get(`${base}/__test/events`)).json.last_seq;
  const http = new Client();

  const disc = await http.get(ready.discovery[id]);
  check(disc.status === 200, `${id}: discovery 200`);
  const d = disc.json;
  check(d.issuer === expectedIssuer, `${id}: discovery issuer is ${expectedIssuer}`, d.issuer);
  check(ready.issuers[id] === expectedIssuer, `${id}: ready line issuer matches`);
  for (const [k, suffix] of [['authorization_endpoint', 'authorize'], ['token_endpoint', 'token'],
    ['jwks_uri', 'keys'], ['userinfo_endpoint', 'userinfo'], ['end_session_endpoint', 'logout'],
    ['revocation_endpoint', 'revoke'], ['introspection_endpoint', 'introspect']]) {
    check(d[k] === `${endpointsBase}/v1/${suffix}`, `${id}: ${k} = ${endpointsBase}/v1/${suffix}`, d[k]);
  }
  check(JSON.stringify(d.code_challenge_methods_supported) === '["S256"]', `${id}: S256 only`);
  for (const s of ['openid', 'profile', 'email', 'groups', 'offline_access']) {
    check(d.scopes_supported.includes(s), `${id}: scope ${s} supported`);
  }
  const jwks = (await http.get(d.jwks_uri)).json;
  check(Array.isArray(jwks?.keys) && jwks.keys.length > 0, `${id}: jwks has keys`);

  // PKCE is required
  {
    const r = await http.get(`${d.authorization_endpoint}?${new URLSearchParams({
      response_type: 'code', client_id: CLIENT.id, redirect_uri: REDIRECT, scope: 'openid', state: 'st0',
    })}`);
    const loc = r.headers.location ? new URL(r.headers.location) : null;
    check(r.status === 303 && loc?.href.startsWith(REDIRECT) && loc.searchParams.get('error') === 'invalid_request',
      `${id}: authorize without code_challenge is refused (invalid_request)`, { status: r.status, loc: loc?.href });
  }

  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const state = crypto.randomBytes(8).toString('hex');
  const nonce = crypto.randomBytes(8).toString('hex');
  const authz = `${d.authorization_endpoint}?${new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT.id,
    redirect_uri: REDIRECT,
    scope: 'openid profile email groups offline_access',
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  })}`;
  let r = await http.get(authz);
  check(r.status === 303 && r.headers.location, `${id}: authorize redirects to the login page`, r.status);
  const loginUrl = new URL(r.headers.location, authz).href;
  check(new URL(loginUrl).pathname.startsWith('/login/'), `${id}: login page under /login/`, loginUrl);
  r = await http.get(loginUrl);
  check(r.status === 200 && r.text.includes('id="sign-in"') && r.text.includes('name="username"')
    && r.text.includes('name="password"') && r.text.includes('<label for="username">'),
  `${id}: login form has username/password/#sign-in`);

  r = await http.postForm(loginUrl, { username: USER.email, password: 'wrong' });
  check(r.status === 401 && r.text.includes('id="error"'), `${id}: wrong password re-renders with an error`, r.status);

  r = await http.postForm(loginUrl, { username: USER.email, password: USER.password });
  check(r.status === 303, `${id}: login POST redirects`, r.status);
  let f = await http.follow(r, loginUrl, REDIRECT);
  check(f.stoppedAt, `${id}: flow ends at the redirect URI`, f.res?.status);
  let cb = new URL(f.stoppedAt);
  check(cb.searchParams.get('state') === state, `${id}: state round-trips`);
  check(cb.searchParams.get('iss') === expectedIssuer, `${id}: iss response parameter`, cb.searchParams.get('iss'));
  const code = cb.searchParams.get('code');
  check(code, `${id}: got a code`);

  // token exchange
  const tokenForm = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier };
  const authOpts = (form) => (authStyle === 'basic'
    ? [form, { authorization: basic(CLIENT.id, CLIENT.secret) }]
    : [{ ...form, client_id: CLIENT.id, client_secret: CLIENT.secret }, {}]);
  r = await http.postForm(d.token_endpoint, ...authOpts(tokenForm));
  check(r.status === 200, `${id}: token exchange (${authStyle === 'basic' ? 'client_secret_basic' : 'client_secret_post'})`, r.json ?? r.text);
  const tok = r.json;
  check(tok.token_type === 'Bearer' && tok.access_token && tok.id_token && tok.refresh_token,
    `${id}: access, id and refresh tokens issued`, Object.keys(tok));
  check(tok.expires_in === 10, `${id}: access token lifetime from config (10s)`, tok.expires_in);
  const idt = verifyJwt(tok.id_token, jwks);
  check(idt, `${id}: id_token signature verifies against jwks`);
  const c = idt.payload;
  check(c.iss === d.issuer, `${id}: id_token iss = discovery issuer`, c.iss);
  check(c.aud === CLIENT.id && c.nonce === nonce && c.sub === USER.sub, `${id}: id_token aud/nonce/sub`, c);
  check(c.exp - c.iat === 10, `${id}: id_token lifetime 10s`, c.exp - c.iat);
  check(JSON.stringify(c.groups) === JSON.stringify(USER.groups), `${id}: id_token groups list`, c.groups);
  check(c.email === USER.email && c.email_verified === true && c.name === USER.name
    && c.preferred_username === USER.preferred_username, `${id}: id_token email/profile claims`, c);
  check(typeof c.auth_time === "number", `${id}: id_token auth_time`, c);

  if (id !== 'org') {
    const at = verifyJwt(tok.access_token, jwks);
    check(at, `${id}: access token is a JWT signed by the jwks`);
    const a = at.payload;
    check(a.iss === expectedIssuer && a.aud === 'api://default' && a.cid === CLIENT.id && a.uid === USER.sub
      && a.sub === USER.email && Array.isArray(a.scp) && a.scp.includes('groups') && a.ver === 1,
    `${id}: access token has Okta claims (aud api://default, cid, uid, sub=login, scp)`, a);
  }

  r = await http.get(d.userinfo_endpoint, { headers: { authorization: `Bearer ${tok.access_token}` } });
  check(r.status === 200 && r.json.sub === USER.sub && r.json.email === USER.email
    && JSON.stringify(r.json.groups) === JSON.stringify(USER.groups), `${id}: userinfo with groups and email`, r.json ?? r.status);

  // refresh (static refresh token, like Okta web apps by default)
  r = await http.postForm(d.token_endpoint, ...authOpts({ grant_type: 'refresh_token', refresh_token: tok.refresh_token }));
  check(r.status === 200 && r.json.access_token && r.json.id_token, `${id}: refresh grant works`, r.json);
  check(r.json.refresh_token === tok.refresh_token, `${id}: refresh token is not rotated`);
  check(r.json.access_token !== tok.access_token, `${id}: refresh gives a new access token`);
  check(verifyJwt(r.json.id_token, jwks)?.payload.sub === USER.sub, `${id}: refreshed id_token verifies`);

  // group change is visible on the next refresh
  r = await http.request('POST', `${base}/__test/users`, {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: USER.sub, groups: ['Everyone', 'admins', 'new-group'] }),
  });
  check(r.status === 200 && r.json.groups.includes('new-group') && !('password' in r.json), `${id}: /__test/users changes groups`);
  r = await http.postForm(d.token_endpoint, ...authOpts({ grant_type: 'refresh_token', refresh_token: tok.refresh_token }));
  check(r.status === 200 && decodeJwt(r.json.id_token).payload.groups.includes('new-group'),
    `${id}: refreshed id_token has the new group`, r.json);
  await http.request('POST', `${base}/__test/users`, {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: USER.sub, groups: USER.groups }),
  });

  // without offline_access: no refresh token; existing session signs in without the form
  {
    const v2 = crypto.randomBytes(32).toString('base64url');
    const r2 = await http.get(`${d.authorization_endpoint}?${new URLSearchParams({
      response_type: 'code', client_id: CLIENT.id, redirect_uri: REDIRECT, scope: 'openid email',
      state: 's2', nonce: 'n2', code_challenge: crypto.createHash('sha256').update(v2).digest('base64url'),
      code_challenge_method: 'S256',
    })}`);
    const f2 = await http.follow(r2, d.authorization_endpoint, REDIRECT);
    check(f2.stoppedAt && new URL(f2.stoppedAt).searchParams.get('code'), `${id}: SSO - second authorize returns a code without the login form`);
    const t2 = await http.postForm(d.token_endpoint, ...authOpts({
      grant_type: 'authorization_code', code: new URL(f2.stoppedAt).searchParams.get('code'), redirect_uri: REDIRECT, code_verifier: v2,
    }));
    check(t2.status === 200 && !t2.json.refresh_token, `${id}: no refresh token without offline_access`, t2.json);
  }

  // revoke through the test API; the next refresh fails with invalid_grant
  r = await http.request('POST', `${base}/__test/revoke?sub=${USER.sub}&issuer=${id}`);
  check(r.status === 200 && r.json.revoked_grants >= 1, `${id}: /__test/revoke revoked the grant`, r.json);
  r = await http.postForm(d.token_endpoint, ...authOpts({ grant_type: 'refresh_token', refresh_token: tok.refresh_token }));
  check(r.status === 400 && r.json?.error === 'invalid_grant', `${id}: refresh after revoke is invalid_grant`, r.json ?? r.status);
  r = await http.get(d.userinfo_endpoint, { headers: { authorization: `Bearer ${tok.access_token}` } });
  check(r.status === 401, `${id}: userinfo with a revoked access token is 401`, r.status);

  // logout with id_token_hint: straight redirect back, session gone
  const logoutUrl = `${d.end_session_endpoint}?${new URLSearchParams({
    id_token_hint: tok.id_token, post_logout_redirect_uri: POST_LOGOUT, state: 'bye',
  })}`;
  r = await http.get(logoutUrl);
  check(r.status === 302 && r.headers.location === `${POST_LOGOUT}?state=bye`, `${id}: logout redirects to post_logout_redirect_uri with state`, { status: r.status, location: r.headers.location });
  r = await http.get(authz);
  check(r.status === 303 && new URL(r.headers.location, authz).pathname.startsWith('/login/'), `${id}: after logout, authorize asks for the login again`);
  r = await http.get(`${d.end_session_endpoint}?${new URLSearchParams({
    id_token_hint: tok.id_token, post_logout_redirect_uri: 'https://evil.example/', state: 'x',
  })}`);
  check(r.status === 400, `${id}: unregistered post_logout_redirect_uri is refused`, r.status);

  const evs = (await events(startSeq)).filter((e) => !e.issuer_id || e.issuer_id === id);
  const types = evs.map((e) => e.type);
  for (const t of ['login_failed', 'login', 'token', 'refresh', 'test_revoke', 'refresh_error', 'logout']) {
    check(types.includes(t), `${id}: event ${t} recorded`, types);
  }
  const lo = evs.find((e) => e.type === 'logout');
  check(lo.sub === USER.sub && lo.client_id === CLIENT.id && lo.had_session === true && lo.state === 'bye',
    `${id}: logout event details`, lo);
  const re = evs.find((e) => e.type === 'refresh_error');
  check(re.error === 'invalid_grant', `${id}: refresh_error event says invalid_grant`, re);
}

// a client configured with refresh_token_rotation "rotate": new refresh token on each use,
// reusing the old one fails (and, as in oidc-provider, revokes the grant)
async function rotationCheck() {
  console.log('\n== rotating client (default issuer) ==');
  const http = new Client();
  const d = (await http.get(ready.discovery.default)).json;
  const verifier = crypto.randomBytes(32).toString('base64url');
  const authz = `${d.authorization_endpoint}?${new URLSearchParams({
    response_type: 'code', client_id: 'rotating', redirect_uri: REDIRECT, scope: 'openid offline_access',
    state: 'r1', code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  })}`;
  let r = await http.get(authz);
  const loginUrl = new URL(r.headers.location, authz).href;
  r = await http.postForm(loginUrl, { username: 'bob@example.com', password: 'bobpw' });
  const f = await http.follow(r, loginUrl, REDIRECT);
  check(f.stoppedAt, 'rotating: sign-in reaches the redirect URI');
  const creds = { client_id: 'rotating', client_secret: 'rot-secret' };
  r = await http.postForm(d.token_endpoint, {
    grant_type: 'authorization_code', code: new URL(f.stoppedAt).searchParams.get('code'),
    redirect_uri: REDIRECT, code_verifier: verifier, ...creds,
  });
  check(r.status === 200 && r.json.refresh_token, 'rotating: refresh token issued', r.json);
  const rt1 = r.json.refresh_token;
  // client_secret_basic also accepted for a client registered with client_secret_post
  r = await http.postForm(d.token_endpoint, { grant_type: 'refresh_token', refresh_token: rt1 },
    { authorization: basic('rotating', 'rot-secret') });
  check(r.status === 200 && r.json.refresh_token && r.json.refresh_token !== rt1, 'rotating: refresh returns a new refresh token', r.json);
  r = await http.postForm(d.token_endpoint, { grant_type: 'refresh_token', refresh_token: rt1, ...creds });
  check(r.status === 400 && r.json.error === 'invalid_grant', 'rotating: reusing the old refresh token is invalid_grant', r.json);
}

let code = 0;
try {
  await rotationCheck();
  await runIssuer('default', {
    expectedIssuer: `${base}/oauth2/default`, endpointsBase: `${base}/oauth2/default`, authStyle: 'basic',
  });
  await runIssuer('org', { expectedIssuer: base, endpointsBase: `${base}/oauth2`, authStyle: 'post' });
  const r = await new Client().get(`${base}/oauth2/default/.well-known/oauth-authorization-server`);
  check(r.status === 200 && r.json.issuer === `${base}/oauth2/default`, 'default: oauth-authorization-server metadata');
} catch (err) {
  code = 1;
  console.log(`\nerror: ${err.stack}`);
  console.log(`server stderr:\n${stderr}`);
} finally {
  child.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
}
if (failed) code = 1;
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(code);
