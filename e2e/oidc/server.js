// Okta-shaped OpenID provider for Portcullis integration tests.
//
// Two kinds of oidc-provider instances share one HTTPS listener:
//   * the Okta "org authorization server": issuer https://HOST:PORT, endpoints /oauth2/v1/*,
//     discovery at /.well-known/openid-configuration;
//   * one Okta "custom authorization server" per configured id (default: "default"):
//     issuer https://HOST:PORT/oauth2/<id>, endpoints /oauth2/<id>/v1/*,
//     discovery at /oauth2/<id>/.well-known/openid-configuration.
// Plus a minimal login page (/login/...) and test-only control endpoints (/__test/...).
// See README.md in this directory.

// oidc-provider prints "NOTICE" lines with console.info (stdout). stdout is reserved for the
// single JSON ready line, so route every console method to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import Provider, { interactionPolicy } from 'oidc-provider';

// ---------------------------------------------------------------------------------------------
// configuration

const DEFAULT_CONFIG = {
  listen_host: '127.0.0.1',
  issuer_host: null, // defaults to listen_host
  port: 0,
  tls: { cert: null, key: null },
  authorization_servers: ['default'],
  audiences: {}, // custom AS id -> access token audience (default "api://<id>")
  ttl: {
    access_token: 3600,
    id_token: 3600,
    refresh_token: 7 * 24 * 3600,
    authorization_code: 300,
    session: 2 * 3600,
    interaction: 3600,
  },
  refresh_token_rotation: 'static', // "static" (Okta web-app default) or "rotate"
  access_token_groups: true, // custom AS JWT access tokens carry `groups` when the scope is granted
  exit_on_stdin_eof: false,
  clients: [],
  users: [],
};

function usage() {
  return `usage: node server.js [--config FILE] [--port N] [--cert FILE] [--key FILE]
                      [--listen-host ADDR] [--issuer-host NAME] [--exit-on-stdin-eof]
env: OIDC_CONFIG (file), OIDC_CONFIG_JSON (inline JSON), OIDC_PORT, OIDC_TLS_CERT,
     OIDC_TLS_KEY, OIDC_LISTEN_HOST, OIDC_ISSUER_HOST`;
}

function loadConfig() {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      port: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      'listen-host': { type: 'string' },
      'issuer-host': { type: 'string' },
      'exit-on-stdin-eof': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stderr.write(`${usage()}\n`);
    process.exit(0);
  }
  let fileCfg = {};
  let baseDir = process.cwd();
  const file = values.config ?? process.env.OIDC_CONFIG;
  if (file) {
    fileCfg = JSON.parse(fs.readFileSync(file, 'utf8'));
    baseDir = path.dirname(path.resolve(file));
  } else if (process.env.OIDC_CONFIG_JSON) {
    fileCfg = JSON.parse(process.env.OIDC_CONFIG_JSON);
  }
  const cfg = {
    ...DEFAULT_CONFIG,
    ...fileCfg,
    tls: { ...DEFAULT_CONFIG.tls, ...fileCfg.tls },
    ttl: { ...DEFAULT_CONFIG.ttl, ...fileCfg.ttl },
    audiences: { ...fileCfg.audiences },
  };
  const pick = (...xs) => xs.find((x) => x !== undefined && x !== null && x !== '');
  cfg.port = Number(pick(values.port, process.env.OIDC_PORT, cfg.port, 0));
  cfg.listen_host = pick(values['listen-host'], process.env.OIDC_LISTEN_HOST, cfg.listen_host);
  cfg.issuer_host = pick(values['issuer-host'], process.env.OIDC_ISSUER_HOST, cfg.issuer_host, cfg.listen_host);
  cfg.tls.cert = pick(values.cert, process.env.OIDC_TLS_CERT, cfg.tls.cert);
  cfg.tls.key = pick(values.key, process.env.OIDC_TLS_KEY, cfg.tls.key);
  if (values['exit-on-stdin-eof']) cfg.exit_on_stdin_eof = true;
  if (!cfg.tls.cert || !cfg.tls.key) {
    throw new Error(`TLS certificate and key are required (tls.cert/tls.key, --cert/--key)\n${usage()}`);
  }
  cfg.tls.cert = path.resolve(baseDir, cfg.tls.cert);
  cfg.tls.key = path.resolve(baseDir, cfg.tls.key);
  if (!['static', 'rotate'].includes(cfg.refresh_token_rotation)) {
    throw new Error('refresh_token_rotation must be "static" or "rotate"');
  }
  for (const id of cfg.authorization_servers) {
    if (!/^[A-Za-z0-9]+$/.test(id) || id === 'v1') {
      throw new Error(`invalid authorization server id ${JSON.stringify(id)}`);
    }
  }
  if (!Array.isArray(cfg.clients) || cfg.clients.length === 0) {
    throw new Error('config must define at least one client');
  }
  return cfg;
}

