#!/usr/bin/env node
// Okta Management API emulator for Portcullis directory-sync tests.
//
// Emulates the read side of /api/v1/users, /api/v1/groups and
// /api/v1/groups/{id}/users (plus single-object GETs) with Okta's object shapes,
// `Authorization: SSWS <token>`, `Link: <...>; rel="next"` paging, `X-Rate-Limit-*`
// headers and 429s. Test controls live under /__test/ (see README.md).
//
// Node built-ins only: no npm install, starts instantly.
'use strict';

const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const crypto = require('node:crypto');

// ---------------------------------------------------------------------------
// Constants: Okta's documented defaults.

// Page sizes (default, max) per list endpoint, from Okta's API reference:
// list users: default 200, max 200; list groups: default 10000, max 10000;
// list group members: default 1000, max 1000; users `q` (find) defaults to 10.
const PAGE = {
  users: { def: 200, max: 200 },
  usersQ: { def: 10, max: 200 },
  groups: { def: 10000, max: 10000 },
  members: { def: 1000, max: 1000 },
  userGroups: { def: 10000, max: 10000 },
};

// Rate-limit buckets with Okta's per-minute Workforce Identity defaults
// (developer.okta.com/docs/reference/rl-global-mgmt). Okta's table does not list
// /api/v1/groups/{id}/users or /api/v1/users/{id}/groups on their own; the emulator
// gives them the "most other API actions: /api/v1" limit (1,200).
const DEFAULT_LIMITS = {
  users: 600, // GET /api/v1/users
  user: 2000, // GET /api/v1/users/{idOrLogin}
  userGroups: 1200, // GET /api/v1/users/{id}/groups
  groups: 500, // GET /api/v1/groups
  group: 1000, // GET /api/v1/groups/{id}
  members: 1200, // GET /api/v1/groups/{id}/users
};
const BUCKET_PATHS = {
  users: '/api/v1/users',
  user: '/api/v1/users/{id}',
  userGroups: '/api/v1/users/{id}/groups',
  groups: '/api/v1/groups',
  group: '/api/v1/groups/{id}',
  members: '/api/v1/groups/{id}/users',
};

const USER_STATUSES = [
  'STAGED', 'PROVISIONED', 'ACTIVE', 'RECOVERY', 'LOCKED_OUT',
  'PASSWORD_EXPIRED', 'SUSPENDED', 'DEPROVISIONED',
];
const GROUP_TYPES = ['OKTA_GROUP', 'APP_GROUP', 'BUILT_IN'];
// Properties Okta's `filter` accepts (search accepts any property).
const USER_FILTER_ATTRS = new Set([
  'status', 'lastUpdated', 'id', 'profile.login', 'profile.email',
  'profile.firstName', 'profile.lastName',
]);
const GROUP_FILTER_ATTRS = new Set(['id', 'type', 'lastUpdated', 'lastMembershipUpdated']);
const DATE_ATTRS = new Set([
  'created', 'activated', 'statusChanged', 'lastLogin', 'lastUpdated',
  'passwordChanged', 'lastMembershipUpdated',
]);

// ---------------------------------------------------------------------------
// Small helpers.

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function mulberry32(seed) {
  let a = seed >>> 0;
  return function rand() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Okta object ids: 3-char prefix + 17 base62 chars (20 total), e.g. 00ub0oNGTSWTBKOLGLNR.
function makeId(prefix, rand) {
  let s = prefix;
  for (let i = 0; i < 17; i++) {
    const r = rand ? rand() : crypto.randomInt(0, 62) / 62;
    s += B62[Math.floor(r * 62) % 62];
  }
  return s;
}

// A monotonic millisecond clock so two mutations never share a timestamp and
// `lastUpdated gt "<previous watermark>"` always sees the later change.
let lastClock = 0;
function nowMs() {
  const t = Date.now();
  lastClock = t > lastClock ? t : lastClock + 1;
  return lastClock;
}
const iso = (ms) => new Date(ms).toISOString();
const nowIso = () => iso(nowMs());

function lowerBound(arr, key) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
function sortedInsert(arr, key) {
  const i = lowerBound(arr, key);
  if (arr[i] === key) return false;
  arr.splice(i, 0, key);
  return true;
}
function sortedRemove(arr, key) {
  const i = lowerBound(arr, key);
  if (arr[i] !== key) return false;
  arr.splice(i, 1);
  return true;
}

const encodeCursor = (id) => Buffer.from(`c1:${id}`).toString('base64url');
function decodeCursor(s) {
  let txt;
  try {
    txt = Buffer.from(s, 'base64url').toString('utf8');
  } catch {
    return null;
  }
  return txt.startsWith('c1:') ? txt.slice(3) : null;
}

class ApiError extends Error {
  constructor(status, code, summary, causes) {
    super(summary);
    this.status = status;
    this.code = code;
    this.summary = summary;
    this.causes = causes || [];
  }
}

// ---------------------------------------------------------------------------
// Okta filter / search expression language (SCIM-like):
//   expr   := and ('or' and)*
//   and    := unary ('and' unary)*
//   unary  := 'not' unary | '(' expr ')' | attr op value | attr 'pr'
//   op     := eq | ne | gt | ge | lt | le | sw | co | ew
// Values: "quoted strings", numbers, true, false, null.

function tokenize(src) {
  const toks = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '(' || c === ')') { toks.push({ t: c }); i++; continue; }
    if (c === '"') {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== '"') {
        if (src[j] === '\\' && j + 1 < src.length) { s += src[j + 1]; j += 2; continue; }
        s += src[j++];
      }
      if (j >= src.length) throw new Error('unterminated string');
      toks.push({ t: 'str', v: s });
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < src.length && !/[\s()"]/.test(src[j])) j++;
    toks.push({ t: 'word', v: src.slice(i, j) });
    i = j;
  }
  return toks;
}

const OPS = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le', 'sw', 'co', 'ew']);

