import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { api } from '@keyhub/protocol';
import { Cleanup } from '../bench/lib';
import { parseCsv } from './reports-expected';
import { ReportScenario } from './reports-scenario';

const pdfText = async (file: string): Promise<string> => (await promisify(execFile)('pdftotext', ['-layout', file, '-'])).stdout;

/**
 * Reports through the `keyhub` CLI: PDFs that open in pdftotext (Debian
 * poppler-utils, an independent reader) and hold the scenario's rows, CSV
 * identical to the API's, JSON joined from pages; and the bounds of a large
 * report (10,001 versions): CSV streams all of it, PDF is refused.
 */
describe('reports through the CLI: PDF (pdftotext), CSV, JSON pages, limits', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  const w = new ReportScenario(cleanup, 'repc');
  const { ALPHA, BETA, S1, S2, S3 } = w;
  const get = (p: string): Promise<unknown> => w.get(p);
  const call = (p: string) => w.h.call('GET', p, { token: w.tok('aud') });

  before(() => w.build());

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  it('PDF through the CLI: opens in pdftotext, holds the rows, title, period, hub fingerprint and page numbers; CSV through the CLI matches the API', async () => {
    const { dir, cli } = await w.cli();
    const text = pdfText;
    const fingerprint = await w.fingerprint();

    const keyPdf = path.join(dir, 'beta.pdf');
    const k = await cli('report', 'key', BETA, '--format', 'pdf', '--out', keyPdf);
    assert.equal(k.code, 0, k.stdout + k.stderr);
    assert.equal(JSON.parse(k.stdout).format, 'pdf');
    assert.equal((await readFile(keyPdf)).subarray(0, 5).toString(), '%PDF-');
    const kt = await text(keyPdf);
    assert.match(kt, /Key report: rep\/beta/);
    assert.ok(kt.includes(fingerprint), 'the hub fingerprint is printed');
    assert.match(kt, /Page 1 of 1/);
    const lines = kt.split('\n');
    for (const row of await w.expectedFor(BETA)) {
      const line = lines.find((l) => l.includes(row.listenerId!) && new RegExp(`^\\s*${row.version}\\s`).test(l));
      assert.ok(line, `a line for v${row.version} at ${row.listenerId}:\n${kt}`);
      for (const cell of [row.versionState, row.hubKcv, row.target!, row.state!, row.requestedBy!, ...(row.targetKcv ? [row.targetKcv] : [])]) assert.ok(line.includes(cell), `"${cell}" in "${line}"`);
    }
    const alphaPdf = path.join(dir, 'alpha.pdf');
    assert.equal((await cli('report', 'key', ALPHA, '--format', 'pdf', '--out', alphaPdf)).code, 0);
    const at = await text(alphaPdf);
    const alphaLines = at.split('\n').filter((x) => x.includes(S1) || x.includes(S2));
    assert.equal(alphaLines.length, 2, at);
    for (const l of alphaLines) assert.match(l, /compromised .* ap1;ap2/);

    const ledgerPdf = path.join(dir, 'ledger.pdf');
    const lg = await cli('report', 'ledger', '--from', w.period.from, '--to', w.period.to, '--format', 'pdf', '--out', ledgerPdf);
    assert.equal(lg.code, 0, lg.stdout + lg.stderr);
    const lt = await text(ledgerPdf);
    assert.match(lt, new RegExp(`Period: ${w.period.from.replace(/[.]/g, '\\.')} to`));
    const ledger = (await get(`/v1/reports/ledger?from=${w.period.from}&to=${w.period.to}`)) as api.LedgerReport;
    for (const e of ledger.rows) assert.ok(lt.includes(e.hash), `event ${e.seq}'s hash in the PDF`);

    const sitePdf = path.join(dir, 's3.pdf');
    assert.equal((await cli('report', 'site', S3, '--format', 'pdf', '--out', sitePdf)).code, 0);
    const st = await text(sitePdf);
    assert.match(st, new RegExp(`Site report: ${S3}`));
    assert.match(st, /Open drift findings/);
    // S3 holds beta v1 only (v2 is not confirmed there, alpha never went there).
    const held = st.split('\n').filter((l) => l.includes('rep/'));
    assert.equal(held.length, 1, st);
    assert.match(held[0], /rep\/beta\s+1\s+active\s+hsm/);

    const csvFile = path.join(dir, 'beta.csv');
    assert.equal((await cli('report', 'key', BETA, '--format', 'csv', '--out', csvFile)).code, 0);
    const api2 = await call(`/v1/reports/keys/${encodeURIComponent(BETA)}?format=csv`);
    assert.deepEqual(parseCsv(await readFile(csvFile, 'utf8')), parseCsv(String(api2.body)));
    const toStdout = await cli('report', 'key', BETA, '--format', 'csv');
    assert.equal(toStdout.code, 0, toStdout.stderr);
    assert.deepEqual(parseCsv(toStdout.stdout), parseCsv(String(api2.body)));
    const json = await cli('report', 'key', BETA);
    assert.equal(json.code, 0, json.stderr);
    assert.equal((JSON.parse(json.stdout) as api.KeyReport).rows.length, (await w.expectedFor(BETA)).length);
    const missing = await cli('report', 'key', 'rep/none', '--format', 'csv', '--out', path.join(dir, 'none.csv'));
    assert.equal(missing.code, 3, missing.stdout + missing.stderr);
    assert.match(missing.stdout, /KEY_NOT_FOUND/);
  });

  it('a key with 10,001 versions: JSON pages (the CLI joins them), CSV streams every row, PDF is refused past its limit', async () => {
    w.ok(await w.h.call('POST', '/v1/keys', { token: w.tok('ko'), body: { name: 'rep/bulk', algorithm: 'AES-256' } }), 201);
    // Destroyed versions hold no material: rows the database accepts without an HSM.
    await w.sql(
      `INSERT INTO key_versions (id, key_id, version, wrapped, length, kcv, state, activate_at)
       SELECT gen_random_uuid(), k.id, g, ''::bytea, 32, lpad(to_hex(g), 6, '0'), 'destroyed', now() FROM keys k, generate_series(2, 10001) g WHERE k.name = 'rep/bulk'`,
    );
    const first = (await get('/v1/reports/keys/rep%2Fbulk?limit=5000')) as api.KeyReport;
    assert.equal(first.rows.length, 5000);
    assert.ok(first.next);
    const csv = await call('/v1/reports/keys/rep%2Fbulk?format=csv');
    const rows = parseCsv(String(csv.body)).slice(1);
    assert.equal(rows.length, 10_001);
    assert.deepEqual(
      rows.map((r) => Number(r[0])),
      Array.from({ length: 10_001 }, (_, i) => i + 1),
    );
    const pdf = await call('/v1/reports/keys/rep%2Fbulk?format=pdf');
    assert.equal(pdf.status, 413);
    assert.equal((pdf.body as api.ApiErrorBody).error.code, 'REPORT_TOO_LARGE');
    const { dir, cli } = await w.cli();
    const out = path.join(dir, 'bulk.json');
    const r = await cli('report', 'key', 'rep/bulk', '--out', out);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const whole = JSON.parse(await readFile(out, 'utf8')) as api.KeyReport;
    assert.equal(whole.next, null);
    assert.equal(new Set(whole.rows.map((x) => x.version)).size, 10_001);
    const refused = await cli('report', 'key', 'rep/bulk', '--format', 'pdf', '--out', path.join(dir, 'bulk.pdf'));
    assert.equal(refused.code, 4, refused.stdout);
    assert.match(refused.stdout, /REPORT_TOO_LARGE/);
  });
});
