/**
 * The dashboard in a real browser: Debian's Chromium driven by
 * playwright-core, against the in-process hub API (real TLS, PostgreSQL,
 * SoftHSM2). An auditor logs in and reads the matrix of a small scenario;
 * writes are refused to the auditor through the page and the API; forms
 * without their CSRF token or from another origin are refused; logout and a
 * revoked token end sessions; a ledger rewritten as the database owner shows
 * as failing. Screenshots go to test-results/dashboard/ (gitignored).
 */
import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { api } from '@keyhub/protocol';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';
import { insertActiveListeners, listenerIds } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';

const SHOTS = process.env.KEYHUB_TEST_RESULTS ? join(process.env.KEYHUB_TEST_RESULTS, 'dashboard') : resolve(__dirname, '..', '..', '..', 'test-results', 'dashboard');
const SESSION_COOKIE = '__Secure-khub_session';
const KEYS = ['dash/alpha', 'dash/beta'];
const SITES = listenerIds(3, 'dash');

function errorCode(r: ApiResponse): string | undefined {
  const parsed = api.apiErrorBody.safeParse(r.body);
  return parsed.success ? parsed.data.error.code : undefined;
}

function expectStatus(r: ApiResponse, status: number, what: string): ApiResponse {
  assert.equal(r.status, status, `${what}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return r;
}

describe('dashboard in headless Chromium: sessions, matrix, read-only auditors, CSRF and origin checks, a tampered ledger', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let h: ApiHub;
  let browser: Browser;
  let approvalId: string;
  let approvalHash: string;

  const shot = async (page: Page, name: string): Promise<void> => {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  };

  /** Logs in through the login form, as a person would; returns the page on the first dashboard page. */
  const login = async (ctx: BrowserContext, token: string): Promise<Page> => {
    const page = await ctx.newPage();
    await page.goto('/ui/login');
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(/\/ui\/(matrix|approvals|audit)/), page.click('button[type=submit]')]);
    return page;
  };

  const newContext = async (): Promise<BrowserContext> => {
    // The hub's CA is the test's own; Chromium is told to accept its certificate rather than given the CA.
    const ctx = await browser.newContext({ baseURL: h.url, ignoreHTTPSErrors: true });
    ctx.setDefaultTimeout(10_000);
    return ctx;
  };
  const sessionOf = async (ctx: BrowserContext): Promise<string> => {
    const c = (await ctx.cookies()).find((k) => k.name === SESSION_COOKIE);
    assert.ok(c, 'no session cookie');
    return c.value;
  };
  /** A form post from outside the browser, with the session cookie and whatever Origin the test names. */
  const formPost = (path: string, fields: Record<string, string>, headers: Record<string, string>): Promise<ApiResponse> =>
    h.call('POST', path, { rawBody: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } });

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    h = await createApiHub(cleanup);
    const officer = await h.operator('dash-officer', ['key-officer']);
    await h.operator('dash-auditor', ['auditor']);
    await h.operator('dash-approver', ['approver']);
    for (const name of KEYS) expectStatus(await h.call('POST', '/v1/keys', { token: officer, body: { name, algorithm: 'AES-256' } }), 201, `creating ${name}`);
    await insertActiveListeners(h.fx, SITES);
    // alpha to all three sites, beta to the first two: the API queues them (no relay runs here).
    const push = async (key: string, sites: string[]): Promise<void> => {
      expectStatus(await h.call('POST', '/v1/distributions', { token: officer, body: { keys: [{ name: key }], to: sites.map((listenerId) => ({ listenerId })) } }), 200, `pushing ${key}`);
    };
    await push(KEYS[0], SITES);
    await push(KEYS[1], SITES.slice(0, 2));
    // What receipts would have done (the receipt path has its own tests): alpha confirmed at 1 and 2 and failed at 3; beta confirmed at 1, still queued at 2.
    const setState = async (key: string, site: string, state: 'confirmed' | 'failed'): Promise<void> => {
      await h.fx.rt.ds.query(
        `UPDATE distributions d SET state = $3, confirmed_at = CASE WHEN $3 = 'confirmed' THEN now() END, error_code = CASE WHEN $3 = 'failed' THEN 'TARGET_IMPORT_FAILED' END
           FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE d.key_version_id = v.id AND k.name = $1 AND d.listener_id = $2`,
        [key, site, state],
      );
    };
    await setState(KEYS[0], SITES[0], 'confirmed');
    await setState(KEYS[0], SITES[1], 'confirmed');
    await setState(KEYS[0], SITES[2], 'failed');
    await setState(KEYS[1], SITES[0], 'confirmed');
    // A pending dual-control request, for the approvals page and its form.
    expectStatus(await h.call('PUT', '/v1/policies/operator.manage', { token: h.tokens.get('admin'), body: { required: 1, enabled: true } }), 200, 'policy on');
    const pending = expectStatus(await h.call('POST', '/v1/operators', { token: h.tokens.get('admin'), body: { name: 'dash-newcomer', roles: ['auditor'] } }), 202, 'request')
      .body as api.ApprovalPending;
    approvalId = pending.approval.id;
    approvalHash = pending.approval.hash;

    const args = ['--disable-background-networking', '--disable-dev-shm-usage', ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])];
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
    cleanup.add('chromium', () => browser.close());
  });

  after(async () => {
    await cleanup.run();
    assert.deepEqual(cleanup.failures, []);
  });

  it('an auditor logs in with a token; the session cookie is Secure, HttpOnly, SameSite=Strict on /ui, and pages carry the security headers', async () => {
    const ctx = await newContext();
    const page = await ctx.newPage();
    const first = await page.goto('/ui/matrix');
    // Not logged in: sent to the login form.
    assert.match(page.url(), /\/ui\/login/);
    assert.ok(first);
    await page.fill('#token', h.tokens.get('dash-auditor')!);
    await Promise.all([page.waitForURL(/\/ui\/matrix/), page.click('button[type=submit]')]);
    assert.match((await page.textContent('[data-testid=who]')) ?? '', /dash-auditor \(auditor\)/);
    const cookie = (await ctx.cookies()).find((c) => c.name === SESSION_COOKIE);
    assert.ok(cookie);
    assert.deepEqual({ secure: cookie.secure, httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, path: cookie.path }, { secure: true, httpOnly: true, sameSite: 'Strict', path: '/ui' });
    assert.ok(cookie.expires > Date.now() / 1000 && cookie.expires < Date.now() / 1000 + 8 * 3600 + 60, 'the cookie expires within the absolute limit');
    const r = await page.request.get('/ui/keys');
    const headers = r.headers();
    assert.match(headers['content-security-policy'], /script-src 'self'/);
    assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline/);
    assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(headers['cache-control'], 'no-store');
    // The session id is stored only as a hash.
    const stored = await h.fx.rt.ds.query('SELECT id_hash FROM dashboard_sessions');
    const raw = Buffer.from(cookie.value);
    assert.ok(stored.length >= 1 && stored.every((s: { id_hash: Buffer }) => !s.id_hash.equals(raw) && s.id_hash.length === 32));
    await shot(page, '01-matrix-auditor');
    await ctx.close();
  });

  it('the matrix shows each key at each site in its state; the other pages show versions, backlog, drift and the pending request', async () => {
    const ctx = await newContext();
    const page = await login(ctx, h.tokens.get('dash-auditor')!);
    await page.goto('/ui/matrix?key=dash%2F');
    const state = async (key: string, site: string): Promise<string | null> => page.getAttribute(`tr[data-key="${key}"] td[data-site="${site}"]`, 'data-state');
    const seen: Record<string, Array<string | null>> = {};
    for (const key of KEYS) seen[key] = await Promise.all(SITES.map((s) => state(key, s)));
    assert.deepEqual(seen, { 'dash/alpha': ['confirmed', 'confirmed', 'failed'], 'dash/beta': ['confirmed', 'queued', 'none'] });
    await shot(page, '02-matrix');

    await page.goto('/ui/keys?prefix=dash%2F');
    assert.equal(await page.locator('[data-testid=versions] tbody tr').count(), 2);
    await page.goto('/ui/listeners?prefix=dash-');
    const backlog = await Promise.all(SITES.map((s) => page.textContent(`tr[data-site="${s}"] [data-testid=backlog]`)));
    assert.deepEqual(backlog, ['0', '1', '0']);
    await shot(page, '03-listeners');
    const drift = await page.goto('/ui/drift');
    assert.equal(drift?.status(), 200);
    await page.goto('/ui/approvals');
    assert.equal(await page.locator(`tr[data-approval="${approvalId}"]`).count(), 1);
    // Read-only: no decision form for an auditor.
    assert.equal(await page.locator('form[action*="/approve"], form[action*="/reject"]').count(), 0);
    assert.equal(await page.locator('[data-testid=read-only]').count(), 1);
    await shot(page, '04-approvals-auditor');
    await ctx.close();
  });

  it('an auditor cannot trigger a write: not through the page (with a valid CSRF token), not through the API, and the session cookie is no API credential', async () => {
    const ctx = await newContext();
    const page = await login(ctx, h.tokens.get('dash-auditor')!);
    await page.goto('/ui/approvals');
    const csrf = await page.getAttribute('form[action="/ui/logout"] input[name=csrf]', 'value');
    assert.ok(csrf);
    const viaPage = await page.evaluate(
      async ([id, token, hash]) => {
        const r = await fetch(`/ui/approvals/${id}/approve`, { method: 'POST', body: new URLSearchParams({ csrf: token, hash }) });
        return { status: r.status, body: await r.text() };
      },
      [approvalId, csrf, approvalHash],
    );
    assert.equal(viaPage.status, 403);
    assert.equal(JSON.parse(viaPage.body).error.code, 'PERMISSION_DENIED');
    const viaApi = await h.call('POST', `/v1/approvals/${approvalId}/approve`, { token: h.tokens.get('dash-auditor'), body: { hash: approvalHash } });
    assert.equal(viaApi.status, 403);
    assert.equal(errorCode(viaApi), 'PERMISSION_DENIED');
    const cookieOnApi = await h.call('POST', `/v1/approvals/${approvalId}/approve`, { body: { hash: approvalHash }, headers: { cookie: `${SESSION_COOKIE}=${await sessionOf(ctx)}` } });
    assert.equal(cookieOnApi.status, 401);
    assert.equal(errorCode(cookieOnApi), 'AUTH_MISSING');
    const still = expectStatus(await h.call('GET', `/v1/approvals/${approvalId}`, { token: h.tokens.get('admin') }), 200, 'the request').body as api.ApprovalRequestView;
    assert.equal(still.state, 'pending');
    assert.equal(still.approvals, 0);
    await ctx.close();
  });

  it('forms without their CSRF token, or from another origin, are refused with 403; the approver decides through the page with both', async () => {
    const ctx = await newContext();
    const page = await login(ctx, h.tokens.get('dash-approver')!);
    await page.goto('/ui/approvals');
    const session = await sessionOf(ctx);
    const csrf = (await page.getAttribute(`tr[data-approval="${approvalId}"] form[action$="/approve"] input[name=csrf]`, 'value'))!;
    const own = new URL(h.url).origin;
    // Same origin, no token (as a page's script or a form that lost it would send it).
    const noToken = await page.evaluate(async (id) => {
      const r = await fetch(`/ui/approvals/${id}/approve`, { method: 'POST', body: new URLSearchParams({ hash: 'ab'.repeat(32) }) });
      return { status: r.status, body: await r.text() };
    }, approvalId);
    assert.equal(noToken.status, 403);
    assert.equal(JSON.parse(noToken.body).error.code, 'CSRF_TOKEN_INVALID');
    // The right token but another origin, or no Origin at all; and the right origin with another session's token.
    const fields = { csrf, hash: approvalHash };
    const cases: Array<[string, Record<string, string>, Record<string, string>, string]> = [
      ['foreign origin', fields, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, 'ORIGIN_REFUSED'],
      ['no origin', fields, {}, 'ORIGIN_REFUSED'],
      ['wrong token', { ...fields, csrf: csrf.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }, { origin: own }, 'CSRF_TOKEN_INVALID'],
    ];
    for (const [what, body, headers, code] of cases) {
      const r = await formPost(`/ui/approvals/${approvalId}/approve`, body, { cookie: `${SESSION_COOKIE}=${session}`, ...headers });
      assert.equal(r.status, 403, `${what}: HTTP ${r.status}`);
      assert.equal(errorCode(r), code, what);
    }
    // A form the browser itself submits (a navigation) without the token gets the error page, with the code.
    const [refused] = await Promise.all([
      page.waitForNavigation(),
      // A string, so that this file needs no DOM typings: it runs in the page.
      page.evaluate(`(() => {
        const f = document.createElement('form');
        f.method = 'post';
        f.action = ${JSON.stringify(`/ui/approvals/${approvalId}/approve`)};
        const input = document.createElement('input');
        input.type = 'hidden';
        input.name = 'hash';
        input.value = ${JSON.stringify(approvalHash)};
        f.appendChild(input);
        document.body.appendChild(f);
        f.submit();
      })()`),
    ]);
    assert.equal(refused?.status(), 403);
    await page.waitForSelector('[data-testid=error-code]');
    assert.equal(await page.textContent('[data-testid=error-code]'), 'CSRF_TOKEN_INVALID');
    await shot(page, '05-csrf-refused');
    let view = expectStatus(await h.call('GET', `/v1/approvals/${approvalId}`, { token: h.tokens.get('admin') }), 200, 'the request').body as api.ApprovalRequestView;
    assert.equal(view.approvals, 0, 'no refused form counted');
    // With its token, from the page: the same operation as the API runs the request.
    await page.goto('/ui/approvals');
    await Promise.all([page.waitForResponse((r) => r.url().endsWith('/approve')), page.click(`tr[data-approval="${approvalId}"] form[action$="/approve"] button`)]);
    view = expectStatus(await h.call('GET', `/v1/approvals/${approvalId}`, { token: h.tokens.get('admin') }), 200, 'the request').body as api.ApprovalRequestView;
    assert.equal(view.state, 'executed');
    expectStatus(await h.call('GET', '/v1/operators/dash-newcomer', { token: h.tokens.get('admin') }), 200, 'the approved operator exists');
    await ctx.close();
  });

  it('logout deletes the session and a revoked token ends its sessions at once', async () => {
    const ctx = await newContext();
    const page = await login(ctx, h.tokens.get('dash-auditor')!);
    const session = await sessionOf(ctx);
    await Promise.all([page.waitForURL(/\/ui\/login/), page.click('form[action="/ui/logout"] button')]);
    const replay = await h.call('GET', '/ui/keys', { headers: { cookie: `${SESSION_COOKIE}=${session}` } });
    assert.equal(replay.status, 401, 'the logged-out cookie still works');
    // A token of its own, revoked by its owner through the API while the browser is logged in with it.
    const minted = expectStatus(await h.call('POST', '/v1/tokens', { token: h.tokens.get('dash-auditor'), body: { ttlSeconds: 3600 } }), 201, 'token').body as { token: api.IssuedToken };
    const p2 = await login(ctx, minted.token.token);
    assert.equal((await p2.request.get('/ui/keys')).status(), 200, 'before revocation');
    const id = api.parseApiToken(minted.token.token)!.id;
    expectStatus(await h.call('POST', `/v1/tokens/${id}/revoke`, { token: h.tokens.get('dash-auditor') }), 200, 'revoke');
    await p2.goto('/ui/keys');
    assert.match(p2.url(), /\/ui\/login\?ended=AUTH_REVOKED/);
    await ctx.close();
  });

  it('a ledger rewritten as the database owner shows as failing, naming the event', async () => {
    const ctx = await newContext();
    const page = await login(ctx, h.tokens.get('dash-auditor')!);
    await page.goto('/ui/audit');
    assert.equal(await page.getAttribute('[data-testid=audit-verdict]', 'data-ok'), 'true');
    await shot(page, '06-audit-ok');
    const [{ seq }] = (await h.fx.asOwner("SELECT min(seq)::int AS seq FROM audit_events WHERE action = 'key.created'")) as Array<{ seq: number }>;
    await h.fx.asOwner(
      `BEGIN; ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update;
       UPDATE audit_events SET actor = 'mallory' WHERE seq = ${Number(seq)};
       ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update; COMMIT`,
    );
    await page.goto('/ui/audit');
    assert.equal(await page.getAttribute('[data-testid=audit-verdict]', 'data-ok'), 'false');
    assert.match((await page.textContent('[data-testid=audit-verdict]')) ?? '', new RegExp(`event #${seq}\\b`));
    await shot(page, '07-audit-tampered');
    await page.click(`[data-testid=audit-verdict] a`);
    await page.waitForURL(new RegExp(`/ui/audit/events/${seq}$`));
    assert.match((await page.textContent('dl.event')) ?? '', /mallory/);
    await ctx.close();
  });
});