function parseExpr(src) {
  const toks = tokenize(src);
  let p = 0;
  const peekWord = (w) => toks[p] && toks[p].t === 'word' && toks[p].v.toLowerCase() === w;
  function orExpr() {
    let left = andExpr();
    while (peekWord('or')) { p++; left = { k: 'or', a: left, b: andExpr() }; }
    return left;
  }
  function andExpr() {
    let left = unary();
    while (peekWord('and')) { p++; left = { k: 'and', a: left, b: unary() }; }
    return left;
  }
  function unary() {
    const tk = toks[p];
    if (!tk) throw new Error('unexpected end of expression');
    if (tk.t === '(') {
      p++;
      const e = orExpr();
      if (!toks[p] || toks[p].t !== ')') throw new Error('missing )');
      p++;
      return e;
    }
    if (peekWord('not')) { p++; return { k: 'not', a: unary() }; }
    if (tk.t !== 'word') throw new Error(`expected attribute, got ${JSON.stringify(tk.v)}`);
    const attr = tk.v;
    p++;
    const opTok = toks[p];
    if (!opTok || opTok.t !== 'word') throw new Error(`expected operator after ${attr}`);
    const op = opTok.v.toLowerCase();
    p++;
    if (op === 'pr') return { k: 'pr', attr };
    if (!OPS.has(op)) throw new Error(`unknown operator ${opTok.v}`);
    const vt = toks[p];
    if (!vt) throw new Error(`expected value after ${attr} ${op}`);
    p++;
    let value;
    if (vt.t === 'str') value = vt.v;
    else if (vt.t === 'word') {
      if (vt.v === 'true') value = true;
      else if (vt.v === 'false') value = false;
      else if (vt.v === 'null') value = null;
      else if (/^-?\d+(\.\d+)?$/.test(vt.v)) value = Number(vt.v);
      else throw new Error(`bad value ${vt.v} (strings must be quoted)`);
    } else throw new Error('expected value');
    return { k: 'cmp', attr, op, value };
  }
  const ast = orExpr();
  if (p !== toks.length) throw new Error(`unexpected token ${JSON.stringify(toks[p].v || toks[p].t)}`);
  return ast;
}

function attrsOf(ast, out = new Set()) {
  if (ast.k === 'cmp' || ast.k === 'pr') out.add(ast.attr);
  else if (ast.k === 'not') attrsOf(ast.a, out);
  else if (ast.k === 'and' || ast.k === 'or') { attrsOf(ast.a, out); attrsOf(ast.b, out); }
  return out;
}

function getPath(obj, path) {
  let v = obj;
  for (const part of path.split('.')) {
    if (v == null) return undefined;
    v = v[part];
  }
  return v;
}

function compile(ast) {
  switch (ast.k) {
    case 'or': { const a = compile(ast.a); const b = compile(ast.b); return (o) => a(o) || b(o); }
    case 'and': { const a = compile(ast.a); const b = compile(ast.b); return (o) => a(o) && b(o); }
    case 'not': { const a = compile(ast.a); return (o) => !a(o); }
    case 'pr': return (o) => { const v = getPath(o, ast.attr); return v !== undefined && v !== null && v !== ''; };
    case 'cmp': {
      const leaf = ast.attr.split('.').pop();
      const isDate = DATE_ATTRS.has(leaf) && typeof ast.value === 'string';
      let rhs = ast.value;
      if (isDate) {
        rhs = Date.parse(ast.value);
        if (Number.isNaN(rhs)) throw new Error(`invalid timestamp ${JSON.stringify(ast.value)}`);
      }
      const norm = (v) => {
        if (v === undefined || v === null) return null;
        if (isDate) return typeof v === 'string' ? Date.parse(v) : null;
        return typeof v === 'string' && typeof rhs === 'string' ? v.toLowerCase() : v;
      };
      if (typeof rhs === 'string') rhs = rhs.toLowerCase(); // Okta string matching is case-insensitive
      const test = (lv) => {
        if (lv === null) return ast.op === 'eq' ? rhs === null : ast.op === 'ne' ? rhs !== null : false;
        switch (ast.op) {
          case 'eq': return lv === rhs;
          case 'ne': return lv !== rhs;
          case 'gt': return lv > rhs;
          case 'ge': return lv >= rhs;
          case 'lt': return lv < rhs;
          case 'le': return lv <= rhs;
          case 'sw': return typeof lv === 'string' && lv.startsWith(rhs);
          case 'ew': return typeof lv === 'string' && lv.endsWith(rhs);
          case 'co': return typeof lv === 'string' && lv.includes(rhs);
          default: return false;
        }
      };
      return (o) => {
        const v = getPath(o, ast.attr);
        if (Array.isArray(v)) return v.some((x) => test(norm(x)));
        return test(norm(v));
      };
    }
    default: throw new Error('bad ast');
  }
}

function compileQuery(src, allowedAttrs, allowedOps, what) {
  let ast;
  try {
    ast = parseExpr(src);
  } catch (e) {
    throw new ApiError(400, 'E0000031', 'Invalid search criteria.', [{ errorSummary: `${what}: ${e.message}` }]);
  }
  const attrs = attrsOf(ast);
  if (allowedAttrs) {
    for (const a of attrs) {
      if (!allowedAttrs.has(a)) {
        throw new ApiError(400, 'E0000031', 'Invalid search criteria.', [
          { errorSummary: `${what}: ${a} is not a filterable property (use search)` },
        ]);
      }
    }
  }
  if (allowedOps) {
    const bad = [];
    (function walk(n) {
      if (n.k === 'cmp' && !allowedOps.has(n.op)) bad.push(n.op);
      else if (n.k === 'pr' && !allowedOps.has('pr')) bad.push('pr');
      else if (n.k === 'not') walk(n.a);
      else if (n.k === 'and' || n.k === 'or') { walk(n.a); walk(n.b); }
    })(ast);
    if (bad.length) {
      throw new ApiError(400, 'E0000031', 'Invalid search criteria.', [
        { errorSummary: `${what}: operator ${bad[0]} is not supported here` },
      ]);
    }
  }
  try {
    return { fn: compile(ast), attrs };
  } catch (e) {
    throw new ApiError(400, 'E0000031', 'Invalid search criteria.', [{ errorSummary: `${what}: ${e.message}` }]);
  }
}
// `filter` supports eq and the range operators combined with and/or/parentheses.
const FILTER_OPS = new Set(['eq', 'gt', 'ge', 'lt', 'le']);

// ---------------------------------------------------------------------------
// The directory.

class Directory {
  constructor() { this.clear(); }

  clear() {
    this.users = new Map(); // id -> user record
    this.userIds = []; // sorted ids
    this.logins = new Map(); // lower(login) -> id
    this.groups = new Map(); // id -> group record
    this.groupIds = []; // sorted ids
    this.groupNames = new Map(); // lower(name) -> id
    this.members = new Map(); // groupId -> sorted userIds
    this.userGroups = new Map(); // userId -> Set(groupId)
  }

  // --- users

