import { strict as assert } from 'node:assert';
import { generateKeyPairSync, randomUUID, sign as nodeSign, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { nkeys } from 'nats';
import {
  decodeEnvelope,
  enrollmentFingerprint,
  listenerIdFromUpSubject,
  MESSAGE_TYPES,
  signingInput,
  subjects,
  type EnrollmentRequest,
  type ErrorCode,
  type Heartbeat,
  type Message,
  type MessageType,
  type Receipt,
  type RootKekConfirm,
  type SignedEnvelope,
} from '@keyhub/protocol';
import { KeyhubError, type RateLimitedLog } from '@keyhub/shared';
import { HeartbeatHandler } from '@keyhub/hub/dist/bus/heartbeat-handler';
import { ApplyCommandReceipt } from '@keyhub/hub/dist/operations/commands/apply-command-receipt';
import { UpHandler } from '@keyhub/hub/dist/bus/up-handler';
import { ProcessInventory } from '@keyhub/hub/dist/operations/inventory/process-inventory';
import { ConfirmTargetKek } from '@keyhub/hub/dist/operations/targets/confirm-target-kek';
import { RegisterTargetKekRequest } from '@keyhub/hub/dist/operations/targets/register-target-kek-request';
import { RegisterTargetUpdate } from '@keyhub/hub/dist/operations/targets/register-target-update';
import { FRESH_FUTURE_MS, FRESH_PAST_MS } from '@keyhub/hub/dist/domain/liveness';
import { verifyStoredAudit } from '@keyhub/hub/dist/operations/audit/verify-stored-audit';
import { ApplyReceipt } from '@keyhub/hub/dist/operations/distributions/apply-receipts';
import { Distribute } from '@keyhub/hub/dist/operations/distributions/distribute';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { ApproveListener } from '@keyhub/hub/dist/operations/listeners/approve-listener';
import { ConfirmRootKek } from '@keyhub/hub/dist/operations/listeners/confirm-root-kek';
import { RecordHeartbeats } from '@keyhub/hub/dist/operations/listeners/record-heartbeats';
import { RegisterEnrollment } from '@keyhub/hub/dist/operations/listeners/register-enrollment';
import { VerifyListenerSignature } from '@keyhub/hub/dist/operations/listeners/verify-listener-signature';
import { NatsAuthority } from '@keyhub/hub/dist/nats/nats-authority';
import { upsertRegistration } from '@keyhub/hub/dist/store/queries/nats-identities';
import { createHubFixture, insertActiveListeners, type HubFixture } from '../bench/hub-fixture';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';
import { fuzzParams, fuzzTimeout } from './lib/budget';
import { HEARTBEAT_DISPOSITION, UP_DISPOSITION } from './lib/dispositions';
import { assertStableCode, countMessage, countRuns, ProcessGuard, reportStats } from './lib/guards';
import { payloadOf, protocolMessageTypes } from './lib/messages';
import { applyRecipe, recipeArb, type Recipe } from './lib/mutate';
import { payloadKey } from './lib/site';

const UP = 'hub UP handler (enrollments, root-KEK confirmations, receipts)';
const BEATS = 'hub heartbeat handler';
const A = 'fuzz-a';
const B = 'fuzz-b';

interface Signer {
  id: string;
  key: KeyObject;
  spki: Buffer;
}

function newSigner(id: string): Signer {
  const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { id, key: pair.privateKey, spki: pair.publicKey.export({ type: 'spki', format: 'der' }) };
}

function signAs<M extends Message>(s: Signer, payload: M): SignedEnvelope<M> {
  return { payload, signature: { alg: 'ES256', keyId: s.id, value: nodeSign('sha256', signingInput(payload), { key: s.key, dsaEncoding: 'ieee-p1363' }).toString('base64') } };
}

const bytesOf = (e: SignedEnvelope): Buffer => Buffer.from(JSON.stringify(e), 'utf8');

/** A message its listener really signed, and whether it was delivered yet. */
interface Genuine {
  envelope: SignedEnvelope;
  bytes: Buffer;
  sent: boolean;
}

interface HubCase {
  base: number;
  recipe: Recipe;
  plain: boolean;
  /** 0: the base's own subject; otherwise one of SUBJECT_VARIANTS. */
  subject: number;
}

const caseArb: fc.Arbitrary<HubCase> = fc.record({
  base: fc.nat({ max: 1_000_000 }),
  recipe: recipeArb,
  plain: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
  subject: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 1_000 }) }),
});

