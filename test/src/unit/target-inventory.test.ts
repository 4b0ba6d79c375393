import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { KeyhubError } from '@keyhub/shared';
import { inventoryItemSchema } from '@keyhub/protocol';
import { classifyDrift, type ExpectedItem, type ReportedItem } from '@keyhub/hub/dist/domain/drift';
import { collectTargetInventory } from '@keyhub/listener/dist/inventory/collect';
import { indexKey, InventoryIndex } from '@keyhub/listener/dist/inventory/inventory-index';
import { indexTargets } from '@keyhub/listener/dist/inventory/indexed-targets';
import { objectId } from '@keyhub/listener/dist/targets/pkcs11-target';
import type { InventoryItem, Target } from '@keyhub/listener/dist/targets/target';

const KEY = '0b5e2a7c-1f4e-4b8a-9c3d-2e6f7a8b9c0d';
const OTHER = '7d2c9b1a-3e4f-4a5b-8c6d-1e2f3a4b5c6d';
const oid = (keyId: string, version: number) => objectId({ keyId, version }).toString('hex');

/** A keystore, cloud or TR-31 target as the reporter sees it: only inventory() matters here. */
function fakeTarget(name: string, kind: string, inventory: () => Promise<InventoryItem[]>): Target {
  const no = () => Promise.reject(new Error('not used'));
  return { name, kind, import: no, disable: no, destroy: no, suspend: no, resume: no, deactivate: no, compromise: no, inventory, health: () => Promise.resolve({ healthy: true }) };
}

describe('inventory of keystore, cloud and TR-31 targets (collectTargetInventory)', () => {
  let home = '';
  let index: InventoryIndex;
  beforeEach(() => {
    home = mkdtempSync(path.join(tmpdir(), 'keyhub-tinv-'));
    index = InventoryIndex.open(home);
  });
  afterEach(() => {
    index.close();
    rmSync(home, { recursive: true, force: true });
  });

  it("each entry carries the version's identity, a token-shaped objectId, the index's KCV for a keystore, and the target's own KCV where it vouches for one", async () => {
    index.record({ target: 'ks', objectId: oid(KEY, 1), kcv: 'abc123', usages: ['encrypt'] });
    const ks = fakeTarget('ks', 'keystore', () => Promise.resolve([{ keyId: KEY, version: 1, label: 'app.v1', algorithm: 'SECRET', enabled: true }]));
    const cloud = fakeTarget('kms', 'aws-kms', () => Promise.resolve([{ keyId: OTHER, version: 2, label: 'arn:aws:kms:x#1', algorithm: 'AES-256', enabled: false, kcv: 'DEF456' }]));
    const seen = new Set<string>();
    const items = [...(await collectTargetInventory(ks, index, seen))!, ...(await collectTargetInventory(cloud, index, seen))!];
    assert.deepEqual(items, [
      { target: 'ks', objectId: oid(KEY, 1), keyId: KEY, version: 1, label: 'app.v1', kcv: 'abc123', state: 'active' },
      { target: 'kms', objectId: oid(OTHER, 2), keyId: OTHER, version: 2, label: 'arn:aws:kms:x#1', kcv: 'def456', state: 'disabled' },
    ]);
    for (const i of items) assert.ok(inventoryItemSchema.safeParse(i).success);
    assert.deepEqual([...seen].sort(), [indexKey('kms', oid(OTHER, 2)), indexKey('ks', oid(KEY, 1))].sort());
  });

  it('an entry nobody recorded has no KCV (never a made-up one); a malformed one is left out', async () => {
    const ks = fakeTarget('ks', 'keystore', () =>
      Promise.resolve([
        { keyId: KEY, version: 3, label: 'app.v3', algorithm: 'SECRET', enabled: true, kcv: 'not-a-kcv' },
        { keyId: 'not-a-uuid', version: 1, label: 'x', algorithm: 'SECRET', enabled: true },
      ]),
    );
    const items = await collectTargetInventory(ks, index, new Set());
    assert.deepEqual(items, [{ target: 'ks', objectId: oid(KEY, 3), keyId: KEY, version: 3, label: 'app.v3', state: 'active' }]);
  });

  it('a target that cannot be read now is left out (undefined), not reported empty', async () => {
    const down = fakeTarget('kms', 'aws-kms', () => Promise.reject(new KeyhubError('CLOUD_UNAVAILABLE', 'down')));
    assert.equal(await collectTargetInventory(down, index, new Set()), undefined);
    const empty = fakeTarget('ks', 'keystore', () => Promise.resolve([]));
    assert.deepEqual(await collectTargetInventory(empty, index, new Set()), [], 'a readable empty keystore is an empty list');
  });

  it('the index keeps one entry per target: the same version in a token and a keystore keeps both KCVs; pruning touches only targets read', () => {
    index.record({ target: 'hsm', objectId: oid(KEY, 1), kcv: '111111', usages: ['encrypt'] });
    index.record({ target: 'ks', objectId: oid(KEY, 1), kcv: '222222', usages: ['encrypt'] });
    assert.equal(index.find(oid(KEY, 1), ['hsm'])?.kcv, '111111');
    assert.equal(index.get('ks', oid(KEY, 1))?.kcv, '222222');
    // The keystore was not read (its file could not be opened): its entry stays; the token was read and no longer holds the object.
    index.retainOnly(new Set(), new Set(['hsm']));
    assert.equal(index.find(oid(KEY, 1), ['hsm']), undefined);
    assert.equal(index.get('ks', oid(KEY, 1))?.kcv, '222222');
    index.close();
    const reopened = InventoryIndex.open(home);
    assert.equal(reopened.get('ks', oid(KEY, 1))?.kcv, '222222', 'kept across a restart');
    reopened.close();
  });

  it("indexTargets records a keystore import's KCV under that target and forgets it on destroy", async () => {
    const ks: Target = {
      ...fakeTarget('ks', 'keystore', () => Promise.resolve([])),
      import: () => Promise.resolve({ outcome: 'imported', kcv: 'abcdef' }),
      destroy: () => Promise.resolve(true),
    };
    const wrapped = indexTargets(new Map([['ks', ks]]), index).get('ks')!;
    const key = { id: KEY, name: 'app', version: 1, algorithm: 'AES-256' as const, length: 32, usages: ['encrypt' as const], exportable: false, kcv: 'abcdef' };
    await wrapped.import({ key, wrapped: { kekId: KEY, kekVersion: 1, mechanism: 'AES-KWP', blob: Buffer.alloc(40) } });
    assert.equal(index.get('ks', oid(KEY, 1))?.kcv, 'abcdef');
    await wrapped.destroy({ keyId: KEY, version: 1 });
    assert.equal(index.get('ks', oid(KEY, 1)), undefined);
  });
});

