import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomUUID, sign as nodeSign } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { Client } from 'pg';
import { commandSha256, decodeEnvelope, encodeEnvelope, MESSAGE_TYPES, signingInput, STREAMS, subjects, type CommandReceipt, type KeyCommand, type SignedEnvelope } from '@keyhub/protocol';
import { loadHubConfig } from '@keyhub/hub/dist/config';
import { openHubRuntime, type HubRuntime } from '@keyhub/hub/dist/container';
import { queueKeyCommands, type KeyCommandAction } from '@keyhub/hub/dist/operations/commands/queue-key-commands';
import { Distribute } from '@keyhub/hub/dist/operations/distributions/distribute';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { pkcs11Tool } from '../env';
import { Deployment } from '../harness/deployment';

/**
 * Lifecycle commands reach the sites (issue 11, part 4), on real parts: the
 * hub (`keyhub serve`) and listeners (`keyhub-listener run`) as processes,
 * nats-server with the project's auth and TLS, PostgreSQL, SoftHSM2 tokens.
 * The test queues commands as the hub's lifecycle operations do (in a
 * transaction of a hub runtime of its own, on the same database and HSM
 * token), and checks each result by facts: the hub's rows and audit, the
 * receipts on the UP stream, and the tokens read with pkcs11-tool.
 */