  addUser(input, opts = {}) {
    const rand = opts.rand;
    const t = opts.now !== undefined ? opts.now : nowMs();
    const profile = { ...(input.profile || {}) };
    for (const k of ['login', 'email', 'firstName', 'lastName']) {
      if (input[k] !== undefined && profile[k] === undefined) profile[k] = input[k];
    }
    let id = input.id;
    if (!id) {
      do { id = makeId('00u', rand); } while (this.users.has(id));
    }
    if (this.users.has(id)) throw new ApiError(400, 'E0000001', 'Api validation failed: id', [{ errorSummary: `id: duplicate ${id}` }]);
    if (!profile.login) profile.login = profile.email || `${id}@example.com`;
    if (!profile.email) profile.email = profile.login.includes('@') ? profile.login : `${profile.login}@example.com`;
    if (profile.firstName === undefined) profile.firstName = profile.login.split('@')[0];
    if (profile.lastName === undefined) profile.lastName = 'User';
    if (this.logins.has(profile.login.toLowerCase())) {
      throw new ApiError(400, 'E0000001', 'Api validation failed: login', [
        { errorSummary: 'login: An object with this field already exists in the current organization' },
      ]);
    }
    const status = input.status || 'ACTIVE';
    if (!USER_STATUSES.includes(status)) throw new ApiError(400, 'E0000001', 'Api validation failed: status', [{ errorSummary: `status: unknown ${status}` }]);
    const created = input.created || iso(t);
    const activatedDefault = ['STAGED', 'PROVISIONED'].includes(status) ? null : created;
    const u = {
      id,
      status,
      created,
      activated: input.activated !== undefined ? input.activated : activatedDefault,
      statusChanged: input.statusChanged !== undefined ? input.statusChanged : (status === 'STAGED' ? null : created),
      lastLogin: input.lastLogin !== undefined ? input.lastLogin : null,
      lastUpdated: input.lastUpdated || created,
      passwordChanged: input.passwordChanged !== undefined ? input.passwordChanged : (activatedDefault ? created : null),
      type: input.type || { id: 'oty1defaultusertype0' },
      profile,
      credentials: input.credentials || { password: {}, provider: { type: 'OKTA', name: 'OKTA' } },
    };
    this.users.set(id, u);
    if (!opts.bulk) sortedInsert(this.userIds, id);
    this.logins.set(profile.login.toLowerCase(), id);
    this.userGroups.set(id, new Set());
    if (!opts.bulk && opts.everyone !== false) {
      const everyone = this.everyoneGroup();
      if (everyone) this.addMember(everyone, id);
    }
    return u;
  }

  findUser(key) {
    if (this.users.has(key)) return this.users.get(key);
    const id = this.logins.get(String(key).toLowerCase());
    if (id) return this.users.get(id);
    // Okta also accepts the login shortname (the part before @) when unambiguous.
    let found = null;
    for (const u of this.users.values()) {
      if (u.profile.login.split('@')[0].toLowerCase() === String(key).toLowerCase()) {
        if (found) return null;
        found = u;
      }
    }
    return found;
  }

  mustUser(key) {
    const u = this.findUser(key);
    if (!u) throw new ApiError(404, 'E0000007', `Not found: Resource not found: ${key} (User)`);
    return u;
  }

  updateUser(u, patch) {
    const t = iso(nowMs());
    if (patch.profile) {
      const newLogin = patch.profile.login;
      if (newLogin && newLogin.toLowerCase() !== u.profile.login.toLowerCase()) {
        if (this.logins.has(newLogin.toLowerCase())) throw new ApiError(400, 'E0000001', 'Api validation failed: login');
        this.logins.delete(u.profile.login.toLowerCase());
        this.logins.set(newLogin.toLowerCase(), u.id);
      }
      Object.assign(u.profile, patch.profile);
    }
    if (patch.status && patch.status !== u.status) {
      if (!USER_STATUSES.includes(patch.status)) throw new ApiError(400, 'E0000001', 'Api validation failed: status', [{ errorSummary: `status: unknown ${patch.status}` }]);
      u.status = patch.status;
      u.statusChanged = t;
      if (patch.status === 'ACTIVE' && !u.activated) u.activated = t;
      if (patch.status === 'DEPROVISIONED') u.activated = null;
    }
    for (const k of ['lastLogin', 'passwordChanged']) if (patch[k] !== undefined) u[k] = patch[k];
    u.lastUpdated = patch.lastUpdated || t;
    return u;
  }

  deleteUser(u) {
    for (const gid of this.userGroups.get(u.id) || []) this.removeMember(this.groups.get(gid), u.id);
    this.users.delete(u.id);
    sortedRemove(this.userIds, u.id);
    this.logins.delete(u.profile.login.toLowerCase());
    this.userGroups.delete(u.id);
  }

  // --- groups

  addGroup(input, opts = {}) {
    const t = opts.now !== undefined ? opts.now : nowMs();
    const profile = { ...(input.profile || {}) };
    if (input.name !== undefined && profile.name === undefined) profile.name = input.name;
    if (input.description !== undefined && profile.description === undefined) profile.description = input.description;
    let id = input.id;
    if (!id) {
      do { id = makeId('00g', opts.rand); } while (this.groups.has(id));
    }
    if (this.groups.has(id)) throw new ApiError(400, 'E0000001', 'Api validation failed: id', [{ errorSummary: `id: duplicate ${id}` }]);
    if (!profile.name) profile.name = id;
    if (profile.description === undefined) profile.description = null;
    const type = input.type || 'OKTA_GROUP';
    if (!GROUP_TYPES.includes(type)) throw new ApiError(400, 'E0000001', 'Api validation failed: type', [{ errorSummary: `type: unknown ${type}` }]);
    const created = input.created || iso(t);
    const g = {
      id,
      created,
      lastUpdated: input.lastUpdated || created,
      lastMembershipUpdated: input.lastMembershipUpdated || created,
      objectClass: input.objectClass || [type === 'APP_GROUP' ? 'okta:windows_security_principal' : 'okta:user_group'],
      type,
      profile,
    };
    this.groups.set(id, g);
    if (!opts.bulk) sortedInsert(this.groupIds, id);
    this.groupNames.set(profile.name.toLowerCase(), id);
    this.members.set(id, []);
    return g;
  }

  everyoneGroup() {
    for (const g of this.groups.values()) if (g.type === 'BUILT_IN' && g.profile.name === 'Everyone') return g;
    return null;
  }

  findGroup(key) {
    if (this.groups.has(key)) return this.groups.get(key);
    const id = this.groupNames.get(String(key).toLowerCase());
    return id ? this.groups.get(id) : null;
  }

  mustGroup(key) {
    const g = this.findGroup(key);
    if (!g) throw new ApiError(404, 'E0000007', `Not found: Resource not found: ${key} (UserGroup)`);
    return g;
  }

  updateGroup(g, patch) {
    if (patch.profile) {
      if (patch.profile.name && patch.profile.name !== g.profile.name) {
        this.groupNames.delete(g.profile.name.toLowerCase());
        this.groupNames.set(patch.profile.name.toLowerCase(), g.id);
      }
      Object.assign(g.profile, patch.profile);
    }
    if (patch.type) g.type = patch.type;
    g.lastUpdated = patch.lastUpdated || nowIso();
    return g;
  }

