/**
 * The listener's import gates (listener/src/targets/import-slots.ts): a
 * keystore's own slots fill up with its backlog while PKCS#11 targets keep
 * sharing importConcurrency, and the consumer takes both.
 */
import { strict as assert } from 'node:assert';
import { consumerConcurrency, ImportGates } from '@keyhub/listener/dist/targets/import-slots';
import { keystoreImportSlots } from '@keyhub/listener/dist/targets/keystore-target';

/** Runs `n` imports of `target` through the gates and reports the most that ran at once. */
async function peak(gates: ImportGates, target: { name: string; importSlots?: number }, n: number, release: Promise<void>): Promise<{ peak: number; all: Promise<unknown> }> {
  let running = 0;
  let most = 0;
  const all = Promise.all(
    Array.from({ length: n }, () =>
      gates.run(target, async () => {
        running++;
        most = Math.max(most, running);
        await release;
        running--;
      }),
    ),
  );
  // Let every import that can start do so.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return { peak: most, all };
}

describe('import gates: keystore slots of their own, PKCS#11 targets sharing importConcurrency', () => {
  it('PKCS#11 and cloud targets share importConcurrency; a keystore gets its own slots beside them', async () => {
    const gates = new ImportGates(4);
    let open!: () => void;
    const release = new Promise<void>((r) => (open = r));
    const hsmA = await peak(gates, { name: 'hsm-a' }, 10, release);
    const hsmB = await peak(gates, { name: 'hsm-b' }, 10, release);
    const ks = await peak(gates, { name: 'ks', importSlots: 64 }, 100, release);
    assert.equal(hsmA.peak, 4, 'the first token took the shared slots');
    assert.equal(hsmB.peak, 0, 'another token waits for the shared slots, as before');
    assert.equal(ks.peak, 64, "the keystore's backlog fills its own slots, not more");
    open();
    await Promise.all([hsmA.all, hsmB.all, ks.all]);
  });

  it('a failed import frees its slot for the next one', async () => {
    const gates = new ImportGates(1);
    const t = { name: 'hsm' };
    await assert.rejects(
      gates.run(t, async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await gates.run(t, async () => 'next'), 'next');
  });

  it('the consumer takes importConcurrency plus every keystore slot; slots follow the PBE cost', () => {
    assert.equal(consumerConcurrency(4, [{}, { importSlots: 128 }, { importSlots: 6 }]), 138);
    assert.equal(consumerConcurrency(4, [{}, {}]), 4);
    assert.equal(keystoreImportSlots({ type: 'pkcs12', pkcs12KeyIterations: 10_000, jceksIterations: 10_000 }), 128);
    assert.equal(keystoreImportSlots({ type: 'jceks', pkcs12KeyIterations: 10_000, jceksIterations: 10_000 }), 128);
    assert.equal(keystoreImportSlots({ type: 'jceks', pkcs12KeyIterations: 10_000, jceksIterations: 200_000 }), 6, "JCEKS at Java's 200,000: a rewrite of 3 entries, seconds of PBE");
    assert.equal(keystoreImportSlots({ type: 'jceks', pkcs12KeyIterations: 10_000, jceksIterations: 5_000_000 }), 4, 'never below the shared default');
  });
});
