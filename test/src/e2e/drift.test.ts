import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomUUID, sign as nodeSign } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { NatsConnection } from 'nats';
import { Client } from 'pg';
import { decodeEnvelope, encodeEnvelope, MESSAGE_TYPES, signingInput, STREAMS, subjects, type api, type InventoryReport, type SignedEnvelope } from '@keyhub/protocol';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { pkcs11Tool } from '../env';
import { Deployment } from '../harness/deployment';

/**
 * Declarative distribution and drift against the real parts (hub and
 * listener processes, nats-server with auth, SoftHSM2 tokens, PostgreSQL):
 * placements by label and by id pick up sites enrolled later; a key deleted
 * behind the listener's back (pkcs11-tool) is reported missing and pushed
 * again; a planted key is reported extra and left alone; a forged or
 * replayed inventory changes nothing; a placement that widens a sensitive
 * key's reach needs approvals, and only one approved for later sites covers
 * them without a new request.
 */
describe('end to end: placements, signed inventories, drift and healing', function () {
  this.timeout(300_000);
  let d: Deployment;
  let pg: Client;
  let nc: NatsConnection;
  const captured: Uint8Array[] = [];

  async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 45_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; hub output:\n${d.hub?.output.slice(-2500) ?? ''}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Enrolls a site whose listener reports its inventory every 2 s. */
  async function enroll(id: string): Promise<void> {
    await d.enrollListener(id, { start: false });
    const file = path.join(d.site(id).home, 'listener.json');
    const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    await writeFile(file, JSON.stringify({ ...config, inventorySeconds: 2 }), { mode: 0o600 });
    await d.startListener(id);
    await d.waitForListenerState(id, 'active');
  }

  const status = (key: string) => d.keyhubJson<StatusRow[]>(['status', key]);
  const confirmedAt = async (key: string, site: string) => (await status(key)).find((r) => r.listener === site && r.state === 'confirmed');
  const drift = () => d.keyhubJson<api.DriftReport>(['status', '--drift']);
  const keyId = async (name: string) => (await d.keyhubJson<Array<{ name: string; id: string }>>(['key', 'list'])).find((k) => k.name === name)!.id;
  const objectIdHex = (id: string, version: number) => `${id.replace(/-/g, '')}${version.toString(16).padStart(8, '0')}`;
  const inventoryOf = async (site: string) => (await pg.query<{ report_id: string; taken_at: Date }>('SELECT report_id, taken_at FROM listener_inventories WHERE listener_id = $1', [site])).rows[0];
  const auditCount = async (action: string, detailsLike: string) =>
    Number((await pg.query<{ n: string }>(`SELECT count(*) AS n FROM audit_events WHERE action = $1 AND details::text LIKE $2`, [action, `%${detailsLike}%`])).rows[0].n);

  async function tokenObjects(site: string): Promise<string> {
    const token = d.site(site).token;
    const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'secrkey']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  }

  before(async function () {
    this.timeout(240_000);
    d = await Deployment.create(['site-a', 'site-b', 'site-c']);
    const config = JSON.parse(await readFile(d.hubConfigPath, 'utf8')) as Record<string, unknown>;
    await writeFile(d.hubConfigPath, JSON.stringify({ ...config, placements: { reconcileSeconds: 1, driftScanSeconds: 3600 } }));
    await d.startHub();
    await enroll('site-a');
    await enroll('site-b');
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
    nc = await d.natsConnect();
    nc.subscribe(subjects.fromListener('site-a', 'inventory'), { callback: (_e, m) => captured.push(m.data) });
  });

  after(async () => {
    await nc?.close();
    await pg?.end();
    await d?.cleanup();
  });

  it('a label placement covers the labelled sites; a site enrolled later gets the key once it carries the label, a placement by id at enrollment', async () => {
    await d.keyhubJson(['key', 'create', 'fleet-key', '--alg', 'AES-256']);
    await d.keyhubJson(['key', 'create', 'named-key', '--alg', 'AES-128']);
    await d.keyhubJson(['listener', 'label', 'site-a', 'env=prod', 'region=eu']);
    await d.keyhubJson(['listener', 'label', 'site-b', 'env=dev']);
    const created = await d.keyhubJson<{ placement: api.PlacementView }>(['placement', 'create', 'fleet', '--key', 'fleet-key', '--selector', 'env=prod']);
    assert.deepEqual(created.placement.selector, { env: 'prod' });
    // Named before the site exists: it is covered the moment it is active.
    await d.keyhubJson(['placement', 'create', 'by-id', '--key', 'named-key', '--listener', 'site-c']);
    await until('fleet-key confirmed at site-a', () => confirmedAt('fleet-key', 'site-a'));
    assert.equal(
      (await status('fleet-key')).some((r) => r.listener === 'site-b'),
      false,
      'site-b is not env=prod',
    );

    await enroll('site-c');
    await until('named-key confirmed at site-c', () => confirmedAt('named-key', 'site-c'));
    assert.equal(
      (await status('fleet-key')).some((r) => r.listener === 'site-c'),
      false,
      'site-c carries no label yet',
    );
    await d.keyhubJson(['listener', 'label', 'site-c', 'env=prod']);
    await until('fleet-key confirmed at site-c', () => confirmedAt('fleet-key', 'site-c'));
    const shown = await d.keyhubJson<api.PlacementView>(['placement', 'show', 'fleet']);
    assert.deepEqual(shown.placed?.map((p) => p.listenerId).sort(), ['site-a', 'site-c']);
  });

  it('a site that stops matching (label removed) gets a destroy for what the placement put there', async () => {
    await d.keyhubJson(['listener', 'label', 'site-c', '--remove', 'env']);
    await until('fleet-key gone from site-c', async () => !(await tokenObjects('site-c')).includes('fleet-key.v1'));
    const shown = await d.keyhubJson<api.PlacementView>(['placement', 'show', 'fleet']);
    assert.deepEqual(
      shown.placed?.map((p) => p.listenerId),
      ['site-a'],
    );
    assert.ok((await tokenObjects('site-c')).includes('named-key.v1'), 'what another placement put there stays');
    assert.ok((await auditCount('placement.sites_removed', 'site-c/hsm')) > 0);
  });

  it('an edited placement moves the key: the site it no longer names gets a destroy, the new one the key', async () => {
    const updated = await d.keyhubJson<api.PlacementView>(['placement', 'update', 'by-id', '--listener', 'site-b']);
    assert.deepEqual(updated.listeners, ['site-b']);
    await until('named-key confirmed at site-b', () => confirmedAt('named-key', 'site-b'));
    await until('named-key gone from site-c', async () => !(await tokenObjects('site-c')).includes('named-key.v1'));
  });

  it('a key deleted from the token behind the listener is reported missing, pushed again and confirmed again', async () => {
    const id = await keyId('fleet-key');
    const oid = objectIdHex(id, 1);
    // Wait for an inventory taken after the confirmation, so the hub has seen the key there.
    await until('a clean inventory of site-a', async () => (await drift()).findings.every((f) => f.listenerId !== 'site-a') && (await inventoryOf('site-a')));
    const before = (await confirmedAt('fleet-key', 'site-a'))!;
    const token = d.site('site-a').token;
    const del = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--delete-object', '--type', 'secrkey', '--id', oid]);
    assert.equal(del.code, 0, del.stderr);
    assert.ok(!(await tokenObjects('site-a')).includes('fleet-key.v1'), 'pkcs11-tool deleted the object');

    await until('drift.detected missing in the audit', async () => (await auditCount('drift.detected', '"missing"')) > 0);
    await until('a re-push', async () => (await auditCount('distribution.repushed', 'drift.missing')) > 0);
    await until('confirmed again after the re-push', async () => {
      const row = await confirmedAt('fleet-key', 'site-a');
      return row && row.confirmedAt !== before.confirmedAt && row;
    });
    await until('the key back in the token', async () => (await tokenObjects('site-a')).includes('fleet-key.v1'));
    await until('the finding resolved', async () => (await auditCount('drift.resolved', '"missing"')) > 0 && (await drift()).counts.missing === 0).catch(async (err: Error) => {
      throw new Error(`${err.message}\ndrift: ${JSON.stringify(await drift())}`);
    });
  });

  it('an unknown key planted in a target is reported extra, once in the audit, and is not destroyed', async () => {
    const token = d.site('site-b').token;
    const plant = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--keygen', '--key-type', 'AES:32', '--label', 'planted-by-hand', '--id', 'deadbeef01']);
    assert.equal(plant.code, 0, plant.stderr);
    const finding = await until('an extra finding at site-b', async () => (await drift()).findings.find((f) => f.listenerId === 'site-b' && f.kind === 'extra'));
    assert.equal(finding.label, 'planted-by-hand');
    assert.equal(finding.objectId, 'deadbeef01');
    assert.equal(finding.keyId, null);
    // Two more inventories later: still reported, still there, still one audit event.
    const seen = (await inventoryOf('site-b')).taken_at.getTime();
    await until('two more inventories of site-b', async () => (await inventoryOf('site-b')).taken_at.getTime() > seen + 3000);
    assert.ok((await drift()).findings.some((f) => f.listenerId === 'site-b' && f.kind === 'extra'));
    assert.ok((await tokenObjects('site-b')).includes('planted-by-hand'), 'the planted key is not destroyed');
    assert.equal(await auditCount('drift.detected', 'planted-by-hand'), 1, 'one audit event per finding, not per scan');
    const metrics = await d.keyhubJson<api.DriftReport>(['status', '--drift', '--listener', 'site-b']);
    assert.equal(metrics.counts.extra, 1);
  });

  it('a forged inventory (not signed by the site) and a replayed genuine one change nothing', async () => {
    const genuine = await until('a captured inventory of site-a', async () => captured.find((b) => (decodeEnvelope(b).ok ? true : false)));
    const dec = decodeEnvelope(genuine);
    assert.ok(dec.ok);
    const base = dec.envelope as SignedEnvelope<InventoryReport>;
    const findingsBefore = JSON.stringify((await drift()).findings.map((f) => [f.listenerId, f.kind, f.objectId]));
    const current = await inventoryOf('site-a');
    // Claims site-a's token is empty (everything would be missing), signed by a key that is not site-a's.
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const payload: InventoryReport = { ...base.payload, id: randomUUID(), reportId: randomUUID(), issuedAt: new Date().toISOString(), takenAt: new Date().toISOString(), items: [] };
    const forged: SignedEnvelope<InventoryReport> = {
      payload,
      signature: { alg: 'ES256', keyId: base.signature.keyId, value: nodeSign('sha256', signingInput(payload), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') },
    };
    const js = nc.jetstream();
    await js.publish(subjects.fromListener('site-a', 'inventory'), encodeEnvelope(forged), { msgID: randomUUID() });
    // The genuine one again, later (a replay): older than what the hub holds.
    const replay = await js.publish(subjects.fromListener('site-a', 'inventory'), genuine, { msgID: randomUUID() });
    // Wait until the hub has taken both off the UP stream, else "nothing changed" could only mean "not read yet".
    const jsm = await nc.jetstreamManager();
    await until('the hub to take both off the UP stream', async () => (await jsm.consumers.info(STREAMS.up.name, subjects.hubConsumer)).ack_floor.stream_seq >= replay.seq);
    const after = await inventoryOf('site-a');
    assert.notEqual(after.report_id, payload.reportId, 'the forged report never became the inventory');
    assert.ok(after.taken_at.getTime() >= current.taken_at.getTime());
    assert.equal(JSON.stringify((await drift()).findings.map((f) => [f.listenerId, f.kind, f.objectId])), findingsBefore, 'no drift finding changed');
    assert.equal(await auditCount('drift.detected', 'fleet-key'), 0);
    assert.equal(MESSAGE_TYPES.inventory, payload.type);
  });

  it('the audit trail with every drift and placement event still verifies', async () => {
    const r = await d.keyhub(['--json', 'audit', 'verify', '--fingerprint', d.hubFingerprint], { as: 'auditor' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  describe('dual control: a placement that widens a sensitive key needs approvals', () => {
    let approverToken = '';
    const approve = async (id: string) => {
      const view = await d.keyhubJson<{ hash: string }>(['approvals', 'show', id], 'approver1');
      const r = await d.keyhub(['--json', 'approvals', 'approve', id, '--hash', view.hash], { as: 'approver1' });
      assert.equal(r.code, 0, r.stdout + r.stderr);
    };
    const pendingFor = async (placement: string) =>
      (await d.keyhubJson<Array<{ id: string; action: string; summary: string; state: string }>>(['approvals', 'list', '--state', 'pending'], 'approver1')).filter(
        (a) => a.action === 'placement.sensitive' && a.summary.includes(` ${placement}:`),
      );

    before(async () => {
      approverToken = await d.createOperator('approver1', ['approver']);
      assert.ok(approverToken);
      const r = await d.keyhub(['--json', 'policy', 'set', 'placement.sensitive', '--required', '1', '--enable'], { as: 'admin' });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await d.keyhubJson(['key', 'create', 'gold-key', '--alg', 'AES-256', '--sensitive']);
      await d.keyhubJson(['key', 'create', 'silver-key', '--alg', 'AES-256', '--sensitive']);
      await d.keyhubJson(['listener', 'label', 'site-a', 'tier=gold']);
    });

    it('nothing is pushed before the approval; approved with later sites, a new match needs no new request', async () => {
      const r = await d.keyhub(['--json', 'placement', 'create', 'gold', '--key', 'gold-key', '--selector', 'tier=gold']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const { approval } = JSON.parse(r.stdout) as { approval: { id: string } };
      await new Promise((res) => setTimeout(res, 1500));
      assert.deepEqual(
        (await status('gold-key')).filter((x) => x.listener !== '-'),
        [],
        'not pushed before approval',
      );
      await approve(approval.id);
      await until('gold-key confirmed at site-a', () => confirmedAt('gold-key', 'site-a'));
      await d.keyhubJson(['listener', 'label', 'site-b', 'tier=gold']);
      await until('gold-key confirmed at site-b', () => confirmedAt('gold-key', 'site-b'));
      assert.equal((await pendingFor('gold')).length, 0, 'no new request for a later site');
    });

    it('approved without later sites, a new match becomes a new request and is pushed only once approved', async () => {
      await d.keyhubJson(['listener', 'label', 'site-a', 'tier=silver']);
      const r = await d.keyhub(['--json', 'placement', 'create', 'silver', '--key', 'silver-key', '--selector', 'tier=silver', '--no-future-sites']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await approve((JSON.parse(r.stdout) as { approval: { id: string } }).approval.id);
      await until('silver-key confirmed at site-a', () => confirmedAt('silver-key', 'site-a'));
      await d.keyhubJson(['listener', 'label', 'site-c', 'tier=silver']);
      const [widen] = await until('a widening request for site-c', async () => {
        const p = await pendingFor('silver');
        return p.length ? p : undefined;
      });
      assert.match(widen.summary, /widen placement silver/);
      assert.match(widen.summary, /site-c\/hsm/);
      await new Promise((res) => setTimeout(res, 1500));
      assert.equal(
        (await status('silver-key')).some((x) => x.listener === 'site-c'),
        false,
        'not pushed before the approval',
      );
      assert.equal((await pendingFor('silver')).length, 1, 'asked once, not at every reconcile');
      await approve(widen.id);
      await until('silver-key confirmed at site-c', () => confirmedAt('silver-key', 'site-c'));
    });
  });
});
