import { strict as assert } from 'node:assert';
import { constants, createCipheriv, generateKeyPairSync, privateDecrypt, randomUUID, type KeyObject } from 'node:crypto';
import { api, decodeEnvelope, MESSAGE_TYPES, TARGET_KINDS, targetKekRequestSchema, type Receipt, type TargetKekMessage, type TargetKekRequest } from '@keyhub/protocol';
import { cmacSubkey } from '@keyhub/shared';
// The fixture first: it loads the hub's composition root (and reflect-metadata) before any operation.
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';
import { insertActiveListeners } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';
import { ApplyReceipt } from '@keyhub/hub/dist/operations/distributions/apply-receipts';
import { ConfirmTargetKek } from '@keyhub/hub/dist/operations/targets/confirm-target-kek';
import { RegisterTargetKekRequest } from '@keyhub/hub/dist/operations/targets/register-target-kek-request';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { makeTempDir, run } from '../env';
import { HUB_CLI } from '../harness/deployment';
import { parseCsv } from './reports-expected';

/** The AES-CMAC KCV of a key in clear, computed in memory (independent of the HSM path). */
function kcvOf(key: Buffer): string {
  const ecb = (block: Buffer): Buffer => {
    const c = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    return Buffer.concat([c.update(block), c.final()]);
  };
  return ecb(cmacSubkey(ecb(Buffer.alloc(16))))
    .subarray(0, 3)
    .toString('hex');
}

/**
 * Three hub-side gaps of issue 12, on real parts (the hub's SoftHSM2 token,
 * PostgreSQL, the HTTPS API):
 * 1. a dual-control distribution to "all" resolves its destinations with the
 *    keys' target policies, so the approver reads exactly what runs and the
 *    approved run succeeds;
 * 2. a target KEK request carries the target's kind: the hub records it, adds
 *    an unknown target as that kind, and refuses a contradiction
 *    (TARGET_KIND_MISMATCH);
 * 3. a cloud receipt's ids are stored with the distribution and shown by the
 *    status and the key report (JSON and CSV).
 */