const cfg = loadConfig();

// ---------------------------------------------------------------------------------------------
// users and events (shared by every authorization server)

const users = new Map(); // sub -> user
const UPDATED_AT = Math.floor(Date.now() / 1000);

function upsertUser(input) {
  if (!input || typeof input.sub !== 'string' || !input.sub) {
    throw new Error('user needs a non-empty string "sub"');
  }
  const prev = users.get(input.sub);
  const user = { email_verified: true, groups: [], ...prev, ...input, updated_at: Math.floor(Date.now() / 1000) };
  if (!prev) user.updated_at = UPDATED_AT;
  if (!Array.isArray(user.groups) || !user.groups.every((g) => typeof g === 'string')) {
    throw new Error('user "groups" must be a list of group names');
  }
  users.set(user.sub, user);
  return user;
}
for (const u of cfg.users) upsertUser(u);

function publicUser(u) {
  const { password, ...rest } = u;
  return rest;
}

function findUserByLogin(username) {
  const want = String(username ?? '').trim().toLowerCase();
  if (!want) return undefined;
  for (const u of users.values()) {
    for (const v of [u.login, u.email, u.preferred_username, u.sub]) {
      if (typeof v === 'string' && v.toLowerCase() === want) return u;
    }
  }
  return undefined;
}

const events = [];
let eventSeq = 0;
function record(type, fields = {}) {
  const ev = { seq: ++eventSeq, time: new Date().toISOString(), type };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) ev[k] = v;
  events.push(ev);
  if (process.env.OIDC_LOG_EVENTS) process.stderr.write(`event ${JSON.stringify(ev)}\n`);
  return ev;
}

// ---------------------------------------------------------------------------------------------
// in-memory adapter that can be enumerated (for /__test/revoke)

class Store {
  constructor() { this.map = new Map(); }

  get(key) {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.expiresAt !== undefined && e.expiresAt <= Date.now()) {
      this.map.delete(key);
      return undefined;
    }
    return e.payload;
  }

  set(key, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
    this.map.set(key, { payload, expiresAt });
  }

  delete(key) { this.map.delete(key); }

  * entries(model) {
    const prefix = `${model}:`;
    for (const key of [...this.map.keys()]) {
      if (!key.startsWith(prefix)) continue;
      const payload = this.get(key);
      if (payload) yield [key.slice(prefix.length), payload];
    }
  }
}

const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);

function adapterFactory(store) {
  return class Adapter {
    constructor(model) { this.model = model; }

    key(id) { return `${this.model}:${id}`; }

    async upsert(id, payload, expiresIn) {
      // keep a few seconds past expiry so "expired" is reported rather than "not found"
      store.set(this.key(id), payload, typeof expiresIn === 'number' ? expiresIn + 60 : undefined);
      if (this.model === 'Session' && payload.uid) store.set(`SessionUid:${payload.uid}`, id, expiresIn);
    }

    async find(id) { return store.get(this.key(id)); }

    async findByUid(uid) {
      const id = store.get(`SessionUid:${uid}`);
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode) {
      for (const [, p] of store.entries(this.model)) if (p.userCode === userCode) return p;
      return undefined;
    }

    async consume(id) {
      const p = store.get(this.key(id));
      if (p) p.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) { store.delete(this.key(id)); }

    async revokeByGrantId(grantId) {
      for (const model of GRANTABLE) {
        for (const [id, p] of store.entries(model)) if (p.grantId === grantId) store.delete(`${model}:${id}`);
      }
    }
  };
}

// ---------------------------------------------------------------------------------------------
// helpers

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function decodeJwt(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error('not a JWS compact serialization');
  return { header: b64urlJson(parts[0]), payload: b64urlJson(parts[1]), parts };
}

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > limit) throw new Error('request body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res, status, body, headers = {}) {
  const data = JSON.stringify(body, null, 2);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(data),
    ...headers,
  });
  res.end(data);
}

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(html),
  });
  res.end(html);
}

function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function makeSigningKey() {
  // The key comes out of the generator as PEM and is read back as a key of its own
  // before its JWK is taken: exporting the generator's own KeyObject can deadlock Node 20
  // (a garbage collection during the export finalizes the finished key-generation job,
  // whose destructor waits for the lock the export holds; seen in CI, the process hung
  // before printing its ready line).
  const { privateKey: pem } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const jwk = crypto.createPrivateKey(pem).export({ format: 'jwk' });
  return {
    ...jwk, kid: crypto.randomBytes(16).toString('base64url'), alg: 'RS256', use: 'sig',
  };
}

