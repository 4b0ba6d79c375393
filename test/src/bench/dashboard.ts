/**
 * Stage "dashboard": the operators' dashboard (/ui) and the compliance
 * reports (/v1/reports) on a database the size of a large installation.
 *
 * Data (filled in SQL with generate_series, the audit trail through the
 * hub's own appendAudit and WriteCheckpoint so its chain, seals and
 * signatures verify): 1,000 active sites; 10,000 keys x 10 versions =
 * 100,000 key versions (a rotation history: versions 1-7 destroyed, 8-9
 * deactivated, 10 active); each key's three newest versions at 10 sites of
 * its own (version 10 mostly confirmed, some queued, sent or failed; 8 and 9
 * destroyed at the sites), 10 "fleet" keys at all 1,000 sites instead: about
 * 330,000 distributions, one package (the first push) for each one sent,
 * a receipt (target KCV, confirmed at) for each confirmed one; a placement
 * per fleet key; a complete inventory per site (what it holds, with drift
 * planted) judged by the real ScanDrift; 530 executed dual-control
 * requests behind distributions (what the key report's "approved by" looks
 * up); 120 pending approval requests made through the API; 100,000 audit
 * events with a signed checkpoint every
 * 10,000. Key version rows carry no row MAC: no page or report reads key
 * material (the MAC is checked only before an unwrap).
 *
 * Measured, each page and report 5 times after one untimed load: time to
 * first byte over HTTPS (node:https in the bench process, kept-alive
 * connection, the hub CA pinned, the session cookie of a browser login for
 * pages, an auditor's bearer token for reports) and, for pages, the
 * complete page in headless Chromium (Debian's, via playwright-core): a
 * navigation until `load` with no htmx request in flight, read from the
 * Navigation Timing entry (responseStart and loadEventEnd from the start
 * of the navigation). Reports are downloads, timed to their last byte.
 * Goal: every load under 1 s (the figure is the maximum; the median is in
 * the note). The same-run references: a static file of the same server
 * (TTFB) and the login page, a page rendered by the same code without a
 * database read (TTFB and complete); pages are given as ratios to them,
 * and each figure notes the bench process's own CPU time per load (the hub
 * runs in it), which other work on the machine does not inflate.
 *
 * Results (2026-11-26, 2 cores, 1-minute load 5.2-6.7 from other work;
 * README has the table): every page but the audit trail loads in under
 * 160 ms (median complete; TTFB under 30 ms); reports end in under 100 ms
 * as JSON, 400 ms as CSV; 53 of 57 goals met. Not met: the audit trail's
 * first view after start (2.2 s: all 101,795 events hashed, about 1 s of hub
 * CPU), one load of its page back (1,075 ms; the views re-read every event,
 * 210-260 ms of hub CPU each), and the PDFs of 3,007 and 5,000 rows (max
 * 1.5 s and 2.0 s: pdfkit lays out about 3,000 rows per CPU second; they
 * stream from 30 ms).
 *
 * What this stage found and fixed:
 * - reports: a row's "pushed at" (the first package of its distribution)
 *   scanned all 327,502 packages per row: 27-53 ms a row, 1.3 s for a
 *   37-row key report, 53 s for a page of 1,000 rows, 5.4 s for a site
 *   report. Migration 1733950000000-report-indexes: packages by
 *   (distribution_id, issued_at), and confirmed distributions by site
 *   (partial on confirmed_at IS NOT NULL, so the relay's `sent` updates stay
 *   HOT); the site report says `confirmed_at IS NOT NULL` to use it. Now
 *   5 ms, 60 ms and 8 ms in EXPLAIN ANALYZE.
 * - key report, approvals: each row scanned the page's matching requests
 *   (lateral, ORDER BY ... LIMIT 1) and every executed request's document
 *   was parsed per page: a join with DISTINCT ON now, and only documents
 *   whose bytes name the key are parsed (with 530 executed requests: 81 ->
 *   4 ms for 37 rows, 311 -> 62 ms for a page of 1,000).
 * - matrix: the newest version per cell was found, then every distribution
 *   of that version re-read per cell (250,000 rows for fleet keys): one pass
 *   with a window now, 5-50 ms instead of 210-340 ms.
 * - audit trail: every view hashed the whole chain (1.5-2 s at 100,000
 *   events). The dashboard now remembers, per process, the head it verified
 *   and digests of the rows up to it; it re-reads every row each view and
 *   hashes only what is new when nothing below the head changed, else
 *   verifies from the first event (operations/dashboard/audit-verdict.ts,
 *   verifyAuditChain's `resume`; integration/dashboard-audit-verdict.test.ts).
 */
