/**
 * Who may call what: every route of the running API server against every
 * kind of credential, judged by a policy table written here from the role
 * descriptions (not read from the server's permission table or roles.ts,
 * which is what this checks). A route the router has and this table lacks
 * fails the coverage test, so a new route cannot go untested.
 */
import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { api, isErrorCode, type ErrorCode } from '@keyhub/protocol';
import { registeredRoutes } from '@keyhub/hub/dist/http/server';
import { csrfTokenFor } from '@keyhub/hub/dist/operations/dashboard/csrf-token';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';
import { insertActiveListeners, listenerIds } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';

type Role = api.Role;
const ROLES: readonly Role[] = ['admin', 'key-officer', 'approver', 'auditor'];

/** The credentials every route is called with: one operator per role, and the ways of not being one. */
const BAD_CREDENTIALS = ['none', 'expired', 'revoked', 'malformed', 'forged'] as const;
type BadCredential = (typeof BAD_CREDENTIALS)[number];
type Column = Role | BadCredential;
const COLUMNS: readonly Column[] = [...ROLES, ...BAD_CREDENTIALS];

/** What a refused credential must be told (401, before any permission is looked at). */
const REFUSAL: Record<BadCredential, ErrorCode> = {
  none: 'AUTH_MISSING',
  expired: 'AUTH_EXPIRED',
  revoked: 'AUTH_REVOKED',
  malformed: 'AUTH_INVALID',
  forged: 'AUTH_INVALID',
};

/**
 * Who may call a route: anyone (no credential needed), any authenticated
 * operator, or operators holding one of the listed roles.
 */
type Access = 'public' | 'authenticated' | readonly Role[];

/** State the requests draw on: names and ids that exist in the fixture. */
interface World {
  keyName: string;
  listenerId: string;
  roleTarget: string;
  victims: Record<Column, string>;
  spareTokenIds: Record<Column, string>;
  /** A public key (PEM) to ask client certificates for. */
  publicKeyPem: string;
  /** The hub's own origin (dashboard forms must come from it). */
  origin: string;
  serial: () => number;
}

interface Cell {
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
}

interface RouteSpec {
  access: Access;
  /** The status an allowed credential gets for this (plausible) request. */
  allowed: number;
  request: (w: World, col: Column) => Cell;
}

const at =
  (path: string): ((w: World) => Cell) =>
  () => ({ path });
const hex64 = (): string => randomBytes(32).toString('hex');
/** The dashboard login form's nonce cookie (any value: the CSRF token is bound to it). */
const LOGIN_NONCE = randomBytes(32).toString('base64url');

/*
 * The policy, from the role descriptions:
 *  admin       — operators, roles, approval policies, audit read and checkpoints;
 *  key-officer — keys, distribution, listener approvals;
 *  approver    — decides on approval requests;
 *  auditor     — read-only: status, listeners, key metadata, audit;
 *  everyone authenticated — health, hub info, CA and CRLs, whoami, own
 *                tokens and client certificates, policy list,
 *                approvals list/show/cancel/pickup;
 *  public      — GET /v1/health and GET /v1/openapi.json.
 */