  deleteGroup(g) {
    for (const uid of this.members.get(g.id) || []) this.userGroups.get(uid)?.delete(g.id);
    this.members.delete(g.id);
    this.groups.delete(g.id);
    sortedRemove(this.groupIds, g.id);
    this.groupNames.delete(g.profile.name.toLowerCase());
  }

  // Okta bumps the group's lastMembershipUpdated (not lastUpdated, and not the
  // user's lastUpdated) when membership changes.
  addMember(g, uid, opts = {}) {
    const arr = this.members.get(g.id);
    const added = opts.bulk ? (arr.push(uid), true) : sortedInsert(arr, uid);
    if (added) {
      this.userGroups.get(uid).add(g.id);
      if (!opts.bulk) g.lastMembershipUpdated = nowIso();
    }
    return added;
  }

  removeMember(g, uid) {
    const removed = sortedRemove(this.members.get(g.id), uid);
    if (removed) {
      this.userGroups.get(uid)?.delete(g.id);
      g.lastMembershipUpdated = nowIso();
    }
    return removed;
  }

  finishBulk() {
    this.userIds = [...this.users.keys()].sort();
    this.groupIds = [...this.groups.keys()].sort();
    for (const [gid, arr] of this.members) {
      const s = [...new Set(arr)].sort();
      this.members.set(gid, s);
    }
  }

  // --- load / dump

  load(data) {
    this.clear();
    const rand = null;
    for (const u of data.users || []) this.addUser(u, { bulk: true, rand });
    for (const g of data.groups || []) {
      const grp = this.addGroup(g, { bulk: true, rand });
      for (const m of g.members || []) {
        const u = this.findUser(m);
        if (!u) throw new ApiError(400, 'E0000001', 'Api validation failed: members', [{ errorSummary: `group ${grp.profile.name}: unknown member ${m}` }]);
        this.addMember(grp, u.id, { bulk: true });
      }
    }
    for (const m of data.memberships || []) {
      const g = this.findGroup(m.group);
      const u = this.findUser(m.user);
      if (!g || !u) throw new ApiError(400, 'E0000001', 'Api validation failed: memberships', [{ errorSummary: `unknown group/user in ${JSON.stringify(m)}` }]);
      this.addMember(g, u.id, { bulk: true });
    }
    this.finishBulk();
  }

  dump() {
    return {
      users: this.userIds.map((id) => this.users.get(id)),
      groups: this.groupIds.map((id) => ({ ...this.groups.get(id), members: this.members.get(id) })),
    };
  }

  counts() {
    let memberships = 0;
    for (const arr of this.members.values()) memberships += arr.length;
    const byStatus = {};
    for (const u of this.users.values()) byStatus[u.status] = (byStatus[u.status] || 0) + 1;
    return { users: this.users.size, groups: this.groups.size, memberships, usersByStatus: byStatus };
  }

  // Deterministic large directory for API-call-count measurements.
  generate(spec) {
    const nUsers = int(spec.users, 100);
    const nGroups = int(spec.groups, 10);
    const everyone = spec.everyone === undefined ? true : truthy(spec.everyone);
    const seed = int(spec.seed, 1);
    const nDeprov = int(spec.deprovisioned, Math.floor(nUsers / 100));
    const nSusp = int(spec.suspended, Math.floor(nUsers / 200));
    const plainGroups = Math.max(0, nGroups - (everyone ? 1 : 0));
    const nMemberships = Math.min(int(spec.memberships, nUsers * 5), nUsers * plainGroups);
    const appGroups = int(spec.appGroups, 0);
    const base = Date.parse(spec.baseTime || '2025-01-01T00:00:00.000Z');
    const rand = mulberry32(seed);
    const span = 2 * 365 * 86400e3;
    const ts = (hi, lo) => iso(Math.floor(lo + rand() * (hi - lo)));
    this.clear();
    const userIdList = [];
    for (let i = 0; i < nUsers; i++) {
      const created = Math.floor(base - span + rand() * span * 0.9);
      const status = i < nDeprov ? 'DEPROVISIONED' : i < nDeprov + nSusp ? 'SUSPENDED' : 'ACTIVE';
      const lastUpdated = Date.parse(ts(base, created));
      const n = String(i).padStart(6, '0');
      const u = this.addUser({
        status,
        created: iso(created),
        activated: status === 'DEPROVISIONED' ? null : iso(created),
        statusChanged: iso(status === 'ACTIVE' ? created : lastUpdated),
        lastLogin: rand() < 0.8 ? ts(base, created) : null,
        lastUpdated: iso(lastUpdated),
        passwordChanged: iso(created),
        profile: {
          login: `user${n}@example.com`,
          email: `user${n}@example.com`,
          firstName: `First${n}`,
          lastName: `Last${n}`,
          displayName: `First${n} Last${n}`,
          department: `dept${i % 20}`,
        },
      }, { bulk: true, rand, now: created });
      userIdList.push(u.id);
    }
    const groupList = [];
    if (everyone && nGroups > 0) {
      const g = this.addGroup({ type: 'BUILT_IN', profile: { name: 'Everyone', description: 'All users in your organization' }, created: iso(base - span) }, { bulk: true, rand });
      for (const uid of userIdList) this.addMember(g, uid, { bulk: true });
      g.lastUpdated = iso(base - span);
      g.lastMembershipUpdated = iso(base - 1000);
    }
    for (let i = 0; i < plainGroups; i++) {
      const created = Math.floor(base - span + rand() * span * 0.5);
      const n = String(i).padStart(5, '0');
      const g = this.addGroup({
        type: i < appGroups ? 'APP_GROUP' : 'OKTA_GROUP',
        created: iso(created),
        lastUpdated: ts(base, created),
        lastMembershipUpdated: ts(base, created),
        profile: { name: `group-${n}`, description: `Generated group ${n}` },
      }, { bulk: true, rand, now: created });
      groupList.push(g);
    }
    // Skewed group sizes: a few large groups, a long tail of small ones. Every
    // group gets at least one member while memberships last.
    if (groupList.length && userIdList.length) {
      const seen = new Set();
      let made = 0;
      let attempts = 0;
      const add = (gi, ui) => {
        const key = gi * nUsers + ui;
        if (seen.has(key)) return false;
        seen.add(key);
        this.addMember(groupList[gi], userIdList[ui], { bulk: true });
        made++;
        return true;
      };
      for (let gi = 0; gi < groupList.length && made < nMemberships; gi++) add(gi, Math.floor(rand() * nUsers));
      while (made < nMemberships && attempts < nMemberships * 20) {
        attempts++;
        const gi = Math.floor(Math.pow(rand(), 2) * groupList.length);
        add(gi, Math.floor(rand() * nUsers));
      }
    }
    this.finishBulk();
    return this.counts();
  }
}

