import { strict as assert } from 'node:assert';
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import fc from 'fast-check';
import {
  AUDIT_CHECKPOINT_TYPE,
  decodeEnvelope,
  MESSAGE_TYPES,
  packageSha256,
  signingInput,
  verifyEnvelope,
  type ErrorCode,
  type KeyPackage,
  type Message,
  type Receipt,
  type RootKekMessage,
  type SignedEnvelope,
} from '@keyhub/protocol';
import type { InboxResult } from '@keyhub/listener/dist/inbox';
import { fuzzParams, fuzzTimeout } from './lib/budget';
import { INBOX_DISPOSITION } from './lib/dispositions';
import { assertStableCode, countMessage, countRuns, ProcessGuard, reportStats } from './lib/guards';
import { payloadOf, protocolMessageTypes } from './lib/messages';
import { applyRecipe, recipeArb, type Recipe } from './lib/mutate';
import { bytesOf, FuzzSite, OTHER_SITE, payloadKey, SITE, VERIFIED_BAD, type VerifiedBad } from './lib/site';

const TARGET = 'listener inbox + checkpoint witness';

/** A message the hub really signed, and what became of it. */
interface Genuine {
  envelope: SignedEnvelope;
  bytes: Buffer;
  sent: boolean;
  streamSeq?: number;
  variant?: VerifiedBad;
}

interface Case {
  base: number;
  recipe: Recipe;
  /** The base's bytes unchanged: a replay. */
  plain: boolean;
  /** Same stream sequence as the base's delivery: a redelivery rather than a re-published copy. */
  redeliver: boolean;
  lastAttempt: boolean;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  base: fc.nat({ max: 1_000_000 }),
  recipe: recipeArb,
  plain: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
  redeliver: fc.boolean(),
  lastAttempt: fc.boolean(),
});

/**
 * Property-based tests of everything that reaches a listener on its DOWN
 * subjects (issue 10, "Property-based tests"): malformed, mutated, oversized,
 * replayed, duplicate-key, `__proto__`-laden and misaddressed messages of
 * every type of the protocol, thrown at the real inbox and checkpoint
 * witness of an enrolled listener. Properties, for every message:
 * - no throw, no unhandled rejection, no prototype pollution;
 * - anything whose payload the hub did not sign is dropped with a stable
 *   code (exactly decodeEnvelope's code when it does not parse), earns no
 *   signature and no receipt, and changes nothing in the journal, the
 *   checkpoint store, the pinned hub key or the token;
 * - what the hub did sign (replays, re-encodings) is never imported twice;
 * and after each batch a valid package still imports and a valid checkpoint
 * is still kept.
 */