import { Agent, request } from 'node:https';
import { chromium, type Browser, type Page } from 'playwright-core';
import { appendAudit, type AuditInput } from '@keyhub/hub/dist/audit/audit-log';
import { WriteCheckpoint } from '@keyhub/hub/dist/operations/audit/write-checkpoint';
import { ScanDrift } from '@keyhub/hub/dist/operations/inventory/scan-drift';
import { verifyAuditForDashboard } from '@keyhub/hub/dist/operations/dashboard/audit-verdict';
import { createApiHub, type ApiHub } from '../fixtures/api-hub';
import type { StageRun } from './context';
import { listenerIds } from './hub-fixture';
import { median, now, say } from './lib';

const SITES = 1000;
const KEYS = 10_000;
const VERSIONS = 10;
/** Sites each (non-fleet) key's newest versions are at. */
const HOME_SITES = 10;
/** Keys 1..FLEET are at every site. */
const FLEET = 10;
const AUDIT_EVENTS = 100_000;
const AUDIT_CHUNK = 2_500;
const CHECKPOINT_EVERY = 10_000;
const PENDING_APPROVALS = 120;
/** Audit events appended before each load of the "appended" variant of the audit page. */
const APPEND_BETWEEN_VIEWS = 250;
const RUNS = 5;
const GOAL_MS = 1000;
const CHROMIUM = '/usr/bin/chromium';
const SESSION_COOKIE = '__Secure-khub_session';

const uuidOf = (expr: string): string => `overlay(overlay(md5(${expr}) placing '4' from 13) placing '8' from 17)::uuid`;
const keyName = (g: number): string => `dash-key-${String(g).padStart(5, '0')}`;
/** The j-th home site of key g (1-based site number): j = 0..9 give 10 different sites. */
const HOME_SITE_SQL = `1 + ((g * 7 + j * 101) % ${SITES})`;