const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'given_name', 'family_name', 'middle_name', 'nickname', 'preferred_username',
    'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at'],
  email: ['email', 'email_verified'],
  address: ['address'],
  phone: ['phone_number', 'phone_number_verified'],
  groups: ['groups'],
};
const ALL_SCOPES = [...Object.keys(SCOPE_CLAIMS), 'offline_access'];

function userClaims(user) {
  const out = {};
  for (const claims of Object.values(SCOPE_CLAIMS)) {
    for (const c of claims) if (user[c] !== undefined) out[c] = user[c];
  }
  out.sub = user.sub;
  out.groups = [...(user.groups ?? [])];
  return out;
}

function claimsForScopes(user, scopes) {
  const all = userClaims(user);
  const out = { sub: user.sub };
  for (const s of scopes) {
    for (const c of SCOPE_CLAIMS[s] ?? []) if (all[c] !== undefined) out[c] = all[c];
  }
  return out;
}

const issuedJwtAccessTokens = new Map(); // jti -> { grantId, exp }
setInterval(() => {
  const now = Math.floor(Date.now() / 1000);
  for (const [jti, m] of issuedJwtAccessTokens) if (m.exp < now) issuedJwtAccessTokens.delete(jti);
}, 60_000).unref();

const clientCfg = new Map(cfg.clients.map((c) => [c.client_id, c]));

// ---------------------------------------------------------------------------------------------
// providers

const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

// one record per authorization server
//   { id: 'org' | '<custom id>', kind, prefix, issuer, provider, store, key, audience, callback }
const servers = [];

