import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { MESSAGE_TYPES, type api, type Receipt } from '@keyhub/protocol';
import { ApplyReceipt } from '@keyhub/hub/dist/operations/distributions/apply-receipts';
import { makeTempDir, run, type ExecResult } from '../env';
import { HUB_CLI } from '../harness/deployment';
import { insertActiveListeners, listenerIds } from '../bench/hub-fixture';
import type { Cleanup } from '../bench/lib';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';
import { expectedKeyRows, type ExpectedKeyRow, type Scenario } from './reports-expected';

/**
 * The reports tests' world, on real parts (SoftHSM2 hub token, PostgreSQL,
 * the HTTPS API): 2 keys at 3 sites, a dual-control approval, a rotation
 * and a revocation (compromise), with receipts applied by the hub's own
 * receipt operation, as the sites' would be.
 */
export class ReportScenario implements Scenario {
  readonly ALPHA = 'rep/alpha';
  readonly BETA = 'rep/beta';
  readonly S1: string;
  readonly S2: string;
  readonly S3: string;
  h!: ApiHub;
  alphaRequest = '';
  period = { from: '', to: '' };

  constructor(
    private readonly cleanup: Cleanup,
    prefix: string,
  ) {
    [this.S1, this.S2, this.S3] = listenerIds(3, prefix);
  }

  tok(name: string): string {
    return this.h.tokens.get(name)!;
  }

  sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
    return this.h.fx.rt.ds.query(text, params);
  }

  ok(r: ApiResponse, status = 200): unknown {
    assert.equal(r.status, status, `HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async get(p: string, who = 'aud'): Promise<unknown> {
    return this.ok(await this.h.call('GET', p, { token: this.tok(who) }));
  }

  async keyDetail(name: string): Promise<api.KeyDetail> {
    return (await this.get(`/v1/keys/${encodeURIComponent(name)}`)) as api.KeyDetail;
  }

  async expectedFor(name: string): Promise<ExpectedKeyRow[]> {
    return expectedKeyRows(await this.keyDetail(name), this);
  }

  async fingerprint(): Promise<string> {
    return ((await this.get('/v1/hub')) as { fingerprint: string }).fingerprint;
  }

  /** Receipts as the sites would send them: imported, with the KCV the target computed. */
  async confirm(key: string, version: number, listeners: string[]): Promise<void> {
    const rows = await this.sql<{ listener_id: string; target: string; last_package_id: string; sha: string; kcv: string }>(
      `SELECT d.listener_id, d.target, d.last_package_id, encode(p.envelope_sha256, 'hex') AS sha, v.kcv
         FROM distributions d JOIN packages p ON p.id = d.last_package_id JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE k.name = $1 AND v.version = $2 AND d.listener_id = ANY($3)`,
      [key, version, listeners],
    );
    assert.equal(rows.length, listeners.length, `distributions of ${key} v${version} to confirm`);
    const receipts: Receipt[] = rows.map((r) => ({
      type: MESSAGE_TYPES.receipt,
      id: randomUUID(),
      listenerId: r.listener_id,
      issuedAt: new Date().toISOString(),
      packageId: r.last_package_id,
      packageSha256: r.sha,
      target: r.target,
      outcome: 'imported',
      kcv: r.kcv,
    }));
    await this.h.fx.rt.container.resolve(ApplyReceipt).executeBatch(receipts);
  }

  async build(): Promise<void> {
    const { ALPHA, BETA, S1, S2, S3 } = this;
    this.h = await createApiHub(this.cleanup);
    const h = this.h;
    await insertActiveListeners(h.fx, [S1, S2, S3]);
    await h.operator('ko', ['key-officer']);
    await h.operator('ap1', ['approver']);
    await h.operator('ap2', ['approver']);
    await h.operator('aud', ['auditor']);
    this.ok(await h.call('PUT', '/v1/policies/distribution.sensitive', { token: this.tok('admin'), body: { required: 2, enabled: true } }));
    this.period.from = new Date(Date.now() - 1).toISOString();

    // Two keys: alpha is sensitive (its distribution needs two approvals), beta is not.
    const ko = { token: this.tok('ko') };
    this.ok(await h.call('POST', '/v1/keys', { ...ko, body: { name: ALPHA, algorithm: 'AES-256', sensitive: true } }), 201);
    this.ok(await h.call('POST', '/v1/keys', { ...ko, body: { name: BETA, algorithm: 'AES-256' } }), 201);
    const pending = this.ok(await h.call('POST', '/v1/distributions', { ...ko, body: { keys: [{ name: ALPHA }], to: [{ listenerId: S1 }, { listenerId: S2 }] } }), 202) as api.ApprovalPending;
    this.alphaRequest = pending.approval.id;
    for (const a of ['ap1', 'ap2']) this.ok(await h.call('POST', `/v1/approvals/${this.alphaRequest}/approve`, { token: this.tok(a), body: { hash: pending.approval.hash } }));
    this.ok(await h.call('POST', '/v1/distributions', { ...ko, body: { keys: [{ name: BETA }], to: [S1, S2, S3].map((listenerId) => ({ listenerId })) } }));
    await this.confirm(ALPHA, 1, [S1, S2]);
    await this.confirm(BETA, 1, [S1, S2, S3]);
    this.ok(await h.call('POST', '/v1/audit/checkpoints', { token: this.tok('admin') }));
    // Rotation: beta v2 goes to the three sites holding v1; S3 has not confirmed it yet.
    this.ok(await h.call('POST', `/v1/keys/${encodeURIComponent(BETA)}/rotate`, { ...ko, body: { reason: 'yearly' } }), 201);
    await this.confirm(BETA, 2, [S1, S2]);
    // Revocation: alpha v1 is compromised (the sites are commanded to destroy it; none has answered yet).
    this.ok(await h.call('POST', `/v1/keys/${encodeURIComponent(ALPHA)}/state`, { ...ko, body: { action: 'compromise', reason: 'report test' } }));
    this.period.to = new Date().toISOString();
    // After the period: must not appear in the ledger extract.
    this.ok(await h.call('POST', '/v1/audit/checkpoints', { token: this.tok('admin') }));
  }

  /** The `keyhub` CLI as the auditor, against this hub, with a temp home; `--json` added. */
  async cli(): Promise<{ dir: string; cli: (...args: string[]) => Promise<ExecResult> }> {
    const dir = await makeTempDir('reports');
    this.cleanup.add('reports temp dir', () => dir.remove());
    const caFile = path.join(dir.path, 'ca.pem');
    await writeFile(caFile, this.h.caPem);
    const env = { PATH: process.env.PATH, KEYHUB_ADDR: this.h.url, KEYHUB_TOKEN: this.tok('aud'), KEYHUB_CACERT: caFile, KEYHUB_CLI_HOME: dir.path };
    return { dir: dir.path, cli: (...args: string[]) => run(process.execPath, [HUB_CLI, ...args, '--json'], { env }) };
  }
}