export async function fillData(h: ApiHub, sites: string[]): Promise<void> {
  const ds = h.fx.rt.ds;
  await ds.query(
    `INSERT INTO listeners (id, state, identity_key, transport_key, oaep_hash, fingerprint, targets, hostname, requested_at, approved_at, approved_by, activated_at, last_seen_at)
     SELECT l, 'active', decode(md5(l), 'hex'), decode(md5('t' || l), 'hex'), 'sha256', md5('fp1' || l) || md5('fp2' || l),
            '[{"name":"hsm","kind":"pkcs11"}]'::jsonb, l || '.bench.invalid', now() - interval '200 days', now() - interval '200 days', 'bench',
            now() - interval '200 days', now() - (n % 120) * interval '1 second'
       FROM unnest($1::text[]) WITH ORDINALITY AS s(l, n)`,
    [sites],
  );
  await ds.query(
    `INSERT INTO keys (id, name, algorithm, usages, exportable, state, current_version, created_by, created_at)
     SELECT ${uuidOf(`'dk-' || g`)}, 'dash-key-' || lpad(g::text, 5, '0'), 'AES-256', ARRAY['encrypt', 'decrypt'], false, 'active', $2::int, 'bench-dashboard',
            now() - interval '300 days'
       FROM generate_series(1, $1::int) g`,
    [KEYS, VERSIONS],
  );
  // A rotation every 30 days: the oldest versions destroyed (no material), two deactivated in their grace, the newest active.
  await ds.query(
    `INSERT INTO key_versions (id, key_id, version, wrapped, length, kcv, state, created_at, activate_at, destroyed_at)
     SELECT ${uuidOf(`'dv-' || g || '-' || v`)}, ${uuidOf(`'dk-' || g`)}, v,
            CASE WHEN v <= $2::int - 3 THEN ''::bytea ELSE decode(md5('w1-' || g || '-' || v) || md5('w2-' || g || '-' || v) || substr(md5('w3-' || g || '-' || v), 1, 16), 'hex') END,
            32, substr(md5('kcv-' || g || '-' || v), 1, 6),
            CASE WHEN v = $2::int THEN 'active' WHEN v >= $2::int - 2 THEN 'deactivated' ELSE 'destroyed' END,
            now() - ($2::int - v) * interval '30 days', now() - ($2::int - v) * interval '30 days',
            CASE WHEN v <= $2::int - 3 THEN now() - ($2::int - v - 2) * interval '30 days' END
       FROM generate_series(1, $1::int) g, generate_series(1, $2::int) v`,
    [KEYS, VERSIONS],
  );
  // The three newest versions of every key at its sites: the newest one mostly confirmed (receipt: target KCV), the two before destroyed there.
  const distState = `CASE WHEN v < $2::int THEN 'destroyed' WHEN h = 0 THEN 'failed' WHEN h IN (1, 2) THEN 'queued' WHEN h IN (3, 4) THEN 'sent' ELSE 'confirmed' END`;
  const distSelect = (sitesFrom: string, where: string): string => `
     INSERT INTO distributions (id, key_version_id, listener_id, target, state, attempts, last_package_id, last_sent_at, target_kcv, error_code,
                                created_by, created_at, updated_at, confirmed_at)
     SELECT ${uuidOf(`'dd-' || g || '-' || v || '-' || site`)}, ${uuidOf(`'dv-' || g || '-' || v`)}, 'dash-' || lpad(site::text, 4, '0'), 'hsm', st, 1,
            CASE WHEN st <> 'queued' THEN ${uuidOf(`'dp-' || g || '-' || v || '-' || site`)} END,
            CASE WHEN st <> 'queued' THEN at + interval '2 seconds' END,
            CASE WHEN st IN ('confirmed', 'destroyed') THEN substr(md5('kcv-' || g || '-' || v), 1, 6) END,
            CASE WHEN st = 'failed' THEN 'TARGET_IMPORT_FAILED' END,
            'bench-dashboard', at, CASE WHEN st = 'destroyed' THEN least(at + interval '40 days', now() - interval '2 hours') ELSE at + interval '5 seconds' END,
            CASE WHEN st IN ('confirmed', 'destroyed') THEN at + interval '5 seconds' END
       FROM (SELECT g, v, site, ${distState} AS st, now() - ($2::int - v) * interval '30 days' - interval '1 hour' AS at
               FROM ${sitesFrom}, generate_series($2::int - 2, $2::int) v ${where}) x`;
  await ds.query(distSelect(`(SELECT g, j, ${HOME_SITE_SQL} AS site, (g * 10 + j) % 100 AS h FROM generate_series($3::int + 1, $1::int) g, generate_series(0, ${HOME_SITES - 1}) j) gs`, ''), [
    KEYS,
    VERSIONS,
    FLEET,
  ]);
  await ds.query(distSelect(`(SELECT g, site, (g * 1000 + site) % 100 AS h FROM generate_series(1, $3::int) g, generate_series(1, ${SITES}) site) gs`, 'WHERE $1::int > 0'), [KEYS, VERSIONS, FLEET]);
  // The first push of every distribution that was sent: its package (sequence numbers per site in push order).
  await ds.query(
    `INSERT INTO packages (id, distribution_id, listener_id, sequence, issued_at, expires_at, envelope_sha256)
     SELECT d.last_package_id, d.id, d.listener_id, row_number() OVER (PARTITION BY d.listener_id ORDER BY d.created_at, d.id), d.last_sent_at,
            d.last_sent_at + interval '7 days', sha256(d.id::text::bytea)
       FROM distributions d WHERE d.last_package_id IS NOT NULL`,
  );
  // A placement per fleet key: every site, future versions and sites included.
  await ds.query(
    `INSERT INTO placements (id, name, key_id, listener_ids, targets, future_versions, future_sites, destroy_extras, version, created_by, created_by_operator)
     SELECT ${uuidOf(`'dpl-' || g`)}, 'fleet-' || g, ${uuidOf(`'dk-' || g`)}, $2::text[], ARRAY['hsm'], true, true, false, 1, 'admin',
            (SELECT id FROM operators WHERE name = 'admin')
       FROM generate_series(1, $1::int) g`,
    [FLEET, sites],
  );
  await ds.query(
    `INSERT INTO placement_sites (placement_id, listener_id, target, key_version_id)
     SELECT ${uuidOf(`'dpl-' || g`)}, 'dash-' || lpad(site::text, 4, '0'), 'hsm', ${uuidOf(`'dv-' || g || '-' || $2::int`)}
       FROM generate_series(1, $1::int) g, generate_series(1, ${SITES}) site`,
    [FLEET, VERSIONS],
  );
  // Dual-control history the key report looks up per row: an executed distribution.sensitive request (approved by
  // bench-approver) for version 10 of every 20th key at its 10 sites, and for versions 8-10 of each fleet key at every site.
  await ds.query(
    `WITH req AS (
       SELECT g, v, ${uuidOf(`'dreq-' || g || '-' || v`)} AS id, now() - ($2::int - v) * interval '30 days' - interval '1 hour 1 minute' AS at,
              jsonb_build_object('action', 'distribution.sensitive',
                'keys', jsonb_build_array(jsonb_build_object('name', 'dash-key-' || lpad(g::text, 5, '0'), 'version', v, 'kcv', substr(md5('kcv-' || g || '-' || v), 1, 6), 'sensitive', true)),
                'destinations', (SELECT jsonb_agg(jsonb_build_object('listenerId', 'dash-' || lpad(site::text, 4, '0'), 'target', 'hsm') ORDER BY site)
                                   FROM (SELECT CASE WHEN g <= $3::int THEN s ELSE ${HOME_SITE_SQL.replace(/j/g, 's')} END AS site
                                           FROM generate_series(0, CASE WHEN g <= $3::int THEN ${SITES} ELSE ${HOME_SITES - 1} END) s) x WHERE site BETWEEN 1 AND ${SITES})) AS doc
         FROM (SELECT g, $2::int AS v FROM generate_series(20, $1::int, 20) g
               UNION ALL SELECT g, v FROM generate_series(1, $3::int) g, generate_series($2::int - 2, $2::int) v) k),
     ins AS (
       INSERT INTO approval_requests (id, action, canonical, hash, required, requested_by, created_at, expires_at, state, decided_at)
       SELECT id, 'distribution.sensitive', convert_to(doc::text, 'UTF8'), encode(sha256(convert_to(doc::text, 'UTF8')), 'hex'), 1,
              (SELECT id FROM operators WHERE name = 'admin'), at, at + interval '1 day', 'executed', at + interval '30 seconds'
         FROM req RETURNING id, hash, created_at)
     INSERT INTO approval_decisions (request_id, operator_id, decision, request_hash, created_at, expires_at)
     SELECT id, (SELECT id FROM operators WHERE name = 'bench-approver'), 'approve', hash, created_at + interval '30 seconds', created_at + interval '1 day' FROM ins`,
    [KEYS, VERSIONS, FLEET],
  );
  // Every site's inventory, taken after the confirmations: what it holds, except every 100th item (missing);
  // every 200th other one reports another KCV; every 10th site holds an object nobody sent (extra).
  await ds.query(
    `INSERT INTO listener_inventories (listener_id, report_id, taken_at, targets, items)
     SELECT l, ${uuidOf(`'dinv-' || l`)}, now() - interval '10 minutes', ARRAY['hsm'], 0 FROM unnest($1::text[]) l`,
    [sites],
  );
  await ds.query(
    `INSERT INTO inventory_items (listener_id, report_id, target, object_id, key_id, version, label, kcv, state)
     SELECT d.listener_id, ${uuidOf(`'dinv-' || d.listener_id`)}, 'hsm', md5('obj-' || d.id), v.key_id, v.version, 'keyhub.' || k.name || '.v' || v.version,
            CASE WHEN d.n % 200 = 7 THEN 'ffffff' ELSE v.kcv END, 'active'
       FROM (SELECT d.id, d.listener_id, d.key_version_id, row_number() OVER (ORDER BY d.id) AS n FROM distributions d WHERE d.state = 'confirmed') d
       JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
      WHERE d.n % 100 <> 3`,
  );
  await ds.query(
    `INSERT INTO inventory_items (listener_id, report_id, target, object_id, key_id, version, label, kcv, state)
     SELECT l, ${uuidOf(`'dinv-' || l`)}, 'hsm', md5('planted-' || l), NULL, NULL, 'planted', NULL, 'active'
       FROM unnest($1::text[]) WITH ORDINALITY AS s(l, n) WHERE n % 10 = 0`,
    [sites],
  );
  await ds.query(`UPDATE listener_inventories i SET items = c.n FROM (SELECT listener_id, count(*)::int AS n FROM inventory_items GROUP BY listener_id) c WHERE c.listener_id = i.listener_id`);
}

