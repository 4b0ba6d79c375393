import { strict as assert } from 'node:assert';
import { diffPlacement, wantedVersion, type PlacementRule, type Site } from '@keyhub/hub/dist/domain/policy-diff';
import { applyLabelChange, labelDelta, matchesSelector } from '@keyhub/hub/dist/domain/label-selector';

const A: Site = { listenerId: 'site-a', target: 'hsm' };
const B: Site = { listenerId: 'site-b', target: 'hsm' };
const C: Site = { listenerId: 'site-c', target: 'hsm' };

const plain: PlacementRule = { futureVersions: true, futureSites: true, dualControl: false, version: 1, approvedSites: null };
const none = new Set<string>();

describe('placement diff (what a distribution policy adds and removes)', () => {
  it('pushes the current version to matching sites that lack it, adopts sites that hold it', () => {
    const d = diffPlacement({ rule: plain, currentVersion: 1, desired: [A, B], holding: new Set(['site-b/hsm']), placed: [], wantedElsewhere: none });
    assert.deepEqual(d.push, [A]);
    assert.deepEqual(d.adopt, [B]);
    assert.equal(d.widen, null);
    assert.deepEqual(d.remove, []);
  });

  it('a site placed already changes nothing; a repeated site is counted once', () => {
    const d = diffPlacement({ rule: plain, currentVersion: 1, desired: [A, A], holding: none, placed: [{ ...A, version: 1 }], wantedElsewhere: none });
    assert.deepEqual([d.push, d.adopt, d.remove], [[], [], []]);
  });

  it('rotation follows with futureVersions; a pinned policy stays on its version', () => {
    assert.equal(wantedVersion(plain, 3), 3);
    assert.equal(wantedVersion({ ...plain, futureVersions: false }, 3), 1);
    const d = diffPlacement({ rule: plain, currentVersion: 2, desired: [A], holding: none, placed: [{ ...A, version: 1 }], wantedElsewhere: none });
    assert.deepEqual(d.push, [A]);
    assert.equal(d.version, 2);
    assert.deepEqual(d.remove, [], 'the old version at a site still wanted is rotation business, not a removal');
  });

  it('a site that left the policy is removed with every version placed there, unless another policy wants it', () => {
    const placed = [
      { ...A, version: 1 },
      { ...B, version: 1 },
      { ...B, version: 2 },
      { ...C, version: 2 },
    ];
    const d = diffPlacement({ rule: plain, currentVersion: 2, desired: [A], holding: none, placed, wantedElsewhere: new Set(['site-c/hsm']) });
    assert.deepEqual(d.remove, [
      { ...B, version: 1 },
      { ...B, version: 2 },
    ]);
  });

  describe('under dual control (sensitive key)', () => {
    const approved = (sites: Site[], over: Partial<PlacementRule> = {}): PlacementRule => ({
      ...plain,
      dualControl: true,
      futureSites: false,
      approvedSites: new Set(sites.map((s) => `${s.listenerId}/${s.target}`)),
      ...over,
    });

    it('approved sites are pushed; a new match is a widening request, not a push', () => {
      const d = diffPlacement({ rule: approved([A]), currentVersion: 1, desired: [A, B], holding: none, placed: [], wantedElsewhere: none });
      assert.deepEqual(d.push, [A]);
      assert.deepEqual(d.widen, { version: 1, sites: [B] });
    });

    it('approved with futureSites: a later match is covered without a request', () => {
      const d = diffPlacement({ rule: approved([A], { futureSites: true }), currentVersion: 1, desired: [A, B], holding: none, placed: [], wantedElsewhere: none });
      assert.deepEqual(d.push, [A, B]);
      assert.equal(d.widen, null);
    });

    it('a new version without futureVersions is a widening for every site; with it, rotation follows', () => {
      const placed = [{ ...A, version: 1 }];
      const pinned = diffPlacement({ rule: approved([A], { futureVersions: false }), currentVersion: 2, desired: [A], holding: none, placed, wantedElsewhere: none });
      assert.deepEqual(pinned.push, []);
      assert.deepEqual(pinned.widen, { version: 2, sites: [A] });
      const follows = diffPlacement({ rule: approved([A], { futureVersions: true }), currentVersion: 2, desired: [A], holding: none, placed, wantedElsewhere: none });
      assert.deepEqual(follows.push, [A]);
      assert.equal(follows.widen, null);
    });

    it('removal needs no approval (it narrows reach)', () => {
      const d = diffPlacement({
        rule: approved([A, B]),
        currentVersion: 1,
        desired: [A],
        holding: none,
        placed: [
          { ...A, version: 1 },
          { ...B, version: 1 },
        ],
        wantedElsewhere: none,
      });
      assert.deepEqual(d.remove, [{ ...B, version: 1 }]);
      assert.equal(d.widen, null);
    });
  });
});

describe('label selectors', () => {
  it('matches when every selector label is carried with the same value', () => {
    assert.ok(matchesSelector({ env: 'prod', region: 'eu' }, { env: 'prod' }));
    assert.ok(!matchesSelector({ env: 'prod' }, { env: 'prod', region: 'eu' }));
    assert.ok(!matchesSelector({ env: 'dev' }, { env: 'prod' }));
    assert.ok(!matchesSelector({}, { toString: 'x' }), 'inherited properties are not labels');
  });

  it('applies set and remove, refuses a key in both, and names the delta', () => {
    assert.deepEqual(applyLabelChange({ env: 'dev', a: '1' }, { set: { env: 'prod' }, remove: ['a'] }), { env: 'prod' });
    assert.throws(() => applyLabelChange({}, { set: { env: 'prod' }, remove: ['env'] }), /both set and removed/);
    assert.deepEqual(labelDelta({ env: 'dev', a: '1' }, { env: 'prod', b: '2' }), { set: { env: 'prod', b: '2' }, removed: ['a'] });
  });
});