describe('target kinds at the hub: dual-control filter, KEK request kind, cloud receipt ids', function () {
  this.timeout(180_000);
  const cleanup = new Cleanup();
  /** A site with a token target and a keystore target. */
  const SITE = 'tkg-site';
  /** A site that asks for target KEKs (its only target at first: its own token). */
  const KSITE = 'tkg-kek';
  let h: ApiHub;
  let ko = '';

  const sql = <T>(text: string, params: unknown[] = []): Promise<T[]> => h.fx.rt.ds.query(text, params);
  const code = (r: ApiResponse): string | undefined => (r.body as { error?: { code?: string } } | undefined)?.error?.code;
  const ok = (r: ApiResponse, status = 200): unknown => {
    assert.equal(r.status, status, `HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const asKo = (method: string, path: string, body?: unknown) => h.call(method, path, { token: ko, body });
  const createKey = async (name: string, extra: Record<string, unknown> = {}) => ok(await asKo('POST', '/v1/keys', { name, algorithm: 'AES-256', ...extra }), 201);
  const approve = async (by: string, v: api.ApprovalRequestView): Promise<api.ApprovalRequestView> =>
    ok(await h.call('POST', `/v1/approvals/${v.id}/approve`, { token: h.tokens.get(by), body: { hash: v.hash } })) as api.ApprovalRequestView;
  const distributionsOf = async (key: string): Promise<string[]> =>
    (
      await sql<{ s: string }>(
        `SELECT d.listener_id || '/' || d.target || ':' || d.state AS s FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name = $1 ORDER BY 1`,
        [key],
      )
    ).map((r) => r.s);
  const targetsOf = async (site: string): Promise<Array<{ name: string; kind: string }>> =>
    (await sql<{ targets: Array<{ name: string; kind: string }> }>('SELECT targets FROM listeners WHERE id = $1', [site]))[0].targets;
  const audit = (action: string, site: string) =>
    sql<{ details: Record<string, string | number | boolean> }>(`SELECT details FROM audit_events WHERE action = $1 AND subject = $2 ORDER BY seq`, [action, `listener:${site}`]);

  before(async function () {
    h = await createApiHub(cleanup);
    await insertActiveListeners(h.fx, [SITE, KSITE]);
    await h.fx.asOwner('UPDATE listeners SET targets = $1 WHERE id = $2', [
      JSON.stringify([
        { name: 'hsm', kind: 'pkcs11' },
        { name: 'jks', kind: 'keystore' },
      ]),
      SITE,
    ]);
    ko = await h.operator('tkg-ko', ['key-officer']);
    for (const a of ['tkg-a1', 'tkg-a2', 'tkg-a3']) await h.operator(a, ['approver']);
    ok(await h.call('PUT', '/v1/policies/distribution.sensitive', { token: h.tokens.get('admin'), body: { required: 2, enabled: true } }));
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  describe('1. dual-control distribution over all targets', () => {
    type Doc = { keys: Array<{ name: string; targetKinds?: string[] }>; destinations: Array<{ listenerId: string; target: string; kind?: string }> };
    const requestOf = async (body: unknown): Promise<{ view: api.ApprovalRequestView; doc: Doc }> => {
      const view = (ok(await asKo('POST', '/v1/distributions', body), 202) as api.ApprovalPending).approval;
      return { view, doc: JSON.parse(view.canonical) as Doc };
    };

    it('a pkcs11-only sensitive key to all: the request names only the token targets, and the approved run queues only those', async () => {
      await createKey('tkg/hsm-only', { sensitive: true });
      const { view, doc } = await requestOf({ keys: [{ name: 'tkg/hsm-only' }], to: 'all' });
      // The keystore target of the site is not in front of the approver: it would not run.
      assert.deepEqual(doc.destinations.map((d) => `${d.listenerId}/${d.target}:${d.kind}`).sort(), [`${KSITE}/hsm:pkcs11`, `${SITE}/hsm:pkcs11`]);
      assert.deepEqual(doc.keys[0].targetKinds, ['pkcs11']);
      assert.match(view.summary, /to 2 target\(s\)/);
      assert.equal((await approve('tkg-a1', view)).state, 'pending');
      assert.deepEqual(await distributionsOf('tkg/hsm-only'), []);
      const done = await approve('tkg-a2', view);
      assert.equal(done.state, 'executed', JSON.stringify(done));
      assert.deepEqual(done.result, { queued: 2, skipped: 0 });
      assert.deepEqual(await distributionsOf('tkg/hsm-only'), [`${KSITE}/hsm:queued`, `${SITE}/hsm:queued`]);
      const [row] = await sql<{ state: string; error_code: string | null }>('SELECT state, error_code FROM approval_requests WHERE id = $1', [view.id]);
      assert.deepEqual(row, { state: 'executed', error_code: null });
    });

    it('keys with different policies in one request: each goes exactly where its policy allows, as the document says', async () => {
      await createKey('tkg/mix-hsm', { sensitive: true });
      await createKey('tkg/mix-ks', { sensitive: true, targetKinds: ['pkcs11', 'keystore'] });
      const { view, doc } = await requestOf({ keys: [{ name: 'tkg/mix-hsm' }, { name: 'tkg/mix-ks' }], to: [{ listenerId: SITE }] });
      assert.deepEqual(
        doc.destinations.map((d) => `${d.target}:${d.kind}`),
        ['hsm:pkcs11', 'jks:keystore'],
      );
      assert.deepEqual(
        doc.keys.map((k) => [k.name, k.targetKinds]),
        [
          ['tkg/mix-hsm', ['pkcs11']],
          ['tkg/mix-ks', ['keystore', 'pkcs11']],
        ],
      );
      await approve('tkg-a1', view);
      const done = await approve('tkg-a3', view);
      assert.equal(done.state, 'executed', JSON.stringify(done));
      assert.deepEqual(done.result, { queued: 3, skipped: 0 });
      assert.deepEqual(await distributionsOf('tkg/mix-hsm'), [`${SITE}/hsm:queued`]);
      assert.deepEqual(await distributionsOf('tkg/mix-ks'), [`${SITE}/hsm:queued`, `${SITE}/jks:queued`]);
    });

    it('a named target the policy refuses is refused before anyone is asked; a key that reaches nothing is refused too', async () => {
      await createKey('tkg/named', { sensitive: true });
      const [{ n: before }] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM approval_requests');
      const r = await asKo('POST', '/v1/distributions', { keys: [{ name: 'tkg/named' }], to: [{ listenerId: SITE, target: 'jks' }] });
      assert.deepEqual([r.status, code(r)], [409, 'TARGET_KIND_NOT_ALLOWED']);
      await createKey('tkg/cloud-only', { sensitive: true, targetKinds: ['aws-kms'] });
      const none = await asKo('POST', '/v1/distributions', { keys: [{ name: 'tkg/cloud-only' }], to: 'all' });
      assert.deepEqual([none.status, code(none)], [409, 'TARGET_KIND_NOT_ALLOWED']);
      const [{ n: after }] = await sql<{ n: number }>('SELECT count(*)::int AS n FROM approval_requests');
      assert.equal(after, before, 'no request was opened');
      assert.deepEqual(await distributionsOf('tkg/named'), []);
    });

    it('a policy narrowed between request and approval makes the approved run refuse (nothing queued)', async () => {
      await createKey('tkg/narrowed', { sensitive: true, targetKinds: ['pkcs11', 'keystore'] });
      const { view, doc } = await requestOf({ keys: [{ name: 'tkg/narrowed' }], to: [{ listenerId: SITE }] });
      assert.deepEqual(
        doc.destinations.map((d) => d.target),
        ['hsm', 'jks'],
      );
      // Narrowing runs at once (no approval needed).
      ok(await asKo('PUT', '/v1/keys/tkg%2Fnarrowed/target-policy', { targetKinds: ['pkcs11'] }));
      await approve('tkg-a1', view);
      const r = await h.call('POST', `/v1/approvals/${view.id}/approve`, { token: h.tokens.get('tkg-a2'), body: { hash: view.hash } });
      const [row] = await sql<{ state: string; error_code: string | null }>('SELECT state, error_code FROM approval_requests WHERE id = $1', [view.id]);
      assert.equal(row.error_code, 'TARGET_KIND_NOT_ALLOWED', `HTTP ${r.status} ${JSON.stringify(r.body)}`);
      assert.deepEqual(await distributionsOf('tkg/narrowed'), []);
    });
  });

  describe('2. the target KEK request carries the target kind', () => {
    const transport = (): { privateKey: KeyObject; transportKey: string } => {
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return { privateKey, transportKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64') };
    };
    const request = (site: string, target: string, kind: TargetKekRequest['kind'], transportKey: string): TargetKekRequest => ({
      type: MESSAGE_TYPES.targetKekRequest,
      id: randomUUID(),
      listenerId: site,
      issuedAt: new Date().toISOString(),
      target,
      kind,
      transportKey,
      oaepHash: 'sha1',
    });
    const register = (msg: TargetKekRequest) => h.fx.rt.container.resolve(RegisterTargetKekRequest).execute(msg);
    const kekRows = (site: string, target: string) =>
      sql<{ kind: string | null; state: string }>('SELECT kind, state FROM target_keks WHERE listener_id = $1 AND target = $2 ORDER BY version', [site, target]);

    it('the message schema takes every target kind, and nothing else', () => {
      const base = request(KSITE, 'x', 'pkcs11', transport().transportKey);
      for (const kind of TARGET_KINDS) assert.ok(targetKekRequestSchema.safeParse({ ...base, kind }).success, kind);
      assert.equal(targetKekRequestSchema.safeParse({ ...base, kind: 'floppy' }).success, false);
    });

    it('a request for a target the hub does not know records its kind; the approval adds the target as that kind', async () => {
      const t = transport();
      const reg = await register(request(KSITE, 'aws', 'aws-kms', t.transportKey));
      assert.equal(reg.outcome, 'recorded');
      assert.deepEqual(await kekRows(KSITE, 'aws'), [{ kind: 'aws-kms', state: 'requested' }]);
      assert.equal((await audit('target_kek.requested', KSITE)).at(-1)?.details.kind, 'aws-kms');
      ok(await asKo('POST', `/v1/listeners/${KSITE}/targets/aws/approve`, { fingerprint: reg.fingerprint }));
      assert.deepEqual(
        (await targetsOf(KSITE)).map((x) => [x.name, x.kind]),
        [
          ['hsm', 'pkcs11'],
          ['aws', 'aws-kms'],
        ],
      );
      assert.equal((await audit('target_kek.created', KSITE)).at(-1)?.details.kind, 'aws-kms');
      // The site confirms by KCV (computed here from the KEK opened with the transport private key).
      const [row] = await sql<{ payload: Buffer }>(`SELECT payload FROM outbox WHERE subject = $1 ORDER BY id DESC LIMIT 1`, [`keyhub.v1.to.${KSITE}.target_kek`]);
      const dec = decodeEnvelope(row.payload);
      assert.ok(dec.ok);
      const msg = dec.envelope.payload as TargetKekMessage;
      const kek = privateDecrypt({ key: t.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from(msg.kek.blob, 'base64'));
      assert.equal(kcvOf(kek), msg.kek.kcv);
      const confirmed = await h.fx.rt.container.resolve(ConfirmTargetKek).execute({
        type: MESSAGE_TYPES.targetKekConfirm,
        id: randomUUID(),
        listenerId: KSITE,
        issuedAt: new Date().toISOString(),
        target: 'aws',
        kekId: msg.kek.id,
        kekVersion: msg.kek.version,
        kcv: msg.kek.kcv,
      });
      assert.equal(confirmed, 'activated');
    });

    it('a request whose kind contradicts the kind the hub knows is refused (TARGET_KIND_MISMATCH), audited, and records nothing', async () => {
      await assert.rejects(register(request(SITE, 'jks', 'pkcs11', transport().transportKey)), (e: { code?: string }) => e.code === 'TARGET_KIND_MISMATCH');
      assert.deepEqual(await kekRows(SITE, 'jks'), []);
      const refused = await audit('target_kek.request_refused', SITE);
      assert.deepEqual([refused.length, refused[0].details.kind, refused[0].details.knownKind, refused[0].details.reason], [1, 'pkcs11', 'keystore', 'TARGET_KIND_MISMATCH']);
      // A token target asked for as a keystore: refused the same way.
      await assert.rejects(register(request(SITE, 'hsm', 'keystore', transport().transportKey)), (e: { code?: string }) => e.code === 'TARGET_KIND_MISMATCH');
      // The kind the hub knows: recorded.
      assert.equal((await register(request(SITE, 'jks', 'keystore', transport().transportKey))).outcome, 'recorded');
      assert.deepEqual(await kekRows(SITE, 'jks'), [{ kind: 'keystore', state: 'requested' }]);
    });

    it('a target the hub came to know as another kind after the request is refused at approval: no KEK is made', async () => {
      const reg = await register(request(KSITE, 'late', 'keystore', transport().transportKey));
      // Meanwhile the hub learnt "late" as a token target (as an approved target update would record it).
      await h.fx.asOwner(`UPDATE listeners SET targets = targets || '[{"name":"late","kind":"pkcs11"}]'::jsonb WHERE id = $1`, [KSITE]);
      const r = await asKo('POST', `/v1/listeners/${KSITE}/targets/late/approve`, { fingerprint: reg.fingerprint });
      assert.deepEqual([r.status, code(r)], [409, 'TARGET_KIND_MISMATCH']);
      assert.deepEqual(await kekRows(KSITE, 'late'), [{ kind: 'keystore', state: 'requested' }]);
      assert.equal((await targetsOf(KSITE)).find((x) => x.name === 'late')?.kind, 'pkcs11');
    });
  });

  describe('3. cloud receipt ids are stored and shown', () => {
    interface Dist {
      id: string;
      listener_id: string;
      target: string;
      last_package_id: string;
      sha: string;
      kcv: string;
    }
    const distOf = async (key: string, target: string): Promise<Dist> =>
      (
        await sql<Dist>(
          `SELECT d.id, d.listener_id, d.target, d.last_package_id, encode(p.envelope_sha256, 'hex') AS sha, v.kcv
             FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id JOIN packages p ON p.id = d.last_package_id
            WHERE k.name = $1 AND d.target = $2`,
          [key, target],
        )
      )[0];
    const receipt = (d: Dist, extra: Partial<Receipt> = {}): Receipt => ({
      type: MESSAGE_TYPES.receipt,
      id: randomUUID(),
      listenerId: d.listener_id,
      issuedAt: new Date().toISOString(),
      packageId: d.last_package_id,
      packageSha256: d.sha,
      target: d.target,
      outcome: 'imported',
      kcv: d.kcv,
      ...extra,
    });
    const cloud = { keyId: 'arn:aws:kms:eu-west-1:111122223333:key/0b6a-tkg', versionId: 'mat-7f3e', importState: 'ENABLED', wrapping: 'RSA_AES_KEY_WRAP_SHA_256' };

    it('a receipt with cloud ids confirms and stores them (one batch with a token receipt, which stores none); status and the key report show them', async () => {
      await createKey('tkg/cloud', { targetKinds: ['aws-kms', 'pkcs11'] });
      ok(
        await asKo('POST', '/v1/distributions', {
          keys: [{ name: 'tkg/cloud' }],
          to: [
            { listenerId: KSITE, target: 'aws' },
            { listenerId: KSITE, target: 'hsm' },
          ],
        }),
      );
      assert.deepEqual(await distributionsOf('tkg/cloud'), [`${KSITE}/aws:queued`, `${KSITE}/hsm:queued`]);
      const aws = await distOf('tkg/cloud', 'aws');
      const hsm = await distOf('tkg/cloud', 'hsm');
      const effects = await h.fx.rt.container.resolve(ApplyReceipt).executeBatch([receipt(aws, { cloud }), receipt(hsm)]);
      assert.deepEqual(effects, ['confirmed', 'confirmed']);
      const stored = await sql<{ target: string; state: string; cloud: unknown }>(`SELECT d.target, d.state, d.cloud FROM distributions d WHERE d.id = ANY($1::uuid[]) ORDER BY d.target`, [
        [aws.id, hsm.id],
      ]);
      assert.deepEqual(stored, [
        { target: 'aws', state: 'confirmed', cloud },
        { target: 'hsm', state: 'confirmed', cloud: null },
      ]);

      const status = ok(await asKo('GET', '/v1/keys/tkg%2Fcloud/status')) as { rows: api.StatusRowView[] };
      assert.deepEqual(
        status.rows.map((r) => [r.target, r.state, r.cloud]),
        [
          ['aws', 'confirmed', cloud],
          ['hsm', 'confirmed', null],
        ],
      );
      const all = ok(await asKo('GET', '/v1/status')) as { rows: api.StatusRowView[] };
      assert.deepEqual(all.rows.find((r) => r.key === 'tkg/cloud' && r.target === 'aws')?.cloud, cloud);

      const report = ok(await h.call('GET', '/v1/reports/keys/tkg%2Fcloud', { token: ko })) as api.KeyReport;
      assert.deepEqual(
        report.rows.map((r) => [r.target, r.state, r.cloud]),
        [
          ['aws', 'confirmed', cloud],
          ['hsm', 'confirmed', null],
        ],
      );
      const csv = await h.call('GET', '/v1/reports/keys/tkg%2Fcloud?format=csv', { token: ko });
      assert.equal(csv.status, 200);
      const [header, ...rows] = parseCsv(String(csv.body));
      const pick = (row: string[]) => {
        const o = Object.fromEntries(header.map((x, i) => [x, row[i]]));
        return [o.target, o.cloud_key_id, o.cloud_version_id, o.cloud_import_state, o.cloud_wrapping];
      };
      assert.deepEqual(rows.map(pick), [
        ['aws', cloud.keyId, cloud.versionId, cloud.importState, cloud.wrapping],
        ['hsm', '', '', '', ''],
      ]);
    });

    it('a cloud import in clear (JWK) is confirmed and on the audit record as a clear import; a wrapped one is not', async () => {
      await createKey('tkg/jwk', { targetKinds: ['aws-kms'], allowClearImport: true });
      ok(await asKo('POST', '/v1/distributions', { keys: [{ name: 'tkg/jwk' }], to: [{ listenerId: KSITE, target: 'aws' }] }));
      const d = await distOf('tkg/jwk', 'aws');
      const jwk = { ...cloud, keyId: 'https://vault.example/keys/tkg-jwk', wrapping: 'JWK' };
      assert.deepEqual(await h.fx.rt.container.resolve(ApplyReceipt).executeBatch([receipt(d, { cloud: jwk })]), ['confirmed']);
      const events = await sql<{ action: string; details: { cloudKeyId?: string } }>(`SELECT action, details FROM audit_events WHERE subject = $1 ORDER BY seq`, [`distribution:${d.id}`]);
      assert.deepEqual(
        events.map((e) => e.action).filter((a) => a.startsWith('distribution.c')),
        ['distribution.confirmed', 'distribution.clear_import'],
      );
      assert.equal(events.find((e) => e.action === 'distribution.clear_import')?.details.cloudKeyId, jwk.keyId);
      const wrapped = await distOf('tkg/cloud', 'aws');
      assert.equal((await sql(`SELECT 1 FROM audit_events WHERE subject = $1 AND action = 'distribution.clear_import'`, [`distribution:${wrapped.id}`])).length, 0);
    });

    it('`keyhub status` shows the cloud key, version and import state in its table', async () => {
      const dir = await makeTempDir('tkg-cli');
      cleanup.add('tkg cli dir', () => dir.remove());
      const caFile = path.join(dir.path, 'ca.pem');
      await writeFile(caFile, h.caPem);
      const env = { PATH: process.env.PATH, KEYHUB_ADDR: h.url, KEYHUB_TOKEN: ko, KEYHUB_CACERT: caFile, KEYHUB_CLI_HOME: dir.path };
      const r = await run(process.execPath, [HUB_CLI, 'status', 'tkg/cloud'], { env });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.match(lines[0], /CLOUD KEY\s*$/);
      const aws = lines.find((l) => /\saws\s/.test(l));
      const hsm = lines.find((l) => /\shsm\s/.test(l));
      assert.ok(aws && aws.endsWith(`${cloud.keyId} v=${cloud.versionId} (${cloud.importState})`), aws);
      assert.ok(hsm && !hsm.includes('arn:'), hsm);
    });

    it('a second receipt for a confirmed distribution changes nothing, its cloud ids included', async () => {
      const aws = await distOf('tkg/cloud', 'aws');
      const other = { ...cloud, keyId: 'arn:aws:kms:eu-west-1:111122223333:key/forged' };
      assert.deepEqual(await h.fx.rt.container.resolve(ApplyReceipt).executeBatch([receipt(aws, { outcome: 'already_present', cloud: other })]), ['duplicate']);
      const [row] = await sql<{ cloud: unknown }>('SELECT cloud FROM distributions WHERE id = $1', [aws.id]);
      assert.deepEqual(row.cloud, cloud);
    });
  });
});
