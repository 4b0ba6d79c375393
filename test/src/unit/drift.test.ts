import { strict as assert } from 'node:assert';
import { classifyDrift, compareInventories, countByKind, expectationFor, type ExpectedItem, type ReportedItem } from '@keyhub/hub/dist/domain/drift';

const KEY = '0b5e2a7c-1f4e-4b8a-9c3d-2e6f7a8b9c0d';
const OTHER = '7d2c9b1a-3e4f-4a5b-8c6d-1e2f3a4b5c6d';

function expected(over: Partial<ExpectedItem> = {}): ExpectedItem {
  return { keyId: KEY, version: 1, kcv: 'abc123', versionState: 'active', destroyedHere: false, settled: true, keyVersionId: 'kv-1', distributionId: 'd-1', ...over };
}
function reported(over: Partial<ReportedItem> = {}): ReportedItem {
  return { objectId: 'aa'.repeat(20), keyId: KEY, version: 1, label: 'k.v1', kcv: 'abc123', state: 'active', ...over };
}
const at = (e: ExpectedItem | null, r: ReportedItem | null) => classifyDrift({ listenerId: 'site-a', target: 'hsm', expected: e, reported: r }).map((f) => f.kind);

describe('drift: expected against reported', () => {
  it('a healthy item is no finding', () => {
    assert.deepEqual(at(expected(), reported()), []);
  });

  it('missing: a settled active version the site does not report', () => {
    assert.deepEqual(at(expected(), null), ['missing']);
    const [f] = classifyDrift({ listenerId: 'site-a', target: 'hsm', expected: expected(), reported: null });
    assert.equal(f.distributionId, 'd-1', 'the finding names the distribution to re-push');
    assert.equal(f.item, `${KEY}/v1`);
  });

  it('in flight (queued, sent, failed, or confirmed after the snapshot) is neither missing nor anything else', () => {
    assert.deepEqual(at(expected({ settled: false }), null), []);
    assert.deepEqual(at(expected({ settled: false }), reported({ kcv: 'ffffff', state: 'disabled' })), []);
  });

  it('extra: an object the hub never sent there, with or without a Keyhub identity', () => {
    assert.deepEqual(at(null, reported()), ['extra']);
    const [planted] = classifyDrift({ listenerId: 'site-a', target: 'hsm', expected: null, reported: reported({ keyId: null, version: null, objectId: '01', label: 'planted' }) });
    assert.equal(planted.kind, 'extra');
    assert.equal(planted.item, 'object:01');
    assert.equal(planted.label, 'planted');
  });

  it('kcv_mismatch only when the site vouches for a different KCV; no KCV is not a mismatch', () => {
    assert.deepEqual(at(expected(), reported({ kcv: 'ffffff' })), ['kcv_mismatch']);
    assert.deepEqual(at(expected(), reported({ kcv: null })), []);
  });

  it('state_mismatch per SP 800-57 state: active must be usable, suspended/deactivated/compromised must not, destroyed must be gone', () => {
    assert.deepEqual(at(expected(), reported({ state: 'disabled' })), ['state_mismatch']);
    assert.deepEqual(at(expected({ versionState: 'suspended' }), reported({ state: 'active' })), ['state_mismatch']);
    assert.deepEqual(at(expected({ versionState: 'suspended' }), reported({ state: 'disabled' })), []);
    assert.deepEqual(at(expected({ versionState: 'deactivated' }), null), [], 'a target may have destroyed a deactivated key');
    assert.deepEqual(at(expected({ versionState: 'destroyed' }), reported()), ['state_mismatch']);
    assert.deepEqual(at(expected({ versionState: 'compromised' }), reported({ state: 'disabled' })), []);
    assert.deepEqual(at(expected({ versionState: 'compromised' }), reported({ state: 'active' })), ['state_mismatch']);
    assert.deepEqual(at(expected({ versionState: 'destroyed' }), null), []);
    assert.deepEqual(at(expected({ versionState: 'pre-activation' }), null), []);
  });

  it('a version destroyed at this site (confirmed destroy) must be gone here, whatever its state elsewhere', () => {
    assert.deepEqual(at(expected({ destroyedHere: true }), null), []);
    assert.deepEqual(at(expected({ destroyedHere: true }), reported()), ['state_mismatch']);
    assert.equal(classifyDrift({ listenerId: 'a', target: 't', expected: expected({ destroyedHere: true }), reported: reported() })[0].expectedState, 'destroyed');
  });

  it('both a KCV and a state mismatch on one item are two findings', () => {
    assert.deepEqual(at(expected(), reported({ kcv: 'ffffff', state: 'disabled' })).sort(), ['kcv_mismatch', 'state_mismatch']);
  });

  it('expectations cover every NIST state', () => {
    for (const s of ['pre-activation', 'active', 'suspended', 'deactivated', 'compromised', 'destroyed']) assert.ok(expectationFor(s));
    assert.deepEqual(expectationFor('active'), { presence: 'present', enabled: true });
  });

  it('the whole comparison joins on listener, target, key and version', () => {
    const findings = compareInventories(
      [
        { listenerId: 'site-a', target: 'hsm', item: expected() },
        { listenerId: 'site-a', target: 'hsm', item: expected({ keyId: OTHER, distributionId: 'd-2' }) },
        { listenerId: 'site-b', target: 'hsm', item: expected({ distributionId: 'd-3' }) },
      ],
      [
        { listenerId: 'site-a', target: 'hsm', item: reported() },
        // site-b reports it on another target: missing at hsm, extra at other.
        { listenerId: 'site-b', target: 'other', item: reported() },
        { listenerId: 'site-b', target: 'hsm', item: reported({ keyId: null, version: null, objectId: 'beef', label: 'planted' }) },
      ],
    );
    const shown = findings.map((f) => `${f.listenerId}/${f.target}/${f.kind}/${f.item}`).sort();
    assert.deepEqual(shown, [`site-a/hsm/missing/${OTHER}/v1`, 'site-b/hsm/extra/object:beef', `site-b/hsm/missing/${KEY}/v1`, `site-b/other/extra/${KEY}/v1`]);
    assert.deepEqual(countByKind(findings), { missing: 2, extra: 2, kcv_mismatch: 0, state_mismatch: 0 });
  });

  it('two objects with one Keyhub identity at one target: the second is extra', () => {
    const findings = compareInventories(
      [{ listenerId: 'a', target: 't', item: expected() }],
      [
        { listenerId: 'a', target: 't', item: reported({ objectId: '01' }) },
        { listenerId: 'a', target: 't', item: reported({ objectId: '02' }) },
      ],
    );
    assert.deepEqual(
      findings.map((f) => f.kind),
      ['extra'],
    );
  });

  it('20,000 healthy expected and reported items: no finding', () => {
    const e = [];
    const r = [];
    for (let s = 0; s < 200; s++) {
      for (let k = 0; k < 100; k++) {
        const keyId = `00000000-0000-4000-8000-${String(k).padStart(12, '0')}`;
        e.push({ listenerId: `s${s}`, target: 'hsm', item: expected({ keyId }) });
        r.push({ listenerId: `s${s}`, target: 'hsm', item: reported({ keyId }) });
      }
    }
    assert.deepEqual(compareInventories(e, r), []);
  });
});
