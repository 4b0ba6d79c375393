/**
 * The OpenAPI document the hub serves, held to the server it describes: a
 * valid OpenAPI 3.1 document, exactly the router's routes, request and
 * response schemas where they belong, and real answers (successes and
 * errors) that validate against the schemas documented for their status.
 */
import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { Validator } from '@seriousme/openapi-schema-validator';
// ajv comes with fastify (and the OpenAPI validator); the 2020-12 dialect is the one OpenAPI 3.1 uses.
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { api, ERROR_CODES, isErrorCode } from '@keyhub/protocol';
import { registeredRoutes } from '@keyhub/hub/dist/http/server';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';
import { insertActiveListeners, listenerIds } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';

const DOCUMENT = '/v1/openapi.json';
const RATE_LIMIT = { max: 30, windowSeconds: 60 };
const MAX_BODY_BYTES = 64 * 1024;
const JSON_TYPE = 'application/json';

/**
 * Routes that take no request body, named here rather than read from the
 * server: every other POST, PUT or PATCH must document one, and these must not.
 */
const BODYLESS_WRITES = [
  'POST /v1/operators/:name/revoke',
  'POST /v1/tokens/:id/revoke',
  'POST /v1/approvals/:id/cancel',
  'POST /v1/approvals/:id/pickup',
  'POST /v1/listeners/:id/root-kek/components/mine',
  'POST /v1/audit/checkpoints',
  'POST /v1/certificates/:serial/revoke',
  'POST /v1/placements/reconcile',
];
/** Routes anyone may call: the only ones whose operation may drop the bearer requirement. */
const PUBLIC = ['GET /v1/health'];

interface MediaType {
  schema?: Record<string, unknown>;
}
interface Operation {
  requestBody?: { required?: boolean; content?: Record<string, MediaType> };
  responses?: Record<string, { content?: Record<string, MediaType> }>;
  parameters?: Array<{ in: string; name: string; required?: boolean; schema?: unknown }>;
  security?: Array<Record<string, unknown>>;
}
interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  security?: Array<Record<string, unknown>>;
  components?: { securitySchemes?: Record<string, { type: string; scheme?: string }> };
}

const toOpenApiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
const pointerToken = (s: string): string => encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1'));

