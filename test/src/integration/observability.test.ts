import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import {
  Counter,
  createMetricsRegistry,
  httpEndpointFromEnv,
  InstrumentedHsm,
  KeyhubError,
  Pkcs11Hsm,
  startObservabilityServer,
  type ObservabilityServer,
  type Readiness,
  type Registry,
} from '@keyhub/shared';
import { createSoftHsm, freePorts, type SoftHsmEnv } from '../env';
import { Deployment } from '../harness/deployment';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A fresh connection per request (agent: false), so no test depends on keep-alive state left by another. */
function request(url: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer`)));
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line in Prometheus text format, e.g. name{a="b"} 3. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('observability: metrics, health and readiness endpoint', function () {
  let registry: Registry;
  let server: ObservabilityServer;
  let readiness: () => Promise<Readiness>;

  before(async () => {
    registry = createMetricsRegistry();
    new Counter({ name: 'keyhub_test_widgets_total', help: 'widgets made in this test', registers: [registry] }).inc(3);
    server = await startObservabilityServer({ registry, port: 0, readiness: () => readiness(), readinessTimeoutMs: 500 });
  });

  after(async () => {
    await server?.close();
  });

  it('binds to 127.0.0.1 by default and reports the port it got', () => {
    assert.equal(server.host, '127.0.0.1');
    assert.ok(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}`);
  });

  it('answers /healthz while the process is alive', async () => {
    const r = await request(`${server.url}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { status: 'ok' });
  });

  it('answers /readyz with 200 when ready and 503 with the failing checks when not', async () => {
    readiness = async () => ({ ready: true, checks: { database: 'ok', nats: 'ok' } });
    const ok = await request(`${server.url}/readyz`);
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body), { status: 'ready', checks: { database: 'ok', nats: 'ok' } });

    readiness = async () => ({ ready: false, checks: { database: 'ok', nats: 'closed' } });
    const down = await request(`${server.url}/readyz`);
    assert.equal(down.status, 503);
    assert.deepEqual(JSON.parse(down.body), { status: 'not_ready', checks: { database: 'ok', nats: 'closed' } });
  });

  it('turns a readiness callback that throws or hangs into 503, not a crash', async () => {
    readiness = async () => {
      throw new KeyhubError('DB_UNAVAILABLE', 'database is down');
    };
    const threw = await request(`${server.url}/readyz`);
    assert.equal(threw.status, 503);
    assert.equal(JSON.parse(threw.body).checks.readiness, 'DB_UNAVAILABLE');

    readiness = () => new Promise<Readiness>(() => undefined);
    const hung = await request(`${server.url}/readyz`);
    assert.equal(hung.status, 503);
    assert.match(JSON.parse(hung.body).checks.readiness, /no answer/);
  });

  it('serves the registry on /metrics with the registry content type', async () => {
    const r = await request(`${server.url}/metrics?ignored=1`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], registry.contentType);
    assert.equal(sample(r.body, 'keyhub_test_widgets_total'), 3);
  });

  it('answers 404 for other paths and 405 for other methods, also for odd input', async () => {
    assert.equal((await request(`${server.url}/`)).status, 404);
    assert.equal((await request(`${server.url}/metrics/extra`)).status, 404);
    assert.equal((await request(`${server.url}/%zz%00..`)).status, 404);
    const post = await request(`${server.url}/metrics`, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    assert.equal((await request(`${server.url}/healthz`, 'DELETE')).status, 405);
    // Still serving after all that.
    assert.equal((await request(`${server.url}/healthz`)).status, 200);
  });

  it('reads KEYHUB_HTTP_HOST and KEYHUB_HTTP_PORT, where port 0 turns the endpoint off', () => {
    assert.deepEqual(httpEndpointFromEnv(9464, {}), { host: '127.0.0.1', port: 9464, explicit: false });
    assert.deepEqual(httpEndpointFromEnv(9464, { KEYHUB_HTTP_PORT: '9999', KEYHUB_HTTP_HOST: '0.0.0.0' }), { host: '0.0.0.0', port: 9999, explicit: true });
    assert.equal(httpEndpointFromEnv(9464, { KEYHUB_HTTP_PORT: '0' }), undefined);
    assert.throws(
      () => httpEndpointFromEnv(9464, { KEYHUB_HTTP_PORT: 'http' }),
      (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID'),
    );
    assert.throws(
      () => httpEndpointFromEnv(9464, { KEYHUB_HTTP_PORT: '70000' }),
      (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID'),
    );
  });

  it('fails with CONFIG_INVALID when the port is taken', async () => {
    await assert.rejects(
      startObservabilityServer({ registry, port: server.port, readiness: async () => ({ ready: true, checks: {} }) }),
      (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID') && /EADDRINUSE/.test(e.message),
    );
  });
});

describe('observability: InstrumentedHsm against SoftHSM2', function () {
  this.timeout(30_000);
  let env: SoftHsmEnv;
  let hsm: InstrumentedHsm;
  const registry = createMetricsRegistry();

  before(async () => {
    env = await createSoftHsm(['observed']);
    // One C_Initialize per process reads SOFTHSM2_CONF: set it before the first open.
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_TEST_OBSERVED_PIN = env.tokens[0].pin;
    hsm = new InstrumentedHsm(await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'observed', pinEnv: 'KEYHUB_TEST_OBSERVED_PIN' }), registry);
  });

  after(async () => {
    await hsm?.close();
    await env?.cleanup();
  });

  it('times a wrap and counts a failed unwrap by its CKR code, with no key material in the output', async () => {
    const kek = await hsm.generateAesKey(32, { token: false, wrap: true, unwrap: true });
    const key = await hsm.generateAesKey(32, { token: false, extractable: true });
    const blob = await hsm.wrapKwp(kek, key);
    blob[10] ^= 0x01;
    let ckr = '';
    await assert.rejects(hsm.unwrapKwp(kek, blob, 32, { token: false }), (e: unknown) => {
      ckr = KeyhubError.is(e) ? (e.ckr ?? '') : '';
      return ckr.startsWith('CKR_');
    });

    const text = await registry.metrics();
    assert.equal(sample(text, 'keyhub_hsm_operation_seconds_count{operation="wrap_kwp",outcome="ok"}'), 1);
    assert.equal(sample(text, 'keyhub_hsm_operation_seconds_count{operation="generate_aes_key",outcome="ok"}'), 2);
    assert.equal(sample(text, 'keyhub_hsm_operation_seconds_count{operation="unwrap_kwp",outcome="error"}'), 1);
    assert.equal(sample(text, `keyhub_hsm_errors_total{operation="unwrap_kwp",ckr="${ckr}"}`), 1);
    assert.ok((sample(text, 'keyhub_hsm_operation_seconds_sum{operation="wrap_kwp",outcome="ok"}') ?? 0) > 0);
    assert.ok(!text.includes(blob.toString('hex')) && !text.includes(blob.toString('base64')), 'the wrapped blob must not appear in metrics');
    assert.equal(hsm.tokenLabel, 'observed');
  });
});

describe('observability: keyhub serve and keyhub-listener run expose metrics', function () {
  this.timeout(120_000);
  let d: Deployment;
  let hubUrl = '';
  let listenerUrl = '';

  before(async () => {
    const [hubPort, listenerPort] = await freePorts(2);
    hubUrl = `http://127.0.0.1:${hubPort}`;
    listenerUrl = `http://127.0.0.1:${listenerPort}`;
    d = await Deployment.create(['site-a']);
    await d.initHub();
    // The harness hands the hub a copy of process.env at start: set the port only around that, so later tests are unaffected.
    const previous = process.env.KEYHUB_HTTP_PORT;
    process.env.KEYHUB_HTTP_PORT = String(hubPort);
    try {
      await d.startHub();
    } finally {
      if (previous === undefined) delete process.env.KEYHUB_HTTP_PORT;
      else process.env.KEYHUB_HTTP_PORT = previous;
    }
    d.site('site-a').env.KEYHUB_HTTP_PORT = String(listenerPort);
    await d.enrollListener('site-a');
  });

  after(async () => {
    await d?.cleanup();
  });

  it('reports the endpoint, readiness and delivery metrics of the hub and the listener', async () => {
    assert.match(d.hub?.output ?? '', new RegExp(`keyhub serve: ready \\(API on https://127.0.0.1:\\d+; metrics, healthz, readyz on ${hubUrl}\\)`));

    const hubReady = await request(`${hubUrl}/readyz`);
    assert.equal(hubReady.status, 200, hubReady.body);
    assert.deepEqual(JSON.parse(hubReady.body).checks, { service: 'ok', database: 'ok', nats: 'ok', hsm: 'ok' });

    await d.keyhubJson(['key', 'create', 'observed-key', '--alg', 'AES-256']);
    const push = await d.keyhub(['distribute', 'observed-key', '--to', 'site-a', '--wait', '--timeout', '60']);
    assert.equal(push.code, 0, push.stdout + push.stderr);
    // Not a terminal: the bar stays away and the output is what scripts saw before.
    assert.doesNotMatch(push.stderr, /waiting/);

    const hub = (await request(`${hubUrl}/metrics`)).body;
    assert.equal(sample(hub, 'keyhub_distributions{state="confirmed"}'), 1);
    assert.equal(sample(hub, 'keyhub_distributions{state="queued"}'), 0);
    assert.equal(sample(hub, 'keyhub_listener_backlog{listener="site-a"}'), 0);
    assert.equal(sample(hub, 'keyhub_outbox_pending'), 0);
    assert.equal(sample(hub, 'keyhub_receipts_applied_total{effect="confirmed"}'), 1);
    const lastSeen = sample(hub, 'keyhub_listener_last_heartbeat_seconds{listener="site-a"}') ?? 0;
    assert.ok(Math.abs(Date.now() / 1000 - lastSeen) < 60, `last heartbeat ${lastSeen}`);
    // Heartbeats are flushed every 2 s once one has arrived; a push can finish before the first flush.
    let flushes = sample(hub, 'keyhub_db_query_seconds_count{query="heartbeat_flush",outcome="ok"}') ?? 0;
    for (const deadline = Date.now() + 15_000; flushes < 1 && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 250));
      flushes = sample((await request(`${hubUrl}/metrics`)).body, 'keyhub_db_query_seconds_count{query="heartbeat_flush",outcome="ok"}') ?? 0;
    }
    assert.ok(flushes >= 1, 'the heartbeat flush was timed');
    // A scrape's own queries are timed while it renders, so they show from the next scrape on.
    const again = (await request(`${hubUrl}/metrics`)).body;
    assert.ok((sample(again, 'keyhub_db_query_seconds_count{query="scrape_distributions",outcome="ok"}') ?? 0) >= 1);
    assert.ok((sample(hub, 'keyhub_hsm_operation_seconds_count{operation="sign_digest_ecdsa",outcome="ok"}') ?? 0) >= 1);
    assert.match(hub, /^process_cpu_user_seconds_total /m);

    const listenerReady = await request(`${listenerUrl}/readyz`);
    assert.equal(listenerReady.status, 200, listenerReady.body);
    assert.deepEqual(JSON.parse(listenerReady.body).checks, { nats: 'ok', consumer: 'ok', 'target:hsm': 'ok' });
    const listener = (await request(`${listenerUrl}/metrics`)).body;
    assert.equal(sample(listener, 'keyhub_listener_packages_total{outcome="imported",code="none"}'), 1);
    assert.equal(sample(listener, 'keyhub_listener_root_kek_messages_total{result="stored"}'), 1);
    assert.ok((sample(listener, 'keyhub_listener_last_sequence') ?? 0) >= 1);
    assert.ok((sample(listener, 'keyhub_hsm_operation_seconds_count{operation="unwrap_kwp",outcome="ok"}') ?? 0) >= 1);
  });

  it('reports both sides not ready while NATS is down, and ready again once it is back', async () => {
    const until = async (url: string, status: number): Promise<Reply> => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const r = await request(`${url}/readyz`);
        if (r.status === status) return r;
        if (Date.now() > deadline) throw new Error(`${url}/readyz stayed ${r.status}: ${r.body}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };
    await d.nats.stop();
    try {
      const listenerDown = JSON.parse((await until(listenerUrl, 503)).body);
      assert.equal(listenerDown.checks.nats, 'disconnected');
      const hubDown = JSON.parse((await until(hubUrl, 503)).body);
      assert.notEqual(hubDown.checks.nats, 'ok');
      assert.equal(hubDown.checks.database, 'ok');
    } finally {
      await d.nats.restart();
    }
    await until(listenerUrl, 200);
    await until(hubUrl, 200);
  });

  it('stops the endpoint with the hub', async () => {
    await d.stopHub();
    await assert.rejects(request(`${hubUrl}/healthz`), /ECONNREFUSED/);
  });
});