function buildProvider({ id, kind, issuer, loginPrefix }) {
  const store = new Store();
  const signingKey = makeSigningKey();
  const custom = kind === 'custom';
  const audience = custom ? (cfg.audiences[id] ?? `api://${id}`) : undefined;
  const routesBase = custom ? '/v1' : '/oauth2/v1';

  const policy = interactionPolicy.base();
  // Portcullis asks for offline_access without prompt=consent (as Okta allows); the dispatcher
  // adds "consent" to the prompt so oidc-provider keeps offline_access, and this removal keeps
  // that synthetic prompt from forcing a consent screen.
  policy.get('consent').checks.remove('consent_prompt');

  const ttl = (name, fallback) => (ctx, token, client) => {
    const c = client ? clientCfg.get(client.clientId) : undefined;
    return Number(c?.[`${name}_ttl`] ?? cfg.ttl[name] ?? fallback);
  };

  const configuration = {
    adapter: adapterFactory(store),
    clients: cfg.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      client_name: c.client_name ?? c.client_id,
      redirect_uris: c.redirect_uris,
      post_logout_redirect_uris: c.post_logout_redirect_uris ?? [],
      grant_types: c.grant_types ?? ['authorization_code', 'refresh_token'],
      response_types: (c.grant_types ?? ['authorization_code']).includes('authorization_code') ? ['code'] : [],
      token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
      require_auth_time: true,
    })),
    jwks: { keys: [signingKey] },
    cookies: {
      keys: cookieKeys,
      names: {
        session: `okta_sess_${id}`,
        interaction: `okta_int_${id}`,
        resume: `okta_resume_${id}`,
      },
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    claims: SCOPE_CLAIMS,
    scopes: ALL_SCOPES,
    conformIdTokenClaims: false, // Okta puts scope claims (email, groups, ...) in the ID token
    pkce: { required: () => true },
    routes: {
      authorization: `${routesBase}/authorize`,
      token: `${routesBase}/token`,
      jwks: `${routesBase}/keys`,
      userinfo: `${routesBase}/userinfo`,
      end_session: `${routesBase}/logout`,
      revocation: `${routesBase}/revoke`,
      introspection: `${routesBase}/introspect`,
      pushed_authorization_request: `${routesBase}/par`,
      backchannel_authentication: `${routesBase}/bc/authorize`,
      code_verification: `${routesBase}/device/verify`,
      device_authorization: `${routesBase}/device/authorize`,
      registration: `${routesBase}/clients`,
      challenge: `${routesBase}/challenge`,
      credential: `${routesBase}/credential`,
    },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: custom ? {
        enabled: true,
        defaultResource: async () => audience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator) => {
          if (resourceIndicator !== audience) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: ALL_SCOPES.join(' '),
            audience,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      } : { enabled: false },
    },
    formats: {
      customizers: {
        // Okta custom authorization server access token shape
        jwt: async (ctx, token, jwt) => {
          const scopes = String(jwt.payload.scope ?? '').split(' ').filter(Boolean);
          const user = users.get(token.accountId);
          jwt.payload.ver = 1;
          jwt.payload.cid = jwt.payload.client_id;
          if (token.accountId) {
            jwt.payload.uid = token.accountId;
            jwt.payload.sub = user?.login ?? user?.email ?? token.accountId;
          }
          jwt.payload.scp = scopes;
          if (cfg.access_token_groups && scopes.includes('groups') && user) {
            jwt.payload.groups = [...user.groups];
          }
          delete jwt.payload.scope;
          delete jwt.payload.client_id;
          // JWT access tokens are not stored by oidc-provider; remember their grant so that
          // the userinfo endpoint can refuse them once the grant is revoked.
          issuedJwtAccessTokens.set(jwt.payload.jti, { grantId: token.grantId, exp: jwt.payload.exp });
        },
      },
    },
    ttl: {
      AccessToken: ttl('access_token', 3600),
      IdToken: ttl('id_token', 3600),
      RefreshToken: ttl('refresh_token', 7 * 24 * 3600),
      AuthorizationCode: ttl('authorization_code', 300),
      Session: () => Number(cfg.ttl.session),
      Interaction: () => Number(cfg.ttl.interaction),
      Grant: () => Math.max(Number(cfg.ttl.refresh_token), Number(cfg.ttl.session)),
    },
    rotateRefreshToken: (ctx) => {
      const c = clientCfg.get(ctx.oidc.client.clientId);
      return (c?.refresh_token_rotation ?? cfg.refresh_token_rotation) === 'rotate';
    },
    interactions: {
      policy,
      url: async (ctx, interaction) => `${loginPrefix}/${interaction.uid}`,
    },
    async findAccount(ctx, sub) {
      const user = users.get(sub);
      if (!user || user.disabled) return undefined;
      return {
        accountId: sub,
        async claims() { return userClaims(users.get(sub) ?? user); },
      };
    },
    // Consent is never asked: whatever the client requested is granted on the spot.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!grant || grant.accountId !== oidc.account.accountId) {
        grant = new oidc.provider.Grant({ accountId: oidc.account.accountId, clientId: oidc.client.clientId });
      }
      const oidcScopes = [...oidc.requestParamOIDCScopes];
      if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
      const claims = [...oidc.requestParamClaims];
      if (claims.length) grant.addOIDCClaims(claims);
      for (const [indicator, rs] of Object.entries(oidc.resourceServers ?? {})) {
        const s = [...oidc.requestParamScopes].filter((x) => rs.scopes.has(x));
        if (s.length) grant.addResourceScope(indicator, s.join(' '));
      }
      await grant.save();
      return grant;
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Error</title></head>
<body><h1>Error</h1>${Object.entries(out).map(([k, v]) => `<p><strong>${esc(k)}</strong>: <span id="${esc(k)}">${esc(v)}</span></p>`).join('')}</body></html>`;
    },
  };

  const provider = new Provider(issuer, configuration);
  provider.proxy = false;
  const base = { issuer_id: id, issuer };

  provider.on('authorization.success', (ctx) => record('authorize', {
    ...base, client_id: ctx.oidc.client?.clientId, sub: ctx.oidc.session?.accountId,
  }));
  provider.on('authorization.error', (ctx, err) => record('authorize_error', {
    ...base, client_id: ctx.oidc.client?.clientId, error: err.error, error_description: err.error_description,
  }));
  provider.on('grant.success', (ctx) => {
    const gt = ctx.oidc.params.grant_type;
    const src = ctx.oidc.entities.RotatedRefreshToken ?? ctx.oidc.entities.RefreshToken
      ?? ctx.oidc.entities.AuthorizationCode;
    record(gt === 'refresh_token' ? 'refresh' : 'token', {
      ...base,
      grant_type: gt,
      client_id: ctx.oidc.client?.clientId,
      sub: src?.accountId ?? ctx.oidc.account?.accountId,
      rotated: gt === 'refresh_token' ? Boolean(ctx.oidc.entities.RotatedRefreshToken) : undefined,
      // The refresh token presented (consumed when rotating): each should appear once.
      refresh_token_jti: gt === 'refresh_token'
        ? (ctx.oidc.entities.RotatedRefreshToken ?? ctx.oidc.entities.RefreshToken)?.jti
        : undefined,
    });
  });
  provider.on('grant.error', (ctx, err) => {
    const gt = ctx.oidc.params?.grant_type;
    record(gt === 'refresh_token' ? 'refresh_error' : 'token_error', {
      ...base,
      grant_type: gt,
      client_id: ctx.oidc.client?.clientId,
      sub: ctx.oidc.entities?.RefreshToken?.accountId,
      error: err.error,
      error_description: err.error_description,
    });
  });
  provider.on('end_session.success', (ctx) => record('logout', {
    ...base, client_id: ctx.oidc.client?.clientId, via: 'confirm',
  }));
  provider.on('grant.revoked', (ctx, grantId) => record('grant_revoked', { ...base, grant_id: grantId }));
  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`server_error ${ctx.method} ${ctx.path}: ${err.stack}\n`);
    record('server_error', { ...base, path: ctx.path, error: String(err.message) });
  });

  const server = {
    id,
    kind,
    issuer,
    prefix: custom ? `/oauth2/${id}` : '',
    routesBase,
    loginPrefix,
    provider,
    store,
    signingKey,
    publicKey: crypto.createPublicKey({ key: signingKey, format: 'jwk' }),
    audience,
    callback: provider.callback(),
  };
  servers.push(server);
  return server;
}

// ---------------------------------------------------------------------------------------------
// request pre-processing

// Okta accepts client_secret_basic and client_secret_post for a client with a secret;
// oidc-provider only accepts the registered one, so convert to the registered method.
async function normalizeClientAuth(req) {
  const raw = await readBody(req);
  const body = new URLSearchParams(raw);
  const auth = req.headers.authorization;
  let basic;
  if (auth && /^basic /i.test(auth)) {
    try {
      const dec = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      const i = dec.indexOf(':');
      if (i > 0) {
        const dc = (s) => decodeURIComponent(s.replace(/\+/g, '%20'));
        basic = { id: dc(dec.slice(0, i)), secret: dc(dec.slice(i + 1)) };
      }
    } catch { /* leave it to oidc-provider */ }
  }
  const clientId = basic?.id ?? body.get('client_id');
  const registered = clientCfg.get(clientId)?.token_endpoint_auth_method ?? 'client_secret_basic';
  if (registered === 'client_secret_basic' && !auth && body.has('client_secret')) {
    const enc = (s) => encodeURIComponent(s);
    req.headers.authorization = `Basic ${Buffer.from(`${enc(clientId)}:${enc(body.get('client_secret'))}`).toString('base64')}`;
    body.delete('client_secret');
    body.delete('client_id');
  } else if (registered === 'client_secret_post' && basic && !body.has('client_secret')) {
    delete req.headers.authorization;
    body.set('client_id', basic.id);
    body.set('client_secret', basic.secret);
  }
  const out = body.toString();
  req.body = out; // oidc-provider reads an already-consumed body from req.body
  req.headers['content-length'] = String(Buffer.byteLength(out));
}

// offline_access without prompt=consent would be dropped by oidc-provider (OIDC Core 11);
// Okta does not require it, so add the prompt (its forced screen is disabled in the policy).
function withConsentPrompt(url) {
  const scope = url.searchParams.get('scope') ?? '';
  if (!scope.split(' ').includes('offline_access')) return false;
  const prompt = (url.searchParams.get('prompt') ?? '').split(' ').filter(Boolean);
  if (prompt.includes('none') || prompt.includes('consent')) return false;
  prompt.push('consent');
  url.searchParams.set('prompt', prompt.join(' '));
  return true;
}

// ---------------------------------------------------------------------------------------------
// Okta-style logout: with a valid id_token_hint, end the session and redirect at once.
// Returns false to let oidc-provider handle (and report) anything unusual.

async function revokeGrant(server, grantId) {
  const { provider } = server;
  await Promise.all([
    provider.AccessToken.revokeByGrantId(grantId),
    provider.RefreshToken.revokeByGrantId(grantId),
    provider.AuthorizationCode.revokeByGrantId(grantId),
    provider.Grant.adapter.destroy(grantId),
  ]);
}

async function fastLogout(server, req, res, url) {
  const { provider } = server;
  const q = url.searchParams;
  const hint = q.get('id_token_hint');
  if (!hint) return false;
  for (const k of ['id_token_hint', 'post_logout_redirect_uri', 'state']) if (q.getAll(k).length > 1) return false;
  let payload;
  try { ({ payload } = decodeJwt(hint)); } catch { return false; }
  const clientId = Array.isArray(payload.aud) ? payload.aud[0] : payload.aud;
  if (q.get('client_id') && q.get('client_id') !== clientId) return false;
  let client;
  try { client = await provider.Client.find(String(clientId)); } catch { return false; }
  if (!client) return false;
  try { await provider.IdToken.validate(hint, client); } catch { return false; }
  const plr = q.get('post_logout_redirect_uri');
  if (plr && !client.postLogoutRedirectUriAllowed(plr)) return false;

  const ctx = provider.createContext(req, res);
  const session = await provider.Session.get(ctx);
  const hadSession = Boolean(session.accountId);
  let revoked = 0;
  if (hadSession) {
    for (const [cid, authz] of Object.entries(session.authorizations ?? {})) {
      if (authz.grantId && !authz.persistsLogout) {
        await revokeGrant(server, authz.grantId);
        revoked += 1;
      }
      void cid;
    }
    await session.destroy();
  }
  ctx.cookies.set(provider.cookieName('session'), null, { signed: true, httpOnly: true, sameSite: 'lax' });

  let location;
  if (plr) {
    const u = new URL(plr);
    if (q.has('state')) u.searchParams.set('state', q.get('state'));
    location = u.href;
  } else {
    location = new URL(`${server.prefix}${server.routesBase}/logout/success`, server.issuer.replace(/\/oauth2\/[^/]+$/, '')).href;
  }
  record('logout', {
    issuer_id: server.id,
    issuer: server.issuer,
    client_id: client.clientId,
    sub: session.accountId ?? payload.sub,
    had_session: hadSession,
    revoked_grants: revoked,
    post_logout_redirect_uri: plr ?? undefined,
    state: q.get('state') ?? undefined,
    via: 'id_token_hint',
  });
  res.writeHead(302, { location, 'cache-control': 'no-store', 'content-length': '0' });
  res.end();
  return true;
}

// ---------------------------------------------------------------------------------------------
// custom authorization server userinfo (its access tokens are JWTs with aud api://<id>,
// which oidc-provider's own userinfo endpoint refuses; Okta accepts them)

function bearerError(res, status, error, description) {
  sendJson(res, status, { error, error_description: description }, {
    'www-authenticate': `Bearer error="${error}", error_description="${description}"`,
  });
}

async function customUserinfo(server, req, res) {
  let token;
  const auth = req.headers.authorization;
  if (auth && /^bearer /i.test(auth)) token = auth.slice(7).trim();
  if (!token && req.method === 'POST') {
    const body = new URLSearchParams(await readBody(req));
    token = body.get('access_token') ?? undefined;
  }
  if (!token) return bearerError(res, 401, 'invalid_request', 'The access token is missing.');
  let decoded;
  try {
    decoded = decodeJwt(token);
    const ok = crypto.verify('RSA-SHA256', Buffer.from(`${decoded.parts[0]}.${decoded.parts[1]}`),
      server.publicKey, Buffer.from(decoded.parts[2], 'base64url'));
    if (!ok || decoded.header.alg !== 'RS256') throw new Error('bad signature');
  } catch {
    return bearerError(res, 401, 'invalid_token', 'The access token is invalid.');
  }
  const p = decoded.payload;
  const now = Math.floor(Date.now() / 1000);
  if (p.iss !== server.issuer || typeof p.exp !== 'number' || p.exp <= now) {
    return bearerError(res, 401, 'invalid_token', 'The access token is invalid.');
  }
  const issued = issuedJwtAccessTokens.get(p.jti);
  if (!issued || (issued.grantId && !server.store.get(`Grant:${issued.grantId}`))) {
    return bearerError(res, 401, 'invalid_token', 'The access token is invalid.'); // revoked
  }
  const scopes = Array.isArray(p.scp) ? p.scp : [];
  if (!scopes.includes('openid')) {
    return bearerError(res, 403, 'insufficient_scope', 'The access token must provide access to at least one of these scopes - profile, email, address or phone');
  }
  const user = users.get(p.uid);
  if (!user || user.disabled) return bearerError(res, 401, 'invalid_token', 'The access token is invalid.');
  record('userinfo', { issuer_id: server.id, issuer: server.issuer, client_id: p.cid, sub: user.sub });
  return sendJson(res, 200, claimsForScopes(user, scopes));
}

// ---------------------------------------------------------------------------------------------
// login page

function loginPage({ action, clientName, username = '', error }) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign In</title></head>
<body>
<main>
<h1>Sign In</h1>
<p>Sign in to continue to <span id="client-name">${esc(clientName)}</span>.</p>
${error ? `<p id="error" role="alert">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="${esc(action)}">
<p><label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" value="${esc(username)}" required autofocus></p>
<p><label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button id="sign-in" type="submit">Sign In</button></p>
</form>
</main>
</body>
</html>`;
}

async function autoConsent(server, req, res, details) {
  const { provider } = server;
  const { prompt: { details: d = {} }, params, session } = details;
  let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  if (!grant) grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (d.missingOIDCScope?.length) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims?.length) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [ind, s] of Object.entries(d.missingResourceScopes ?? {})) grant.addResourceScope(ind, s.join(' '));
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function handleLogin(server, req, res, uid) {
  const { provider } = server;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    return sendHtml(res, 400, `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Error</title></head><body><h1>Error</h1><p id="error">${esc(err.error_description ?? err.message)}</p></body></html>`);
  }
  if (details.uid !== uid) {
    return sendHtml(res, 400, '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Error</title></head><body><h1>Error</h1><p id="error">interaction mismatch</p></body></html>');
  }
  const client = await provider.Client.find(details.params.client_id);
  const clientName = client?.clientName ?? details.params.client_id;
  const action = `${server.loginPrefix}/${uid}`;

  if (details.prompt.name === 'consent') {
    return autoConsent(server, req, res, details);
  }
  if (details.prompt.name !== 'login') {
    return sendHtml(res, 400, `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Error</title></head><body><p id="error">unsupported prompt ${esc(details.prompt.name)}</p></body></html>`);
  }

  if (req.method === 'GET') {
    return sendHtml(res, 200, loginPage({ action, clientName, username: details.params.login_hint }));
  }
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'GET, POST' });
    return res.end();
  }
  const form = new URLSearchParams(await readBody(req));
  const username = form.get('username') ?? '';
  const password = form.get('password') ?? '';
  const user = findUserByLogin(username);
  const ok = user && !user.disabled && typeof user.password === 'string'
    && crypto.timingSafeEqual(
      crypto.createHash('sha256').update(user.password).digest(),
      crypto.createHash('sha256').update(password).digest(),
    );
  if (!ok) {
    record('login_failed', {
      issuer_id: server.id, issuer: server.issuer, client_id: details.params.client_id, username,
    });
    return sendHtml(res, 401, loginPage({
      action, clientName, username, error: 'Unable to sign in',
    }));
  }
  record('login', {
    issuer_id: server.id, issuer: server.issuer, client_id: details.params.client_id, sub: user.sub,
  });
  return provider.interactionFinished(req, res, {
    login: { accountId: user.sub, amr: ['pwd'], remember: true },
  }, { mergeWithLastSubmission: false });
}

// ---------------------------------------------------------------------------------------------
// test control API (not part of Okta)

async function revokeUser(sub, { sessions = false, issuerId } = {}) {
  const result = { sub, revoked_grants: 0, revoked_refresh_tokens: 0, destroyed_sessions: 0 };
  for (const server of servers) {
    if (issuerId && server.id !== issuerId) continue;
    const { store } = server;
    const grantIds = new Set();
    for (const [id, p] of store.entries('Grant')) if (p.accountId === sub) grantIds.add(id);
    for (const [, p] of store.entries('RefreshToken')) {
      if (p.accountId === sub) {
        result.revoked_refresh_tokens += 1;
        if (p.grantId) grantIds.add(p.grantId);
      }
    }
    for (const [, p] of store.entries('AccessToken')) if (p.accountId === sub && p.grantId) grantIds.add(p.grantId);
    for (const grantId of grantIds) {
      await revokeGrant(server, grantId);
      result.revoked_grants += 1;
    }
    if (sessions) {
      for (const [id, p] of store.entries('Session')) {
        if (p.accountId === sub) {
          store.delete(`Session:${id}`);
          result.destroyed_sessions += 1;
        }
      }
    }
  }
  record('test_revoke', { ...result, sessions });
  return result;
}

async function handleTestApi(req, res, url) {
  const p = url.pathname;
  try {
    if (p === '/__test/health' && req.method === 'GET') {
      return sendJson(res, 200, { ok: true, issuers: Object.fromEntries(servers.map((s) => [s.id, s.issuer])) });
    }
    if (p === '/__test/events') {
      if (req.method === 'GET') {
        const since = Number(url.searchParams.get('since') ?? 0);
        const type = url.searchParams.get('type');
        const list = events.filter((e) => e.seq > since && (!type || e.type === type));
        return sendJson(res, 200, { events: list, last_seq: eventSeq });
      }
      if (req.method === 'DELETE') {
        events.length = 0;
        return sendJson(res, 200, { cleared: true, last_seq: eventSeq });
      }
    }
    if (p === '/__test/revoke' && req.method === 'POST') {
      const sub = url.searchParams.get('sub');
      if (!sub) return sendJson(res, 400, { error: 'sub query parameter is required' });
      const sessions = ['1', 'true', 'yes'].includes(url.searchParams.get('sessions') ?? '');
      const issuerId = url.searchParams.get('issuer') ?? undefined;
      return sendJson(res, 200, await revokeUser(sub, { sessions, issuerId }));
    }
    if (p === '/__test/users') {
      if (req.method === 'GET') return sendJson(res, 200, { users: [...users.values()].map(publicUser) });
      if (req.method === 'POST') {
        const body = JSON.parse(await readBody(req) || '{}');
        const list = Array.isArray(body) ? body : [body];
        const out = list.map((u) => publicUser(upsertUser(u)));
        record('test_users', { subs: out.map((u) => u.sub) });
        return sendJson(res, 200, Array.isArray(body) ? { users: out } : out[0]);
      }
    }
    return sendJson(res, 404, { error: 'unknown test endpoint' });
  } catch (err) {
    return sendJson(res, 400, { error: String(err.message) });
  }
}

// ---------------------------------------------------------------------------------------------
// dispatch

async function dispatch(req, res) {
  const url = new URL(req.url, 'https://localhost');
  const p = url.pathname;

  if (p.startsWith('/__test/')) return handleTestApi(req, res, url);

  if (p.startsWith('/login/')) {
    const m = /^\/login\/([^/]+)\/([^/]+)$/.exec(p);
    const server = m && servers.find((s) => s.loginPrefix === `/login/${m[1]}`);
    if (!server) return sendJson(res, 404, { error: 'not found' });
    return handleLogin(server, req, res, m[2]);
  }

  const server = servers.find((s) => s.prefix && (p === s.prefix || p.startsWith(`${s.prefix}/`)))
    ?? servers.find((s) => s.kind === 'org');
  let rel = p.slice(server.prefix.length) || '/';

  if (rel === '/.well-known/oauth-authorization-server') {
    // Okta publishes both documents; serve the OpenID one under this name too.
    rel = '/.well-known/openid-configuration';
    url.pathname = `${server.prefix}${rel}`;
  }

  const route = rel.startsWith(server.routesBase) ? rel.slice(server.routesBase.length) : null;

  if (server.kind === 'custom' && route === '/userinfo' && ['GET', 'POST'].includes(req.method)) {
    return customUserinfo(server, req, res);
  }
  if (route === '/logout' && req.method === 'GET') {
    if (await fastLogout(server, req, res, url)) return undefined;
  }
  if (route === '/authorize' && req.method === 'GET') {
    withConsentPrompt(url);
  }
  if (['/token', '/revoke', '/introspect'].includes(route) && req.method === 'POST'
      && /application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '')) {
    await normalizeClientAuth(req);
  }

  if (route === '/revoke' && req.method === 'POST') {
    res.on('finish', () => record('revoke', { issuer_id: server.id, status: res.statusCode }));
  }

  const newUrl = `${url.pathname}${url.search}`;
  if (server.prefix) {
    req.originalUrl = newUrl;
    req.url = newUrl.slice(server.prefix.length) || '/';
  } else {
    req.url = newUrl;
  }
  return server.callback(req, res);
}

// ---------------------------------------------------------------------------------------------
// start

let ready = false;
const httpsServer = https.createServer({
  cert: fs.readFileSync(cfg.tls.cert),
  key: fs.readFileSync(cfg.tls.key),
}, (req, res) => {
  if (!ready) {
    res.writeHead(503);
    res.end();
    return;
  }
  dispatch(req, res).catch((err) => {
    process.stderr.write(`dispatch error ${req.method} ${req.url}: ${err.stack}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err.message) });
    else res.destroy();
  });
});