function expected(over: Partial<ExpectedItem> = {}): ExpectedItem {
  return { keyId: KEY, version: 1, kcv: 'abc123', versionState: 'active', destroyedHere: false, settled: true, keyVersionId: 'kv-1', distributionId: 'd-1', ...over };
}
function reported(over: Partial<ReportedItem> = {}): ReportedItem {
  return { objectId: oid(KEY, 1), keyId: KEY, version: 1, label: 'app.v1', kcv: 'abc123', state: 'active', ...over };
}
const at = (target: string, e: ExpectedItem | null, r: ReportedItem | null) => classifyDrift({ listenerId: 'site-a', target, expected: e, reported: r }).map((f) => f.kind);

describe('drift for keystore, cloud and TR-31 targets', () => {
  it('a keystore entry removed by suspend, deactivate or compromise is no drift, whether or not the hub recorded the copy gone', () => {
    for (const versionState of ['suspended', 'deactivated', 'compromised']) {
      assert.deepEqual(at('ks', expected({ versionState }), null), [], versionState);
      assert.deepEqual(at('ks', expected({ versionState, destroyedHere: true }), null), [], `${versionState}, copy recorded gone`);
    }
  });

  it('a keystore entry still there for a suspended or deactivated version is drift: a keystore has no usage flags, so the key is still usable', () => {
    assert.deepEqual(at('ks', expected({ versionState: 'suspended' }), reported()), ['state_mismatch']);
    assert.deepEqual(at('ks', expected({ versionState: 'deactivated' }), reported()), ['state_mismatch']);
    assert.deepEqual(at('ks', expected({ destroyedHere: true }), reported()), ['state_mismatch'], 'removed by a command, back in the file');
  });

  it('a cloud version disabled by deactivate or suspend is no drift; disabled while active is', () => {
    assert.deepEqual(at('kms', expected({ versionState: 'deactivated' }), reported({ state: 'disabled', label: 'arn#1' })), []);
    assert.deepEqual(at('kms', expected({ versionState: 'suspended' }), reported({ state: 'disabled', label: 'arn#1' })), []);
    assert.deepEqual(at('kms', expected(), reported({ state: 'disabled' })), ['state_mismatch']);
  });

  it('an entry deleted behind the listener is missing; a keystore entry without a KCV (index lost) is no mismatch, another KCV is', () => {
    assert.deepEqual(at('ks', expected(), null), ['missing']);
    assert.deepEqual(at('ks', expected(), reported({ kcv: null })), []);
    assert.deepEqual(at('pay', expected(), reported({ kcv: 'ffffff' })), ['kcv_mismatch']);
  });
});
