import { strict as assert } from 'node:assert';
import { canTransition, DISTRIBUTION_STATES, DISTRIBUTION_TRANSITIONS, distributeAction, isSettled, type DistributionState } from '@keyhub/hub/dist/domain/distribution-state';

describe('distribution state machine', () => {
  it('names every state, and every edge ends in a known state', () => {
    assert.deepEqual(Object.keys(DISTRIBUTION_TRANSITIONS).sort(), [...DISTRIBUTION_STATES].sort());
    for (const from of DISTRIBUTION_STATES) for (const to of DISTRIBUTION_TRANSITIONS[from]) assert.ok(DISTRIBUTION_STATES.includes(to), `${from} -> ${to}`);
  });

  it('settled states are exactly those no receipt moves: nothing follows, or only a new distribution (destroyed at the site -> queued)', () => {
    for (const s of DISTRIBUTION_STATES)
      assert.equal(
        isSettled(s),
        DISTRIBUTION_TRANSITIONS[s].every((t) => s === 'destroyed' && t === 'queued'),
        s,
      );
  });

  it('takes the edges the hub uses, and no others', () => {
    assert.ok(canTransition('queued', 'sent'), 'relay publishes');
    assert.ok(canTransition('sent', 'queued'), 're-send');
    assert.ok(canTransition('sent', 'failed'), 'time-out');
    assert.ok(canTransition('failed', 'queued'), 'distribute again');
    assert.ok(canTransition('destroyed', 'queued'), 'the site matches a placement again');
    assert.ok(canTransition('failed', 'confirmed'), 'a late receipt still confirms');
    assert.ok(!canTransition('confirmed', 'queued'));
    assert.ok(!canTransition('sent', 'sent'));
    assert.ok(!canTransition('superseded', 'confirmed'));
    assert.ok(!canTransition('destroyed', 'confirmed'), 'a late receipt does not bring a destroyed version back');
  });

  it('distribute creates where nothing exists, requeues only what failed or was destroyed at the site, leaves the rest alone', () => {
    assert.equal(distributeAction(undefined), 'create');
    const expected: Record<DistributionState, string> = { queued: 'skip', sent: 'skip', confirmed: 'skip', failed: 'requeue', superseded: 'skip', destroyed: 'requeue' };
    for (const s of DISTRIBUTION_STATES) {
      assert.equal(distributeAction(s), expected[s], s);
      if (distributeAction(s) === 'requeue') assert.ok(canTransition(s, 'queued'));
    }
  });
});