const POLICY: Readonly<Record<string, RouteSpec>> = {
  'GET /v1/health': { access: 'public', allowed: 200, request: at('/v1/health') },
  'GET /v1/openapi.json': { access: 'public', allowed: 200, request: at('/v1/openapi.json') },
  'GET /v1/hub': { access: 'authenticated', allowed: 200, request: at('/v1/hub') },
  'GET /v1/hub/ca': { access: 'authenticated', allowed: 200, request: at('/v1/hub/ca') },
  'GET /v1/hub/crl/:profile': { access: 'authenticated', allowed: 200, request: at('/v1/hub/crl/tls-issuing') },
  'GET /v1/auth/whoami': { access: 'authenticated', allowed: 200, request: at('/v1/auth/whoami') },

  'GET /v1/keys': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/v1/keys?limit=10') },
  'POST /v1/keys': {
    access: ['key-officer'],
    allowed: 201,
    request: (w, col) => ({ path: '/v1/keys', body: { name: `matrix/${col}-${w.serial()}`, algorithm: 'AES-256' } }),
  },
  'GET /v1/keys/:name/status': { access: ['key-officer', 'auditor'], allowed: 200, request: (w) => ({ path: `/v1/keys/${encodeURIComponent(w.keyName)}/status` }) },
  'GET /v1/status': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/v1/status') },
  'GET /v1/keys/:name/commands': { access: ['key-officer', 'auditor'], allowed: 200, request: (w) => ({ path: `/v1/keys/${encodeURIComponent(w.keyName)}/commands` }) },
  'GET /v1/commands': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/v1/commands') },
  'GET /v1/keys/:name': { access: ['key-officer', 'auditor'], allowed: 200, request: (w) => ({ path: `/v1/keys/${encodeURIComponent(w.keyName)}` }) },
  // Keys nobody made: an allowed caller learns that, and nothing is rotated or changed.
  'POST /v1/keys/:name/rotate': { access: ['key-officer'], allowed: 404, request: () => ({ path: '/v1/keys/matrix%2Fno-such-key/rotate', body: {} }) },
  'POST /v1/keys/:name/state': { access: ['key-officer'], allowed: 404, request: () => ({ path: '/v1/keys/matrix%2Fno-such-key/state', body: { action: 'suspend' } }) },
  // A key nobody has: an allowed caller learns that, and no policy or row MAC changes.
  'PUT /v1/keys/:name/target-policy': {
    access: ['key-officer'],
    allowed: 404,
    request: () => ({ path: '/v1/keys/matrix%2Fno-such-key/target-policy', body: { targetKinds: ['pkcs11', 'keystore'] } }),
  },
  // Certificate chains of key pair versions (issue 12): the matrix's key is AES, so an allowed caller learns it is not a pair, and nothing is issued or signed.
  'GET /v1/keys/:name/versions/:version/certificate': {
    access: ['key-officer', 'auditor'],
    allowed: 409,
    request: (w) => ({ path: `/v1/keys/${encodeURIComponent(w.keyName)}/versions/1/certificate` }),
  },
  'POST /v1/keys/:name/versions/:version/certificate': {
    access: ['key-officer'],
    allowed: 409,
    request: (w) => ({ path: `/v1/keys/${encodeURIComponent(w.keyName)}/versions/1/certificate`, body: {} }),
  },
  'PUT /v1/keys/:name/versions/:version/certificate': {
    access: ['key-officer'],
    allowed: 404,
    request: () => ({ path: '/v1/keys/matrix%2Fno-such-key/versions/1/certificate', body: { chainPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' } }),
  },
  'POST /v1/keys/:name/versions/:version/csr': {
    access: ['key-officer'],
    allowed: 409,
    request: (w) => ({ path: `/v1/keys/${encodeURIComponent(w.keyName)}/versions/1/csr`, body: { commonName: 'matrix' } }),
  },

  'GET /v1/listeners': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/v1/listeners') },
  'GET /v1/listeners/:id': { access: ['key-officer', 'auditor'], allowed: 200, request: (w) => ({ path: `/v1/listeners/${w.listenerId}` }) },
  // The listener is active already: an allowed caller is refused for its state, not for who they are.
  'POST /v1/listeners/:id/approve': {
    access: ['key-officer'],
    allowed: 409,
    request: (w) => ({ path: `/v1/listeners/${w.listenerId}/approve`, body: { fingerprint: 'ab'.repeat(16) } }),
  },
  // Active already: registering it again is refused for its state (a new bootstrap needs a revocation first).
  'POST /v1/listeners/:id/register': { access: ['key-officer'], allowed: 409, request: (w) => ({ path: `/v1/listeners/${w.listenerId}/register`, body: {} }) },
  // An id nobody knows: an allowed caller learns that, and nothing is revoked.
  'POST /v1/listeners/:id/revoke': { access: ['key-officer'], allowed: 404, request: () => ({ path: '/v1/listeners/no-such-site/revoke', body: {} }) },
  // Site lifecycle on an id nobody knows: an allowed caller learns that, and no KEK, distribution or identity changes.
  'POST /v1/listeners/:id/rotate-kek': { access: ['key-officer'], allowed: 404, request: () => ({ path: '/v1/listeners/no-such-site/rotate-kek', body: {} }) },
  // A key-component ceremony for an id nobody knows: an allowed caller learns that, and no request is opened.
  'POST /v1/listeners/:id/root-kek/components': {
    access: ['key-officer'],
    allowed: 404,
    request: () => ({ path: '/v1/listeners/no-such-site/root-kek/components', body: { fingerprint: 'ab'.repeat(16), parts: 2, custodians: ['c-one', 'c-two'] } }),
  },
  // A custodian's part where no ceremony exists: an allowed caller learns that, and nothing is derived.
  'POST /v1/listeners/:id/root-kek/components/mine': { access: ['approver'], allowed: 404, request: () => ({ path: '/v1/listeners/no-such-site/root-kek/components/mine', body: {} }) },
  'POST /v1/listeners/:id/compromise-kek': { access: ['key-officer'], allowed: 404, request: () => ({ path: '/v1/listeners/no-such-site/compromise-kek', body: {} }) },
  'POST /v1/listeners/:id/decommission': { access: ['key-officer'], allowed: 404, request: () => ({ path: '/v1/listeners/no-such-site/decommission', body: {} }) },
  'GET /v1/listeners/:id/targets': { access: ['key-officer', 'auditor'], allowed: 200, request: (w) => ({ path: `/v1/listeners/${w.listenerId}/targets` }) },
  // No KEK request from this target: an allowed caller learns that, and no KEK is made.
  'POST /v1/listeners/:id/targets/:target/approve': {
    access: ['key-officer'],
    allowed: 404,
    request: (w) => ({ path: `/v1/listeners/${w.listenerId}/targets/no-such-target/approve`, body: { fingerprint: 'ab'.repeat(32) } }),
  },
  // A target the site does not have: an allowed caller learns that, and no KEK is made or sent.
  'POST /v1/listeners/:id/targets/:target/rotate-kek': {
    access: ['key-officer'],
    allowed: 404,
    request: (w) => ({ path: `/v1/listeners/${w.listenerId}/targets/no-such-target/rotate-kek`, body: {} }),
  },
  // No signed update from this target: an allowed caller learns that, and no target is added or removed.
  'POST /v1/listeners/:id/targets/:target/approve-update': {
    access: ['key-officer'],
    allowed: 404,
    request: (w) => ({ path: `/v1/listeners/${w.listenerId}/targets/no-such-target/approve-update`, body: { updateId: '00000000-0000-4000-8000-000000000000' } }),
  },

  'POST /v1/distributions': {
    access: ['key-officer'],
    allowed: 200,
    request: (w) => ({ path: '/v1/distributions', body: { keys: [{ name: w.keyName }], to: [{ listenerId: w.listenerId }] } }),
  },
  'POST /v1/distributions/progress': {
    access: ['key-officer', 'auditor'],
    allowed: 200,
    request: (w) => ({ path: '/v1/distributions/progress', body: { keys: [{ name: w.keyName, version: 1 }], to: 'all' } }),
  },

  'PATCH /v1/listeners/:id/labels': { access: ['key-officer'], allowed: 200, request: (w, col) => ({ path: `/v1/listeners/${w.listenerId}/labels`, body: { set: { matrix: col } } }) },
  'GET /v1/placements': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/v1/placements') },
  'POST /v1/placements': {
    access: ['key-officer'],
    allowed: 201,
    request: (w, col) => ({ path: '/v1/placements', body: { name: `matrix-${col}-${w.serial()}`, key: w.keyName, listeners: [w.listenerId] } }),
  },
  // Names nobody gave a placement: an allowed caller learns that, and nothing is deleted.
  'GET /v1/placements/:name': { access: ['key-officer', 'auditor'], allowed: 404, request: at('/v1/placements/no-such-placement') },
  'PATCH /v1/placements/:name': { access: ['key-officer'], allowed: 404, request: () => ({ path: '/v1/placements/no-such-placement', body: { targets: ['hsm'] } }) },
  'DELETE /v1/placements/:name': { access: ['key-officer'], allowed: 404, request: at('/v1/placements/no-such-placement') },
  'POST /v1/placements/reconcile': { access: ['key-officer'], allowed: 200, request: at('/v1/placements/reconcile') },
  'GET /v1/drift': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/v1/drift') },

  // Access reviews are part of an audit: auditors see who holds which role.
  'GET /v1/operators': { access: ['admin', 'auditor'], allowed: 200, request: at('/v1/operators') },
  'POST /v1/operators': {
    access: ['admin'],
    allowed: 201,
    request: (w, col) => ({ path: '/v1/operators', body: { name: `made-by-${col}-${w.serial()}`, roles: ['auditor'] } }),
  },
  'GET /v1/operators/:name': { access: ['admin', 'auditor'], allowed: 200, request: at('/v1/operators/admin') },
  // Granting a role the target already has: allowed, and it changes nothing.
  'PATCH /v1/operators/:name/roles': { access: ['admin'], allowed: 200, request: (w) => ({ path: `/v1/operators/${w.roleTarget}/roles`, body: { add: ['auditor'] } }) },
  // Each column has its own victim, so an allowed revocation leaves the other cells' operators alone.
  'POST /v1/operators/:name/revoke': { access: ['admin'], allowed: 200, request: (w, col) => ({ path: `/v1/operators/${w.victims[col]}/revoke` }) },

  'GET /v1/tokens': { access: 'authenticated', allowed: 200, request: at('/v1/tokens') },
  'POST /v1/tokens': { access: 'authenticated', allowed: 201, request: () => ({ path: '/v1/tokens', body: { ttlSeconds: 3600, description: 'role matrix' } }) },
  // A spare token of the caller's own, never the one the cell is using.
  'POST /v1/tokens/:id/revoke': { access: 'authenticated', allowed: 200, request: (w, col) => ({ path: `/v1/tokens/${w.spareTokenIds[col]}/revoke` }) },

  // A certificate for oneself, from the unscoped token each column holds (another operator's is for admins: see api-mtls).
  'POST /v1/operators/:name/certificates': {
    access: 'authenticated',
    allowed: 201,
    request: (w, col) => ({ path: `/v1/operators/${col === 'admin' ? 'admin' : `matrix-${col}`}/certificates`, body: { publicKeyPem: w.publicKeyPem } }),
  },
  // Serials nobody was issued: an allowed caller learns that, and nothing is revoked.
  'GET /v1/certificates/:serial': { access: 'authenticated', allowed: 404, request: () => ({ path: `/v1/certificates/${randomBytes(16).toString('hex')}` }) },
  'POST /v1/certificates/:serial/revoke': { access: 'authenticated', allowed: 404, request: () => ({ path: `/v1/certificates/${randomBytes(16).toString('hex')}/revoke` }) },

  'GET /v1/policies': { access: 'authenticated', allowed: 200, request: at('/v1/policies') },
  // Off stays off: allowed, and no later call is put under dual control by it.
  'PUT /v1/policies/:action': { access: ['admin'], allowed: 200, request: () => ({ path: '/v1/policies/distribution.sensitive', body: { enabled: false } }) },

  'GET /v1/approvals': { access: 'authenticated', allowed: 200, request: at('/v1/approvals') },
  'GET /v1/approvals/:id': { access: 'authenticated', allowed: 404, request: () => ({ path: `/v1/approvals/${randomUUID()}` }) },
  'POST /v1/approvals/:id/approve': { access: ['approver'], allowed: 404, request: () => ({ path: `/v1/approvals/${randomUUID()}/approve`, body: { hash: hex64() } }) },
  'POST /v1/approvals/:id/reject': { access: ['approver'], allowed: 404, request: () => ({ path: `/v1/approvals/${randomUUID()}/reject`, body: { hash: hex64() } }) },
  'POST /v1/approvals/:id/cancel': { access: 'authenticated', allowed: 404, request: () => ({ path: `/v1/approvals/${randomUUID()}/cancel` }) },
  'POST /v1/approvals/:id/pickup': { access: 'authenticated', allowed: 404, request: () => ({ path: `/v1/approvals/${randomUUID()}/pickup` }) },

  'GET /v1/audit/events': { access: ['admin', 'auditor'], allowed: 200, request: at('/v1/audit/events?limit=5') },
  'GET /v1/audit/checkpoints': { access: ['admin', 'auditor'], allowed: 200, request: at('/v1/audit/checkpoints') },
  'POST /v1/audit/checkpoints': { access: ['admin'], allowed: 200, request: at('/v1/audit/checkpoints') },

  // Reports: what each area's readers may read (auditors all three; key officers keys and sites; admins the ledger, as they read the audit).
  'GET /v1/reports/keys/:name': { access: ['key-officer', 'auditor'], allowed: 200, request: (w) => ({ path: `/v1/reports/keys/${encodeURIComponent(w.keyName)}` }) },
  'GET /v1/reports/sites/:id': { access: ['key-officer', 'auditor'], allowed: 200, request: (w) => ({ path: `/v1/reports/sites/${w.listenerId}?format=csv` }) },
  'GET /v1/reports/ledger': { access: ['admin', 'auditor'], allowed: 200, request: at('/v1/reports/ledger?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=5') },

  // The dashboard, called with bearer tokens (a browser's session cookie maps to the same principal: see e2e/dashboard).
  'GET /ui': { access: 'authenticated', allowed: 303, request: at('/ui') },
  'GET /ui/login': { access: 'public', allowed: 200, request: at('/ui/login') },
  // A login with a token the hub does not know, from its own origin with the form's CSRF pair: back to the form (303), for anyone.
  'POST /ui/login': {
    access: 'public',
    allowed: 303,
    request: (w) => ({
      path: '/ui/login',
      body: { csrf: csrfTokenFor(LOGIN_NONCE), token: 'not-a-token' },
      headers: { origin: w.origin, cookie: `__Secure-khub_login=${LOGIN_NONCE}` },
    }),
  },
  'POST /ui/logout': { access: 'authenticated', allowed: 303, request: at('/ui/logout') },
  'GET /ui/static/*': { access: 'public', allowed: 200, request: at('/ui/static/htmx.min.js') },
  'GET /ui/keys': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/ui/keys') },
  'GET /ui/matrix': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/ui/matrix') },
  'GET /ui/listeners': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/ui/listeners') },
  'GET /ui/drift': { access: ['key-officer', 'auditor'], allowed: 200, request: at('/ui/drift') },
  'GET /ui/approvals': { access: 'authenticated', allowed: 200, request: at('/ui/approvals') },
  'POST /ui/approvals/:id/approve': { access: ['approver'], allowed: 404, request: () => ({ path: `/ui/approvals/${randomUUID()}/approve`, body: { hash: hex64() } }) },
  'POST /ui/approvals/:id/reject': { access: ['approver'], allowed: 404, request: () => ({ path: `/ui/approvals/${randomUUID()}/reject`, body: { hash: hex64() } }) },
  'GET /ui/audit': { access: ['admin', 'auditor'], allowed: 200, request: at('/ui/audit') },
  'GET /ui/audit/events/:seq': { access: ['admin', 'auditor'], allowed: 200, request: at('/ui/audit/events/1') },
};

/**
 * Cells where the server today grants more than the role descriptions
 * above, awaiting a decision: either the descriptions are narrowed in
 * hub/src/domain/roles.ts (delete the entries here), or the wider reads are
 * intended (widen POLICY and delete the entries). Until then the matrix
 * holds the server to its current answer for these cells only; a change
 * either way fails a test, so the list cannot go stale.
 */
/** Cells where the server deliberately differs from the table above, each with its reason (none today). */
const AWAITING_DECISION: ReadonlyArray<{ route: string; role: Role; server: 'allows' | 'denies'; why: string }> = [];

function allowedFor(access: Access, col: Column): boolean {
  if (access === 'public') return true;
  if ((BAD_CREDENTIALS as readonly string[]).includes(col)) return false;
  if (access === 'authenticated') return true;
  return access.includes(col as Role);
}

function expectedAllowed(route: string, col: Column): boolean {
  const byPolicy = allowedFor(POLICY[route].access, col);
  const deviation = AWAITING_DECISION.find((d) => d.route === route && d.role === col);
  return deviation ? deviation.server === 'allows' : byPolicy;
}

function errorCode(r: ApiResponse): string | undefined {
  const parsed = api.apiErrorBody.safeParse(r.body);
  return parsed.success ? parsed.data.error.code : undefined;
}

/** Checks one answer against the cell's expectation; returns what is wrong, if anything. */
function judge(route: string, col: Column, r: ApiResponse): string | undefined {
  const spec = POLICY[route];
  const shown = `${col}: HTTP ${r.status} ${JSON.stringify(r.body ?? null).slice(0, 160)}`;
  if (expectedAllowed(route, col)) {
    if (r.status === 401 || r.status === 403) return `${shown} — expected to be allowed`;
    if (r.status !== spec.allowed) return `${shown} — allowed, but expected HTTP ${spec.allowed} for this request`;
    if (r.status >= 400 && !isErrorCode(errorCode(r))) return `${shown} — error body without a known code`;
    return undefined;
  }
  const bad = (BAD_CREDENTIALS as readonly string[]).includes(col) ? (col as BadCredential) : undefined;
  const want: { status: number; code: ErrorCode } = bad ? { status: 401, code: REFUSAL[bad] } : { status: 403, code: 'PERMISSION_DENIED' };
  if (r.status !== want.status || errorCode(r) !== want.code) return `${shown} — expected HTTP ${want.status} ${want.code}`;
  return undefined;
}

describe('API role matrix: every route x every credential, judged by a policy table written in the test', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let h: ApiHub;
  const tokens = new Map<Column, string>();
  let world: World;
  let counter = 0;

  const tokenIdOf = (token: string): string => {
    const parsed = api.parseApiToken(token);
    assert.ok(parsed, `not a token: ${token.slice(0, 12)}...`);
    return parsed.id;
  };
  const asAdmin = (method: string, path: string, body?: unknown): Promise<ApiResponse> => h.call(method, path, { token: h.tokens.get('admin'), body });
  const expectStatus = async (p: Promise<ApiResponse>, status: number, what: string): Promise<ApiResponse> => {
    const r = await p;
    assert.equal(r.status, status, `${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r;
  };
  const newToken = async (token: string, body: Record<string, unknown> = {}): Promise<string> => {
    const r = await expectStatus(h.call('POST', '/v1/tokens', { token, body }), 201, 'creating a token');
    return (r.body as { token: api.IssuedToken }).token.token;
  };

  before(async () => {
    h = await createApiHub(cleanup);
    for (const role of ROLES) tokens.set(role, role === 'admin' ? h.tokens.get('admin')! : await h.operator(`matrix-${role}`, [role]));

    // Expired: a real token whose expiry has passed (set in the database; nothing else about it differs).
    const expired = await h.operator('matrix-expired', ['admin', 'key-officer', 'approver', 'auditor']);
    await h.fx.rt.ds.query(`UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1`, [tokenIdOf(expired)]);
    tokens.set('expired', expired);
    // Revoked: a real token of an active operator with every role, revoked by its owner.
    const revokedOwner = await h.operator('matrix-revoked', ['admin', 'key-officer', 'approver', 'auditor']);
    const revoked = await newToken(revokedOwner);
    await expectStatus(h.call('POST', `/v1/tokens/${tokenIdOf(revoked)}/revoke`, { token: revokedOwner }), 200, 'revoking a token');
    tokens.set('revoked', revoked);
    tokens.set('malformed', `khub_${'g'.repeat(32)}_${'A'.repeat(43)}`);
    // Forged: the public id of the admin's real token with a secret that is not its own.
    tokens.set('forged', `khub_${tokenIdOf(h.tokens.get('admin')!)}_${randomBytes(32).toString('base64url')}`);

    const keyOfficer = tokens.get('key-officer')!;
    const keyName = 'matrix/existing';
    await expectStatus(h.call('POST', '/v1/keys', { token: keyOfficer, body: { name: keyName, algorithm: 'AES-256' } }), 201, 'creating a key');
    const [listenerId] = listenerIds(1, 'matrix');
    await insertActiveListeners(h.fx, [listenerId]);
    await h.operator('matrix-role-target', ['auditor']);

    const victims = {} as Record<Column, string>;
    const spareTokenIds = {} as Record<Column, string>;
    for (const col of COLUMNS) {
      victims[col] = `matrix-victim-${col}`;
      await h.operator(victims[col], ['auditor']);
      const own = tokens.get(col)!;
      spareTokenIds[col] = (ROLES as readonly string[]).includes(col) ? tokenIdOf(await newToken(own, { description: 'spare' })) : randomBytes(16).toString('hex');
    }
    const publicKeyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    world = { keyName, listenerId, roleTarget: 'matrix-role-target', victims, spareTokenIds, publicKeyPem, origin: new URL(h.url).origin, serial: () => ++counter };
  });

  after(async () => {
    await cleanup.run();
    assert.deepEqual(cleanup.failures, []);
  });

  it('the policy table names exactly the routes the router holds (a new route must be added here)', () => {
    const routed = registeredRoutes(h.app).map((r) => `${r.method} ${r.url}`);
    assert.ok(routed.length > 0, 'the server listed no routes');
    const missing = routed.filter((k) => !(k in POLICY));
    const stale = Object.keys(POLICY).filter((k) => !routed.includes(k));
    assert.deepEqual({ missing, stale }, { missing: [], stale: [] }, 'routes without a row in the test policy table, or rows for routes that do not exist');
  });

  it('the list of cells awaiting a decision holds only cells where the server really differs from the policy', () => {
    for (const d of AWAITING_DECISION) {
      assert.ok(d.route in POLICY, `${d.route} is not a route`);
      assert.notEqual(allowedFor(POLICY[d.route].access, d.role), d.server === 'allows', `${d.route} for ${d.role} does not deviate from the policy`);
    }
  });

  for (const route of Object.keys(POLICY)) {
    const [method] = route.split(' ');
    it(`${route}: each role and each bad credential gets what the policy table grants`, async () => {
      const wrong: string[] = [];
      for (const col of COLUMNS) {
        const cell = POLICY[route].request(world, col);
        const r = await h.call(method, cell.path, { token: col === 'none' ? undefined : tokens.get(col), body: cell.body, headers: cell.headers });
        const problem = judge(route, col, r);
        if (problem) wrong.push(problem);
      }
      assert.deepEqual(wrong, [], `${route}:\n  ${wrong.join('\n  ')}`);
    });
  }

  it('refused write calls left nothing behind: only the allowed cells created keys and operators or revoked a victim', async () => {
    const ds = h.fx.rt.ds;
    const keys = await ds.query<Array<{ name: string }>>(`SELECT name FROM keys WHERE name LIKE 'matrix/%' ORDER BY name`);
    assert.deepEqual(
      keys.map((k) => k.name.replace(/-\d+$/, '')),
      ['matrix/existing', 'matrix/key-officer'],
    );
    const made = await ds.query<Array<{ name: string }>>(`SELECT name FROM operators WHERE name LIKE 'made-by-%'`);
    assert.deepEqual(
      made.map((o) => o.name.replace(/-\d+$/, '')),
      ['made-by-admin'],
    );
    const revoked = await ds.query<Array<{ name: string }>>(`SELECT name FROM operators WHERE name LIKE 'matrix-victim-%' AND state = 'revoked'`);
    assert.deepEqual(
      revoked.map((o) => o.name),
      ['matrix-victim-admin'],
    );
    // Only the role columns got a client certificate, each for themselves.
    const certified = await ds.query<Array<{ name: string }>>("SELECT o.name FROM ca_certificates c JOIN operators o ON o.id = c.operator_id WHERE c.profile = 'operator-client' ORDER BY o.name");
    assert.deepEqual(
      certified.map((c) => c.name),
      ['admin', 'matrix-approver', 'matrix-auditor', 'matrix-key-officer'],
    );
    // Each role revoked its own spare token (allowed to all), and only that one.
    const spares = ROLES.map((r) => world.spareTokenIds[r]);
    const gone = await ds.query<Array<{ id: string }>>(`SELECT id FROM api_tokens WHERE id = ANY($1) AND revoked_at IS NOT NULL`, [spares]);
    assert.deepEqual(gone.map((t) => t.id).sort(), [...spares].sort());
  });

  it('the matrix left every role operator able to authenticate (no cell revoked a credential in use)', async () => {
    for (const role of ROLES) {
      const r = await h.call('GET', '/v1/auth/whoami', { token: tokens.get(role) });
      assert.equal(r.status, 200, `${role}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      assert.deepEqual((r.body as api.Whoami).roles, [role]);
    }
  });

  it('a revoked operator is refused on the very next request, with AUTH_REVOKED', async () => {
    const token = await h.operator('matrix-leaver', ['key-officer']);
    await expectStatus(h.call('GET', '/v1/keys', { token }), 200, 'before revocation');
    await expectStatus(asAdmin('POST', '/v1/operators/matrix-leaver/revoke'), 200, 'revoking the operator');
    const r = await h.call('GET', '/v1/keys', { token });
    assert.equal(r.status, 401);
    assert.equal(errorCode(r), 'AUTH_REVOKED');
    // Every token of theirs, not only the one in use.
    const other = await h.call('POST', '/v1/keys', { token, body: { name: 'matrix/leaver', algorithm: 'AES-128' } });
    assert.equal(other.status, 401);
  });

  it('a token scoped down to auditor from an admin+auditor operator reads audit but cannot call admin routes', async () => {
    const both = await h.operator('matrix-admin-auditor', ['admin', 'auditor']);
    const scoped = await newToken(both, { roles: ['auditor'] });
    const who = await expectStatus(h.call('GET', '/v1/auth/whoami', { token: scoped }), 200, 'whoami');
    assert.deepEqual((who.body as api.Whoami).roles, ['auditor']);
    await expectStatus(h.call('GET', '/v1/audit/events?limit=1', { token: scoped }), 200, 'reading audit');
    const adminCalls: Array<[string, string, unknown]> = [
      ['POST', '/v1/operators', { name: 'matrix-not-made', roles: ['auditor'] }],
      ['PUT', '/v1/policies/operator.manage', { enabled: false }],
      ['POST', '/v1/audit/checkpoints', undefined],
      ['POST', '/v1/operators/matrix-role-target/revoke', undefined],
    ];
    for (const [method, path, body] of adminCalls) {
      const r = await h.call(method, path, { token: scoped, body });
      assert.equal(r.status, 403, `${method} ${path}: HTTP ${r.status}`);
      assert.equal(errorCode(r), 'PERMISSION_DENIED');
    }
    // The scope also bounds what the scoped token may mint: not the admin role it was cut from.
    const mint = await h.call('POST', '/v1/tokens', { token: scoped, body: { roles: ['admin'] } });
    assert.equal(mint.status, 403);
    assert.equal(errorCode(mint), 'ROLE_ESCALATION');
    const target = await expectStatus(asAdmin('GET', '/v1/operators/matrix-role-target'), 200, 'the target is untouched');
    assert.equal((target.body as api.OperatorView).state, 'active');
  });

  it('an admin creating a token with a role it lacks gets ROLE_ESCALATION and no token', async () => {
    const before = await h.fx.rt.ds.query<Array<{ n: string }>>('SELECT count(*) AS n FROM api_tokens');
    for (const roles of [['key-officer'], ['admin', 'approver'], ['auditor']]) {
      const r = await asAdmin('POST', '/v1/tokens', { roles });
      assert.equal(r.status, 403, `roles ${roles.join(',')}: HTTP ${r.status}`);
      assert.equal(errorCode(r), 'ROLE_ESCALATION');
    }
    const after = await h.fx.rt.ds.query<Array<{ n: string }>>('SELECT count(*) AS n FROM api_tokens');
    assert.equal(after[0].n, before[0].n);
  });
});