function int(v, def) {
  if (v === undefined || v === null || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`not a non-negative number: ${v}`);
  return Math.floor(n);
}
function truthy(v) { return v === true || v === 1 || v === '1' || v === 'true' || v === 'yes'; }
function parseKv(s) {
  const out = {};
  for (const part of String(s).split(',')) {
    if (!part.trim()) continue;
    const [k, v] = part.split('=');
    out[k.trim()] = v === undefined ? true : v.trim();
  }
  return out;
}

// ---------------------------------------------------------------------------
// Server state: rate limits, faults, stats.

function createState(opts) {
  return {
    dir: new Directory(),
    tokens: new Set(opts.tokens),
    rate: {
      enabled: opts.rateEnabled,
      windowMs: opts.windowSeconds * 1000,
      limits: { ...DEFAULT_LIMITS, ...opts.limits },
      windows: {}, // bucket -> { start, count }
    },
    forced429: { count: 0, bucket: null, resetSeconds: 1 },
    down: { mode: 'off', count: null },
    latencyMs: 0,
    stats: newStats(),
    log: [],
    verbose: opts.verbose,
    filterIncludesDeprovisioned: opts.filterDeprovisioned === 'match',
  };
}

function newStats() {
  const endpoints = {};
  for (const [b, p] of Object.entries(BUCKET_PATHS)) endpoints[p] = { bucket: b, calls: 0, ok: 0, rateLimited: 0, unauthorized: 0, errors: 0, down: 0 };
  return { since: new Date().toISOString(), total: 0, rateLimited: 0, unauthorized: 0, down: 0, notFound: 0, byStatus: {}, endpoints };
}

function rateWindow(state, bucket, now) {
  const r = state.rate;
  const start = Math.floor(now / r.windowMs) * r.windowMs;
  let w = r.windows[bucket];
  if (!w || w.start !== start) { w = { start, count: 0 }; r.windows[bucket] = w; }
  return w;
}

function rateHeaders(state, bucket, consume) {
  const r = state.rate;
  const now = Date.now();
  const limit = r.limits[bucket] || 1200;
  const w = rateWindow(state, bucket, now);
  // Reset is the end of the current window, in epoch seconds (rounded up).
  const reset = Math.ceil((w.start + r.windowMs) / 1000);
  if (!r.enabled) return { ok: true, headers: { 'X-Rate-Limit-Limit': limit, 'X-Rate-Limit-Remaining': limit, 'X-Rate-Limit-Reset': reset } };
  let ok = true;
  if (consume) {
    if (w.count >= limit) ok = false;
    else w.count++;
  }
  return { ok, headers: { 'X-Rate-Limit-Limit': limit, 'X-Rate-Limit-Remaining': Math.max(0, limit - w.count), 'X-Rate-Limit-Reset': reset } };
}

function errorBody(code, summary, causes) {
  return {
    errorCode: code,
    errorSummary: summary,
    errorLink: code,
    errorId: 'oae' + crypto.randomBytes(16).toString('base64url'),
    errorCauses: causes || [],
  };
}

// ---------------------------------------------------------------------------
// API routes.

function route(pathname) {
  const p = pathname.replace(/\/+$/, '') || '/';
  let m;
  if (p === '/api/v1/users') return { bucket: 'users' };
  if ((m = p.match(/^\/api\/v1\/users\/([^/]+)\/groups$/))) return { bucket: 'userGroups', id: decodeURIComponent(m[1]) };
  if ((m = p.match(/^\/api\/v1\/users\/([^/]+)$/))) return { bucket: 'user', id: decodeURIComponent(m[1]) };
  if (p === '/api/v1/groups') return { bucket: 'groups' };
  if ((m = p.match(/^\/api\/v1\/groups\/([^/]+)\/users$/))) return { bucket: 'members', id: decodeURIComponent(m[1]) };
  if ((m = p.match(/^\/api\/v1\/groups\/([^/]+)$/))) return { bucket: 'group', id: decodeURIComponent(m[1]) };
  return null;
}

function pageLimit(params, rule) {
  const raw = params.get('limit');
  if (raw === null || raw === '') return rule.def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new ApiError(400, 'E0000001', 'Api validation failed: limit', [{ errorSummary: 'limit: must be a positive integer' }]);
  }
  return Math.min(n, rule.max);
}

// Walk a sorted id list from the cursor, collecting up to `limit` matches.
function paginate(ids, params, limit, lookup, pred) {
  const after = params.get('after');
  let start = 0;
  if (after !== null && after !== '') {
    const lastId = decodeCursor(after);
    if (lastId === null) throw new ApiError(400, 'E0000001', 'Api validation failed: after', [{ errorSummary: 'after: invalid cursor' }]);
    start = lowerBound(ids, lastId);
    if (ids[start] === lastId) start++;
  }
  const items = [];
  let i = start;
  for (; i < ids.length && items.length < limit; i++) {
    const o = lookup(ids[i]);
    if (o && (!pred || pred(o))) items.push(o);
  }
  // Is there anything after the last returned item? Okta only sends rel="next"
  // when another page exists.
  let more = false;
  if (items.length === limit) {
    for (let j = i; j < ids.length; j++) {
      const o = lookup(ids[j]);
      if (o && (!pred || pred(o))) { more = true; break; }
    }
  }
  return { items, next: more ? encodeCursor(items[items.length - 1].id) : null };
}

function linkHeaders(base, pathname, params, next) {
  const self = new URLSearchParams(params);
  const links = [`<${base}${pathname}${self.toString() ? '?' + self.toString() : ''}>; rel="self"`];
  if (next) {
    const np = new URLSearchParams(params);
    np.set('after', next);
    links.push(`<${base}${pathname}?${np.toString()}>; rel="next"`);
  }
  return links;
}

function userJson(u, base) {
  return {
    ...u,
    profile: { ...u.profile },
    _links: {
      self: { href: `${base}/api/v1/users/${u.id}` },
      ...(u.status === 'DEPROVISIONED'
        ? { activate: { href: `${base}/api/v1/users/${u.id}/lifecycle/activate`, method: 'POST' } }
        : { deactivate: { href: `${base}/api/v1/users/${u.id}/lifecycle/deactivate`, method: 'POST' } }),
    },
  };
}

