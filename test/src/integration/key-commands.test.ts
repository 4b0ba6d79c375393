import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { commandSha256, decodeEnvelope, MESSAGE_TYPES, subjects, verifyEnvelope, type CommandReceipt, type KeyCommand } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { HubBus } from '@keyhub/hub/dist/bus/hub-bus';
import { ApplyCommandReceipt } from '@keyhub/hub/dist/operations/commands/apply-command-receipt';
import { queueKeyCommands, type KeyCommandRequest } from '@keyhub/hub/dist/operations/commands/queue-key-commands';
import { ResendCommands } from '@keyhub/hub/dist/operations/commands/resend-commands';
import { Distribute } from '@keyhub/hub/dist/operations/distributions/distribute';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { OutboxRelay } from '@keyhub/hub/dist/relay/outbox-relay';
import { lifecycleFlags } from '@keyhub/listener/dist/targets/pkcs11-lifecycle';
import { createHubFixture, insertActiveListeners, type HubFixture } from '../bench/hub-fixture';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';

/**
 * The hub's side of lifecycle commands on real PostgreSQL, nats-server and
 * the SoftHSM2 hub token: who is addressed, what is signed and queued (and
 * on which lane), that the relay publishes the urgent lane before a backlog
 * committed earlier, how receipts apply, and the re-send.
 */