/** Subjects a message may come in on besides its own: another listener's, another kind's, and ones that are not ours. */
const SUBJECT_VARIANTS = (own: string): string[] => [
  subjects.fromListener(B, 'receipt'),
  subjects.fromListener(A, 'enroll'),
  subjects.fromListener(own, 'kek_confirm'),
  subjects.fromListener('fuzz-nobody', 'receipt'),
  'keyhub.v1.from',
  `keyhub.v1.from.${own}`,
  `keyhub.v1.from.${own}.receipt.extra`,
  `keyhub.v1.from.${own.toUpperCase()}.receipt`,
  `keyhub.v2.from.${own}.receipt`,
  `keyhub.v1.to.${own}.package`,
  'keyhub.v1.from.__proto__.receipt',
  '',
];

/**
 * Property-based tests of what listeners send the hub (issue 10,
 * "Property-based tests"): malformed, mutated, oversized, replayed,
 * duplicate-key, `__proto__`-laden, misaddressed and foreign-signed
 * messages of every type, thrown at the hub's real UP handler (enrollments,
 * root-KEK confirmations, receipts) and heartbeat handler, with the real
 * operations behind them, a real PostgreSQL database and the hub's SoftHSM2
 * token. Properties, for every message:
 * - no crash, no unhandled rejection, no prototype pollution;
 * - the UP handler refuses anything its listener did not sign with a stable
 *   code that is not retryable (so it is terminated, never redelivered) and
 *   not INTERNAL (no unexpected exception on the way); decodeEnvelope's
 *   exact code when it does not parse;
 * - nothing changes in the database (listeners, KEKs, distributions,
 *   packages, outbox, registrations, revocations, audit events) for a
 *   refused message, and a replay of a genuine one changes nothing either;
 * - the heartbeat handler never rejects and records nothing it refused;
 * and after each batch a genuine enrollment, root-KEK confirmation,
 * receipt and heartbeat are still processed.
 */