/** 100,000 audit events through the hub's own append (hash chain, HSM seal per append), a signed checkpoint every 10,000. */
export async function fillAudit(h: ApiHub): Promise<void> {
  const { ds } = h.fx.rt;
  const { keyring } = h.fx;
  const checkpoint = new WriteCheckpoint(ds, keyring);
  for (let done = 0; done < AUDIT_EVENTS; done += AUDIT_CHUNK) {
    const events: AuditInput[] = [];
    for (let i = done; i < done + AUDIT_CHUNK; i++) {
      const g = 1 + (i % KEYS);
      const v = 1 + Math.floor(i / KEYS);
      events.push({ actor: 'bench-dashboard', action: 'key.version.created', subject: `key:${keyName(g)}`, details: { version: v, kcv: `k${String(i).padStart(5, '0')}` } });
    }
    await ds.transaction((m) => appendAudit(m, events));
    if ((done + AUDIT_CHUNK) % CHECKPOINT_EVERY === 0) await checkpoint.execute();
  }
}

interface Timing {
  ttfbMs: number;
  totalMs: number;
  status: number;
  bytes: number;
  location?: string;
}

class TimedGet {
  private readonly agent: Agent;
  private readonly base: URL;

  constructor(url: string, caPem: string) {
    this.base = new URL(url);
    this.agent = new Agent({ keepAlive: true, maxSockets: 1, ca: caPem });
  }