function groupJson(g, base, dir, expandStats) {
  const out = {
    ...g,
    profile: { ...g.profile },
    _links: {
      logo: [
        { name: 'medium', href: 'https://op1static.oktacdn.com/assets/img/logos/groups/okta-medium.png', type: 'image/png' },
        { name: 'large', href: 'https://op1static.oktacdn.com/assets/img/logos/groups/okta-large.png', type: 'image/png' },
      ],
      users: { href: `${base}/api/v1/groups/${g.id}/users` },
      apps: { href: `${base}/api/v1/groups/${g.id}/apps` },
    },
  };
  if (expandStats) {
    out._embedded = { stats: { usersCount: dir.members.get(g.id).length, appsCount: 0, groupPushMappingsCount: 0, hasAdminPrivilege: false } };
  }
  return out;
}

function handleApi(state, req, url, rt, base) {
  const dir = state.dir;
  const params = url.searchParams;
  if (req.method !== 'GET') {
    throw new ApiError(405, 'E0000022', 'The endpoint does not support the provided HTTP method', []);
  }
  switch (rt.bucket) {
    case 'users': {
      const filter = params.get('filter');
      const search = params.get('search');
      const q = params.get('q');
      let pred = null;
      let limit = pageLimit(params, q !== null && !filter && !search ? PAGE.usersQ : PAGE.users);
      if (search) {
        // search: any property; results include DEPROVISIONED users that match.
        pred = compileQuery(search, null, null, 'search').fn;
      } else if (filter) {
        const c = compileQuery(filter, USER_FILTER_ATTRS, FILTER_OPS, 'filter');
        // filter: DEPROVISIONED users are returned only when the expression asks
        // about status (e.g. status eq "DEPROVISIONED"); see README.
        if (c.attrs.has('status') || state.filterIncludesDeprovisioned) pred = c.fn;
        else pred = (u) => u.status !== 'DEPROVISIONED' && c.fn(u);
      } else if (q !== null) {
        const ql = q.toLowerCase();
        pred = (u) => u.status !== 'DEPROVISIONED' && ['firstName', 'lastName', 'email'].some((k) => String(u.profile[k] || '').toLowerCase().startsWith(ql));
      } else {
        pred = (u) => u.status !== 'DEPROVISIONED';
      }
      const page = paginate(dir.userIds, params, limit, (id) => dir.users.get(id), pred);
      return { body: page.items.map((u) => userJson(u, base)), links: linkHeaders(base, url.pathname, params, page.next) };
    }
    case 'user': {
      const u = dir.mustUser(rt.id);
      return { body: userJson(u, base) };
    }
    case 'userGroups': {
      const u = dir.mustUser(rt.id);
      const ids = [...dir.userGroups.get(u.id)].sort();
      const page = paginate(ids, params, pageLimit(params, PAGE.userGroups), (id) => dir.groups.get(id), null);
      return { body: page.items.map((g) => groupJson(g, base, dir, false)), links: linkHeaders(base, url.pathname, params, page.next) };
    }
    case 'groups': {
      const filter = params.get('filter');
      const search = params.get('search');
      const q = params.get('q');
      let pred = null;
      if (search) pred = compileQuery(search, null, null, 'search').fn;
      else if (filter) pred = compileQuery(filter, GROUP_FILTER_ATTRS, FILTER_OPS, 'filter').fn;
      if (q !== null) {
        const ql = q.toLowerCase();
        const inner = pred;
        pred = (g) => g.profile.name.toLowerCase().startsWith(ql) && (!inner || inner(g));
      }
      const expandStats = (params.get('expand') || '').split(',').includes('stats');
      const page = paginate(dir.groupIds, params, pageLimit(params, PAGE.groups), (id) => dir.groups.get(id), pred);
      return { body: page.items.map((g) => groupJson(g, base, dir, expandStats)), links: linkHeaders(base, url.pathname, params, page.next) };
    }
    case 'group': {
      const g = dir.mustGroup(rt.id);
      if (g.id !== rt.id) throw new ApiError(404, 'E0000007', `Not found: Resource not found: ${rt.id} (UserGroup)`);
      return { body: groupJson(g, base, dir, (params.get('expand') || '').split(',').includes('stats')) };
    }
    case 'members': {
      const g = dir.groups.get(rt.id);
      if (!g) throw new ApiError(404, 'E0000007', `Not found: Resource not found: ${rt.id} (UserGroup)`);
      const page = paginate(dir.members.get(g.id), params, pageLimit(params, PAGE.members), (id) => dir.users.get(id), null);
      return { body: page.items.map((u) => userJson(u, base)), links: linkHeaders(base, url.pathname, params, page.next) };
    }
    default:
      throw new ApiError(404, 'E0000022', 'The endpoint does not support the provided HTTP method');
  }
}

// ---------------------------------------------------------------------------
// /__test/ control routes.

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 512 * 1024 * 1024) throw new ApiError(413, 'E0000001', 'body too large');
    chunks.push(c);
  }
  if (!size) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new ApiError(400, 'E0000003', 'The request body was not well-formed.', [{ errorSummary: e.message }]);
  }
}