describe('end to end: compromise first, suspend/resume, destroy, tombstones', function () {
  this.timeout(240_000);
  let d: Deployment;
  let rt: HubRuntime;
  let pg: Client;
  let nc: NatsConnection;
  const receipts: CommandReceipt[] = [];

  before(async () => {
    d = await Deployment.create(['site-a', 'site-b']);
    await d.startHub();
    await d.enrollListener('site-a');
    await d.enrollListener('site-b');
    // The test's own hub runtime (same config, database and HSM token as `keyhub serve`).
    Object.assign(process.env, { SOFTHSM2_CONF: d.hsm.confPath, KEYHUB_HSM_PIN: d.hsm.tokens.find((t) => t.label === 'hub')!.pin, KEYHUB_LOG_LEVEL: 'warn' });
    rt = await openHubRuntime(loadHubConfig(d.hubConfigPath));
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
    nc = await d.natsConnect();
    for (const site of ['site-a', 'site-b']) {
      nc.subscribe(subjects.fromListener(site, 'command_receipt'), {
        callback: (_e, m) => {
          const dec = decodeEnvelope(m.data);
          if (dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.commandReceipt) receipts.push(dec.envelope.payload);
        },
      });
    }
  });

  after(async () => {
    await nc?.close();
    await pg?.end();
    await rt?.close();
    await d?.cleanup();
  });

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; hub output:\n${d.hub?.output.slice(-1500) ?? ''}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function versionId(key: string, version = 1): Promise<string> {
    const r = await pg.query('SELECT v.id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = $1 AND v.version = $2', [key, version]);
    return r.rows[0].id as string;
  }

  async function createAndPush(names: string[], site: string, usages = ['encrypt', 'decrypt']): Promise<void> {
    await rt.container.resolve(CreateKey).executeMany(names.map((name) => ({ name, algorithm: 'AES-256', usages, actor: 'officer' })));
    await rt.container.resolve(Distribute).execute({ keys: names.map((name) => ({ name })), to: [{ listenerId: site }], actor: 'officer' });
  }

  async function waitConfirmed(key: string, site: string): Promise<void> {
    await waitFor(`${key} confirmed at ${site}`, async () => {
      const r = await pg.query(`SELECT d.state FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name = $1 AND d.listener_id = $2`, [
        key,
        site,
      ]);
      return r.rows[0]?.state === 'confirmed' ? true : undefined;
    });
  }

  async function command(key: string, action: KeyCommandAction): Promise<string[]> {
    const id = await versionId(key);
    return (await rt.ds.transaction((m) => queueKeyCommands(m, [{ keyVersionId: id, action, reason: 'e2e test' }], 'officer'))).commandIds;
  }

  async function commandRows(ids: string[]): Promise<Array<{ id: string; state: string; effect: string | null; answered_at: Date | null; outcome: string | null }>> {
    return (await pg.query('SELECT id, state, effect, outcome, answered_at FROM key_commands WHERE id = ANY($1::uuid[])', [ids])).rows;
  }

  async function waitAnswered(ids: string[]): Promise<Array<{ id: string; state: string; effect: string | null; answered_at: Date | null; outcome: string | null }>> {
    return waitFor(`commands ${ids.join(',')} answered`, async () => {
      const rows = await commandRows(ids);
      return rows.length === ids.length && rows.every((r) => r.state !== 'pending') ? rows : undefined;
    });
  }

  /** The token's secret-key objects for `key` v1, as pkcs11-tool lists them: their Usage lines. */
  async function tokenUsages(site: string, key: string): Promise<string[]> {
    const token = d.site(site).token;
    const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'secrkey']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout
      .split(/\n(?=Secret Key Object)/)
      .filter((block) => block.includes(`${key}.v1\n`) || block.endsWith(`${key}.v1`))
      .map((block) => /Usage:\s+(.*)/.exec(block)?.[1]?.trim() ?? '');
  }

  async function outboxEmpty(): Promise<void> {
    await waitFor('the outbox to be published', async () => ((await pg.query('SELECT count(*)::int AS n FROM outbox')).rows[0].n === 0 ? true : undefined));
  }

  it('suspend switches the usages off in the token and resume back on; destroy removes the object; each confirmed by a signed receipt', async () => {
    await createAndPush(['life-1'], 'site-b');
    await waitConfirmed('life-1', 'site-b');
    assert.deepEqual(await tokenUsages('site-b', 'life-1'), ['encrypt, decrypt']);

    const suspended = await waitAnswered(await command('life-1', 'suspend'));
    assert.deepEqual(
      suspended.map((r) => [r.state, r.effect]),
      [['confirmed', 'usages_off']],
    );
    assert.deepEqual(await tokenUsages('site-b', 'life-1'), ['none'], 'pkcs11-tool: no usage left while suspended');

    const resumed = await waitAnswered(await command('life-1', 'resume'));
    assert.deepEqual(
      resumed.map((r) => [r.state, r.effect]),
      [['confirmed', 'usages_restored']],
    );
    assert.deepEqual(await tokenUsages('site-b', 'life-1'), ['encrypt, decrypt'], "pkcs11-tool: the policy's usages are back");

    const destroyed = await waitAnswered(await command('life-1', 'destroy'));
    assert.deepEqual(
      destroyed.map((r) => [r.state, r.effect]),
      [['confirmed', 'destroyed']],
    );
    assert.deepEqual(await tokenUsages('site-b', 'life-1'), [], 'pkcs11-tool: the object is gone');
    const dist = await pg.query(`SELECT state FROM distributions WHERE key_version_id = $1`, [await versionId('life-1')]);
    assert.deepEqual(
      dist.rows.map((r) => r.state),
      ['destroyed'],
      'a destroyed version no longer counts as held',
    );
    // Nothing is left to address: a later command for the version reaches no site.
    assert.deepEqual(await command('life-1', 'suspend'), []);
    // The operator's view: every command confirmed by its one site.
    const status = await d.keyhubJson<Array<{ action: string; confirmed: number; outstanding: number; sites: Array<{ listener: string; state: string }> }>>(['status', 'life-1', '--commands']);
    assert.deepEqual(
      status.map((c) => [c.action, c.confirmed, c.outstanding, c.sites.map((s) => `${s.listener}:${s.state}`).join()]),
      [
        ['suspend', 1, 0, 'site-b:confirmed'],
        ['resume', 1, 0, 'site-b:confirmed'],
        ['destroy', 1, 0, 'site-b:confirmed'],
      ],
    );
    const audit = await pg.query(`SELECT action FROM audit_events WHERE action LIKE 'key_command.%' AND details->>'command' IS NOT NULL ORDER BY seq`);
    assert.deepEqual(
      audit.rows.map((r) => r.action),
      ['key_command.queued', 'key_command.confirmed', 'key_command.queued', 'key_command.confirmed', 'key_command.queued', 'key_command.confirmed'],
    );
  });

  it('a compromise overtakes a backlog of 1,000 packages at an offline site, is confirmed before it drains, and the package of the compromised version queued before it is refused', async () => {
    // Held at site-a before anything happens.
    await createAndPush(['cmp-held'], 'site-a');
    await waitConfirmed('cmp-held', 'site-a');
    await d.stopListener('site-a');
    // While site-a is away: 1,000 packages, then one of a key that will be compromised before it arrives.
    const backlog = Array.from({ length: 1000 }, (_, i) => `backlog-${String(i).padStart(4, '0')}`);
    await createAndPush(backlog, 'site-a');
    await createAndPush(['cmp-queued'], 'site-a');
    await outboxEmpty();
    const jsm = await nc.jetstreamManager();
    const before = await jsm.consumers.info(STREAMS.down.name, subjects.listenerConsumer('site-a'));
    assert.ok(before.num_pending >= 1001, `the backlog waits in site-a's consumer (${before.num_pending})`);

    const ids = [...(await command('cmp-held', 'compromise')), ...(await command('cmp-queued', 'compromise'))];
    assert.equal(ids.length, 2);
    await outboxEmpty();
    await d.startListener('site-a');
    const answered = await waitAnswered(ids);
    assert.deepEqual(answered.map((r) => r.state).sort(), ['confirmed', 'confirmed']);
    // Ordering by facts the hub recorded: when the last command receipt was applied, the backlog was still draining.
    const lastAnswer = new Date(Math.max(...answered.map((r) => r.answered_at!.getTime())));
    const drained = await pg.query(
      `SELECT count(*)::int AS n FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE k.name LIKE 'backlog-%' AND d.confirmed_at IS NOT NULL AND d.confirmed_at <= $1`,
      [lastAnswer],
    );
    assert.ok(drained.rows[0].n < 1000, `both compromises were confirmed while ${1000 - drained.rows[0].n} of 1,000 backlog packages were still unconfirmed`);
    const effects = new Map(answered.map((r) => [r.id, r.effect]));
    assert.equal(effects.get(ids[0]), 'usages_off', 'the held version is switched off');
    assert.equal(effects.get(ids[1]), 'absent', 'the queued version was not there yet');

    // The package of the compromised version, queued before the compromise, arrives last and is refused.
    const refused = await waitFor(
      'the refusal of the compromised package',
      async () => {
        const r = await pg.query(`SELECT d.state, d.error_code FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name = 'cmp-queued'`);
        return r.rows[0]?.error_code ? (r.rows[0] as { state: string; error_code: string }) : undefined;
      },
      120_000,
    );
    assert.deepEqual(refused, { state: 'failed', error_code: 'KEY_VERSION_REVOKED' });
    assert.deepEqual(await tokenUsages('site-a', 'cmp-queued'), [], 'pkcs11-tool: nothing of the compromised version was imported');
    assert.deepEqual(await tokenUsages('site-a', 'cmp-held'), ['none'], 'pkcs11-tool: the compromised version held before is switched off');
    const status = await d.keyhubJson<Array<{ key: string; action: string; confirmed: number; outstanding: number }>>(['status', '--commands']);
    assert.deepEqual(
      status.filter((c) => c.key.startsWith('cmp-')).map((c) => [c.key, c.action, c.confirmed, c.outstanding]),
      [
        ['cmp-held', 'compromise', 1, 0],
        ['cmp-queued', 'compromise', 1, 0],
      ],
    );
  });

  it('through the operator path: `keyhub key compromise` commands every site that holds the version, and `keyhub status --commands` shows them confirmed', async () => {
    await createAndPush(['cli-cmp'], 'site-a');
    await rt.container.resolve(Distribute).execute({ keys: [{ name: 'cli-cmp' }], to: [{ listenerId: 'site-b' }], actor: 'officer' });
    await waitConfirmed('cli-cmp', 'site-a');
    await waitConfirmed('cli-cmp', 'site-b');
    const r = await d.keyhub(['--json', 'key', 'compromise', 'cli-cmp', '--reason', 'e2e']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const confirmed = await waitFor('both sites to confirm', async () => {
      const st = await d.keyhubJson<Array<{ action: string; confirmed: number; outstanding: number }>>(['status', 'cli-cmp', '--commands']);
      return st.length === 1 && st[0].confirmed === 2 ? st : undefined;
    });
    assert.deepEqual(
      confirmed.map((c) => [c.action, c.confirmed, c.outstanding]),
      [['compromise', 2, 0]],
    );
    for (const site of ['site-a', 'site-b']) assert.deepEqual(await tokenUsages(site, 'cli-cmp'), ['none'], `${site}: switched off`);
  });

  it('a replayed command is answered with the receipt it earned and not run again; a forged one earns nothing', async () => {
    const jsm = await nc.jetstreamManager();
    const genuine = await jsm.streams.getMessage(STREAMS.down.name, { last_by_subj: subjects.urgent('site-a') });
    const dec = decodeEnvelope(genuine.data);
    assert.ok(dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.keyCommand);
    const cmd = dec.envelope.payload as KeyCommand;
    const first = receipts.filter((r) => r.commandId === cmd.id);
    assert.equal(first.length, 1);
    const [row0] = await commandRows([cmd.id]);

    // Replay: the same bytes again, under a new message id (past the stream's duplicate window).
    const js = nc.jetstream();
    await js.publish(subjects.urgent('site-a'), genuine.data, { msgID: randomUUID() });
    await waitFor('the answer to the replay', async () => (receipts.filter((r) => r.commandId === cmd.id).length === 2 ? true : undefined), 20_000);
    const again = receipts.filter((r) => r.commandId === cmd.id);
    assert.equal(again[1].id, again[0].id, 'the journaled receipt is sent again, not a new one: the command did not run again');
    assert.equal(again[1].commandSha256, commandSha256(genuine.data));
    const [row1] = await commandRows([cmd.id]);
    assert.deepEqual(row1, row0, 'the hub changes nothing for the repeated answer');

    // Forged: a compromise of a version site-a holds, signed by a key that is not the hub's.
    const attacker = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const [{ key_id: keyId }] = (await pg.query(`SELECT v.key_id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'backlog-0000'`)).rows;
    const forged: KeyCommand = { ...cmd, id: randomUUID(), key: { ...cmd.key, id: keyId as string, name: 'backlog-0000' }, issuedAt: new Date().toISOString() };
    const envelope: SignedEnvelope<KeyCommand> = {
      payload: forged,
      signature: { alg: 'ES256', keyId: 'hub', value: nodeSign('sha256', signingInput(forged), { key: attacker.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') },
    };
    const usagesBefore = await tokenUsages('site-a', 'backlog-0000');
    await js.publish(subjects.urgent('site-a'), encodeEnvelope(envelope), { msgID: randomUUID() });
    await waitFor('the forged command to be consumed', async () => {
      const info = await jsm.consumers.info(STREAMS.down.name, subjects.listenerUrgentConsumer('site-a'));
      return info.num_pending + info.num_ack_pending === 0 ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(receipts.filter((r) => r.commandId === forged.id).length, 0, 'a forged command earns no receipt');
    assert.deepEqual(await tokenUsages('site-a', 'backlog-0000'), usagesBefore, 'and changes nothing in the token');
    assert.deepEqual(usagesBefore, ['encrypt, decrypt']);
  });
});