  get(path: string, headers: Record<string, string>): Promise<Timing> {
    return new Promise((resolve, reject) => {
      const t0 = now();
      let ttfb = 0;
      const req = request({ method: 'GET', hostname: this.base.hostname, port: this.base.port, path, headers, agent: this.agent, timeout: 120_000 }, (res) => {
        ttfb = now() - t0;
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('error', reject);
        res.on('end', () => resolve({ ttfbMs: ttfb, totalMs: now() - t0, status: res.statusCode ?? 0, bytes, location: res.headers.location }));
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in time`)));
      req.on('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

interface Sample {
  medianMs: number;
  maxMs: number;
  runs: number[];
}

/** CPU time of the bench process (the hub and its HTTPS client; not PostgreSQL, not Chromium) per load: what the figure costs whatever else runs on the machine. */
const cpuNote = (ms: number): string => `hub process CPU ${ms.toFixed(0)} ms per load`;
const sample = (runs: number[]): Sample => ({ medianMs: median(runs) ?? NaN, maxMs: Math.max(...runs), runs });
const fmt = (s: Sample): string => `median ${s.medianMs.toFixed(0)} ms, max ${s.maxMs.toFixed(0)} ms (runs ${s.runs.map((x) => x.toFixed(0)).join(', ')})`;

/** One load of `path` in the browser: Navigation Timing responseStart and loadEventEnd, after no htmx request is in flight. */
async function browserLoad(page: Page, path: string): Promise<{ ttfbMs: number; completeMs: number; bytes: number }> {
  const res = await page.goto(path, { waitUntil: 'load' });
  if (!res || res.status() !== 200) throw new Error(`${path}: HTTP ${res?.status() ?? 'no response'} in Chromium`);
  if (/\/ui\/login/.test(page.url()) && !path.startsWith('/ui/login')) throw new Error(`${path}: sent to the login page`);
  // Strings, evaluated in the page (this package is compiled without the DOM's types).
  await page.waitForFunction(
    `(() => { const n = performance.getEntriesByType('navigation')[0]; return n !== undefined && n.loadEventEnd > 0 && document.querySelector('.htmx-request') === null; })()`,
  );
  return page.evaluate<{ ttfbMs: number; completeMs: number; bytes: number }>(
    `(() => { const n = performance.getEntriesByType('navigation')[0]; return { ttfbMs: n.responseStart - n.startTime, completeMs: n.loadEventEnd - n.startTime, bytes: n.encodedBodySize }; })()`,
  );
}

export async function runDashboard(stage: StageRun): Promise<void> {
  const { rec, cleanup } = stage;
  const hub = await createApiHub(cleanup);
  const { fx } = hub;
  const { ds } = fx.rt;
  const auditor = await hub.operator('bench-auditor', ['auditor']);
  // A policy needs someone who can approve under it.
  await hub.operator('bench-approver', ['approver']);

  let t = now();
  const sites = listenerIds(SITES, 'dash');
  await fillData(hub, sites);
  const tData = now() - t;
  t = now();
  await fillAudit(hub);
  const tAudit = now() - t;
  // Pending dual-control requests (made as the API makes them): a policy on operator.manage, then requests nobody decided yet.
  t = now();
  const policy = await hub.call('PUT', '/v1/policies/operator.manage', { token: hub.tokens.get('admin'), body: { required: 1, enabled: true } });
  if (policy.status !== 200) throw new Error(`policy: HTTP ${policy.status} ${JSON.stringify(policy.body).slice(0, 200)}`);
  for (let i = 0; i < PENDING_APPROVALS; i++) {
    const r = await hub.call('POST', '/v1/operators', { token: hub.tokens.get('admin'), body: { name: `dash-pending-${i}`, roles: ['auditor'] } });
    if (r.status !== 202) throw new Error(`pending request ${i}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
  }
  const tApprovals = now() - t;
  await fx.asOwner('ANALYZE');
  t = now();
  const scan = await fx.rt.container.resolve(ScanDrift).execute(null);
  const tScan = now() - t;
  const [counts] = await ds.query(
    `SELECT (SELECT count(*) FROM listeners) AS sites, (SELECT count(*) FROM keys) AS keys, (SELECT count(*) FROM key_versions) AS key_versions,
            (SELECT count(*) FROM distributions) AS distributions, (SELECT count(*) FROM packages) AS packages,
            (SELECT count(*) FROM inventory_items) AS inventory_items, (SELECT count(*) FROM drift_findings) AS drift_findings,
            (SELECT count(*) FROM audit_events) AS audit_events, (SELECT count(*) FROM audit_checkpoints) AS checkpoints,
            (SELECT count(*) FROM approval_requests WHERE state = 'pending') AS pending_approvals,
            pg_size_pretty(pg_database_size(current_database())) AS db_size`,
  );
  rec.details.dataset = { ...counts, fillMs: tData, auditMs: tAudit, approvalsMs: tApprovals, driftScanMs: tScan, driftCounts: scan.counts };
  say(
    `dashboard: ${counts.sites} sites, ${counts.key_versions} key versions, ${counts.distributions} distributions, ${counts.packages} packages, ${counts.drift_findings} drift findings, ` +
      `${counts.audit_events} audit events, ${counts.pending_approvals} pending approvals (${counts.db_size}); data ${(tData / 1000).toFixed(1)} s, audit ${(tAudit / 1000).toFixed(1)} s, ` +
      `approvals ${(tApprovals / 1000).toFixed(1)} s, drift scan ${(tScan / 1000).toFixed(1)} s`,
  );
  if (Number(counts.key_versions) !== KEYS * VERSIONS || Number(counts.sites) !== SITES) throw new Error(`dataset: ${JSON.stringify(counts)}`);

  // The browser: a person logs in with the auditor's token through the form; the HTTP client reuses that session's cookie.
  const args = ['--disable-background-networking', '--disable-dev-shm-usage', ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])];
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  cleanup.add('chromium', () => browser.close());
  const bctx = await browser.newContext({ baseURL: hub.url, ignoreHTTPSErrors: true });
  bctx.setDefaultTimeout(60_000);
  const page = await bctx.newPage();
  await page.goto('/ui/login');
  await page.fill('#token', auditor);
  await Promise.all([page.waitForURL(/\/ui\/matrix/), page.click('button[type=submit]')]);
  const session = (await bctx.cookies()).find((c) => c.name === SESSION_COOKIE);
  if (!session) throw new Error('no session cookie after login');
  const http = new TimedGet(hub.url, hub.caPem);
  cleanup.add('HTTPS agent', () => http.close());
  const pageHeaders = { accept: 'text/html', cookie: `${SESSION_COOKIE}=${session.value}` };
  const reportHeaders = { authorization: `Bearer ${auditor}` };

  const httpRuns = async (path: string, headers: Record<string, string>, before?: () => Promise<void>): Promise<{ ttfb: Sample; total: Sample; bytes: number; first: Timing; cpuMs: number }> => {
    const ttfb: number[] = [];
    const total: number[] = [];
    let bytes = 0;
    let first: Timing | undefined;
    let cpuMs = 0;
    for (let i = -1; i < RUNS; i++) {
      if (before) await before();
      const cpu = process.cpuUsage();
      const r = await http.get(path, headers);
      const used = process.cpuUsage(cpu);
      if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status}${r.location ? ` to ${r.location}` : ''}`);
      first ??= r;
      if (i < 0) continue;
      ttfb.push(r.ttfbMs);
      total.push(r.totalMs);
      cpuMs += (used.user + used.system) / 1000;
      bytes = r.bytes;
    }
    return { ttfb: sample(ttfb), total: sample(total), bytes, first: first!, cpuMs: cpuMs / RUNS };
  };
  const browserRuns = async (path: string, before?: () => Promise<void>): Promise<{ ttfb: Sample; complete: Sample; bytes: number }> => {
    const ttfb: number[] = [];
    const complete: number[] = [];
    let bytes = 0;
    for (let i = -1; i < RUNS; i++) {
      if (before) await before();
      const r = await browserLoad(page, path);
      if (i < 0) continue;
      ttfb.push(r.ttfbMs);
      complete.push(r.completeMs);
      bytes = r.bytes;
    }
    return { ttfb: sample(ttfb), complete: sample(complete), bytes };
  };

  // The same-run references: a static file (no template, no database) and the login page (the layout rendered, no database read).
  const bareStatic = await httpRuns('/ui/static/dashboard.css', pageHeaders);
  const bareHttp = await httpRuns('/ui/login', pageHeaders);
  const bareBrowser = await browserRuns('/ui/login');
  rec.metric('bare_static_ttfb_ms', 'reference: TTFB of a static file (/ui/static/dashboard.css) from the same server, median', bareStatic.ttfb.medianMs, 'ms', { note: fmt(bareStatic.ttfb) });
  rec.metric('bare_page_ttfb_ms', 'reference: TTFB of the login page (layout rendered, no database read), median', bareHttp.ttfb.medianMs, 'ms', { note: fmt(bareHttp.ttfb) });
  rec.metric('bare_page_complete_ms', 'reference: the login page complete in Chromium (navigation start to loadEventEnd), median', bareBrowser.complete.medianMs, 'ms', {
    note: fmt(bareBrowser.complete),
  });
  say(`dashboard: references: static ${fmt(bareStatic.ttfb)}; login page TTFB ${fmt(bareHttp.ttfb)}, complete in Chromium ${fmt(bareBrowser.complete)}`);

  const fleet = keyName(1);
  const typical = keyName(5000);
  // Activity between two views of the audit trail: events appended as a busy hub appends them.
  let appended = 0;
  const appendEvents = async (): Promise<void> => {
    const events: AuditInput[] = Array.from({ length: APPEND_BETWEEN_VIEWS }, (_, i) => ({
      actor: 'bench-dashboard',
      action: 'distribution.queued',
      subject: `key:${keyName(1 + ((appended + i) % KEYS))}`,
      details: { n: appended + i },
    }));
    appended += events.length;
    await ds.transaction((m) => appendAudit(m, events));
  };
  const pages: Array<{ key: string; label: string; path: string; before?: () => Promise<void> }> = [
    { key: 'keys', label: 'keys and versions, first page', path: '/ui/keys' },
    { key: 'keys_paged', label: 'keys and versions, a page deep in the list', path: `/ui/keys?after=${encodeURIComponent(`5:${keyName(7000)}`)}` },
    { key: 'key_versions', label: `one key's versions (${typical}, at 10 sites)`, path: `/ui/keys?prefix=${typical}` },
    { key: 'key_versions_fleet', label: `one key's versions (${fleet}, at 1,000 sites)`, path: `/ui/keys?prefix=${fleet}` },
    { key: 'matrix', label: 'distribution matrix, first page (50 keys x 25 sites)', path: '/ui/matrix' },
    { key: 'matrix_paged', label: 'distribution matrix, paged (keys after 5,000, sites after 500)', path: `/ui/matrix?afterKey=${typical}&afterSite=dash-0500` },
    { key: 'matrix_filtered', label: 'distribution matrix, filtered (fleet keys x sites dash-00..)', path: '/ui/matrix?key=dash-key-0000&site=dash-00' },
    { key: 'approvals', label: `pending approvals (${PENDING_APPROVALS} pending, 100 shown)`, path: '/ui/approvals' },
    { key: 'listeners', label: 'listener health, first page', path: '/ui/listeners' },
    { key: 'listeners_paged', label: 'listener health, paged (after dash-0900)', path: '/ui/listeners?after=dash-0900' },
    { key: 'drift', label: 'drift, all sites', path: '/ui/drift' },
    { key: 'drift_site', label: 'drift, one site', path: '/ui/drift?site=dash-0010' },
    { key: 'audit', label: `audit trail with the full chain verification (${AUDIT_EVENTS.toLocaleString('en-US')}+ events)`, path: '/ui/audit' },
    { key: 'audit_appended', label: `audit trail with the verification, ${APPEND_BETWEEN_VIEWS} events appended before each load`, path: '/ui/audit', before: appendEvents },
    { key: 'audit_paged', label: 'audit trail, paged (before event 50,000)', path: '/ui/audit?before=50000' },
    { key: 'audit_event', label: 'one audit event', path: '/ui/audit/events/50000' },
  ];
  // As `keyhub serve` does at start (hub-service.ts): the audit verdict warmed in the background, every event hashed once.
  const warmStart = performance.now();
  await verifyAuditForDashboard(hub.fx.rt.ds, hub.fx.keyring.signingSpki);
  const warmMs = performance.now() - warmStart;
  rec.metric('audit_warmup_ms', 'audit verdict warm-up at `serve` start (background; every event hashed once)', warmMs, 'ms', {
    note: 'the first audit view after it re-reads the chain and hashes only what is new',
  });
  say(`dashboard: audit verdict warm-up ${warmMs.toFixed(0)} ms`);
  const pageResults: Record<string, unknown> = {};
  for (const p of pages) {
    const h = await httpRuns(p.path, pageHeaders, p.before);
    const b = await browserRuns(p.path, p.before);
    if (p.key === 'audit') {
      // The hub warmed the verdict at start (above), so the first view re-reads the chain and hashes only what is new, as the later ones.
      rec.goal('page_audit_first_ttfb_ms', `audit trail, first view after the hub started and warmed its audit verdict: TTFB`, h.first.ttfbMs, 'ms', '<', GOAL_MS, {
        note: 'one load (operations/dashboard/audit-verdict.ts; the warm-up itself is audit_warmup_ms)',
      });
    }
    pageResults[p.key] = { path: p.path, http: h, browser: b };
    rec.goal(`page_${p.key}_ttfb_max_ms`, `${p.label}: TTFB over HTTPS, max of ${RUNS}`, h.ttfb.maxMs, 'ms', '<', GOAL_MS, {
      note: `${p.path}; ${fmt(h.ttfb)}; ${(h.ttfb.medianMs / bareHttp.ttfb.medianMs).toFixed(1)}x the login page's TTFB; ${(h.bytes / 1024).toFixed(0)} KiB; ${cpuNote(h.cpuMs)}`,
    });
    rec.goal(`page_${p.key}_complete_max_ms`, `${p.label}: complete in Chromium, max of ${RUNS}`, b.complete.maxMs, 'ms', '<', GOAL_MS, {
      note: `${fmt(b.complete)}; TTFB in Chromium ${fmt(b.ttfb)}; ${(b.complete.medianMs / bareBrowser.complete.medianMs).toFixed(1)}x the login page complete`,
    });
    say(
      `dashboard: ${p.key} ${p.path}: TTFB ${fmt(h.ttfb)}; Chromium complete ${fmt(b.complete)} (its TTFB median ${b.ttfb.medianMs.toFixed(0)} ms), ${(h.bytes / 1024).toFixed(0)} KiB, ${cpuNote(h.cpuMs)}`,
    );
  }
  rec.details.pages = pageResults;

  // The ledger period: two appends of 2,500 events in the middle of the trail (5,000 events, a checkpoint inside).
  const [span] = await ds.query(`SELECT (SELECT at FROM audit_events WHERE seq = 47501) AS from, (SELECT at FROM audit_events WHERE seq = 52500) AS to`);
  const ledgerQuery = `from=${encodeURIComponent(new Date(span.from).toISOString())}&to=${encodeURIComponent(new Date(span.to).toISOString())}`;
  const reports: Array<{ key: string; label: string; path: string }> = [];
  for (const [fmtName, suffix] of [
    ['json', ''],
    ['csv', 'format=csv'],
    ['pdf', 'format=pdf'],
  ] as const) {
    const q = (base: string, extra = ''): string => {
      const parts = [extra, suffix].filter((x) => x);
      return parts.length ? `${base}?${parts.join('&')}` : base;
    };
    reports.push(
      { key: `key_${fmtName}`, label: `key report ${fmtName.toUpperCase()}, ${typical} (3 versions at 10 sites, 7 destroyed)`, path: q(`/v1/reports/keys/${typical}`) },
      {
        key: `key_fleet_${fmtName}`,
        label: `key report ${fmtName.toUpperCase()}, ${fleet} (3 versions at 1,000 sites${fmtName === 'json' ? ', first page of 1,000 rows' : ''})`,
        path: q(`/v1/reports/keys/${fleet}`),
      },
      { key: `site_${fmtName}`, label: `site report ${fmtName.toUpperCase()}, dash-0500`, path: q('/v1/reports/sites/dash-0500') },
      { key: `ledger_${fmtName}`, label: `ledger extract ${fmtName.toUpperCase()}, 5,000 events${fmtName === 'json' ? ' (first page of 1,000)' : ''}`, path: q('/v1/reports/ledger', ledgerQuery) },
    );
  }
  const reportResults: Record<string, unknown> = {};
  for (const r of reports) {
    const h = await httpRuns(r.path, reportHeaders);
    reportResults[r.key] = { path: r.path, http: h };
    rec.goal(`report_${r.key}_ttfb_max_ms`, `${r.label}: TTFB, max of ${RUNS}`, h.ttfb.maxMs, 'ms', '<', GOAL_MS, { note: fmt(h.ttfb) });
    rec.goal(`report_${r.key}_complete_max_ms`, `${r.label}: last byte, max of ${RUNS}`, h.total.maxMs, 'ms', '<', GOAL_MS, {
      note: `${fmt(h.total)}; ${(h.bytes / 1024).toFixed(0)} KiB; ${cpuNote(h.cpuMs)}`,
    });
    say(`dashboard: ${r.key}: TTFB ${fmt(h.ttfb)}; complete ${fmt(h.total)}, ${(h.bytes / 1024).toFixed(0)} KiB, ${cpuNote(h.cpuMs)}`);
  }
  rec.details.reports = reportResults;
}
