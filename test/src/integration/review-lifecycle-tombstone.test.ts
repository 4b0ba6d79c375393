import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { encodeEnvelope, MESSAGE_TYPES, type KeyCommand, type KeyPackage, type Message, type SignedEnvelope } from '@keyhub/protocol';
import type { InboxResult } from '@keyhub/listener/dist/inbox';
import { Tombstones } from '@keyhub/listener/dist/state/tombstones';
import { objectId } from '@keyhub/listener/dist/targets/pkcs11-target';
import { FuzzSite, SITE } from '../fuzz/lib/site';

/**
 * Review of issue 11 (declarative distribution): a site that leaves a
 * distribution policy gets a destroy (reason 'policy') for a version that
 * lives on. That destroy must keep out the packages queued before it, but
 * must not end the version at the site for good, as a compromise or a
 * destroy of the version does: the site may match the policy again (a label
 * set back, a placement moved to another target of the same site), and its
 * next package must import. A destroy of the version itself still refuses
 * every later package. Real SoftHSM2 token, real hub signing key.
 */
describe('review: a destroy because the site left a policy does not bar the version for good (SoftHSM2)', function () {
  this.timeout(60_000);
  let site: FuzzSite;
  let sequence = 200_000;

  before(async () => {
    site = await FuzzSite.create();
    const r = await deliver(await site.rootKekMessage());
    assert.deepEqual(r, { kind: 'root_kek', result: 'stored' });
  });

  after(async () => {
    await site?.close();
  });

  function deliver(envelope: SignedEnvelope<Message>): Promise<InboxResult> {
    return site.inbox.handle({ data: Buffer.from(encodeEnvelope(envelope)), streamSeq: site.nextStreamSeq() });
  }

  function destroy(pkg: KeyPackage, reason: KeyCommand['reason']): KeyCommand {
    return {
      type: MESSAGE_TYPES.keyCommand,
      id: randomUUID(),
      listenerId: SITE,
      target: 'hsm',
      issuedAt: new Date().toISOString(),
      action: 'destroy',
      reason,
      key: { id: pkg.key.id, name: pkg.key.name, version: pkg.key.version, kcv: pkg.key.kcv, usages: pkg.key.usages },
    };
  }

  async function present(pkg: KeyPackage): Promise<boolean> {
    return (await site.siteHsm.findKeys({ id: objectId({ keyId: pkg.key.id, version: pkg.key.version }), token: true })).length > 0;
  }

  const later = async (pkg: KeyPackage): Promise<KeyPackage> => {
    await new Promise((r) => setTimeout(r, 5));
    return { ...pkg, id: randomUUID(), sequence: ++sequence, issuedAt: new Date().toISOString() };
  };

  it('refuses what was queued before the destroy, imports the version again when the site matches again', async () => {
    const pkg = await site.packagePayload();
    const first = await deliver(await site.keyring.sign(pkg));
    assert.equal(first.kind === 'receipt' && first.outcome, 'imported');
    await new Promise((r) => setTimeout(r, 5));
    const r = await deliver(await site.keyring.sign(destroy(pkg, 'policy')));
    assert.equal(r.kind === 'command' && `${r.outcome}:${r.effect}`, 'done:destroyed');
    assert.equal(await present(pkg), false);

    // A package of the version queued before the destroy, arriving after it: refused, nothing imported.
    const queuedBefore = await deliver(await site.keyring.sign({ ...pkg, id: randomUUID(), sequence: ++sequence }));
    assert.equal(queuedBefore.kind === 'receipt' && `${queuedBefore.outcome}:${queuedBefore.code}`, 'rejected:KEY_VERSION_REVOKED');
    assert.equal(await present(pkg), false);

    // The site matches the policy again: the hub's new package imports.
    const again = await deliver(await site.keyring.sign(await later(pkg)));
    assert.equal(again.kind === 'receipt' && again.outcome, 'imported');
    assert.equal(await present(pkg), true);

    // Kept on disk with its scope.
    const reopened = Tombstones.open(site.home.path);
    assert.equal(reopened.has(pkg.key.id, pkg.key.version, 'hsm', pkg.issuedAt), true);
    assert.equal(reopened.has(pkg.key.id, pkg.key.version, 'hsm', new Date(Date.now() + 60_000).toISOString()), false);
    reopened.close();
  });

  it('a destroy of the version itself still refuses every later package', async () => {
    const pkg = { ...(await site.packagePayload()), sequence: ++sequence };
    const first = await deliver(await site.keyring.sign(pkg));
    assert.equal(first.kind === 'receipt' && first.outcome, 'imported');
    const r = await deliver(await site.keyring.sign(destroy(pkg, 'operator')));
    assert.equal(r.kind === 'command' && r.effect, 'destroyed');
    const after = await deliver(await site.keyring.sign(await later(pkg)));
    assert.equal(after.kind === 'receipt' && `${after.outcome}:${after.code}`, 'rejected:KEY_VERSION_REVOKED');
    assert.equal(await present(pkg), false);
  });
});