describe('key commands at the hub: queueing, urgent lane, receipts, re-send', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let bus: HubBus;
  const sites = ['kc-a', 'kc-b', 'kc-c'];

  before(async () => {
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: true });
    await insertActiveListeners(fx, sites);
    bus = await HubBus.connect({ servers: fx.config.nats.servers, name: 'key-commands-test' }, fx.logger);
    cleanup.add('hub bus', () => bus.close());
    await bus.ensureStreams();
    await fx.rt.container.resolve(CreateKey).executeMany(['kc-1', 'kc-2'].map((name) => ({ name, algorithm: 'AES-256', usages: ['encrypt', 'decrypt'], actor: 'test' })));
    await fx.rt.container.resolve(Distribute).execute({ keys: [{ name: 'kc-1' }, { name: 'kc-2' }], to: 'all', actor: 'test' });
    await fx.rt.ds.query('DELETE FROM outbox');
  });

  after(async () => {
    await cleanup.run();
  });

  const versionOf = async (key: string): Promise<string> => (await fx.rt.ds.query('SELECT v.id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = $1', [key]))[0].id;
  const queue = (requests: KeyCommandRequest[]) => fx.rt.ds.transaction((m) => queueKeyCommands(m, requests, 'alice'));
  const outboxOf = async (ids: string[]): Promise<Array<{ subject: string; msg_id: string; payload: Buffer; priority: number }>> =>
    fx.rt.ds.query('SELECT subject, msg_id, payload, priority FROM outbox WHERE msg_id = ANY($1) ORDER BY id', [ids]);

  it('addresses every site that holds or was sent the version (not failed, superseded or destroyed ones), signs each command and queues compromise on the urgent lane, never to expire', async () => {
    const v = await versionOf('kc-1');
    await fx.rt.ds.query(`UPDATE distributions SET state = 'failed' WHERE key_version_id = $1 AND listener_id = 'kc-c'`, [v]);
    const q = await queue([{ keyVersionId: v, action: 'compromise', reason: 'laptop stolen' }]);
    assert.equal(q.sites, 2);
    const rows = await outboxOf(q.commandIds);
    assert.deepEqual(rows.map((r) => r.subject).sort(), [subjects.urgent('kc-a'), subjects.urgent('kc-b')]);
    assert.ok(rows.every((r) => r.priority === 1));
    for (const r of rows) {
      const dec = decodeEnvelope(r.payload);
      assert.ok(dec.ok && dec.envelope.payload.type === MESSAGE_TYPES.keyCommand);
      const cmd = dec.envelope.payload as KeyCommand;
      assert.ok(verifyEnvelope(dec.envelope, fx.keyring.signingSpki), 'signed by the hub key');
      assert.equal(cmd.expiresAt, undefined, 'a compromise never expires');
      assert.equal(cmd.action, 'compromise');
      assert.deepEqual(cmd.key.usages, ['encrypt', 'decrypt']);
      const [stored] = await fx.rt.ds.query('SELECT envelope_sha256, state FROM key_commands WHERE id = $1', [cmd.id]);
      assert.equal(stored.envelope_sha256.toString('hex'), commandSha256(r.payload));
      assert.equal(stored.state, 'pending');
    }
    const audit = await fx.rt.ds.query(`SELECT actor, details FROM audit_events WHERE action = 'key_command.queued' AND details->'commandIds' ? $1`, [q.commandIds[0]]);
    assert.equal(audit.length, 1, 'one event for the request, naming every command and site');
    assert.equal(audit[0].actor, 'alice');
    assert.equal(audit[0].details.reason, 'laptop stolen');
    assert.deepEqual([...audit[0].details.commandIds].sort(), [...q.commandIds].sort());
    assert.deepEqual([...audit[0].details.sites].sort(), ['kc-a/hsm', 'kc-b/hsm']);
  });

  it('suspend goes on the normal lane with an expiry; explicit destinations override the holders; nothing is queued when the caller rolls back', async () => {
    const v = await versionOf('kc-2');
    const q = await queue([{ keyVersionId: v, action: 'suspend', destinations: [{ listenerId: 'kc-c', target: 'hsm' }] }]);
    const [row] = await outboxOf(q.commandIds);
    assert.equal(row.subject, subjects.toListener('kc-c', 'command'));
    assert.equal(row.priority, 0);
    const dec = decodeEnvelope(row.payload);
    assert.ok(dec.ok);
    assert.ok((dec.envelope.payload as KeyCommand).expiresAt);
    const before = Number((await fx.rt.ds.query('SELECT count(*) AS n FROM key_commands'))[0].n);
    await assert.rejects(
      fx.rt.ds.transaction(async (m) => {
        await queueKeyCommands(m, [{ keyVersionId: v, action: 'destroy' }], 'alice');
        throw new Error('the caller fails');
      }),
      /the caller fails/,
    );
    assert.equal(Number((await fx.rt.ds.query('SELECT count(*) AS n FROM key_commands'))[0].n), before, 'commands commit with the caller or not at all');
    await assert.rejects(queue([{ keyVersionId: randomUUID(), action: 'destroy' }]), (e: unknown) => KeyhubError.is(e, 'KEY_NOT_FOUND'));
  });

  it('the relay publishes urgent commands before a backlog of normal rows committed earlier', async () => {
    await fx.rt.ds.query('DELETE FROM outbox');
    const subject = subjects.toListener('kc-a', 'package');
    await fx.rt.ds.query(`INSERT INTO outbox (subject, msg_id, payload) SELECT $1, g::text || '-backlog', convert_to('x', 'UTF8') FROM generate_series(1, 700) g`, [subject]);
    const q = await queue([{ keyVersionId: await versionOf('kc-2'), action: 'destroy' }]);
    const relay = new OutboxRelay(fx.rt.ds, bus, fx.config.databaseUrl, 256, fx.logger, 60_000);
    const order: string[] = [];
    const original = bus.publish.bind(bus);
    bus.publish = async (s, payload, msgId) => {
      order.push(msgId);
      return original(s, payload, msgId);
    };
    try {
      await relay.drainOnce();
    } finally {
      bus.publish = original;
    }
    assert.equal(order.length, 256, 'one pass of 256');
    assert.deepEqual(order.slice(0, q.commandIds.length).sort(), [...q.commandIds].sort(), 'the urgent rows lead the first pass, ahead of 700 rows committed before them');
    const left = await fx.rt.ds.query('SELECT count(*)::int AS n FROM outbox WHERE priority > 0');
    assert.equal(left[0].n, 0);
    await fx.rt.ds.query('DELETE FROM outbox');
  });

  it('applies a receipt only to the command whose hash it names; a second answer changes nothing; a confirmed destroy marks the distribution destroyed', async () => {
    const v = await versionOf('kc-2');
    const [id] = (await queue([{ keyVersionId: v, action: 'destroy', destinations: [{ listenerId: 'kc-a', target: 'hsm' }] }])).commandIds;
    const [row] = await fx.rt.ds.query('SELECT envelope FROM key_commands WHERE id = $1', [id]);
    const sha = commandSha256(row.envelope);
    const apply = new ApplyCommandReceipt(fx.rt.ds);
    const receipt = (over: Partial<CommandReceipt> = {}): CommandReceipt => ({
      type: MESSAGE_TYPES.commandReceipt,
      id: randomUUID(),
      listenerId: 'kc-a',
      issuedAt: new Date().toISOString(),
      commandId: id,
      commandSha256: sha,
      target: 'hsm',
      action: 'destroy',
      outcome: 'done',
      effect: 'destroyed',
      ...over,
    });
    for (const bad of [{ commandSha256: 'ab'.repeat(32) }, { action: 'suspend' as const }, { target: 'other' }]) {
      await assert.rejects(apply.execute(receipt(bad), 'kc-a'), (e: unknown) => KeyhubError.is(e, 'COMMAND_RECEIPT_MISMATCH'));
    }
    await assert.rejects(apply.execute(receipt({ listenerId: 'kc-b' }), 'kc-b'), (e: unknown) => KeyhubError.is(e, 'COMMAND_RECEIPT_MISMATCH'), "another site cannot answer kc-a's command");
    assert.equal((await fx.rt.ds.query('SELECT state FROM key_commands WHERE id = $1', [id]))[0].state, 'pending');
    assert.equal(await apply.execute(receipt(), 'kc-a'), 'confirmed');
    assert.equal(await apply.execute(receipt({ outcome: 'failed', effect: undefined }), 'kc-a'), 'duplicate');
    const [after] = await fx.rt.ds.query('SELECT state, effect FROM key_commands WHERE id = $1', [id]);
    assert.deepEqual(after, { state: 'confirmed', effect: 'destroyed' });
    const dist = await fx.rt.ds.query(`SELECT listener_id, state FROM distributions WHERE key_version_id = $1 ORDER BY listener_id`, [v]);
    assert.deepEqual(
      dist.map((d: { listener_id: string; state: string }) => `${d.listener_id}:${d.state}`),
      ['kc-a:destroyed', 'kc-b:queued', 'kc-c:queued'],
    );
  });

  it('re-sends an unanswered command to an online site as the same signed bytes under a new message id, and not to an offline or busy one', async () => {
    await fx.rt.ds.query('DELETE FROM outbox');
    const v = await versionOf('kc-1');
    const q = await queue([{ keyVersionId: v, action: 'deactivate', destinations: sites.map((listenerId) => ({ listenerId, target: 'hsm' })) }]);
    await fx.rt.ds.query('DELETE FROM outbox');
    await fx.rt.ds.query(`UPDATE key_commands SET last_queued_at = now() - interval '1 hour' WHERE id = ANY($1)`, [q.commandIds]);
    await fx.rt.ds.query(`UPDATE listeners SET last_seen_at = CASE WHEN id = 'kc-c' THEN now() - interval '1 day' ELSE now() END WHERE id = ANY($1)`, [sites]);
    const resend = new ResendCommands(fx.rt.ds, { resendAfterSeconds: 5, onlineWindowSeconds: 60 });
    const r = await resend.execute(async () => new Set(['kc-b']));
    assert.equal(r.resent, 1, 'only kc-a: kc-b still has a backlog, kc-c is offline');
    const rows: Array<{ msg_id: string; payload: Buffer; subject: string }> = await fx.rt.ds.query('SELECT msg_id, payload, subject FROM outbox');
    assert.equal(rows.length, 1);
    const [cmd] = await fx.rt.ds.query(`SELECT id, envelope, attempts FROM key_commands WHERE id = ANY($1) AND listener_id = 'kc-a'`, [q.commandIds]);
    assert.equal(rows[0].msg_id, `${cmd.id}.2`);
    assert.ok(Buffer.from(rows[0].payload).equals(cmd.envelope), 'the same signed bytes');
    assert.equal(cmd.attempts, 2);
    assert.equal((await resend.execute(async () => new Set(['kc-b']))).resent, 0, 'kc-a is not due again right away');
    await fx.rt.ds.query('DELETE FROM outbox');
  });

  it('the token flags each action sets (listener/src/targets/pkcs11-lifecycle.ts)', () => {
    const off = { encrypt: false, decrypt: false, sign: false, verify: false, wrap: false, unwrap: false, derive: false };
    assert.deepEqual(lifecycleFlags('suspend', ['encrypt', 'decrypt']), off);
    assert.deepEqual(lifecycleFlags('compromise', ['sign', 'verify']), off);
    assert.deepEqual(lifecycleFlags('resume', ['encrypt', 'decrypt']), { ...off, encrypt: true, decrypt: true });
    assert.deepEqual(lifecycleFlags('deactivate', ['encrypt', 'decrypt', 'sign', 'verify']), { ...off, decrypt: true, verify: true }, 'SP 800-57: no new protection, old data processed');
    assert.deepEqual(lifecycleFlags('deactivate', ['wrap', 'unwrap']), { ...off, unwrap: true });
  });
});