describe('API OpenAPI document: valid 3.1, exactly the routes served, with the schemas real answers match', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let h: ApiHub;
  let doc: OpenApiDocument;
  let served: ApiResponse;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  addFormats(ajv);
  const tokens: Record<'admin' | 'officer' | 'auditor', string> = { admin: '', officer: '', auditor: '' };
  const listenerId = listenerIds(1, 'oas')[0];

  const routeKeys = (): string[] =>
    registeredRoutes(h.app)
      // The dashboard's pages (/ui) are not an API: hidden from the document (schema.hide), covered by the role matrix and e2e/dashboard.
      .filter((r) => r.url !== DOCUMENT && r.url !== '/ui' && !r.url.startsWith('/ui/'))
      .map((r) => `${r.method} ${r.url}`);
  const operation = (route: string): Operation => {
    const [method, url] = route.split(' ');
    const op = doc.paths[toOpenApiPath(url)]?.[method.toLowerCase()];
    assert.ok(op, `${route} is not in the document`);
    return op;
  };

  /** The documented schema of a route's answer with this status, compiled; references resolve inside the document. */
  function documentedValidator(route: string, status: number): ValidateFunction {
    const [method, url] = route.split(' ');
    return ajv.compile({ $ref: `openapi.json#/paths/${pointerToken(toOpenApiPath(url))}/${method.toLowerCase()}/responses/${status}/content/${pointerToken(JSON_TYPE)}/schema` });
  }

  /** Validates a real answer against the schema the document gives for its route and status (references resolve inside the document). */
  function assertDocumented(route: string, r: ApiResponse): void {
    const op = operation(route);
    const documented = op.responses?.[String(r.status)];
    assert.ok(documented, `${route} answered HTTP ${r.status}, which its operation does not document (it documents ${Object.keys(op.responses ?? {}).join(', ')})`);
    assert.ok(documented.content?.[JSON_TYPE]?.schema, `${route} HTTP ${r.status} has no JSON schema`);
    const validate = documentedValidator(route, r.status);
    assert.ok(validate(r.body), `${route} HTTP ${r.status}: the body ${JSON.stringify(r.body).slice(0, 300)} does not match its documented schema: ${ajv.errorsText(validate.errors)}`);
  }

  before(async () => {
    h = await createApiHub(cleanup, { rateLimit: RATE_LIMIT, maxBodyBytes: MAX_BODY_BYTES });
    tokens.admin = h.tokens.get('admin')!;
    tokens.officer = await h.operator('oas-officer', ['key-officer']);
    tokens.auditor = await h.operator('oas-auditor', ['auditor']);
    await insertActiveListeners(h.fx, [listenerId]);
    served = await h.call('GET', DOCUMENT);
    assert.equal(served.status, 200, JSON.stringify(served.body));
    doc = served.body as OpenApiDocument;
    ajv.addSchema(doc as unknown as Record<string, unknown>, 'openapi.json');
  });

  after(async () => {
    await cleanup.run();
    assert.deepEqual(cleanup.failures, []);
  });

  it('GET /v1/openapi.json needs no token and passes the OpenAPI 3.1 schema validator', async () => {
    assert.match(String(served.headers['content-type']), /^application\/json/);
    assert.match(doc.openapi, /^3\.1\./);
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    assert.ok(result.valid, `invalid OpenAPI document: ${JSON.stringify(result.errors, null, 2)?.slice(0, 3000)}`);
  });

  it('its paths and methods are exactly the routes the router holds (":p" written "{p}"), without the document itself', () => {
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) =>
        Object.keys(ops)
          .filter((m) => ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'].includes(m))
          .map((m) => `${m.toUpperCase()} ${path}`),
      )
      .sort();
    const routed = routeKeys()
      .map((k) => {
        const [method, url] = k.split(' ');
        return `${method} ${toOpenApiPath(url)}`;
      })
      .sort();
    assert.ok(routed.length > 20, `the router lists only ${routed.length} routes`);
    assert.deepEqual(documented, routed);
    assert.equal(doc.paths[DOCUMENT], undefined, 'the document describes itself');
  });

  it('every path parameter of every route is documented as a required path parameter', () => {
    for (const route of routeKeys()) {
      const names = [...route.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]);
      const params = (operation(route).parameters ?? []).filter((p) => p.in === 'path');
      assert.deepEqual(params.map((p) => p.name).sort(), [...names].sort(), `${route}: path parameters`);
      for (const p of params) assert.equal(p.required, true, `${route}: {${p.name}} is not required`);
    }
  });

  it('each operation that takes a body documents its JSON schema, and the bodiless ones document none', () => {
    const routes = routeKeys();
    for (const b of BODYLESS_WRITES) assert.ok(routes.includes(b), `${b} (named as bodiless) is not a route`);
    for (const route of routes) {
      const [method] = route.split(' ');
      const body = operation(route).requestBody;
      const takesBody = ['POST', 'PUT', 'PATCH'].includes(method) && !BODYLESS_WRITES.includes(route);
      if (!takesBody) {
        assert.equal(body, undefined, `${route} documents a request body it does not take`);
        continue;
      }
      assert.ok(body, `${route} takes a body but documents none`);
      assert.equal(body.required, true, `${route}: the body is not marked required`);
      const schema = body.content?.[JSON_TYPE]?.schema;
      assert.ok(schema && Object.keys(schema).length > 0, `${route}: no JSON schema for the body`);
      // Bodies are strict: the document must say so too, so generated clients do not send extra fields.
      if (schema.type === 'object') assert.equal(schema.additionalProperties, false, `${route}: the body schema allows unknown fields`);
    }
  });

  it('each operation documents a JSON schema for its 2xx answer, and the error schema for 4xx/5xx answers', () => {
    for (const route of routeKeys()) {
      const responses = operation(route).responses ?? {};
      const ok = Object.keys(responses).filter((s) => /^2\d\d$/.test(s));
      assert.ok(ok.length > 0, `${route} documents no 2xx answer`);
      for (const s of ok) assert.ok(responses[s].content?.[JSON_TYPE]?.schema, `${route} HTTP ${s} has no JSON schema`);
      for (const s of Object.keys(responses).filter((x) => /^[45]\d\d$/.test(x))) {
        const schema = responses[s].content?.[JSON_TYPE]?.schema as { required?: string[]; properties?: Record<string, { required?: string[] }> } | undefined;
        assert.ok(schema, `${route} HTTP ${s} has no JSON schema`);
        assert.deepEqual(schema.required, ['error'], `${route} HTTP ${s}: the error schema does not require "error"`);
        assert.deepEqual([...(schema.properties?.error.required ?? [])].sort(), ['code', 'message', 'retryable'], `${route} HTTP ${s}: the error object's required fields`);
      }
      if (!PUBLIC.includes(route)) {
        for (const s of ['401', '403']) assert.ok(responses[s], `${route} needs a credential but does not document HTTP ${s}`);
      }
    }
  });

  it('operations needing a credential document bearer security, and only the public ones waive it', () => {
    assert.deepEqual(doc.components?.securitySchemes?.bearer, { type: 'http', scheme: 'bearer' });
    assert.deepEqual(doc.security, [{ bearer: [] }]);
    for (const route of routeKeys()) {
      const security: Operation['security'] = operation(route).security ?? doc.security;
      if (PUBLIC.includes(route)) assert.deepEqual(security, [], `${route} is public but documents a credential`);
      else
        assert.ok(
          security?.some((s) => 'bearer' in s),
          `${route} needs a credential but documents none`,
        );
    }
  });

  it('real successful answers validate against the 2xx schemas documented for them', async () => {
    const key = 'oas/existing';
    const calls: Array<{ route: string; path?: string; as?: keyof typeof tokens; body?: unknown; status: number }> = [
      { route: 'POST /v1/keys', as: 'officer', body: { name: key, algorithm: 'AES-256', usages: ['wrap', 'unwrap'] }, status: 201 },
      { route: 'POST /v1/keys', path: '/v1/keys', as: 'officer', body: { name: 'oas/bulk', algorithm: 'AES-128', count: 3 }, status: 201 },
      { route: 'GET /v1/health', status: 200 },
      { route: 'GET /v1/hub', as: 'auditor', status: 200 },
      { route: 'GET /v1/hub/ca', as: 'auditor', status: 200 },
      { route: 'GET /v1/auth/whoami', as: 'officer', status: 200 },
      { route: 'GET /v1/keys', as: 'officer', status: 200 },
      { route: 'GET /v1/keys/:name/status', path: `/v1/keys/${encodeURIComponent(key)}/status`, as: 'officer', status: 200 },
      { route: 'POST /v1/distributions', as: 'officer', body: { keys: [{ name: key }], to: [{ listenerId }] }, status: 200 },
      { route: 'POST /v1/distributions/progress', as: 'officer', body: { keys: [{ name: key, version: 1 }], to: 'all' }, status: 200 },
      { route: 'GET /v1/status', as: 'auditor', status: 200 },
      { route: 'GET /v1/keys/:name/commands', path: `/v1/keys/${encodeURIComponent(key)}/commands`, as: 'officer', status: 200 },
      { route: 'GET /v1/commands', as: 'auditor', status: 200 },
      { route: 'GET /v1/listeners', as: 'officer', status: 200 },
      { route: 'GET /v1/listeners/:id', path: `/v1/listeners/${listenerId}`, as: 'officer', status: 200 },
      { route: 'GET /v1/listeners/:id/targets', path: `/v1/listeners/${listenerId}/targets`, as: 'auditor', status: 200 },
      { route: 'POST /v1/operators', as: 'admin', body: { name: 'oas-new', roles: ['approver'] }, status: 201 },
      { route: 'GET /v1/operators', as: 'admin', status: 200 },
      { route: 'GET /v1/operators/:name', path: '/v1/operators/oas-new', as: 'admin', status: 200 },
      { route: 'PATCH /v1/operators/:name/roles', path: '/v1/operators/oas-new/roles', as: 'admin', body: { remove: ['approver'] }, status: 200 },
      { route: 'POST /v1/operators/:name/revoke', path: '/v1/operators/oas-new/revoke', as: 'admin', status: 200 },
      { route: 'POST /v1/tokens', as: 'auditor', body: { ttlSeconds: 600, description: 'oas' }, status: 201 },
      { route: 'GET /v1/tokens', as: 'auditor', status: 200 },
      { route: 'GET /v1/policies', as: 'auditor', status: 200 },
      { route: 'PUT /v1/policies/:action', path: '/v1/policies/listener.approve', as: 'admin', body: { enabled: false, required: 2 }, status: 200 },
      { route: 'GET /v1/approvals', as: 'auditor', status: 200 },
      { route: 'POST /v1/audit/checkpoints', as: 'admin', status: 200 },
      { route: 'GET /v1/audit/checkpoints', as: 'auditor', status: 200 },
      { route: 'GET /v1/audit/events', path: '/v1/audit/events?limit=50', as: 'auditor', status: 200 },
    ];
    for (const c of calls) {
      const [method, url] = c.route.split(' ');
      const r = await h.call(method, c.path ?? url, { token: c.as ? tokens[c.as] : undefined, body: c.body });
      assert.equal(r.status, c.status, `${c.route}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      assertDocumented(c.route, r);
    }
    // The token revocation answer too, on the token just made.
    const mine = await h.call('GET', '/v1/tokens', { token: tokens.auditor });
    const spare = (mine.body as api.TokenList).tokens.find((t) => t.description === 'oas');
    assert.ok(spare);
    const revoked = await h.call('POST', `/v1/tokens/${spare.id}/revoke`, { token: tokens.auditor });
    assert.equal(revoked.status, 200);
    assertDocumented('POST /v1/tokens/:id/revoke', revoked);

    // A client certificate for a key of one's own: issued, shown and revoked, each answer as documented; and a CRL.
    const publicKeyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const issued = await h.call('POST', '/v1/operators/oas-auditor/certificates', { token: tokens.auditor, body: { publicKeyPem, validityDays: 2 } });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    assertDocumented('POST /v1/operators/:name/certificates', issued);
    const serial = (issued.body as api.IssuedCertificate).serial;
    const certificateCalls: Array<[string, string, string]> = [
      ['GET /v1/certificates/:serial', 'GET', `/v1/certificates/${serial}`],
      ['POST /v1/certificates/:serial/revoke', 'POST', `/v1/certificates/${serial}/revoke`],
      ['GET /v1/hub/crl/:profile', 'GET', '/v1/hub/crl/tls-issuing'],
    ];
    for (const [route, method, p] of certificateCalls) {
      const r = await h.call(method, p, { token: tokens.auditor });
      assert.equal(r.status, 200, `${route}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      assertDocumented(route, r);
    }

    // A key pair version's chain: issued (201), issued again (200), shown, re-imported, and a CSR, each answer as documented.
    const pair = await h.call('POST', '/v1/keys', { token: tokens.officer, body: { name: 'oas/pair', algorithm: 'EC-P256', usages: ['sign'] } });
    assert.equal(pair.status, 201, JSON.stringify(pair.body));
    const version = '/v1/keys/oas%2Fpair/versions/1';
    const certificate = 'POST /v1/keys/:name/versions/:version/certificate';
    const first = await h.call('POST', `${version}/certificate`, { token: tokens.officer, body: {} });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assertDocumented(certificate, first);
    const pairCalls: Array<[string, string, string, unknown]> = [
      [certificate, 'POST', `${version}/certificate`, {}],
      ['GET /v1/keys/:name/versions/:version/certificate', 'GET', `${version}/certificate`, undefined],
      ['PUT /v1/keys/:name/versions/:version/certificate', 'PUT', `${version}/certificate`, { chainPem: (first.body as api.KeyCertificateView).chainPem }],
      ['POST /v1/keys/:name/versions/:version/csr', 'POST', `${version}/csr`, { commonName: 'oas pair' }],
    ];
    for (const [route, method, p, body] of pairCalls) {
      const r = await h.call(method, p, { token: tokens.officer, body });
      assert.equal(r.status, 200, `${route}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      assertDocumented(route, r);
    }
  });

  it('real error answers (400, 401, 403, 404, 409, 413, 429) validate against the error schema documented for their status', async () => {
    const big = JSON.stringify({ keys: Array.from({ length: 4000 }, (_, i) => ({ name: `oas/k${i}` })), to: 'all' });
    const calls: Array<{ route: string; path?: string; token?: string; body?: unknown; rawBody?: string; status: number; code: string }> = [
      { route: 'POST /v1/keys', token: tokens.officer, body: { name: '../x', algorithm: 'AES-256' }, status: 400, code: 'INPUT_INVALID' },
      { route: 'POST /v1/keys', token: tokens.officer, rawBody: '{"name":', status: 400, code: 'REQUEST_MALFORMED' },
      { route: 'GET /v1/keys', status: 401, code: 'AUTH_MISSING' },
      { route: 'GET /v1/operators', token: `khub_${'0'.repeat(32)}_${'A'.repeat(43)}`, status: 401, code: 'AUTH_INVALID' },
      { route: 'POST /v1/keys', token: tokens.auditor, body: { name: 'oas/denied', algorithm: 'AES-256' }, status: 403, code: 'PERMISSION_DENIED' },
      { route: 'POST /v1/tokens', token: tokens.admin, body: { roles: ['key-officer'] }, status: 403, code: 'ROLE_ESCALATION' },
      { route: 'GET /v1/approvals/:id', path: `/v1/approvals/${randomUUID()}`, token: tokens.auditor, status: 404, code: 'APPROVAL_NOT_FOUND' },
      { route: 'GET /v1/keys/:name/status', path: '/v1/keys/oas%2Fmissing/status', token: tokens.officer, status: 404, code: 'KEY_NOT_FOUND' },
      { route: 'GET /v1/operators/:name', path: '/v1/operators/nobody', token: tokens.admin, status: 404, code: 'OPERATOR_NOT_FOUND' },
      {
        route: 'POST /v1/listeners/:id/targets/:target/approve',
        path: '/v1/listeners/no-such-site/targets/t1/approve',
        token: tokens.officer,
        body: { fingerprint: 'ab'.repeat(32) },
        status: 404,
        code: 'LISTENER_NOT_FOUND',
      },
      { route: 'POST /v1/operators', token: tokens.admin, body: { name: 'admin', roles: ['admin'] }, status: 409, code: 'OPERATOR_EXISTS' },
      { route: 'POST /v1/distributions', token: tokens.officer, rawBody: big, status: 413, code: 'REQUEST_TOO_LARGE' },
    ];
    for (const c of calls) {
      const [method, url] = c.route.split(' ');
      const r = await h.call(method, c.path ?? url, { token: c.token, body: c.body, rawBody: c.rawBody });
      assert.equal(r.status, c.status, `${c.route}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      checkError(c.route, r, c.code);
    }
    // The check has teeth: bodies that stray from the documented error schema fail it.
    const errorSchema = documentedValidator('POST /v1/keys', 400);
    assert.ok(errorSchema({ error: { code: 'INPUT_INVALID', message: 'm', retryable: false } }));
    for (const stray of [
      { error: { code: 'INPUT_INVALID', message: 'm' } },
      { error: { code: 'INPUT_INVALID', message: 'm', retryable: false, stack: 'at x' } },
      { error: 'Bad Request', statusCode: 400 },
    ]) {
      assert.equal(errorSchema(stray), false, `accepted ${JSON.stringify(stray)}`);
    }
    // 409: a key that exists already.
    const dup = await h.call('POST', '/v1/keys', { token: tokens.officer, body: { name: 'oas/existing', algorithm: 'AES-256' } });
    assert.equal(dup.status, 409);
    checkError('POST /v1/keys', dup, 'KEY_EXISTS');
    // 429: one throwaway token past the limit.
    const flooder = await h.operator('oas-flooder', ['auditor']);
    let limited: ApiResponse | undefined;
    for (let i = 0; i <= RATE_LIMIT.max && !limited; i++) {
      const r = await h.call('GET', '/v1/hub', { token: flooder });
      if (r.status !== 200) limited = r;
    }
    assert.ok(limited, `no 429 after ${RATE_LIMIT.max + 1} requests`);
    assert.equal(limited.status, 429);
    checkError('GET /v1/hub', limited, 'RATE_LIMITED');
  });

  function checkError(route: string, r: ApiResponse, code: string): void {
    assertDocumented(route, r);
    const parsed = api.apiErrorBody.safeParse(r.body);
    assert.ok(parsed.success, `${route}: not the API error body: ${JSON.stringify(r.body)}`);
    assert.equal(parsed.data.error.code, code, `${route}: ${JSON.stringify(r.body)}`);
    assert.ok(isErrorCode(code) && ERROR_CODES[code].httpStatus === r.status, `${route}: ${code} is not HTTP ${r.status} in the error table`);
  }
});
