import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { commandSha256, encodeEnvelope, MESSAGE_TYPES, type CommandReceipt, type KeyCommand, type KeyPackage, type Message, type Receipt, type SignedEnvelope } from '@keyhub/protocol';
import type { InboxResult } from '@keyhub/listener/dist/inbox';
import { Tombstones } from '@keyhub/listener/dist/state/tombstones';
import { objectId } from '@keyhub/listener/dist/targets/pkcs11-target';
import { FuzzSite, OTHER_SITE, SITE } from '../fuzz/lib/site';

/**
 * The listener's side of lifecycle commands, in process on a real SoftHSM2
 * token with the real hub signing key: the inbox, the command handler, the
 * tombstones and command journal in a home directory, the PKCS#11 target.
 * What each refusal answers, that nothing is run twice, that a newer command
 * is not undone by an older one, and that the token holds what the receipt
 * says.
 */
describe('key commands at the listener: refusals, replays, ordering, tombstones (SoftHSM2)', function () {
  this.timeout(60_000);
  let site: FuzzSite;
  let sequence = 100_000;

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

  async function imported(): Promise<KeyPackage> {
    const pkg = await site.packagePayload();
    const r = await deliver(await site.keyring.sign(pkg));
    assert.equal(r.kind === 'receipt' && r.outcome, 'imported');
    return pkg;
  }

  function command(pkg: KeyPackage, action: KeyCommand['action'], over: Partial<KeyCommand> = {}): KeyCommand {
    const now = Date.now();
    return {
      type: MESSAGE_TYPES.keyCommand,
      id: randomUUID(),
      listenerId: SITE,
      target: 'hsm',
      issuedAt: new Date(now).toISOString(),
      ...(action === 'compromise' || action === 'destroy' ? {} : { expiresAt: new Date(now + 3_600_000).toISOString() }),
      action,
      reason: 'operator',
      key: { id: pkg.key.id, name: pkg.key.name, version: pkg.key.version, kcv: pkg.key.kcv, usages: pkg.key.usages },
      ...over,
    };
  }

  async function flags(pkg: KeyPackage): Promise<Record<string, boolean> | undefined> {
    const [h] = await site.siteHsm.findKeys({ id: objectId({ keyId: pkg.key.id, version: pkg.key.version }), token: true });
    if (!h) return undefined;
    const i = await site.siteHsm.keyInfo(h);
    return { encrypt: i.encrypt, decrypt: i.decrypt, sign: i.sign, verify: i.verify, wrap: i.wrap, unwrap: i.unwrap };
  }

  const lastReceipt = (): CommandReceipt => site.published.filter((p) => p.kind === 'command_receipt').at(-1)!.envelope.payload as CommandReceipt;
  const OFF = { encrypt: false, decrypt: false, sign: false, verify: false, wrap: false, unwrap: false };

  it('deactivate keeps only the processing usages; the receipt names the command bytes it answers', async () => {
    const pkg = await imported();
    const env = await site.keyring.sign(command(pkg, 'deactivate'));
    const r = await deliver(env);
    assert.deepEqual(r, { kind: 'command', commandId: env.payload.id, action: 'deactivate', outcome: 'done', effect: 'protect_usages_off', code: undefined });
    assert.deepEqual(await flags(pkg), { ...OFF, decrypt: true });
    assert.equal(lastReceipt().commandSha256, commandSha256(encodeEnvelope(env)));
  });

  it('a command copy is answered with the journaled receipt and not run again; a newer command is not undone by an older one arriving late', async () => {
    const pkg = await imported();
    const older = await site.keyring.sign(command(pkg, 'suspend', { issuedAt: new Date(Date.now() - 60_000).toISOString() }));
    const newer = await site.keyring.sign(command(pkg, 'resume'));
    assert.equal((await deliver(newer)).kind, 'command');
    const first = lastReceipt();
    const signs = site.signs;
    assert.deepEqual(await deliver(newer), { kind: 'command_replayed', commandId: newer.payload.id, action: 'resume' });
    assert.equal(site.signs, signs, 'a replay earns no new signature');
    assert.deepEqual(lastReceipt(), first, 'the same receipt again');
    const late = await deliver(older);
    assert.equal(late.kind === 'command' && late.code, 'COMMAND_SUPERSEDED');
    assert.equal(lastReceipt().outcome, 'rejected');
    assert.deepEqual(await flags(pkg), { ...OFF, encrypt: true, decrypt: true }, 'still usable: the late suspend changed nothing');
  });

  it('refuses with a signed, stable code: expired, addressed elsewhere, unknown target', async () => {
    const pkg = await imported();
    const cases: Array<[Partial<KeyCommand>, string]> = [
      [{ expiresAt: new Date(Date.now() - 1000).toISOString() }, 'COMMAND_EXPIRED'],
      [{ listenerId: OTHER_SITE }, 'PACKAGE_WRONG_LISTENER'],
      [{ target: 'nope' }, 'TARGET_UNKNOWN'],
    ];
    for (const [over, code] of cases) {
      const r = await deliver(await site.keyring.sign(command(pkg, 'suspend', over)));
      assert.equal(r.kind === 'command' && `${r.outcome}:${r.code}`, `rejected:${code}`);
    }
    assert.deepEqual(await flags(pkg), { ...OFF, encrypt: true, decrypt: true }, 'none of them touched the key');
  });

  it('compromise switches every usage off and leaves a tombstone that survives a restart; any later package of the version is refused and nothing imported; only destroy still applies', async () => {
    const pkg = await imported();
    const r = await deliver(await site.keyring.sign(command(pkg, 'compromise')));
    assert.equal(r.kind === 'command' && r.effect, 'usages_off');
    assert.deepEqual(await flags(pkg), OFF);
    assert.ok(Tombstones.open(site.home.path).has(pkg.key.id, pkg.key.version), 'on disk');

    // The same version again, as a package queued before the compromise would arrive: refused, not imported.
    const objects = await site.objectCounts();
    const again = await deliver(await site.keyring.sign({ ...pkg, id: randomUUID(), sequence: ++sequence }));
    assert.equal(again.kind === 'receipt' && `${again.outcome}:${again.code}`, 'rejected:KEY_VERSION_REVOKED');
    assert.equal((site.published.at(-1)!.envelope.payload as Receipt).error?.code, 'KEY_VERSION_REVOKED');
    assert.deepEqual(await site.objectCounts(), objects, 'nothing imported');

    const resume = await deliver(await site.keyring.sign(command(pkg, 'resume')));
    assert.equal(resume.kind === 'command' && resume.code, 'KEY_VERSION_REVOKED', 'a compromised version cannot be resumed');
    assert.deepEqual(await flags(pkg), OFF);
    const destroy = await deliver(await site.keyring.sign(command(pkg, 'destroy')));
    assert.equal(destroy.kind === 'command' && destroy.effect, 'destroyed');
    assert.equal(await flags(pkg), undefined, 'gone from the token');
    const gone = await deliver(await site.keyring.sign(command(pkg, 'destroy')));
    assert.equal(gone.kind === 'command' && `${gone.outcome}:${gone.effect}`, 'done:absent');
  });

  it('a compromise for a version the site never held still tombstones it: its package, arriving afterwards, is refused', async () => {
    const pkg = await site.packagePayload();
    const r = await deliver(await site.keyring.sign(command(pkg, 'compromise')));
    assert.equal(r.kind === 'command' && `${r.outcome}:${r.effect}`, 'done:absent');
    const late = await deliver(await site.keyring.sign({ ...pkg, sequence: ++sequence }));
    assert.equal(late.kind === 'receipt' && `${late.outcome}:${late.code}`, 'rejected:KEY_VERSION_REVOKED');
    assert.equal(await flags(pkg), undefined);
  });
});
