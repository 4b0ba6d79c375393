/**
 * Bad input to the operators' API: malformed, oversized, mistyped,
 * prototype-laden and path-like requests, broken credentials and floods.
 * Each is refused with its stable code in the one error shape, changes no
 * stored row, and leaves the server answering.
 */
import { strict as assert } from 'node:assert';
import { request } from 'node:https';
import fc from 'fast-check';
import { api, ERROR_CODES, isErrorCode, type ErrorCode } from '@keyhub/protocol';
// The fixture loads the hub's composition root (and with it reflect-metadata) before any operation class.
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';
import { CreateToken } from '@keyhub/hub/dist/operations/operators/create-token';
import { AuthenticateToken } from '@keyhub/hub/dist/operations/operators/authenticate-token';
import { Cleanup } from '../bench/lib';

const RATE_LIMIT = { max: 20, windowSeconds: 60 };
const MAX_BODY_BYTES = 64 * 1024;
/** Rows that a refused request must not add, remove or (by count) touch. */
const TABLES = ['keys', 'key_versions', 'operators', 'api_tokens', 'audit_events', 'distributions', 'outbox', 'approval_requests', 'approval_policies'] as const;

type CallOptions = { body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string>; token?: string | null };

/** The documented key-name rule, written independently of the zod schema: safe characters, no empty, "." or ".." segment. */
function validKeyName(name: string): boolean {
  return name.length >= 1 && name.length <= 128 && /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/.test(name) && name.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/** Checks an error answer: status, the one body shape, a known code whose table status matches, and nothing of the server's insides. */
function assertRefused(r: ApiResponse, status: number, codes: ErrorCode | readonly ErrorCode[], what: string): void {
  const allowed: readonly ErrorCode[] = typeof codes === 'string' ? [codes] : codes;
  const shown = `${what}: HTTP ${r.status} ${typeof r.body === 'string' ? r.body.slice(0, 200) : JSON.stringify(r.body).slice(0, 300)}`;
  assert.equal(r.status, status, shown);
  assertErrorShape(r, shown);
  const code = (r.body as api.ApiErrorBody).error.code;
  assert.ok(allowed.includes(code as ErrorCode), `${shown} — expected ${allowed.join(' or ')}`);
}

function assertErrorShape(r: ApiResponse, shown: string): void {
  const parsed = api.apiErrorBody.safeParse(r.body);
  assert.ok(parsed.success, `${shown} — not the {error:{code,message,retryable}} shape`);
  const { code, message, retryable } = parsed.data.error;
  assert.ok(isErrorCode(code), `${shown} — unknown code`);
  assert.equal(ERROR_CODES[code].httpStatus, r.status, `${shown} — ${code} is HTTP ${ERROR_CODES[code].httpStatus} in the table`);
  assert.equal(retryable, ERROR_CODES[code].retryable, `${shown} — retryable differs from the table`);
  assert.match(String(r.headers['content-type']), /^application\/json/, shown);
  const text = JSON.stringify(r.body);
  assert.doesNotMatch(message, /\n\s+at |\.[jt]s:\d+|node_modules|\/dist\/|\/src\//, `${shown} — the message shows server internals`);
  assert.doesNotMatch(text, /"stack"|"statusCode"|FST_ERR/, `${shown} — the body carries framework or stack details`);
}

describe('API bad input: refused with stable codes, nothing stored changes, the server keeps answering', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let h: ApiHub;
  /**
   * The fixture limits each token to 20 requests a minute, so the cases
   * draw tokens from a pool minted in `before` (through the operation, not
   * the API), each used at most LIMIT_PER_TOKEN times: a case is never
   * refused for the limit unless it tests the limit.
   */
  const pool: string[] = [];
  const LIMIT_PER_TOKEN = 15;
  let current = '';
  let used = LIMIT_PER_TOKEN;
  const token = (): string => {
    if (used >= LIMIT_PER_TOKEN) {
      const next = pool.pop();
      assert.ok(next, 'the token pool ran dry: mint more in before()');
      current = next;
      used = 0;
    }
    used++;
    return current;
  };
  /** A token never used before, with the full per-token budget. */
  const freshToken = (): string => {
    const t = pool.pop();
    assert.ok(t, 'the token pool ran dry: mint more in before()');
    return t;
  };
  const call = (method: string, path: string, o: CallOptions = {}): Promise<ApiResponse> =>
    h.call(method, path, { body: o.body, rawBody: o.rawBody, headers: o.headers, token: o.token === null ? undefined : (o.token ?? token()) });

  /** A request whose path goes to the server byte for byte: a URL parser would resolve "%2e%2e" and ".." before sending. */
  const rawCall = (method: string, path: string): Promise<ApiResponse> =>
    new Promise((resolve, reject) => {
      const u = new URL(h.url);
      const req = request({ method, hostname: u.hostname, port: u.port, path, ca: h.caPem, agent: false, headers: { authorization: `Bearer ${token()}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // Left as text: assertRefused reports it.
          }
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
        });
      });
      req.on('error', reject);
      req.end();
    });

  async function counts(): Promise<Record<string, number>> {
    const select = TABLES.map((t) => `(SELECT count(*) FROM ${t})::int AS ${t}`).join(', ');
    const [row] = await h.fx.rt.ds.query<Array<Record<string, number>>>(`SELECT ${select}`);
    return row;
  }

  /** Runs a case, then checks that no stored row appeared or vanished and that the server still answers. */
  async function unchanged(what: string, body: () => Promise<void>): Promise<void> {
    const before = await counts();
    await body();
    assert.deepEqual(await counts(), before, `${what}: stored rows changed`);
    const health = await call('GET', '/v1/health');
    assert.equal(health.status, 200, `${what}: GET /v1/health answered HTTP ${health.status} afterwards`);
    assert.deepEqual(health.body, { status: 'ok' });
  }

  before(async () => {
    h = await createApiHub(cleanup, { rateLimit: RATE_LIMIT, maxBodyBytes: MAX_BODY_BYTES });
    const own = await h.operator('bad-input', ['admin', 'key-officer', 'approver', 'auditor']);
    const principal = await h.fx.rt.container.resolve(AuthenticateToken).execute(own);
    const create = h.fx.rt.container.resolve(CreateToken);
    for (let i = 0; i < 70; i++) {
      const out = await create.execute({ ttlSeconds: 3600, description: `bad-input pool ${i}` }, principal);
      assert.ok('token' in out);
      pool.push(out.token.token);
    }
    const k = await call('POST', '/v1/keys', { body: { name: 'bad-input/existing', algorithm: 'AES-256' } });
    assert.equal(k.status, 201, JSON.stringify(k.body));
  });

  after(async () => {
    await cleanup.run();
    assert.deepEqual(cleanup.failures, []);
  });

  it('a body that is not JSON, or not sent as JSON, is refused with REQUEST_MALFORMED', async () => {
    const bodies = ['{"name":', '{name: "a", algorithm: "AES-256"}', '{"name":"a","algorithm":"AES-256",}', "{'name':'a'}", '{"name":"a"}}', 'NaN', '\u0000', '{"name":"\\ud800\\u"}'];
    await unchanged('malformed JSON', async () => {
      for (const rawBody of bodies) assertRefused(await call('POST', '/v1/keys', { rawBody }), 400, 'REQUEST_MALFORMED', `body ${JSON.stringify(rawBody)}`);
      assertRefused(await call('POST', '/v1/keys', { rawBody: '' }), 400, 'REQUEST_MALFORMED', 'empty JSON body');
      const json = JSON.stringify({ name: 'bad-input/form', algorithm: 'AES-256' });
      assertRefused(await call('POST', '/v1/keys', { rawBody: 'name=a&algorithm=AES-256', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 400, 'REQUEST_MALFORMED', 'form body');
      assertRefused(await call('POST', '/v1/keys', { rawBody: json, headers: { 'content-type': '' } }), 400, 'REQUEST_MALFORMED', 'no content type');
      assertRefused(await call('POST', '/v1/keys', { rawBody: json, headers: { 'content-type': 'text/plain' } }), 400, 'INPUT_INVALID', 'JSON sent as text/plain');
    });
  });

  it('unknown fields, in bodies, nested objects and query strings, are refused with INPUT_INVALID', async () => {
    const cases: Array<[string, string, unknown]> = [
      ['POST', '/v1/keys', { name: 'bad-input/extra', algorithm: 'AES-256', owner: 'me' }],
      ['POST', '/v1/operators', { name: 'extra-op', roles: ['auditor'], password: 'x' }],
      ['POST', '/v1/tokens', { ttlSeconds: 3600, admin: true }],
      ['PUT', '/v1/policies/distribution.sensitive', { enabled: false, required: 2, force: true }],
      ['PATCH', '/v1/operators/bad-input/roles', { add: ['approver'], reason: 'x' }],
      ['POST', '/v1/distributions', { keys: [{ name: 'bad-input/existing', tag: 'x' }], to: 'all' }],
      ['POST', '/v1/distributions', { keys: [{ name: 'bad-input/existing' }], to: [{ listenerId: 'site-1', port: 1 }] }],
      ['POST', '/v1/distributions/progress', { keys: [{ name: 'bad-input/existing', version: 1 }], to: 'all', wait: true }],
      ['POST', `/v1/approvals/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/approve`, { hash: 'a'.repeat(64), vote: 2 }],
      ['POST', '/v1/listeners/site-1/approve', { fingerprint: 'ab'.repeat(16), force: true }],
    ];
    await unchanged('unknown fields', async () => {
      for (const [method, path, body] of cases) assertRefused(await call(method, path, { body }), 400, 'INPUT_INVALID', `${method} ${path} ${JSON.stringify(body)}`);
      for (const q of ['/v1/keys?foo=1', '/v1/audit/events?from=1', '/v1/approvals?state=pending&mine=1', '/v1/tokens?all=true&operator=x']) {
        assertRefused(await call('GET', q), 400, 'INPUT_INVALID', q);
      }
    });
  });

  it(`a body over the configured limit (${MAX_BODY_BYTES / 1024} KiB) is refused with REQUEST_TOO_LARGE, chunked or with a length`, async () => {
    const big = JSON.stringify({ keys: Array.from({ length: 3000 }, (_, i) => ({ name: `bad-input/k${i}` })), to: 'all' });
    assert.ok(big.length > MAX_BODY_BYTES);
    await unchanged('oversized body', async () => {
      // The fixture's client streams the body chunked (no Content-Length).
      assertRefused(await call('POST', '/v1/distributions', { rawBody: big }), 413, 'REQUEST_TOO_LARGE', 'chunked oversized body');
      assertRefused(
        await call('POST', '/v1/distributions', { rawBody: big, headers: { 'content-length': String(Buffer.byteLength(big)) } }),
        413,
        'REQUEST_TOO_LARGE',
        'oversized body with its length',
      );
      // A declared length over the limit is refused before the body is read.
      assertRefused(await call('POST', '/v1/keys', { rawBody: '{}', headers: { 'content-length': String(MAX_BODY_BYTES + 1) } }), 413, 'REQUEST_TOO_LARGE', 'declared length over the limit');
      assertRefused(await call('POST', '/v1/keys', { body: { name: 'x'.repeat(MAX_BODY_BYTES), algorithm: 'AES-256' } }), 413, 'REQUEST_TOO_LARGE', 'oversized key name');
      // Just under the limit the body is read and judged on its content instead.
      const under = JSON.stringify({ keys: Array.from({ length: 2000 }, (_, i) => ({ name: `k${i}` })), to: 'everywhere' });
      assert.ok(under.length < MAX_BODY_BYTES);
      assertRefused(await call('POST', '/v1/distributions', { rawBody: under }), 400, 'INPUT_INVALID', 'a body under the limit');
    });
  });

  it('wrong types in bodies, query strings and path parameters are refused with INPUT_INVALID', async () => {
    const bodies: Array<[string, string, unknown]> = [
      ['POST', '/v1/keys', { name: 5, algorithm: 'AES-256' }],
      ['POST', '/v1/keys', { name: 'bad-input/t', algorithm: true }],
      ['POST', '/v1/keys', { name: 'bad-input/t', algorithm: 'AES-257' }],
      ['POST', '/v1/keys', { name: 'bad-input/t', algorithm: 'AES-256', usages: 'encrypt' }],
      ['POST', '/v1/keys', { name: 'bad-input/t', algorithm: 'AES-256', count: '5' }],
      ['POST', '/v1/keys', { name: 'bad-input/t', algorithm: 'AES-256', count: 1.5 }],
      ['POST', '/v1/keys', { name: 'bad-input/t', algorithm: 'AES-256', count: 1e300 }],
      ['POST', '/v1/keys', { name: 'bad-input/t', algorithm: 'AES-256', exportable: 'yes' }],
      ['POST', '/v1/keys', []],
      ['POST', '/v1/keys', null],
      ['POST', '/v1/keys', 'bad-input/t'],
      ['POST', '/v1/keys', 42],
      ['POST', '/v1/operators', { name: 'typed-op', roles: 'auditor' }],
      ['POST', '/v1/operators', { name: 'typed-op', roles: ['root'] }],
      ['POST', '/v1/tokens', { ttlSeconds: '3600' }],
      ['POST', '/v1/tokens', { ttlSeconds: 10 }],
      ['PUT', '/v1/policies/distribution.sensitive', { required: 0 }],
      ['PUT', '/v1/policies/everything', { enabled: false }],
      ['POST', '/v1/distributions', { keys: [{ name: 'bad-input/existing', version: '1' }], to: 'all' }],
      ['POST', '/v1/distributions', { keys: [{ name: 'bad-input/existing' }], to: 'some' }],
    ];
    const gets = [
      '/v1/keys?limit=abc',
      '/v1/keys?limit=1.5',
      '/v1/keys?limit=0',
      '/v1/keys?prefix=a&prefix=b',
      '/v1/audit/events?after=-1',
      '/v1/audit/events?after=99999999999999999999',
      '/v1/approvals?state=done',
      '/v1/tokens?all=yes',
      '/v1/approvals/not-a-uuid',
      '/v1/listeners/UPPER_CASE',
      '/v1/operators/Admin',
    ];
    await unchanged('wrong types', async () => {
      for (const [method, path, body] of bodies) assertRefused(await call(method, path, { rawBody: JSON.stringify(body) }), 400, 'INPUT_INVALID', `${method} ${path} ${JSON.stringify(body)}`);
      for (const path of gets) assertRefused(await call('GET', path), 400, 'INPUT_INVALID', `GET ${path}`);
      assertRefused(await call('POST', '/v1/tokens/XYZ/revoke'), 400, 'INPUT_INVALID', 'token id not hex');
      assertRefused(await call('POST', '/v1/approvals/1234/cancel'), 400, 'INPUT_INVALID', 'approval id not a uuid');
    });
  });

  it('__proto__ and constructor.prototype in bodies or queries are refused and pollute nothing', async () => {
    const bodies = [
      '{"name":"bad-input/p1","algorithm":"AES-256","__proto__":{"polluted":true}}',
      '{"name":"bad-input/p2","algorithm":"AES-256","constructor":{"prototype":{"polluted":true}}}',
      '{"keys":[{"name":"bad-input/existing","__proto__":{"polluted":true}}],"to":"all"}',
      '{"__proto__":{"roles":["admin"]},"name":"proto-op","roles":["auditor"]}',
      '{"ttlSeconds":3600,"__proto__":{"roles":["admin","key-officer","approver","auditor"]}}',
    ];
    const paths = ['/v1/keys', '/v1/keys', '/v1/distributions', '/v1/operators', '/v1/tokens'];
    await unchanged('prototype-laden bodies', async () => {
      for (const [i, rawBody] of bodies.entries()) assertRefused(await call('POST', paths[i], { rawBody }), 400, ['REQUEST_MALFORMED', 'INPUT_INVALID'], `POST ${paths[i]} ${rawBody}`);
      for (const q of ['/v1/keys?__proto__=1', '/v1/keys?__proto__[polluted]=1', '/v1/keys?constructor[prototype][polluted]=1']) {
        assertRefused(await call('GET', q), 400, 'INPUT_INVALID', q);
      }
    });
    // The server runs in this process: a polluted prototype would show here.
    const probe: Record<string, unknown> = {};
    assert.equal(probe.polluted, undefined);
    assert.equal(probe.roles, undefined);
  });

  const PATH_LIKE_NAMES = [
    '../x',
    'a/../b',
    'a//b',
    './a',
    'a/./b',
    'a/',
    '/a',
    '..',
    '.',
    '%2e%2e/x',
    '..%2fx',
    'a%2F..%2Fb',
    'a\\..\\b',
    'a\u0000b',
    'a\nb',
    'a\r\nX-Injected: 1',
    ' a',
    'a\u202eb',
    'x'.repeat(129),
    `${'a/'.repeat(100)}b`,
  ];

  it('path-like key names are refused with INPUT_INVALID when creating, distributing or asking for status', async () => {
    await unchanged('path-like names', async () => {
      for (const name of PATH_LIKE_NAMES) {
        const shown = JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name);
        assertRefused(await call('POST', '/v1/keys', { body: { name, algorithm: 'AES-256' } }), 400, 'INPUT_INVALID', `POST /v1/keys name ${shown}`);
        assertRefused(await rawCall('GET', `/v1/keys/${encodeURIComponent(name)}/status`), 400, 'INPUT_INVALID', `GET status of ${shown}`);
      }
      for (const name of ['../x', 'a//b', '%2e%2e']) {
        assertRefused(await call('POST', '/v1/distributions', { body: { keys: [{ name }], to: 'all' } }), 400, 'INPUT_INVALID', `distribute ${name}`);
        assertRefused(await call('POST', '/v1/distributions', { body: { keyPrefix: name, to: 'all' } }), 400, 'INPUT_INVALID', `distribute prefix ${name}`);
        assertRefused(await call('POST', '/v1/distributions/progress', { body: { keys: [{ name, version: 1 }], to: 'all' } }), 400, 'INPUT_INVALID', `progress ${name}`);
      }
    });
  });

  it('path-like key names sent in the raw request path (not resolved by a client URL parser) are refused with INPUT_INVALID', async () => {
    const raw = [
      '/v1/keys/%2e%2e/status',
      '/v1/keys/%2E%2E/status',
      '/v1/keys/..%2Fx/status',
      '/v1/keys/../status',
      '/v1/keys/./status',
      '/v1/keys//status',
      '/v1/keys/a%2F%2Fb/status',
      '/v1/keys/a%2F..%2Fb/status',
      '/v1/keys/a%00b/status',
      '/v1/keys/a%0Ab/status',
      // Not valid percent-encoding, and a parameter longer than the router takes: refused by the router itself.
      '/v1/keys/%ZZ/status',
      '/v1/keys/a%E0%A4%A/status',
      `/v1/keys/${'x'.repeat(300)}/status`,
    ];
    await unchanged('raw path-like names', async () => {
      for (const path of raw) assertRefused(await rawCall('GET', path), 400, 'INPUT_INVALID', `GET ${path.slice(0, 60)}`);
    });
  });

  it('any name outside the documented key-name rule is refused by create and status alike (property)', async () => {
    const piece = fc.constantFrom('a', 'B', '7', '.', '..', '/', '//', '%2e', '%2F', '\\', '\u0000', '\n', ' ', '~', 'é', ':', '-', '_');
    const invalidName = fc
      .array(piece, { minLength: 1, maxLength: 8 })
      .map((parts) => parts.join(''))
      .filter((n) => !validKeyName(n));
    await unchanged('generated names', async () => {
      await fc.assert(
        fc.asyncProperty(invalidName, async (name) => {
          assertRefused(await call('POST', '/v1/keys', { body: { name, algorithm: 'AES-128' } }), 400, 'INPUT_INVALID', `POST name ${JSON.stringify(name)}`);
          assertRefused(await rawCall('GET', `/v1/keys/${encodeURIComponent(name)}/status`), 400, 'INPUT_INVALID', `GET status ${JSON.stringify(name)}`);
        }),
        { numRuns: 60 },
      );
    });
    // The rule is not stricter than documented: nested names with every allowed character are taken and found again.
    const name = 'bad-input/pay.ments:zmk_1/v-2';
    assert.ok(validKeyName(name));
    const created = await call('POST', '/v1/keys', { body: { name, algorithm: 'AES-128' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const status = await call('GET', `/v1/keys/${encodeURIComponent(name)}/status`);
    assert.equal(status.status, 200, JSON.stringify(status.body));
    assert.deepEqual(
      (status.body as { rows: Array<{ key: string }> }).rows.map((r) => r.key),
      [name],
    );
  });

  it('a missing or garbled Authorization header is refused with 401 AUTH_MISSING or AUTH_INVALID, before the body is acted on', async () => {
    const body = { name: 'bad-input/unauthenticated', algorithm: 'AES-256' };
    const garbled = ['Basic YWRtaW46YWRtaW4=', 'Bearer', 'Bearer ', 'Bearer  two-spaces', 'Token khub_x', 'Bearer khub_short', `Bearer ${'A'.repeat(600)}`, 'Bearer khüb'];
    await unchanged('bad Authorization headers', async () => {
      assertRefused(await call('POST', '/v1/keys', { body, token: null }), 401, 'AUTH_MISSING', 'no Authorization header');
      for (const authorization of garbled) {
        const r = await call('POST', '/v1/keys', { body, token: null, headers: { authorization } });
        assertRefused(r, 401, 'AUTH_INVALID', `Authorization: ${authorization.slice(0, 30)}`);
      }
    });
  });

  it(`a flood from one token gets 429 RATE_LIMITED after ${RATE_LIMIT.max} requests, changes nothing, and another token is still served`, async () => {
    const flooder = freshToken();
    const other = freshToken();
    await unchanged('rate-limited flood', async () => {
      for (let i = 0; i < RATE_LIMIT.max; i++) {
        const r = await call('GET', '/v1/auth/whoami', { token: flooder });
        assert.equal(r.status, 200, `request ${i + 1} of ${RATE_LIMIT.max}: HTTP ${r.status}`);
      }
      const limited = await call('GET', '/v1/auth/whoami', { token: flooder });
      assertRefused(limited, 429, 'RATE_LIMITED', 'request over the limit');
      assert.equal((limited.body as api.ApiErrorBody).error.retryable, true);
      assert.ok(Number(limited.headers['retry-after']) > 0, `retry-after: ${String(limited.headers['retry-after'])}`);
      // A write over the limit is refused before it runs.
      assertRefused(await call('POST', '/v1/keys', { token: flooder, body: { name: 'bad-input/over-limit', algorithm: 'AES-256' } }), 429, 'RATE_LIMITED', 'write over the limit');
      const served = await call('GET', '/v1/auth/whoami', { token: other });
      assert.equal(served.status, 200, `another token: HTTP ${served.status}`);
    });
  });

  it('failed authentications from one address are cut short with 429 past the limit, while a valid token from that address is still served', async () => {
    // The fixture's limit is 20 requests a minute per credential; failures are throttled at a tenth of that, but at least 10.
    const bogus = (i: number): string => `khub_${'0'.repeat(31)}${i % 10}_${'A'.repeat(43)}`;
    const answers: number[] = [];
    await unchanged('failed-authentication flood', async () => {
      for (let i = 0; i < 25; i++) answers.push((await call('GET', '/v1/auth/whoami', { token: bogus(i) })).status);
      const after = await call('GET', '/v1/auth/whoami', { token: bogus(99) });
      assertRefused(after, 429, 'RATE_LIMITED', 'a failed authentication past the limit');
      const valid = await call('GET', '/v1/auth/whoami', { token: freshToken() });
      assert.equal(valid.status, 200, `a valid token from the same address: HTTP ${valid.status}`);
    });
    // Earlier cases in this file failed authentication from the same address too, so fewer than 10 may be left.
    const first429 = answers.indexOf(429);
    assert.ok(first429 >= 0 && first429 <= 10, `answers: ${answers.join(',')}`);
    assert.ok(answers.slice(0, first429).every((st) => st === 401) && answers.slice(first429).every((st) => st === 429), `answers: ${answers.join(',')}`);
  });
});