async function handleControl(state, req, url, base) {
  const dir = state.dir;
  const p = url.pathname.replace(/\/+$/, '');
  const m = req.method;
  let mm;
  const body = ['POST', 'PUT', 'PATCH'].includes(m) ? await readJson(req) : {};

  if (p === '/__test/health' && m === 'GET') return { ok: true, ...dir.counts() };
  if (p === '/__test/data' && m === 'GET') return dir.dump();
  if (p === '/__test/data' && (m === 'PUT' || m === 'POST')) {
    dir.load(body);
    return { ok: true, ...dir.counts() };
  }
  if (p === '/__test/generate' && m === 'POST') {
    const t0 = Date.now();
    const c = dir.generate(body);
    return { ok: true, ...c, ms: Date.now() - t0 };
  }
  if (p === '/__test/users' && m === 'POST') return userJson(dir.addUser({ ...body, lastUpdated: undefined, created: body.created }), base);
  if ((mm = p.match(/^\/__test\/users\/([^/]+)$/))) {
    const u = dir.mustUser(decodeURIComponent(mm[1]));
    if (m === 'GET') return { ...userJson(u, base), groups: [...dir.userGroups.get(u.id)].sort() };
    if (m === 'PATCH' || m === 'POST') return userJson(dir.updateUser(u, body), base);
    if (m === 'DELETE') { dir.deleteUser(u); return { ok: true }; }
  }
  if ((mm = p.match(/^\/__test\/users\/([^/]+)\/(deactivate|activate|suspend|unsuspend|unlock|expire_password)$/)) && m === 'POST') {
    const u = dir.mustUser(decodeURIComponent(mm[1]));
    const to = { deactivate: 'DEPROVISIONED', activate: 'ACTIVE', suspend: 'SUSPENDED', unsuspend: 'ACTIVE', unlock: 'ACTIVE', expire_password: 'PASSWORD_EXPIRED' }[mm[2]];
    return userJson(dir.updateUser(u, { status: to }), base);
  }
  if ((mm = p.match(/^\/__test\/users\/([^/]+)\/status$/)) && (m === 'POST' || m === 'PUT')) {
    const u = dir.mustUser(decodeURIComponent(mm[1]));
    return userJson(dir.updateUser(u, { status: body.status }), base);
  }
  if (p === '/__test/groups' && m === 'POST') {
    const g = dir.addGroup({ ...body, members: undefined });
    for (const k of body.members || []) dir.addMember(g, dir.mustUser(k).id);
    return groupJson(g, base, dir, true);
  }
  if ((mm = p.match(/^\/__test\/groups\/([^/]+)$/))) {
    const g = dir.mustGroup(decodeURIComponent(mm[1]));
    if (m === 'GET') return { ...groupJson(g, base, dir, true), members: dir.members.get(g.id) };
    if (m === 'PATCH' || m === 'POST') return groupJson(dir.updateGroup(g, body), base, dir, true);
    if (m === 'DELETE') { dir.deleteGroup(g); return { ok: true }; }
  }
  if ((mm = p.match(/^\/__test\/groups\/([^/]+)\/users\/([^/]+)$/)) && (m === 'PUT' || m === 'DELETE')) {
    const g = dir.mustGroup(decodeURIComponent(mm[1]));
    const u = dir.mustUser(decodeURIComponent(mm[2]));
    const changed = m === 'PUT' ? dir.addMember(g, u.id) : dir.removeMember(g, u.id);
    return { ok: true, changed, lastMembershipUpdated: g.lastMembershipUpdated };
  }
  if (p === '/__test/rate-limits') {
    const r = state.rate;
    if (m === 'POST' || m === 'PUT') {
      if (body.enabled !== undefined) r.enabled = !!body.enabled;
      if (body.windowSeconds !== undefined) r.windowMs = Math.max(1, Number(body.windowSeconds)) * 1000;
      if (body.limit !== undefined) for (const b of Object.keys(DEFAULT_LIMITS)) r.limits[b] = int(body.limit);
      for (const b of Object.keys(DEFAULT_LIMITS)) if (body[b] !== undefined) r.limits[b] = int(body[b]);
      if (body.reset === true) r.limits = { ...DEFAULT_LIMITS };
      r.windows = {};
    }
    if (m === 'DELETE') { r.windows = {}; }
    return { enabled: r.enabled, windowSeconds: r.windowMs / 1000, limits: r.limits, windows: r.windows };
  }
  if (p === '/__test/force-429' && m === 'POST') {
    state.forced429 = { count: int(body.count, 1), bucket: body.bucket || null, resetSeconds: Number(body.resetSeconds ?? 1) };
    return { ok: true, ...state.forced429 };
  }
  if (p === '/__test/down' && m === 'POST') {
    const mode = body.mode || 'reset';
    if (!['off', 'reset', '503', '500', 'hang'].includes(String(mode))) throw new ApiError(400, 'E0000001', `unknown down mode ${mode}`);
    const count = body.count === undefined || body.count === null ? null : int(body.count);
    state.down = count === 0 ? { mode: 'off', count: null } : { mode: String(mode), count };
    return { ok: true, ...state.down };
  }
  if (p === '/__test/up' && m === 'POST') { state.down = { mode: 'off', count: null }; return { ok: true }; }
  if (p === '/__test/latency' && m === 'POST') { state.latencyMs = int(body.ms, 0); return { ok: true, ms: state.latencyMs }; }
  if (p === '/__test/tokens' && (m === 'POST' || m === 'PUT')) {
    const list = Array.isArray(body.tokens) ? body.tokens : [body.token];
    state.tokens = new Set(list.filter(Boolean).map(String));
    return { ok: true, count: state.tokens.size };
  }
  if (p === '/__test/stats' && m === 'GET') {
    return { ...state.stats, counts: dir.counts() };
  }
  if ((p === '/__test/stats/reset' && m === 'POST') || (p === '/__test/stats' && m === 'DELETE')) {
    state.stats = newStats();
    state.log = [];
    return { ok: true };
  }
  if (p === '/__test/requests' && m === 'GET') return state.log;
  if (p === '/__test/reset' && m === 'POST') {
    // Everything back to start-up defaults except the dataset.
    state.rate.windows = {};
    state.forced429 = { count: 0, bucket: null, resetSeconds: 1 };
    state.down = { mode: 'off', count: null };
    state.latencyMs = 0;
    state.stats = newStats();
    state.log = [];
    return { ok: true };
  }
  throw new ApiError(404, 'E0000007', `Not found: no control route ${m} ${p}`);
}

// ---------------------------------------------------------------------------
// HTTP plumbing.

function send(res, status, headers, body) {
  const data = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(data),
    ...headers,
  });
  res.end(data);
}

function makeHandler(state, scheme, portRef) {
  return async function handler(req, res) {
    const host = req.headers.host || `127.0.0.1:${portRef.port}`;
    const base = `${scheme}://${host}`;
    let url;
    try {
      url = new URL(req.url, base);
    } catch {
      return send(res, 400, {}, errorBody('E0000001', 'Api validation failed: url'));
    }
    if (url.pathname.startsWith('/__test/')) {
      try {
        const out = await handleControl(state, req, url, base);
        return send(res, 200, {}, out);
      } catch (e) {
        if (e instanceof ApiError) return send(res, e.status, {}, errorBody(e.code, e.summary, e.causes));
        return send(res, 400, {}, errorBody('E0000001', String(e.message || e)));
      }
    }
    return handleApiRequest(state, req, res, url, base);
  };
}