httpsServer.on('error', (err) => {
  process.stderr.write(`listen error: ${err.message}\n`);
  process.exit(1);
});

httpsServer.listen(cfg.port, cfg.listen_host, () => {
  const { port } = httpsServer.address();
  const host = cfg.issuer_host.includes(':') ? `[${cfg.issuer_host}]` : cfg.issuer_host;
  const origin = `https://${host}:${port}`;
  buildProvider({ id: 'org', kind: 'org', issuer: origin, loginPrefix: '/login/_org' });
  for (const id of cfg.authorization_servers) {
    buildProvider({ id, kind: 'custom', issuer: `${origin}/oauth2/${id}`, loginPrefix: `/login/${id}` });
  }
  ready = true;
  const line = {
    ready: true,
    pid: process.pid,
    port,
    base_url: origin,
    issuers: Object.fromEntries(servers.map((s) => [s.id, s.issuer])),
    discovery: Object.fromEntries(servers.map((s) => [s.id, `${origin}${s.prefix}/.well-known/openid-configuration`])),
    audiences: Object.fromEntries(servers.filter((s) => s.audience).map((s) => [s.id, s.audience])),
    events_url: `${origin}/__test/events`,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
});

function shutdown() {
  httpsServer.close();
  httpsServer.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (cfg.exit_on_stdin_eof) {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.resume();
}