describe('fuzz: listener inbox and checkpoint witness (SoftHSM2 token, pinned hub key, real hub signing key)', function () {
  this.timeout(fuzzTimeout(150_000));
  const guard = new ProcessGuard();
  let site: FuzzSite;
  const genuine = new Map<string, Genuine>();
  /** Signed by someone the listener does not trust, or by the listener itself: never acted on. */
  const foreign: SignedEnvelope[] = [];
  const recent: Genuine[] = [];
  let enrolled = false;
  let runs = 0;
  let ms = 0;
  /** Every message thrown is counted with what became of it. */
  const handle = async (data: Buffer, streamSeq: number, lastAttempt = false): Promise<InboxResult> => {
    const r = await site.inbox.handle({ data, streamSeq, lastAttempt });
    countMessage(TARGET, r.kind === 'dropped' ? r.code : r.kind === 'receipt' ? `receipt:${r.code ?? r.outcome}` : `${r.kind}${'result' in r ? `:${r.result}` : ''}`);
    return r;
  };

  const attacker = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const attackerSpki = attacker.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const attackerSign = <M extends Message>(payload: M): SignedEnvelope<M> => ({
    payload,
    signature: { alg: 'ES256', keyId: 'hub', value: nodeSign('sha256', signingInput(payload), { key: attacker.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64') },
  });

  const register = (envelope: SignedEnvelope, variant?: VerifiedBad): Genuine => {
    const g: Genuine = { envelope, bytes: bytesOf(envelope), sent: false, ...(variant ? { variant } : {}) };
    genuine.set(payloadKey(envelope.payload), g);
    return g;
  };
  /** Genuine messages in the pool for the whole test: the hub-signed messages of the types the inbox does not take. */
  const lasting = new Set<Genuine>();
  const sent = (g: Genuine, streamSeq: number): void => {
    g.sent = true;
    g.streamSeq = streamSeq;
    recent.push(g);
    // Mutations start from the pool only, so what left it can be forgotten: memory stays flat in long runs.
    const old = recent.length > 8 ? recent.shift() : undefined;
    if (old) genuine.delete(payloadKey(old.envelope.payload));
  };
  const lookup = (bytes: Buffer): Genuine | undefined => {
    const dec = decodeEnvelope(bytes);
    return dec.ok ? genuine.get(payloadKey(dec.envelope.payload)) : undefined;
  };

  before(async function () {
    this.timeout(120_000);
    guard.install();
    site = await FuzzSite.create();
    const now = new Date();
    for (const type of protocolMessageTypes()) {
      const payload = payloadOf(type, { listenerId: SITE, now, sequence: 1 });
      // Every type the inbox does not take, signed by the hub itself: dropped with the inbox's code for it.
      if (INBOX_DISPOSITION[type] !== 'handled') {
        const g = register(await site.keyring.sign(payload));
        g.sent = true;
        lasting.add(g);
      }
      foreign.push(attackerSign(payload));
    }
    foreign.push(attackerSign<RootKekMessage>({ ...(await site.rootKekMessage()).payload, hubKey: attackerSpki }));
    foreign.push(await site.keys.sign(payloadOf(MESSAGE_TYPES.receipt, { listenerId: SITE, now, sequence: 1 })));
    foreign.push(await site.keys.sign(payloadOf(MESSAGE_TYPES.heartbeat, { listenerId: SITE, now, sequence: 1 })));
    foreign.push(attackerSign(await site.packagePayload()));
  });

  after(async () => {
    guard.uninstall();
    await site?.close();
    countRuns(TARGET, runs, ms);
    reportStats(TARGET);
  });

  /** The codes an unacted-on message may be dropped with, computed from its bytes alone. */
  function dropCodes(bytes: Buffer, g: Genuine | undefined): ErrorCode[] {
    const dec = decodeEnvelope(bytes);
    if (!dec.ok) return [dec.code];
    const type = dec.envelope.payload.type;
    // Before enrollment no rotation verifies; after it, a hub-signed one is wrapped under a KEK this site does not hold.
    if (type === MESSAGE_TYPES.rootKekRotation) return enrolled ? ['SIGNATURE_INVALID', 'KEK_UNKNOWN'] : ['NOT_ENROLLED'];
    // The same for a target KEK: it verifies first; a hub-signed one names a target with no token of its own here.
    if (type === MESSAGE_TYPES.targetKek) return enrolled ? ['SIGNATURE_INVALID', 'TARGET_UNKNOWN'] : ['NOT_ENROLLED'];
    if (type === MESSAGE_TYPES.targetKekRotation) return enrolled ? ['SIGNATURE_INVALID', 'TARGET_UNKNOWN'] : ['NOT_ENROLLED'];
    // A ceremony verifies against the hub key it carries (the generator's is not the pinned one), like a root KEK; a mutated copy may fail earlier.
    if (type === MESSAGE_TYPES.rootKekCeremony) return ['SIGNATURE_INVALID', 'HUB_KEY_NOT_PINNED', 'PACKAGE_WRONG_LISTENER', 'CEREMONY_UNEXPECTED'];
    const disposition = INBOX_DISPOSITION[type];
    if (disposition !== 'handled') return [disposition];
    if (type === MESSAGE_TYPES.rootKek) return g ? ['SIGNATURE_INVALID'] : ['SIGNATURE_INVALID', 'HUB_KEY_NOT_PINNED'];
    return enrolled ? ['SIGNATURE_INVALID'] : ['NOT_ENROLLED'];
  }

  /** One message through the inbox, with every property checked on what it did. */
  async function deliver(bytes: Buffer, streamSeq: number, lastAttempt: boolean, context: string): Promise<InboxResult> {
    const pub0 = site.published.length;
    const signs0 = site.signs;
    const files0 = site.fileState();
    const g = lookup(bytes);
    let r: InboxResult;
    try {
      r = await handle(bytes, streamSeq, lastAttempt);
    } catch (err) {
      assert.fail(`${context}: the inbox threw ${err instanceof Error ? err.stack : String(err)}`);
    }
    const pub = site.published.slice(pub0);
    const what = `${context}: ${JSON.stringify(r)} for ${bytes.length} bytes ${JSON.stringify(bytes.subarray(0, 300).toString('utf8'))}`;
    if (r.kind === 'dropped') {
      assertStableCode(r.code, what);
      assert.ok(dropCodes(bytes, g).includes(r.code), `${what}: dropped with ${r.code}, expected one of ${dropCodes(bytes, g).join(', ')}`);
      assert.equal(pub.length, 0, `${what}: a dropped message earns no answer`);
      assert.equal(site.signs, signs0, `${what}: a dropped message earns no signature`);
      assert.deepEqual(site.fileState(), files0, `${what}: a dropped message changes no journal, checkpoint or hub-key file`);
      return r;
    }
    // Acted on: only what the hub signed, and then never as a first delivery here (those are deferred).
    assert.ok(g, `${what}: acted on a payload the hub never signed`);
    assert.ok(g.sent, `${what}: test error, a first copy of a genuine message was not deferred`);
    const type = g.envelope.payload.type;
    if (type === MESSAGE_TYPES.keyPackage) {
      const pkg = g.envelope.payload as KeyPackage;
      const known = site.journal.get(pkg.id);
      assert.deepEqual(site.fileState(), files0, `${what}: a copy of a package already handled changes no file`);
      if (r.kind === 'redelivered') {
        assert.ok(known && known.streamSeq === streamSeq && known.sha256 === packageSha256(bytes), `${what}: only a true redelivery re-sends the stored receipt`);
        assert.equal(site.signs, signs0, `${what}: a redelivery re-sends, it does not sign again`);
        assert.equal(pub.length, 1);
        return r;
      }
      const code: ErrorCode = known ? 'PACKAGE_REPLAYED' : VERIFIED_BAD[g.variant ?? 'wrongListener'].code;
      assert.deepEqual(r, { kind: 'receipt', outcome: 'rejected', code, packageId: pkg.id }, what);
      assert.equal(pub.length, 1, `${what}: one receipt`);
      assert.equal(site.signs, signs0 + 1);
      const receipt = pub[0].envelope.payload as Receipt;
      assert.equal(receipt.packageSha256, packageSha256(bytes), `${what}: the receipt names the bytes it answers`);
      assert.equal(receipt.error?.code, code);
      return r;
    }
    if (type === MESSAGE_TYPES.rootKek) {
      assert.deepEqual(r, { kind: 'root_kek', result: 'present' }, what);
      assert.deepEqual(
        pub.map((p) => p.kind),
        ['kek_confirm'],
        what,
      );
      assert.deepEqual(site.fileState(), files0, what);
      return r;
    }
    if (type === AUDIT_CHECKPOINT_TYPE) {
      assert.deepEqual(r, { kind: 'checkpoint', result: 'present', seq: (g.envelope.payload as { seq: number }).seq }, what);
      assert.equal(pub.length, 0, what);
      assert.deepEqual(site.fileState(), files0, what);
      return r;
    }
    assert.fail(`${what}: acted on a ${type}`);
  }

  /** Throws one batch of cases; genuine first copies are kept back and returned (sent later, as replays). */
  async function throwCases(
    cases: Case[],
    pool: Array<{ envelope: SignedEnvelope; g?: Genuine }>,
    extraP: number,
    label: string,
  ): Promise<Array<{ bytes: Buffer; streamSeq: number; lastAttempt: boolean }>> {
    const deferred: Array<{ bytes: Buffer; streamSeq: number; lastAttempt: boolean }> = [];
    for (const [i, c] of cases.entries()) {
      // The first entries of the pool are the fresh messages: chosen more often.
      const idx = c.base % (pool.length + extraP);
      const base = pool[idx < pool.length ? idx : 0];
      const donor = pool[(idx + 1) % pool.length].envelope.signature;
      const bytes = c.plain ? (base.g?.bytes ?? bytesOf(base.envelope)) : applyRecipe(base.envelope, c.recipe, { donor });
      const streamSeq = c.plain && c.redeliver && base.g?.streamSeq ? base.g.streamSeq : site.nextStreamSeq();
      const g = lookup(bytes);
      if (g && !g.sent) {
        deferred.push({ bytes, streamSeq, lastAttempt: c.lastAttempt });
        continue;
      }
      await deliver(bytes, streamSeq, c.lastAttempt, `${label} case ${i} (${c.plain ? 'replay' : JSON.stringify(c.recipe).slice(0, 400)})`);
    }
    return deferred;
  }

  it('before enrollment nothing verifies: every message is dropped, no hub key is pinned, the transport key survives; then the genuine root KEK installs', async () => {
    const t0 = Date.now();
    const rootKek = register(await site.rootKekMessage());
    const early = register((await site.hubSign([await site.packagePayload()], false))[0]);
    const checkpoint = register(await site.nextCheckpoint());
    // Genuine, but nothing can verify them before enrollment: they are dropped like the rest, not held back.
    early.sent = true;
    checkpoint.sent = true;
    let deferred: Array<{ bytes: Buffer; streamSeq: number; lastAttempt: boolean }> = [];
    await fc.assert(
      fc.asyncProperty(fc.array(caseArb, { minLength: 10, maxLength: 30 }), async (cases) => {
        runs++;
        const pool = [
          { envelope: rootKek.envelope, g: rootKek },
          { envelope: early.envelope },
          { envelope: checkpoint.envelope },
          ...[...lasting].map((g) => ({ envelope: g.envelope, g })),
          ...foreign.map((envelope) => ({ envelope })),
        ];
        deferred.push(...(await throwCases(cases, pool, 3, 'not enrolled')));
        assert.equal(site.hubKeys.load(), undefined, 'no hub key pinned');
        assert.ok(await site.transportKeyPresent(), 'the transport key is still there to receive the real root KEK');
        assert.equal(await site.keys.rootKekCount(), 0, 'no root KEK installed');
        site.logs.splice(0);
        guard.check('not enrolled');
      }),
      fuzzParams(100),
    );
    const r = await handle(rootKek.bytes, site.nextStreamSeq());
    assert.deepEqual(r, { kind: 'root_kek', result: 'stored' }, 'the genuine root KEK still installs');
    // It stays in the pool: copies of it are replays from now on, for the whole test.
    rootKek.sent = true;
    lasting.add(rootKek);
    enrolled = true;
    assert.equal(site.published.at(-1)?.kind, 'kek_confirm');
    assert.ok(!(await site.transportKeyPresent()), 'the transport key is retired once the root KEK is in');
    // What was held back is now a replay of something the site has.
    for (const d of deferred.splice(0)) await deliver(d.bytes, d.streamSeq, d.lastAttempt, 'deferred root-KEK copy');
    deferred = [];
    guard.check('enrollment');
    ms += Date.now() - t0;
  });

  it('enrolled: every bad message is dropped with its code and leaves no trace in the journal, the checkpoint store or the token; a valid package afterwards imports', async () => {
    assert.ok(enrolled, 'the previous test enrolled the site');
    const t0 = Date.now();
    const badVariants = Object.keys(VERIFIED_BAD) as VerifiedBad[];
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          merkle: fc.boolean(),
          bad: fc.subarray(badVariants, { maxLength: 2 }),
          cases: fc.array(caseArb, { minLength: 20, maxLength: 45 }),
        }),
        async ({ merkle, bad, cases }) => {
          runs++;
          const objects0 = await site.objectCounts();
          // The hub's traffic of this run: a fresh package P (with, when batch-signed, a sibling for another site),
          // verified packages that must be refused with their codes, and the next audit checkpoint.
          const variants: VerifiedBad[] = merkle && !bad.includes('wrongListener') ? [...bad, 'wrongListener'] : bad;
          const payloads = [await site.packagePayload(), ...(await Promise.all(variants.map((v) => site.packagePayload(v))))];
          const envelopes = await site.hubSign(payloads, merkle);
          const p = register(envelopes[0]);
          const refused = envelopes.slice(1).map((e, i) => register(e, variants[i]));
          const cp = register(await site.nextCheckpoint());

          for (const g of refused) {
            const variant = g.variant!;
            const expect = VERIFIED_BAD[variant];
            const pkg = g.envelope.payload as KeyPackage;
            const entries = site.journal.size;
            const pub0 = site.published.length;
            const streamSeq = site.nextStreamSeq();
            const r = await handle(g.bytes, streamSeq);
            assert.deepEqual(
              r,
              { kind: 'receipt', outcome: expect.outcome, code: expect.code, packageId: pkg.id },
              `hub-signed ${variant} package (${pkg.listenerId === OTHER_SITE ? 'for another site' : 'for this site'})`,
            );
            const receipt = site.published[pub0].envelope.payload as Receipt;
            assert.equal(receipt.error?.code, expect.code);
            assert.equal(site.journal.size, entries + (expect.journaled ? 1 : 0), `${variant}: journaled only once its sequence was claimed`);
            sent(g, streamSeq);
          }

          const pool = [
            { envelope: p.envelope, g: p },
            { envelope: cp.envelope, g: cp },
            ...[...recent, ...lasting].map((g) => ({ envelope: g.envelope, g })),
            ...foreign.map((envelope) => ({ envelope })),
          ];
          const deferred = await throwCases(cases, pool, 6, 'enrolled');
          assert.deepEqual(await site.objectCounts(), objects0, 'no object created or left behind in the site token by anything refused');

          // The valid package afterwards imports, and its receipt names its bytes and the KCV computed at the target.
          const pkg = p.envelope.payload as KeyPackage;
          const pub0 = site.published.length;
          const streamSeq = site.nextStreamSeq();
          const r = await handle(p.bytes, streamSeq);
          assert.deepEqual(r, { kind: 'receipt', outcome: 'imported', code: undefined, packageId: pkg.id }, 'the valid package sent afterwards imports');
          const receipt = site.published[pub0].envelope as SignedEnvelope<Receipt>;
          assert.ok(verifyEnvelope(receipt, await site.keys.identitySpki()), 'its receipt is signed by the listener identity key');
          assert.equal(receipt.payload.packageSha256, packageSha256(p.bytes));
          assert.equal(receipt.payload.kcv, pkg.key.kcv);
          assert.equal(site.journal.get(pkg.id)?.sha256, packageSha256(p.bytes));
          assert.equal((await site.objectCounts()).token, objects0.token + 1, 'one object in the token: the key');
          sent(p, streamSeq);
          // And the valid checkpoint is kept.
          const c = await handle(cp.bytes, site.nextStreamSeq());
          assert.deepEqual(c, { kind: 'checkpoint', result: 'stored', seq: (cp.envelope.payload as { seq: number }).seq }, 'the valid checkpoint sent afterwards is kept');
          sent(cp, 0);

          // What was held back is a replay now.
          for (const d of deferred) await deliver(d.bytes, d.streamSeq, d.lastAttempt, 'deferred copy of a fresh message');
          // Keep the token small for long runs: the imported key is not needed any more (the journal remembers the package).
          assert.ok(await site.target.destroy({ keyId: pkg.key.id, version: pkg.key.version }));
          assert.deepEqual(await site.objectCounts(), objects0);
          // Nothing key-like in the logs, whatever was thrown.
          const logs = site.logs.splice(0).join('');
          assert.ok(!logs.includes(pkg.wrapping.blob), 'no wrapped key in the logs');
          guard.check('enrolled');
        },
      ),
      fuzzParams(600),
    );
    ms += Date.now() - t0;
  });
});
