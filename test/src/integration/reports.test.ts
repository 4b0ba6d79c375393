import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import type { api } from '@keyhub/protocol';
import { Cleanup } from '../bench/lib';
import { expectedLedger, expectedSiteRows, keyCsvRow, ledgerCsvRow, parseCsv, siteCsvRow } from './reports-expected';
import { ReportScenario } from './reports-scenario';

/**
 * Compliance reports in JSON and CSV for the scenario of reports-scenario.ts
 * (2 keys, 3 sites, a dual-control approval, a rotation, a revocation): each
 * report holds exactly the expected rows, the CSV parsed here. Expectations
 * come from the scenario and the API's other answers (key details, audit
 * events, checkpoints), not from the report code.
 */
describe('reports (JSON, CSV): per key, per site, ledger extract', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  const w = new ReportScenario(cleanup, 'rep');
  const { ALPHA, BETA, S1, S2, S3 } = w;
  const get = (p: string): Promise<unknown> => w.get(p);
  const call = (p: string) => w.h.call('GET', p, { token: w.tok('aud') });

  before(() => w.build());

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  it('per key (JSON): every version at every site and target, with state, KCV confirmation, requester and approvers; paged by cursor', async () => {
    for (const name of [ALPHA, BETA]) {
      const report = (await get(`/v1/reports/keys/${encodeURIComponent(name)}`)) as api.KeyReport;
      assert.equal(report.key.name, name);
      assert.equal(report.next, null);
      assert.equal(report.hubFingerprint, await w.fingerprint());
      const expected = await w.expectedFor(name);
      assert.deepEqual(
        report.rows.map((r) => ({
          version: r.version,
          versionState: r.versionState,
          hubKcv: r.hubKcv,
          listenerId: r.listenerId,
          target: r.target,
          state: r.state,
          targetKcv: r.targetKcv,
          kcvConfirmed: r.kcvConfirmed,
          requestedBy: r.requestedBy,
          approvedBy: r.approvedBy,
          approvalRequestId: r.approvalRequestId,
        })),
        expected,
        `rows of ${name}`,
      );
      for (const r of report.rows) {
        assert.ok(r.queuedAt && r.pushedAt, `${name} v${r.version} at ${r.listenerId}: queued and pushed`);
        assert.equal(r.confirmedAt !== null, r.state === 'confirmed');
      }
    }
    // Two rows a page: the pages join up to the whole report, each row once.
    const rows: api.KeyReportRow[] = [];
    let after: string | null = '';
    while (after !== null) {
      const page = (await get(`/v1/reports/keys/${encodeURIComponent(BETA)}?limit=2${after ? `&after=${after}` : ''}`)) as api.KeyReport;
      rows.push(...page.rows);
      after = page.next;
    }
    assert.deepEqual(
      rows.map((r) => `${r.version}/${r.listenerId}`),
      (await w.expectedFor(BETA)).map((r) => `${r.version}/${r.listenerId}`),
    );
    const forged = await call(`/v1/reports/keys/${encodeURIComponent(BETA)}?after=bm90LWEtY3Vyc29y`);
    assert.equal((forged.body as api.ApiErrorBody).error.code, 'REPORT_CURSOR_INVALID');
  });

  it('per key (CSV): the same rows, and no key material', async () => {
    for (const name of [ALPHA, BETA]) {
      const r = await call(`/v1/reports/keys/${encodeURIComponent(name)}?format=csv`);
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/csv/);
      const [header, ...rows] = parseCsv(String(r.body));
      assert.deepEqual(header.slice(0, 6), ['version', 'version_state', 'hub_kcv', 'listener_id', 'target', 'state']);
      const pick = (row: string[]) => keyCsvRow(Object.fromEntries(header.map((h2, i) => [h2, row[i]])));
      assert.deepEqual(rows.map(pick), (await w.expectedFor(name)).map(keyCsvRow.fromExpected));
    }
  });

  it('per site (JSON and CSV): what it holds (confirmed, not destroyed), its last heartbeat, its drift field', async () => {
    for (const site of [S1, S2, S3]) {
      const report = (await get(`/v1/reports/sites/${site}`)) as api.SiteReport;
      const expected = expectedSiteRows(site, { alpha: await w.keyDetail(ALPHA), beta: await w.keyDetail(BETA) }, w);
      assert.deepEqual(
        report.rows.map((r) => ({ key: r.key, version: r.version, versionState: r.versionState, target: r.target, hubKcv: r.hubKcv, kcvConfirmed: r.kcvConfirmed, requestedBy: r.requestedBy })),
        expected,
        `holdings of ${site}`,
      );
      assert.equal(report.site.id, site);
      assert.ok(report.site.lastSeenAt, 'the fixture listeners were seen');
      assert.deepEqual(report.drift, { counts: { missing: 0, extra: 0, kcv_mismatch: 0, state_mismatch: 0 }, findings: [] });
      const csv = await call(`/v1/reports/sites/${site}?format=csv`);
      const [header, ...rows] = parseCsv(String(csv.body));
      assert.deepEqual(
        rows.map((row) => siteCsvRow(Object.fromEntries(header.map((h2, i) => [h2, row[i]])))),
        expected.map(siteCsvRow.fromExpected),
      );
    }
  });

  it('per site: open drift findings (as the drift scan records them) appear with their counts', async () => {
    await w.sql(
      `INSERT INTO drift_findings (listener_id, target, item, kind, object_id, label, reported_kcv, reported_state) VALUES ($1, 'hsm', 'obj:stray', 'extra', 'stray', 'stray-key', 'abc123', 'active')`,
      [S2],
    );
    const report = (await get(`/v1/reports/sites/${S2}`)) as api.SiteReport;
    assert.deepEqual(report.drift.counts, { missing: 0, extra: 1, kcv_mismatch: 0, state_mismatch: 0 });
    assert.deepEqual(
      report.drift.findings.map((f) => [f.listenerId, f.target, f.kind, f.label, f.reportedKcv]),
      [[S2, 'hsm', 'extra', 'stray-key', 'abc123']],
    );
    assert.deepEqual(((await get(`/v1/reports/sites/${S1}`)) as api.SiteReport).drift.findings, [], 'only the site asked about');
  });

  it('ledger extract (JSON and CSV): exactly the events of the period with their hashes, each with its covering checkpoint', async () => {
    const q = `from=${w.period.from}&to=${w.period.to}`;
    const report = (await get(`/v1/reports/ledger?${q}`)) as api.LedgerReport;
    const all = (await get('/v1/audit/events?limit=5000')) as { events: api.AuditEventView[] };
    const cps = ((await get('/v1/audit/checkpoints')) as { checkpoints: Array<{ seq: number }> }).checkpoints.map((c) => c.seq);
    const want = expectedLedger(all.events, cps, w.period);
    assert.ok(want.rows.length >= 10, `the scenario wrote ${want.rows.length} events`);
    assert.deepEqual(
      report.rows.map((r) => ({ seq: r.seq, action: r.action, actor: r.actor, hash: r.hash, prevHash: r.prevHash, checkpointSeq: r.checkpointSeq })),
      want.rows,
    );
    assert.deepEqual(report.events, { count: want.rows.length, firstSeq: want.rows[0].seq, lastSeq: want.rows[want.rows.length - 1].seq });
    assert.deepEqual(
      report.checkpoints.map((c) => c.seq),
      want.checkpoints,
    );
    for (const action of ['approval.executed', 'key.rotated', 'key.state_changed'])
      assert.ok(
        report.rows.some((r) => r.action === action),
        `${action} in the extract`,
      );
    const csv = await call(`/v1/reports/ledger?${q}&format=csv`);
    const [header, ...rows] = parseCsv(String(csv.body));
    assert.deepEqual(
      rows.map((row) => ledgerCsvRow(Object.fromEntries(header.map((h2, i) => [h2, row[i]])))),
      want.rows.map(ledgerCsvRow.fromExpected),
    );
    // The details column is the event's JSON as stored.
    const detailsAt = header.indexOf('details');
    assert.deepEqual(JSON.parse(rows[0][detailsAt]), all.events.find((e) => e.seq === want.rows[0].seq)!.details);
  });

  it('no key material: no report carries a wrapped blob or anything but KCVs', async () => {
    const blobs = await w.sql<{ b64: string }>(`SELECT encode(wrapped, 'base64') AS b64 FROM key_versions WHERE length(wrapped) > 0`);
    for (const p of [`/v1/reports/keys/${encodeURIComponent(ALPHA)}?format=csv`, `/v1/reports/keys/${encodeURIComponent(BETA)}`, `/v1/reports/sites/${S1}`]) {
      const body = JSON.stringify((await call(p)).body);
      for (const b of blobs) assert.ok(!body.includes(b.b64.replace(/\n/g, '').slice(0, 24)), `${p} holds a wrapped key`);
    }
  });
});