describe('fuzz: hub handlers for enrollments, root-KEK confirmations, receipts and heartbeats (PostgreSQL, hub SoftHSM2 token)', function () {
  this.timeout(fuzzTimeout(180_000));
  const guard = new ProcessGuard();
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let up: UpHandler;
  let beats: HeartbeatHandler;
  let record: RecordHeartbeats;
  const refusals: string[] = [];
  const signerA = newSigner(A);
  const signerB = newSigner(B);
  const attacker = newSigner('attacker');
  const rsaTransport = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const genuine = new Map<string, Genuine>();
  const recent: Genuine[] = [];
  /** Signed by a key that is not the named listener's, or signed right but refused by rule: never acted on. */
  const foreign: Array<{ envelope: SignedEnvelope; subject?: string; freshFromA?: boolean }> = [];
  const deliveries = { pool: [] as Array<{ id: string; packageId: string; sha: string; kcv: string }>, made: 0 };
  let listenerCount = 0;
  let heartbeatSeq = 1_000;
  let upRuns = 0;
  let upMs = 0;
  let beatRuns = 0;
  let beatMs = 0;

  const register = (envelope: SignedEnvelope): Genuine => {
    const g: Genuine = { envelope, bytes: bytesOf(envelope), sent: false };
    genuine.set(payloadKey(envelope.payload), g);
    return g;
  };
  const markSent = (g: Genuine): void => {
    g.sent = true;
    recent.push(g);
    // Mutations start from the pool only, so what left it can be forgotten: memory stays flat in long runs.
    const old = recent.length > 10 ? recent.shift() : undefined;
    if (old) genuine.delete(payloadKey(old.envelope.payload));
  };
  const lookup = (bytes: Buffer): Genuine | undefined => {
    const dec = decodeEnvelope(bytes);
    return dec.ok ? genuine.get(payloadKey(dec.envelope.payload)) : undefined;
  };

  before(async function () {
    this.timeout(180_000);
    guard.install();
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    await insertActiveListeners(fx, [A, B]);
    // As keyhub-server init makes them: approval issues the site's NATS user JWT with the account key.
    await NatsAuthority.ensure(fx.rt.hsm);
    // Listeners whose identity keys the test holds, so it can sign as them.
    for (const s of [signerA, signerB]) await fx.rt.ds.query('UPDATE listeners SET identity_key = $1 WHERE id = $2', [s.spki, s.id]);
    const { container } = fx.rt;
    const verify = new VerifyListenerSignature(fx.rt.ds);
    up = new UpHandler(
      verify,
      container.resolve(RegisterEnrollment),
      container.resolve(ConfirmRootKek),
      container.resolve(ApplyReceipt),
      fx.logger,
      undefined,
      undefined,
      new ApplyCommandReceipt(fx.rt.ds),
    );
    up.processInventory = container.resolve(ProcessInventory);
    up.targetKeks = { register: container.resolve(RegisterTargetKekRequest), confirm: container.resolve(ConfirmTargetKek) };
    up.targetUpdates = container.resolve(RegisterTargetUpdate);
    beats = new HeartbeatHandler(verify, fx.logger);
    // The handler's refusals, every one (its log is rate-limited): a test seam on a private field.
    (beats as unknown as { refusals: Pick<RateLimitedLog, 'warn'> }).refusals = { warn: (_reason, fields) => void refusals.push(String(fields.code)) };
    record = new RecordHeartbeats(fx.rt.ds);

    const now = new Date();
    for (const type of protocolMessageTypes()) {
      const payload = payloadOf(type, { listenerId: A, now, sequence: 1 });
      // Every type signed by the right listener: refused by type unless the handler takes it (those have generators of their own below).
      if (UP_DISPOSITION[type] !== 'handled') foreign.push({ envelope: signAs(signerA, payload), freshFromA: true });
      // Every type signed by someone else, or by the other listener.
      foreign.push({ envelope: signAs(attacker, payload) });
      foreign.push({ envelope: signAs(signerB, payload) });
    }
    // Enrollment of an id nobody registered, properly self-signed: dropped before any crypto or audit.
    const intruder = newSigner('intruder');
    foreign.push({ envelope: signAs(intruder, enrollment('fuzz-intruder', intruder)), subject: subjects.fromListener('fuzz-intruder', 'enroll') });
    // Enrollment of an active listener, signed by a new key, while no registration is open: refused.
    foreign.push({ envelope: signAs(attacker, enrollment(A, attacker)) });
    // Root-KEK confirmation of a KEK that is not the listener's: refused, nothing written.
    foreign.push({ envelope: signAs(signerA, { ...payloadOf(MESSAGE_TYPES.rootKekConfirm, { listenerId: A, now, sequence: 1 }) }) });
  });

  after(async function () {
    this.timeout(60_000);
    guard.uninstall();
    await cleanup.run();
    countRuns(UP, upRuns, upMs);
    countRuns(BEATS, beatRuns, beatMs);
    reportStats(UP);
    reportStats(BEATS);
  });

  function enrollment(listenerId: string, identity: Signer, natsUserKey = nkeys.createUser().getPublicKey()): EnrollmentRequest {
    return {
      type: MESSAGE_TYPES.enrollmentRequest,
      id: randomUUID(),
      listenerId,
      issuedAt: new Date().toISOString(),
      identityKey: identity.spki.toString('base64'),
      transportKey: rsaTransport,
      oaepHash: 'sha1',
      targets: [{ name: 'hsm', kind: 'pkcs11' }],
      hostname: `${listenerId}.example`,
      natsUserKey,
    };
  }

  function heartbeat(listenerId: string, sequence: number, at = new Date()): Heartbeat {
    return { type: MESSAGE_TYPES.heartbeat, id: randomUUID(), listenerId, issuedAt: at.toISOString(), sequence, targets: [{ name: 'hsm', healthy: true }] };
  }

  /** Every table a message from a listener could reach. */
  const TABLES = [
    'listeners',
    'keks',
    'distributions',
    'packages',
    'outbox',
    'listener_registrations',
    'listener_sequences',
    'nats_revocations',
    'keys',
    'key_versions',
    'audit_events',
    'audit_checkpoints',
    'target_keks',
    'target_updates',
  ];

  /**
   * What a refused message must not change, per table: its row count and the
   * newest row version's transaction (`xmin`): an INSERT or UPDATE makes a row
   * version with a newer one, a DELETE lowers the count. Cheap in long runs,
   * unlike hashing every row. Genuine receipts are sent stale (see below), so
   * that their replays touch nothing either, not even a last-seen time.
   */
  async function snapshot(): Promise<Record<string, string>> {
    const rows: Array<{ t: string; v: string }> = await fx.rt.ds.query(
      TABLES.map((t) => `SELECT '${t}' AS t, count(*)::text || '/' || coalesce(max(xmin::text::bigint), 0)::text AS v FROM ${t}`).join(' UNION ALL '),
    );
    return Object.fromEntries(rows.map((r) => [r.t, r.v]));
  }

  /** One fresh distribution to listener A per run, from a pool made a chunk at a time. */
  async function nextDistribution(): Promise<{ id: string; packageId: string; sha: string; kcv: string }> {
    if (deliveries.pool.length === 0) {
      const names = Array.from({ length: 25 }, () => `fuzz-${++deliveries.made}`);
      await fx.rt.container.resolve(CreateKey).executeMany(names.map((name) => ({ name, algorithm: 'AES-256', actor: 'fuzz' })));
      await fx.rt.container.resolve(Distribute).execute({ keys: names.map((name) => ({ name })), to: [{ listenerId: A }], actor: 'fuzz' });
      deliveries.pool = await fx.rt.ds.query(
        `SELECT d.id, d.last_package_id AS "packageId", encode(p.envelope_sha256, 'hex') AS sha, v.kcv
           FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id JOIN packages p ON p.id = d.last_package_id
          WHERE k.name = ANY($1) AND d.listener_id = $2`,
        [names, A],
      );
    }
    return deliveries.pool.pop()!;
  }

  /** The codes the UP handler may refuse a message with, computed from subject and bytes alone; undefined: it depends on the operation. */
  function upCodes(subject: string, bytes: Buffer): ErrorCode[] | undefined {
    const subjectListener = listenerIdFromUpSubject(subject);
    if (!subjectListener) return ['MESSAGE_MALFORMED'];
    const dec = decodeEnvelope(bytes);
    if (!dec.ok) return [dec.code];
    const p = dec.envelope.payload;
    if (!('listenerId' in p)) return ['MESSAGE_UNKNOWN_TYPE'];
    if (p.listenerId !== subjectListener) return ['PACKAGE_WRONG_LISTENER'];
    if (UP_DISPOSITION[p.type] !== 'handled') return ['SIGNATURE_INVALID', 'SIGNER_UNKNOWN', UP_DISPOSITION[p.type] as ErrorCode];
    return undefined;
  }

  /** One message through the UP handler: refused with a stable, final code, or (a genuine copy) taken without a change. */
  async function deliverUp(subject: string, bytes: Buffer, context: string): Promise<void> {
    const g = lookup(bytes);
    let outcome: string;
    let error: unknown;
    try {
      await up.process(subject, bytes);
      outcome = 'accepted';
    } catch (err) {
      error = err;
      outcome = err instanceof KeyhubError ? err.code : 'not a KeyhubError';
    }
    countMessage(UP, outcome);
    const what = `${context}: ${outcome} on ${JSON.stringify(subject)} for ${bytes.length} bytes ${JSON.stringify(bytes.subarray(0, 300).toString('utf8'))}`;
    if (error === undefined) {
      assert.ok(g, `${what}: acted on a message its listener did not sign`);
      assert.ok(g.sent, `${what}: test error, a first copy of a genuine message was not deferred`);
      return;
    }
    assert.ok(error instanceof KeyhubError, `${what}: ${error instanceof Error ? error.stack : String(error)}`);
    assertStableCode(error.code, what);
    assert.notEqual(error.code, 'INTERNAL', `${what}: an unexpected failure (${error.message}; cause ${String((error as { cause?: unknown }).cause)})`);
    assert.equal(error.retryable, false, `${what}: a bad message must be terminated, not redelivered`);
    const expected = upCodes(subject, bytes);
    if (expected) assert.ok(expected.includes(error.code), `${what}: expected ${expected.join(' or ')}`);
  }

  async function throwUp(cases: HubCase[], pool: Array<{ envelope: SignedEnvelope; subject: string; g?: Genuine }>, extra: number, label: string): Promise<Array<{ subject: string; bytes: Buffer }>> {
    const deferred: Array<{ subject: string; bytes: Buffer }> = [];
    for (const [i, c] of cases.entries()) {
      const idx = c.base % (pool.length + extra);
      const base = pool[idx < pool.length ? idx : idx % Math.min(3, pool.length)];
      const donor = pool[(idx + 1) % pool.length].envelope.signature;
      const bytes = c.plain ? (base.g?.bytes ?? bytesOf(base.envelope)) : applyRecipe(base.envelope, c.recipe, { donor });
      const variants = SUBJECT_VARIANTS('listenerId' in base.envelope.payload && typeof base.envelope.payload.listenerId === 'string' ? base.envelope.payload.listenerId : A);
      const subject = c.subject === 0 ? base.subject : variants[c.subject % variants.length];
      const g = lookup(bytes);
      if (g && !g.sent) {
        deferred.push({ subject, bytes });
        continue;
      }
      await deliverUp(subject, bytes, `${label} case ${i} (${c.plain ? 'replay' : JSON.stringify(c.recipe).slice(0, 400)})`);
    }
    return deferred;
  }

  const subjectFor = (e: SignedEnvelope): string => {
    const p = e.payload as { type: MessageType; listenerId?: string };
    const kind = p.type === MESSAGE_TYPES.enrollmentRequest ? 'enroll' : p.type === MESSAGE_TYPES.rootKekConfirm ? 'kek_confirm' : 'receipt';
    return subjects.fromListener(p.listenerId ?? A, kind);
  };

  it('UP handler: every bad message is refused with a stable, final code and changes nothing; a genuine enrollment, root-KEK confirmation and receipt afterwards are processed', async () => {
    const t0 = Date.now();
    await fc.assert(
      fc.asyncProperty(fc.record({ before: fc.array(caseArb, { minLength: 10, maxLength: 25 }), after: fc.array(caseArb, { minLength: 10, maxLength: 25 }) }), async (run) => {
        upRuns++;
        // This run's genuine traffic: a newly registered site's enrollment, and listener A's receipt for a fresh distribution.
        const id = `fuzz-site-${++listenerCount}`;
        const site = newSigner(id);
        const natsUserKey = nkeys.createUser().getPublicKey();
        await upsertRegistration(fx.rt.ds, { listenerId: id, bootstrapKey: nkeys.createUser().getPublicKey(), registeredBy: 'fuzz', expiresAt: new Date(Date.now() + 3_600_000) });
        const e = register(signAs(site, enrollment(id, site, natsUserKey)));
        const d = await nextDistribution();
        // Issued 10 minutes ago: receipts apply whatever their age, but only a fresh one is a sign of life, which would be a write.
        const receipt: Receipt = {
          type: MESSAGE_TYPES.receipt,
          id: randomUUID(),
          listenerId: A,
          issuedAt: new Date(Date.now() - 600_000).toISOString(),
          packageId: d.packageId,
          packageSha256: d.sha,
          target: 'hsm',
          outcome: 'imported',
          kcv: d.kcv,
        };
        const r = register(signAs(signerA, receipt));
        // A receipt signed by A that names another package's hash: verified, refused with its code, nothing changes.
        const mismatch = signAs(signerA, { ...receipt, id: randomUUID(), packageSha256: d.sha.replace(/^./, (c) => (c === '0' ? '1' : '0')) });

        const pool = (extra: Array<{ envelope: SignedEnvelope; g?: Genuine }>) => [
          ...extra.map((x) => ({ ...x, subject: subjectFor(x.envelope) })),
          { envelope: mismatch, subject: subjectFor(mismatch) },
          ...recent.map((g) => ({ envelope: g.envelope, subject: subjectFor(g.envelope), g })),
          ...foreign.map((f) => ({ envelope: f.envelope, subject: f.subject ?? subjectFor(f.envelope) })),
        ];
        let db = await snapshot();
        const deferred = await throwUp(
          run.before,
          pool([
            { envelope: e.envelope, g: e },
            { envelope: r.envelope, g: r },
          ]),
          4,
          'before enrollment',
        );
        assert.deepEqual(await snapshot(), db, 'nothing written for refused input');

        // The genuine enrollment and receipt afterwards are processed.
        await up.process(subjects.fromListener(id, 'enroll'), e.bytes);
        countMessage(UP, 'accepted');
        markSent(e);
        const [listener] = await fx.rt.ds.query('SELECT state, fingerprint FROM listeners WHERE id = $1', [id]);
        assert.equal(listener?.state, 'pending_approval', 'the genuine enrollment is recorded');
        assert.equal(listener.fingerprint, enrollmentFingerprint(id, site.spki.toString('base64'), rsaTransport, natsUserKey));
        await up.process(subjects.fromListener(A, 'receipt'), r.bytes);
        countMessage(UP, 'accepted');
        markSent(r);
        const [dist] = await fx.rt.ds.query('SELECT state, target_kcv FROM distributions WHERE id = $1', [d.id]);
        assert.deepEqual(dist, { state: 'confirmed', target_kcv: d.kcv }, 'the genuine receipt confirms its distribution');

        // Approval makes the site's root KEK; its confirmation is the next genuine message.
        const approved = await fx.rt.container.resolve(ApproveListener).execute(id, listener.fingerprint, 'fuzz');
        const confirm: RootKekConfirm = {
          type: MESSAGE_TYPES.rootKekConfirm,
          id: randomUUID(),
          listenerId: id,
          issuedAt: new Date().toISOString(),
          kekId: approved.kekId,
          kekVersion: 1,
          kcv: approved.kcv,
        };
        const c = register(signAs(site, confirm));
        // Signed by the site, but with another KCV or KEK: refused or audited, never activating.
        const wrongKek = signAs(site, { ...confirm, id: randomUUID(), kekId: randomUUID() });
        db = await snapshot();
        deferred.push(...(await throwUp(run.after, pool([{ envelope: c.envelope, g: c }, { envelope: wrongKek }]), 4, 'before confirmation')));
        assert.deepEqual(await snapshot(), db, 'nothing written for refused input');

        await up.process(subjects.fromListener(id, 'kek_confirm'), c.bytes);
        countMessage(UP, 'accepted');
        markSent(c);
        const [active] = await fx.rt.ds.query(`SELECT l.state, k.state AS kek FROM listeners l JOIN keks k ON k.listener_id = l.id WHERE l.id = $1`, [id]);
        assert.deepEqual(active, { state: 'active', kek: 'active' }, 'the genuine confirmation activates the site');

        // Copies of this run's genuine messages, held back so far, are replays now: taken or refused, and nothing changes.
        db = await snapshot();
        for (const x of deferred) await deliverUp(x.subject, x.bytes, 'deferred copy of a genuine message');
        assert.deepEqual(await snapshot(), db, 'a replayed genuine message changes nothing');
        guard.check('UP handler');
      }),
      fuzzParams(170),
    );
    upMs += Date.now() - t0;
    assert.ok((await verifyStoredAudit(fx.rt.ds)).ok, 'the audit chain still verifies');
  });

  it('signed by the listener itself but hostile inside (NUL, lone surrogates, terminal escapes, the longest fields): taken or refused with a stable code, never an internal error', async () => {
    const t0 = Date.now();
    const nasty = fc.oneof(
      fc.constantFrom(
        '\u0000',
        'a\u0000b',
        '\ud800',
        '\udfff x',
        '\u202eevil',
        '\u001b[2J\u001b[31mred',
        '\r\nX-Injected: 1',
        '%s%n%x',
        "'; DROP TABLE audit_events; --",
        '${jndi:ldap://x}',
        '__proto__',
        '\ufeff',
        'é'.repeat(512),
      ),
      fc.string({ unit: 'binary', maxLength: 64 }),
      fc.string({ unit: 'binary', minLength: 1000, maxLength: 1024 }),
    );
    const errorCodes = Object.keys((await import('@keyhub/protocol')).ERROR_CODES) as ErrorCode[];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('receipt', 'enrollment', 'heartbeat'), nasty, fc.constantFrom(...errorCodes), fc.boolean(), async (kind, text, code, wrongPackage) => {
        upRuns++;
        let envelope: SignedEnvelope;
        let subject: string;
        if (kind === 'receipt') {
          const d = await nextDistribution();
          envelope = signAs(signerA, {
            type: MESSAGE_TYPES.receipt,
            id: randomUUID(),
            listenerId: A,
            issuedAt: new Date().toISOString(),
            packageId: wrongPackage ? randomUUID() : d.packageId,
            packageSha256: d.sha,
            target: 'hsm',
            outcome: 'failed',
            error: { code, detail: text.slice(0, 1024) },
          } satisfies Receipt);
          subject = subjects.fromListener(A, 'receipt');
        } else if (kind === 'enrollment') {
          const id = `fuzz-site-${++listenerCount}`;
          const site = newSigner(id);
          await upsertRegistration(fx.rt.ds, { listenerId: id, bootstrapKey: nkeys.createUser().getPublicKey(), registeredBy: 'fuzz', expiresAt: new Date(Date.now() + 3_600_000) });
          envelope = signAs(site, { ...enrollment(id, site), hostname: text.slice(0, 128) });
          subject = subjects.fromListener(id, 'enroll');
        } else {
          envelope = signAs(signerA, { ...heartbeat(A, ++heartbeatSeq), targets: [{ name: 'hsm', healthy: false, detail: text.slice(0, 1024) }] });
          subject = subjects.heartbeat(A);
        }
        const bytes = bytesOf(envelope);
        const what = `${kind} carrying ${JSON.stringify(text.slice(0, 80))}`;
        if (kind === 'heartbeat') {
          const refused0 = refusals.length;
          await beats.check({ subject, data: bytes });
          const seen = beats.takeSeen();
          const dec = decodeEnvelope(bytes);
          countMessage(BEATS, seen.length ? 'recorded' : dec.ok ? (refusals[refused0] ?? 'dropped') : dec.code);
          if (seen.length) assert.deepEqual(await record.execute(seen), [A], `${what}: recorded`);
          // Text the schema refuses (not storable) is dropped as malformed; anything else fresh and signed is taken.
          else assert.ok(!dec.ok && dec.code === 'MESSAGE_MALFORMED', `${what}: a fresh heartbeat its listener signed was not taken (${refusals.slice(refused0).join(', ')})`);
          return;
        }
        try {
          await up.process(subject, bytes);
          countMessage(UP, 'accepted');
        } catch (err) {
          assert.ok(err instanceof KeyhubError, `${what}: ${err instanceof Error ? err.stack : String(err)}`);
          countMessage(UP, err.code);
          assertStableCode(err.code, what);
          assert.notEqual(err.code, 'INTERNAL', `${what}: an internal error (${err.message}; cause ${String((err as { cause?: unknown }).cause)})`);
          assert.equal(err.retryable, false, what);
        }
        guard.check('hostile content');
      }),
      fuzzParams(200),
    );
    upMs += Date.now() - t0;
    assert.ok((await verifyStoredAudit(fx.rt.ds)).ok, 'the audit chain still verifies');
  });

  it('heartbeat handler: every bad heartbeat is dropped or refused, never rejects, records nothing; a fresh one afterwards is recorded', async () => {
    const t0 = Date.now();
    const lastSeen = async (): Promise<number> => ((await fx.rt.ds.query('SELECT last_seen_at FROM listeners WHERE id = $1', [A]))[0].last_seen_at as Date | null)?.getTime() ?? 0;
    const sentBeats: Genuine[] = [];
    await fc.assert(
      fc.asyncProperty(fc.array(caseArb, { minLength: 20, maxLength: 50 }), async (cases) => {
        beatRuns++;
        const h = register(signAs(signerA, heartbeat(A, ++heartbeatSeq)));
        // Stale and future heartbeats signed by the listener itself, made now (a future one made earlier would be fresh by now).
        const stale = signAs(signerA, heartbeat(A, heartbeatSeq + 1, new Date(Date.now() - FRESH_PAST_MS - 60_000)));
        const future = signAs(signerA, heartbeat(A, 2 ** 40, new Date(Date.now() + FRESH_FUTURE_MS + 60_000)));
        const pool: Array<{ envelope: SignedEnvelope; g?: Genuine }> = [
          { envelope: h.envelope, g: h },
          { envelope: stale },
          { envelope: future },
          ...sentBeats.slice(-4).map((g) => ({ envelope: g.envelope, g })),
          ...foreign.filter((f) => !(f.freshFromA && f.envelope.payload.type === MESSAGE_TYPES.heartbeat)).map((f) => ({ envelope: f.envelope })),
        ];
        const deferred: Array<{ subject: string; bytes: Buffer }> = [];
        const seen0 = await lastSeen();
        for (const [i, c] of cases.entries()) {
          const idx = c.base % (pool.length + 6);
          const base = pool[idx < pool.length ? idx : 0];
          const bytes = c.plain ? (base.g?.bytes ?? bytesOf(base.envelope)) : applyRecipe(base.envelope, c.recipe, { donor: pool[(idx + 1) % pool.length].envelope.signature });
          const subject =
            c.subject === 0 ? subjects.heartbeat(A) : [subjects.heartbeat(B), 'keyhub.v1.heartbeat', '', `keyhub.v1.heartbeat.${A}.x`, `x.${A}`, subjects.heartbeat('__proto__')][c.subject % 6];
          const g = lookup(bytes);
          if (g && !g.sent) {
            deferred.push({ subject, bytes });
            continue;
          }
          await deliverBeat(subject, bytes, `heartbeat case ${i} (${c.plain ? 'replay' : JSON.stringify(c.recipe).slice(0, 300)})`);
        }
        assert.deepEqual(await record.execute(beats.takeSeen()), [], 'nothing refused is recorded');
        assert.equal(await lastSeen(), seen0, 'last_seen_at did not move');
        // The fresh heartbeat afterwards is recorded.
        await beats.check({ subject: subjects.heartbeat(A), data: h.bytes });
        countMessage(BEATS, 'recorded');
        h.sent = true;
        sentBeats.push(h);
        if (sentBeats.length > 4) genuine.delete(payloadKey(sentBeats.shift()!.envelope.payload));
        assert.deepEqual(await record.execute(beats.takeSeen()), [A], 'the fresh heartbeat afterwards is recorded');
        assert.ok((await lastSeen()) >= seen0);
        // Its copies are replays now.
        for (const x of deferred) await deliverBeat(x.subject, x.bytes, 'deferred copy of the fresh heartbeat');
        assert.deepEqual(await record.execute(beats.takeSeen()), [], 'a replayed heartbeat is not recorded');
        guard.check('heartbeat handler');
      }),
      fuzzParams(300),
    );
    beatMs += Date.now() - t0;
  });

  /** One heartbeat: check() never rejects; it is dropped (decodeEnvelope's code, a wrong type or listener) or refused with a logged code. */
  async function deliverBeat(subject: string, bytes: Buffer, context: string): Promise<void> {
    const refused0 = refusals.length;
    try {
      await beats.check({ subject, data: bytes });
    } catch (err) {
      assert.fail(`${context}: the heartbeat handler rejected: ${err instanceof Error ? err.stack : String(err)}`);
    }
    const logged = refusals.slice(refused0);
    assert.ok(logged.length <= 1, `${context}: at most one refusal per heartbeat`);
    const dec = decodeEnvelope(bytes);
    let outcome: string;
    if (logged.length) {
      assertStableCode(logged[0], context);
      outcome = logged[0];
    } else if (!dec.ok) outcome = dec.code;
    else if (dec.envelope.payload.type !== MESSAGE_TYPES.heartbeat) outcome = HEARTBEAT_DISPOSITION[dec.envelope.payload.type];
    else if (dec.envelope.payload.listenerId !== subject.split('.').pop()) outcome = 'PACKAGE_WRONG_LISTENER';
    else outcome = 'taken';
    countMessage(BEATS, outcome);
    const g = lookup(bytes);
    const seen = beats.takeSeen();
    if (seen.length) {
      assert.ok(g && g.sent, `${context}: a heartbeat its listener did not sign was taken: ${JSON.stringify(seen)}`);
      assert.fail(`${context}: a replayed heartbeat was taken: ${JSON.stringify(seen)}`);
    }
    assert.notEqual(outcome, 'taken', `${context}: a heartbeat neither taken nor refused`);
  }
});