async function handleApiRequest(state, req, res, url, base) {
  const rt = route(url.pathname);
  const stats = state.stats;
  stats.total++;
  const ep = rt ? stats.endpoints[BUCKET_PATHS[rt.bucket]] : null;
  if (ep) ep.calls++;
  const logEntry = { t: new Date().toISOString(), method: req.method, url: req.url, status: 0 };
  state.log.push(logEntry);
  if (state.log.length > 2000) state.log.splice(0, state.log.length - 2000);
  const finish = (status, headers, body) => {
    stats.byStatus[status] = (stats.byStatus[status] || 0) + 1;
    logEntry.status = status;
    if (state.verbose) process.stderr.write(`${req.method} ${req.url} -> ${status}\n`);
    send(res, status, headers, body);
  };

  if (state.latencyMs) await new Promise((r) => setTimeout(r, state.latencyMs));

  // Fault injection: the API is "down".
  const down = state.down;
  if (down.mode !== 'off') {
    const mode = down.mode;
    if (down.count !== null) {
      down.count--;
      if (down.count <= 0) state.down = { mode: 'off', count: null };
    }
    stats.down++;
    if (ep) ep.down++;
    if (mode === 'reset') {
      logEntry.status = 'reset';
      if (typeof req.socket.resetAndDestroy === 'function') req.socket.resetAndDestroy();
      else req.socket.destroy();
      return;
    }
    if (mode === 'hang') {
      logEntry.status = 'hang';
      return; // never answer; the client must time out
    }
    const status = Number(mode);
    return finish(status, {}, errorBody('E0000009', status === 503 ? 'Service Unavailable' : 'Internal Server Error'));
  }

  if (!rt) {
    return finish(404, {}, errorBody('E0000022', 'The endpoint does not support the provided HTTP method'));
  }

  // Authentication: Authorization: SSWS <token>.
  const auth = req.headers.authorization || '';
  const mAuth = auth.match(/^SSWS (.+)$/);
  if (!mAuth || !state.tokens.has(mAuth[1].trim())) {
    stats.unauthorized++;
    ep.unauthorized++;
    const rh = rateHeaders(state, rt.bucket, false).headers;
    return finish(401, rh, errorBody('E0000011', 'Invalid token provided'));
  }

  // Forced 429s.
  const f = state.forced429;
  if (f.count > 0 && (!f.bucket || f.bucket === rt.bucket)) {
    f.count--;
    stats.rateLimited++;
    ep.rateLimited++;
    const limit = state.rate.limits[rt.bucket];
    const reset = Math.ceil((Date.now() + f.resetSeconds * 1000) / 1000);
    return finish(429, { 'X-Rate-Limit-Limit': limit, 'X-Rate-Limit-Remaining': 0, 'X-Rate-Limit-Reset': reset }, errorBody('E0000047', 'API call exceeded rate limit due to too many requests.'));
  }

  // Per-bucket rate limit.
  const rl = rateHeaders(state, rt.bucket, true);
  if (!rl.ok) {
    stats.rateLimited++;
    ep.rateLimited++;
    return finish(429, rl.headers, errorBody('E0000047', 'API call exceeded rate limit due to too many requests.'));
  }

  try {
    const out = handleApi(state, req, url, rt, base);
    ep.ok++;
    const headers = { ...rl.headers };
    if (out.links) headers.Link = out.links;
    return finish(200, headers, out.body);
  } catch (e) {
    ep.errors++;
    if (e instanceof ApiError) {
      if (e.status === 404) stats.notFound++;
      return finish(e.status, rl.headers, errorBody(e.code, e.summary, e.causes));
    }
    process.stderr.write(`okta-api emulator error: ${e.stack || e}\n`);
    return finish(500, rl.headers, errorBody('E0000009', 'Internal Server Error'));
  }
}

// ---------------------------------------------------------------------------
// Command line.

function usage(msg) {
  if (msg) process.stderr.write(`okta-api: ${msg}\n`);
  process.stderr.write(`usage: node e2e/okta-api/server.js [--port N] [--host H] [--token T[,T2]]
       [--data FILE] [--generate users=N,groups=N,memberships=N,seed=N,...]
       [--rate-limit off|N|users=N,groups=N,members=N,...] [--rate-window SECONDS]
       [--filter-deprovisioned explicit|match] [--tls-cert FILE --tls-key FILE] [--verbose]
`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    port: 0, host: '127.0.0.1', tokens: ['test-token'], data: null, generate: null,
    rateEnabled: true, limits: {}, windowSeconds: 60, tlsCert: null, tlsKey: null, verbose: false,
    filterDeprovisioned: 'explicit',
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) { v = a.slice(eq + 1); a = a.slice(0, eq); }
    const val = () => (v !== undefined ? v : (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`)));
    switch (a) {
      case '--port': o.port = int(val(), 0); break;
      case '--host': o.host = val(); break;
      case '--token': o.tokens = val().split(',').filter(Boolean); break;
      case '--data': o.data = val(); break;
      case '--generate': o.generate = parseKv(val()); break;
      case '--rate-limit': {
        const s = val();
        if (s === 'off' || s === '0') o.rateEnabled = false;
        else if (/^\d+$/.test(s)) for (const b of Object.keys(DEFAULT_LIMITS)) o.limits[b] = int(s);
        else for (const [k, n] of Object.entries(parseKv(s))) {
          if (!(k in DEFAULT_LIMITS)) usage(`unknown rate-limit bucket ${k} (${Object.keys(DEFAULT_LIMITS).join(', ')})`);
          o.limits[k] = int(n);
        }
        break;
      }
      case '--rate-window': o.windowSeconds = Number(val()); if (!(o.windowSeconds > 0)) usage('bad --rate-window'); break;
      case '--tls-cert': o.tlsCert = val(); break;
      case '--tls-key': o.tlsKey = val(); break;
      case '--filter-deprovisioned': o.filterDeprovisioned = val(); if (!['explicit', 'match'].includes(o.filterDeprovisioned)) usage('--filter-deprovisioned is explicit or match'); break;
      case '--verbose': case '-v': o.verbose = true; break;
      case '--help': case '-h': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!!o.tlsCert !== !!o.tlsKey) usage('--tls-cert and --tls-key go together');
  return o;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const state = createState(opts);
  const t0 = Date.now();
  if (opts.data) state.dir.load(JSON.parse(fs.readFileSync(opts.data, 'utf8')));
  else if (opts.generate) state.dir.generate(opts.generate);
  const loadMs = Date.now() - t0;
  const tls = !!opts.tlsCert;
  const portRef = { port: 0 };
  const handler = makeHandler(state, tls ? 'https' : 'http', portRef);
  const server = tls
    ? https.createServer({ cert: fs.readFileSync(opts.tlsCert), key: fs.readFileSync(opts.tlsKey) }, handler)
    : http.createServer(handler);
  server.keepAliveTimeout = 30000;
  server.on('clientError', (err, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'); });
  server.listen(opts.port, opts.host, () => {
    const port = server.address().port;
    portRef.port = port;
    const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    const c = state.dir.counts();
    process.stdout.write(JSON.stringify({
      ready: true, port, url: `${tls ? 'https' : 'http'}://${hostForUrl}:${port}`,
      users: c.users, groups: c.groups, memberships: c.memberships, loadMs,
    }) + '\n');
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Exit with the parent test process when stdin closes, if stdin is a pipe.
  if (process.env.OKTA_API_EXIT_ON_STDIN_EOF === '1') {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  }
}

if (require.main === module) main();

module.exports = { Directory, parseExpr, compileQuery, encodeCursor, decodeCursor };
